/**
 * The main thread's side of the unpack thread (lib/toolchains/unpack-thread.ts):
 * one worker that parses tar streams and writes and hashes the unpacked files,
 * so the main thread (download, archive sha256, decompression) is not also
 * the one parsing each header and resolving `fs/promises` trips per file.
 * `curl | tar` splits the same work over processes.
 *
 * The bytes travel through a fixed SharedArrayBuffer of SLOTS slots: the main
 * thread copies a piece into a free slot and posts its number; the thread
 * answers when the slot may be reused. Memory stays fixed whatever the
 * archive (transferring a buffer per file let the worker's unreclaimed ones
 * reach +50 MB of RSS). Measured in docs/benchmarks.md.
 */
import { Writable } from "node:stream";
import { Worker } from "node:worker_threads";
import type { FileRecord } from "./entry-rules.js";
import { deserializeError, SLOT_BYTES, SLOTS, type FromThread, type ToThread } from "./unpack-protocol.js";

export { SLOT_BYTES, SLOTS } from "./unpack-protocol.js";

export interface TarOutcome {
  files: FileRecord[];
  tops: string[];
  bytes: number;
}

interface FileJob {
  slot: number;
  resolve(sha256: string): void;
  reject(e: unknown): void;
}

interface TarJobState {
  label: string;
  resolve(r: TarOutcome): void;
  reject(e: unknown): void;
}

const TAR_BLOCK = 512;

/**
 * A tar stream unpacked by the thread: write the (decompressed) tar bytes to
 * `sink`. `done` settles once the thread has written everything, or has
 * stopped writing after a failure or abort() (then the folder may be deleted).
 */
export interface TarUnpack {
  sink: Writable;
  done: Promise<TarOutcome>;
  /** Stop the thread's work on it; `done` then rejects with `e`. */
  abort(e: unknown): void;
}

class WriteThread {
  private worker: Worker | undefined;
  private shared: SharedArrayBuffer | undefined;
  private view: Uint8Array | undefined;
  private free: number[] = [];
  /** Writers waiting for a slot (several packages unpack at once). */
  private readonly slotWaiters: Array<(slot: number) => void> = [];
  private readonly files = new Map<number, FileJob>();
  private readonly tars = new Map<number, TarJobState>();
  /** Data slots posted and not yet answered: the thread's to give back, or a lost thread's. */
  private readonly lent = new Set<number>();
  private nextId = 0;

  /** Hash `chunks` (at most SLOT_BYTES in all) and write them to `path`; resolves to their sha256. */
  async write(path: string, mode: number, chunks: readonly Buffer[]): Promise<string> {
    this.start();
    const slot = this.free.pop() ?? (await new Promise<number>((r) => this.slotWaiters.push(r)));
    // After the wait: the thread may have been replaced meanwhile.
    this.start();
    let size = 0;
    for (const c of chunks) {
      this.view!.set(c, slot * SLOT_BYTES + size);
      size += c.length;
    }
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      this.files.set(id, { slot, resolve, reject });
      this.busy();
      this.send({ op: "write", id, slot, size, path, mode }, () => this.onMessage({ op: "written", id, error: { kind: "error", message: "the file-writing thread is gone" } }));
    });
  }

  /** Unpack a tar stream into the empty folder `dest`, checking every entry like the main thread's unpackers. */
  tar(opts: { dest: string; label: string; maxBytes: number; maxEntries: number }): TarUnpack {
    this.start();
    const job = this.nextId++;
    let settled = false;
    let aborting: unknown;
    const done = new Promise<TarOutcome>((resolve, reject) => {
      this.tars.set(job, {
        label: opts.label,
        resolve: (r) => {
          settled = true;
          resolve(r);
        },
        reject: (e) => {
          settled = true;
          reject(aborting ?? e);
        },
      });
    });
    this.busy();
    const gone = (): void => this.onMessage({ op: "failed", job, error: { kind: "error", message: "the unpack thread is gone" } });
    this.send({ op: "tar", job, dest: opts.dest, label: opts.label, maxBytes: opts.maxBytes, maxEntries: opts.maxEntries }, gone);
    // Under 512 bytes carried from one piece to the next, so that every piece ends on a tar block.
    const carry = Buffer.alloc(TAR_BLOCK);
    let carried = 0;
    const ship = (chunk: Buffer, off: number, cb: (e?: Error | null) => void): void => {
      while (off < chunk.length) {
        if (settled || aborting !== undefined) return cb();
        const slot = this.free.pop();
        if (slot === undefined) {
          this.slotWaiters.push((s) => {
            this.free.push(s);
            ship(chunk, off, cb);
          });
          return;
        }
        const base = slot * SLOT_BYTES;
        const view = this.view!;
        if (carried) view.set(carry.subarray(0, carried), base);
        const take = Math.min(chunk.length - off, SLOT_BYTES - carried);
        view.set(chunk.subarray(off, off + take), base + carried);
        off += take;
        const filled = carried + take;
        const size = filled - (filled % TAR_BLOCK);
        carried = filled - size;
        if (carried) carry.set(view.subarray(base + size, base + filled));
        if (size === 0) {
          this.release(slot);
          continue;
        }
        this.lent.add(slot);
        this.send({ op: "data", job, slot, size }, gone);
      }
      cb();
    };
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write: (chunk: Buffer, _enc, cb) => ship(chunk, 0, cb),
      final: (cb) => {
        if (!settled && aborting === undefined) this.send({ op: "end", job, tail: carry.subarray(0, carried) }, gone);
        cb();
      },
    });
    return {
      sink,
      done,
      abort: (e) => {
        if (settled || aborting !== undefined) return;
        aborting = e;
        // The thread answers once every earlier message of the job is handled.
        this.send({ op: "abort", job }, gone);
      },
    };
  }

  /** Start the thread ahead of its first file: it takes ~50-100 ms to boot, which would otherwise stall the unpacking. */
  prestart(): void {
    this.start();
  }

  /** End the thread; what it still held fails, and the next use starts another. */
  async stop(): Promise<void> {
    await this.worker?.terminate();
  }

  private send(m: ToThread, gone: () => void): void {
    try {
      this.start().postMessage(m);
    } catch {
      gone();
    }
  }

  /** Busy, the worker keeps the process alive (a reply is still to come); idle, it must not. */
  private busy(): void {
    this.worker?.ref();
  }

  private idle(): void {
    if (this.files.size === 0 && this.tars.size === 0) this.worker?.unref();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    if (!this.shared) {
      // Once: a replaced thread's slots come back through release(), never twice.
      this.shared = new SharedArrayBuffer(SLOTS * SLOT_BYTES);
      this.view = new Uint8Array(this.shared);
      this.free = [...Array(SLOTS).keys()];
    }
    const worker = new Worker(new URL("./unpack-thread.js", import.meta.url), {
      workerData: { shared: this.shared },
      // The file list of a big package is its largest object (≈ 200 bytes a file).
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 256 },
    });
    worker.on("message", (m: FromThread) => this.onMessage(m));
    // A worker that dies (out of its memory limit, say) fails what it held; the next use starts another.
    const lost = (e: unknown): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const err = e instanceof Error ? e : new Error(`the unpack thread stopped (${String(e)})`);
      const files = [...this.files.values()];
      const tars = [...this.tars.values()];
      this.files.clear();
      this.tars.clear();
      for (const job of files) job.reject(err);
      for (const job of tars) job.reject(err);
      // Its slots were copied into and never answered: the waiting writers get them back.
      for (const job of files) this.release(job.slot);
      const lent = [...this.lent];
      this.lent.clear();
      for (const slot of lent) this.release(slot);
    };
    worker.on("error", lost);
    worker.on("exit", (code) => lost(new Error(`the unpack thread exited with code ${code}`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private onMessage(m: FromThread): void {
    switch (m.op) {
      case "free":
        this.lent.delete(m.slot);
        return this.release(m.slot);
      case "written": {
        const job = this.files.get(m.id);
        if (!job) return;
        this.files.delete(m.id);
        this.idle();
        this.release(job.slot);
        if (m.error) job.reject(deserializeError(m.error, ""));
        else job.resolve(m.sha256!);
        return;
      }
      case "done":
      case "failed": {
        const job = this.tars.get(m.job);
        if (!job) return;
        this.tars.delete(m.job);
        this.idle();
        if (m.op === "done") job.resolve({ files: m.files, tops: m.tops, bytes: m.bytes });
        else job.reject(deserializeError(m.error, job.label));
      }
    }
  }

  private release(slot: number): void {
    const next = this.slotWaiters.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}

let thread: WriteThread | undefined;

/** The process's unpack thread (started on first use). */
export function writeThread(): WriteThread {
  return (thread ??= new WriteThread());
}
