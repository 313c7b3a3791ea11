/**
 * One worker thread that hashes and writes the small files of an unpacking
 * package, so the main thread (download, archive sha256, tar parsing) is not
 * also the one hashing each file and resolving three `fs/promises` trips per
 * file. `curl | tar` splits the same work over processes.
 *
 * The bytes travel through a fixed SharedArrayBuffer of SLOTS slots: the main
 * thread copies a file into a free slot, the worker hashes that slot and
 * writes it with O_CREAT|O_EXCL (never following a link planted at the path),
 * and answers with the sha256, which frees the slot. Memory stays fixed
 * whatever the archive (transferring a buffer per file let the worker's
 * unreclaimed ones reach +50 MB of RSS). Measured in docs/benchmarks.md.
 */
import { Worker } from "node:worker_threads";

/** Largest file a slot holds (the unpacker's small-file size). */
export const SLOT_BYTES = 256 * 1024;
/** Files in flight to the thread (more did not make it faster; each slot is 256 KiB of resident memory). */
export const SLOTS = 4;

// CommonJS run by the worker (eval): Node's own modules only.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { openSync, writeSync, closeSync } = require("node:fs");
const shared = Buffer.from(workerData.shared);
parentPort.on("message", ({ id, slot, size, path, mode }) => {
  const data = shared.subarray(slot * ${SLOT_BYTES}, slot * ${SLOT_BYTES} + size);
  try {
    const sha256 = createHash("sha256").update(data).digest("hex");
    const fd = openSync(path, "wx", mode);
    try {
      for (let off = 0; off < size; ) off += writeSync(fd, data, off, size - off);
    } finally {
      closeSync(fd);
    }
    parentPort.postMessage({ id, sha256 });
  } catch (e) {
    parentPort.postMessage({ id, error: { message: String(e && e.message), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall, path: e && e.path } });
  }
});
`;

interface Reply {
  id: number;
  sha256?: string;
  error?: { message: string; code?: string; errno?: number; syscall?: string; path?: string };
}

interface Job {
  slot: number;
  resolve(sha256: string): void;
  reject(e: unknown): void;
}

class WriteThread {
  private worker: Worker | undefined;
  private shared: SharedArrayBuffer | undefined;
  private view: Uint8Array | undefined;
  private free: number[] = [];
  /** Writers waiting for a slot (several packages unpack at once). */
  private readonly slotWaiters: Array<(slot: number) => void> = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;

  /** Hash `chunks` (at most SLOT_BYTES in all) and write them to `path`; resolves to their sha256. */
  async write(path: string, mode: number, chunks: readonly Buffer[]): Promise<string> {
    this.start();
    const slot = this.free.pop() ?? (await new Promise<number>((r) => this.slotWaiters.push(r)));
    // After the wait: the thread may have been replaced meanwhile.
    const worker = this.start();
    let size = 0;
    for (const c of chunks) {
      this.view!.set(c, slot * SLOT_BYTES + size);
      size += c.length;
    }
    const id = this.nextId++;
    // Busy, the worker keeps the process alive (a reply is still to come); idle, it must not.
    if (this.jobs.size === 0) worker.ref();
    return new Promise<string>((resolve, reject) => {
      this.jobs.set(id, { slot, resolve, reject });
      try {
        worker.postMessage({ id, slot, size, path, mode });
      } catch (e) {
        this.settle({ id, error: { message: `the file-writing thread is gone (${(e as Error).message})` } });
      }
    });
  }

  /** Start the thread ahead of its first file: it takes ~50-100 ms to boot, which would otherwise stall the unpacking. */
  prestart(): void {
    this.start();
  }

  /** End the thread; what it still held fails, and the next write starts another. */
  async stop(): Promise<void> {
    await this.worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    if (!this.shared) {
      // Once: a replaced thread's slots come back through release(), never twice.
      this.shared = new SharedArrayBuffer(SLOTS * SLOT_BYTES);
      this.view = new Uint8Array(this.shared);
      this.free = [...Array(SLOTS).keys()];
    }
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { shared: this.shared }, resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 } });
    worker.on("message", (m: Reply) => this.settle(m));
    // A worker that dies (out of its memory limit, say) fails what it held; the next write starts another.
    const lost = (e: unknown): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const jobs = [...this.jobs.values()];
      this.jobs.clear();
      for (const job of jobs) job.reject(e instanceof Error ? e : new Error(`the file-writing thread stopped (${String(e)})`));
      // Its slots were copied into and never answered: the waiting writers get them back.
      for (const job of jobs) this.release(job.slot);
    };
    worker.on("error", lost);
    worker.on("exit", (code) => lost(new Error(`the file-writing thread exited with code ${code}`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(m: Reply): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    this.jobs.delete(m.id);
    if (this.jobs.size === 0) this.worker?.unref();
    this.release(job.slot);
    if (m.error) job.reject(Object.assign(new Error(m.error.message), { code: m.error.code, errno: m.error.errno, syscall: m.error.syscall, path: m.error.path }));
    else job.resolve(m.sha256!);
  }

  private release(slot: number): void {
    const next = this.slotWaiters.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}

let thread: WriteThread | undefined;

/** The process's file-writing thread (started on first use). */
export function writeThread(): WriteThread {
  return (thread ??= new WriteThread());
}
