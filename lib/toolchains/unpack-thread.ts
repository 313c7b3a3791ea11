/**
 * The unpack thread: started by lib/toolchains/write-thread.ts, it parses
 * tar streams (tar's own parser), checks every entry (lib/toolchains/entry-rules.ts)
 * and writes and hashes the files with synchronous calls, while the main
 * thread downloads, hashes the archive and decompresses: the split `curl | tar`
 * has. It also writes single small files for the main thread's unpackers
 * (zip, local folders).
 *
 * Bytes arrive through the fixed slots of a SharedArrayBuffer. Each tar piece
 * is a multiple of 512 bytes (tar's block), so tar's parser never keeps a
 * piece of a slot for later, and every entry's data is written before the
 * slot is handed back: a slot is free again as soon as its message is done.
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, linkSync, mkdirSync, openSync, rmSync, symlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { Parser } from "tar/parse";
import type { ReadEntry } from "tar/read-entry";
import { EntryRules, type FileRecord } from "./entry-rules.js";
import { UnsafeArchiveError, UnsupportedArchiveError } from "./errors.js";
import { SLOT_BYTES, serializeError, type FromThread, type ToThread } from "./unpack-protocol.js";

const port = parentPort!;
const shared = Buffer.from(workerData.shared as SharedArrayBuffer);
const post = (m: FromThread): void => port.postMessage(m);

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

/** One tar stream being unpacked into `dest`. */
class TarJob {
  private readonly rules: EntryRules;
  private readonly parser: Parser;
  private readonly madeDirs = new Set<string>();
  private started = false;
  /** The file being written, closed on failure. */
  private fd: number | undefined;
  stopped = false;

  constructor(
    private readonly id: number,
    private readonly dest: string,
    label: string,
    maxBytes: number,
    maxEntries: number,
  ) {
    this.rules = new EntryRules(label, maxBytes, maxEntries);
    // No brotli or zstd guessing: the main thread has decompressed the stream already.
    this.parser = new Parser({ strict: true, brotli: false, zstd: false });
    this.parser.on("entry", (e: ReadEntry) => this.entry(e));
    this.parser.on("error", (e: unknown) => this.fail(e));
    this.parser.on("end", () => this.finish());
  }

  write(data: Buffer): void {
    if (this.stopped) return;
    if (!this.started) {
      this.started = true;
      // tar's parser would gunzip a gzip stream itself, reading the slot after it is handed back.
      if (data[0] === 0x1f && data[1] === 0x8b) return this.fail(new UnsupportedArchiveError(this.rules.label, "its content is compressed twice (a gzip stream inside)"));
    }
    try {
      this.parser.write(data);
    } catch (e) {
      this.fail(e);
    }
  }

  end(tail: Buffer): void {
    if (this.stopped) return;
    try {
      if (tail.length) this.write(tail);
      if (!this.stopped) this.parser.end();
    } catch (e) {
      this.fail(e);
    }
  }

  /** Stop writing; `e` is reported unless the main thread asked for the stop. */
  fail(e: unknown, report = true): void {
    if (this.stopped) return;
    this.stopped = true;
    jobs.delete(this.id);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.parser.abort(e instanceof Error ? e : new Error(String(e)));
    if (report) post({ op: "failed", job: this.id, error: serializeError(e) });
  }

  private finish(): void {
    if (this.stopped) return;
    this.stopped = true;
    jobs.delete(this.id);
    post({ op: "done", job: this.id, files: this.rules.files, tops: [...this.rules.tops], bytes: this.rules.bytes });
  }

  private entry(entry: ReadEntry): void {
    if (this.stopped) return void entry.resume();
    const raw = entry.path;
    try {
      const rel = this.rules.checkPath(raw);
      switch (entry.type) {
        case "Directory":
        case "GNUDumpDir":
          entry.resume();
          if (rel) this.mkdir(join(this.dest, rel));
          return;
        case "File":
        case "OldFile":
        case "ContiguousFile":
          if (!rel) return void entry.resume();
          return this.file(rel, entry);
        case "SymbolicLink":
          entry.resume();
          return this.symlink(rel, entry.linkpath ?? "");
        case "Link":
          entry.resume();
          return this.hardlink(rel, entry.linkpath ?? "");
        case "CharacterDevice":
        case "BlockDevice":
        case "FIFO":
          throw new UnsafeArchiveError(this.rules.label, raw, `is a ${entry.type === "FIFO" ? "FIFO" : "device file"}, not allowed in a package`);
        default:
          throw new UnsafeArchiveError(this.rules.label, raw, `has an unsupported tar entry type (${entry.type})`);
      }
    } catch (e) {
      entry.resume();
      this.fail(e);
    }
  }

  private mkdir(dir: string): void {
    if (this.madeDirs.has(dir)) return;
    mkdirSync(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  /** The path for `rel`, its folder made; an earlier entry there is removed first. */
  private place(rel: string): string {
    const abs = join(this.dest, rel);
    if (this.rules.replaces(rel)) rmSync(abs, { force: true, recursive: true });
    this.mkdir(dirname(abs));
    return abs;
  }

  /** Written as its data arrives (tar's parser cuts it at the header's size). */
  private file(rel: string, entry: ReadEntry): void {
    const size = entry.size ?? 0;
    this.rules.count(rel, size);
    const abs = this.place(rel);
    const rec: FileRecord = { path: rel, type: "file", size, mode: ((entry.mode ?? 0o644) & 0o777) | 0o600 };
    // 'wx' = O_CREAT|O_EXCL: never follows a link planted at this path.
    const fd = openSync(abs, "wx", rec.mode);
    this.fd = fd;
    const hash: Hash = createHash("sha256");
    let written = 0;
    entry.on("data", (c: Buffer) => {
      if (this.fd !== fd) return;
      try {
        hash.update(c);
        writeAll(fd, c);
        written += c.length;
      } catch (e) {
        this.fail(e);
      }
    });
    entry.once("end", () => {
      if (this.fd !== fd) return;
      this.fd = undefined;
      try {
        closeSync(fd);
        if (written !== size) throw new UnsupportedArchiveError(this.rules.label, `entry '${rel}' holds ${written} bytes, its header says ${size}`);
        rec.sha256 = hash.digest("hex");
        this.rules.record(rec);
      } catch (e) {
        this.fail(e);
      }
    });
  }

  private symlink(rel: string, target: string): void {
    this.rules.checkSymlink(rel, target);
    this.rules.count(rel, 0);
    symlinkSync(target, this.place(rel));
    this.rules.record({ path: rel, type: "symlink", size: 0, mode: 0o777, target });
  }

  private hardlink(rel: string, target: string): void {
    const src = this.rules.linkSource(rel, target);
    this.rules.count(rel, src.size);
    linkSync(join(this.dest, src.path), this.place(rel));
    this.rules.record({ ...src, path: rel });
  }
}

const jobs = new Map<number, TarJob>();

/** A small file: hash it and write it. */
function writeFile(m: Extract<ToThread, { op: "write" }>): void {
  const data = shared.subarray(m.slot * SLOT_BYTES, m.slot * SLOT_BYTES + m.size);
  try {
    const sha256 = createHash("sha256").update(data).digest("hex");
    const fd = openSync(m.path, "wx", m.mode);
    try {
      writeAll(fd, data);
    } finally {
      closeSync(fd);
    }
    post({ op: "written", id: m.id, sha256 });
  } catch (e) {
    post({ op: "written", id: m.id, error: serializeError(e) });
  }
}

port.on("message", (m: ToThread) => {
  switch (m.op) {
    case "write":
      return writeFile(m);
    case "tar":
      return void jobs.set(m.job, new TarJob(m.job, m.dest, m.label, m.maxBytes, m.maxEntries));
    case "data":
      jobs.get(m.job)?.write(shared.subarray(m.slot * SLOT_BYTES, m.slot * SLOT_BYTES + m.size));
      return post({ op: "free", slot: m.slot });
    case "end":
      return jobs.get(m.job)?.end(Buffer.from(m.tail));
    case "abort": {
      const job = jobs.get(m.job);
      job?.fail(new Error("aborted"), false);
      // Every earlier message of the job is handled: nothing more is written for it.
      return post({ op: "failed", job: m.job, error: { kind: "error", message: "aborted" } });
    }
  }
});
