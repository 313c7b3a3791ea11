/**
 * Unpack an archive into an empty temp directory, refusing anything hostile:
 * absolute paths, `..`, links that point outside the package, writes through
 * a link, device files and FIFOs, and more than `maxBytes` of content (bombs).
 * One code path writes entries for tar (gz, bz2, xz, zst, plain) and zip.
 *
 * Each regular file is hashed while it is written, giving the entry's file
 * list that `kiln pkg verify` checks later without keeping the archive.
 * A single top-level folder is reported as `root` (Arduino and PlatformIO
 * strip it); the caller renames it into place.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { link, lstat, mkdir, open, readdir, readlink, rm, symlink } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { PassThrough, Readable, Transform, Writable, type Duplex } from "node:stream";
import { finished } from "node:stream/promises";
import * as zlib from "node:zlib";
import { CancelledError, errnoCode } from "../core/errors.js";
import { UnsafeArchiveError, UnsupportedArchiveError } from "./errors.js";
import { SLOT_BYTES, SLOTS, writeThread } from "./write-thread.js";

export type ArchiveFormat = "tar" | "tar.gz" | "tar.bz2" | "tar.xz" | "tar.zst" | "zip";

export interface FileRecord {
  /** Path inside the package, `/`-separated, relative to the package root. */
  path: string;
  type: "file" | "symlink";
  size: number;
  /** Permission bits as written. */
  mode: number;
  sha256?: string;
  /** Symlink target as stored. */
  target?: string;
}

export interface ExtractOptions {
  archive: string;
  /** Empty directory to unpack into. */
  dest: string;
  /** URL or file name for messages. */
  label: string;
  /** Cap on the sum of entry sizes (default 8 GiB). */
  maxBytes?: number;
  /** Cap on the number of entries (default 500 000). */
  maxEntries?: number;
  signal?: AbortSignal | undefined;
}

export interface ExtractResult {
  format: ArchiveFormat;
  /** The single top-level folder to strip, or undefined when the archive has several top-level entries. */
  root: string | undefined;
  files: FileRecord[];
  unpackedBytes: number;
}

export const DEFAULT_MAX_BYTES = 8 * 1024 ** 3;

/** Identify the format from magic bytes; a file name can lie. */
/** Identify the format from magic bytes; a file name can lie. */
export function sniffBuffer(b: Buffer): ArchiveFormat | undefined {
  if (b[0] === 0x1f && b[1] === 0x8b) return "tar.gz";
  if (b.subarray(0, 3).toString("latin1") === "BZh") return "tar.bz2";
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "tar.xz";
  if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return "tar.zst";
  if (b[0] === 0x50 && b[1] === 0x4b && (b[2] === 3 || b[2] === 5) && (b[3] === 4 || b[3] === 6)) return "zip";
  if (b.length >= 262 && b.subarray(257, 262).toString("latin1") === "ustar") return "tar";
  return undefined;
}

export async function sniffFormat(file: string): Promise<ArchiveFormat | undefined> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    return sniffBuffer(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

async function decompressor(format: ArchiveFormat): Promise<Duplex | undefined> {
  switch (format) {
    case "tar":
      return undefined;
    case "tar.gz":
      // 64 KiB: every output chunk stays resident while any file cut from it waits to be written.
      return zlib.createGunzip({ chunkSize: 64 * 1024 });
    case "tar.bz2":
      return (await import("unbzip2-stream")).default();
    case "tar.zst": {
      const native = (zlib as unknown as { createZstdDecompress?: () => Duplex }).createZstdDecompress;
      if (native) return native();
      const { Decompress } = await import("fzstd");
      let push: (chunk: Uint8Array) => void = () => {};
      const d = new Decompress((chunk) => push(chunk));
      return new Transform({
        transform(chunk: Buffer, _enc, cb) {
          push = (c) => this.push(Buffer.from(c.buffer, c.byteOffset, c.length));
          try {
            d.push(chunk);
            cb();
          } catch (e) {
            cb(e as Error);
          }
        },
        flush(cb) {
          push = (c) => this.push(Buffer.from(c.buffer, c.byteOffset, c.length));
          try {
            d.push(new Uint8Array(0), true);
            cb();
          } catch (e) {
            cb(e as Error);
          }
        },
      });
    }
    case "tar.xz":
    case "zip":
      return undefined;
  }
}

/** Files up to this size are read whole, then hashed and written by the write thread. */
const SMALL_FILE = SLOT_BYTES;
/** Small files handed to the write thread at once, per unpacking package: as many as it has slots. */
const IN_FLIGHT = SLOTS;

/** A stream read by its events (a tar entry). */
interface Gatherable {
  on(event: "data", fn: (chunk: Buffer) => void): unknown;
  once(event: "end", fn: () => void): unknown;
  once(event: "error", fn: (e: unknown) => void): unknown;
}

/** All of a stream's chunks, once it ends. */
function gather(body: Gatherable): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // 'end' first: a 'data' listener starts the flow, which may end the stream at once.
    body.once("end", () => resolve(chunks));
    body.once("error", reject);
    body.on("data", (c) => void chunks.push(c));
  });
}

/** Checks every entry and writes it; shared by the tar and zip readers. */
class Writer {
  readonly files: FileRecord[] = [];
  readonly tops = new Set<string>();
  private readonly links = new Set<string>();
  private readonly written = new Map<string, FileRecord>();
  private readonly madeDirs = new Set<string>();
  private bytes = 0;
  private entries = 0;
  /**
   * Small files are read whole, then hashed and written by the write thread
   * (lib/toolchains/write-thread.ts) while the next entries are read: up to
   * IN_FLIGHT at once. Their records get their sha256 when the thread answers.
   */
  private readonly inflight = new Set<Promise<void>>();
  private readonly inflightPaths = new Set<string>();
  private inflightError: unknown;
  private readonly maxBytes: number;
  private readonly maxEntries: number;

  constructor(private readonly opts: ExtractOptions) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxEntries = opts.maxEntries ?? 500_000;
  }

  get unpackedBytes(): number {
    return this.bytes;
  }

  private refuse(entry: string, reason: string): never {
    throw new UnsafeArchiveError(this.opts.label, entry, reason);
  }

  /** Normalise and check an entry path; returns it relative, `/`-separated, no trailing slash. */
  checkPath(raw: string): string {
    if (raw.includes("\0")) this.refuse(raw, "has a NUL byte in its name");
    const p = raw.replace(/\\/g, "/");
    if (p.startsWith("/") || /^[a-zA-Z]:/.test(p) || p.startsWith("//")) this.refuse(raw, "has an absolute path");
    const parts = p.split("/").filter((s) => s !== "" && s !== ".");
    if (parts.includes("..")) this.refuse(raw, "escapes the package with '..'");
    if (parts.length === 0) return "";
    if (++this.entries > this.maxEntries) this.refuse(raw, `exceeds the cap of ${this.maxEntries} entries`);
    // Most packages have no links: then no prefix of the path can be one.
    if (this.links.size) {
      for (let i = 1; i < parts.length; i++) {
        if (this.links.has(parts.slice(0, i).join("/"))) this.refuse(raw, `is written through the link '${parts.slice(0, i).join("/")}'`);
      }
    }
    this.tops.add(parts[0]!);
    return parts.join("/");
  }

  private count(entry: string, size: number): void {
    this.bytes += size;
    if (this.bytes > this.maxBytes) this.refuse(entry, `takes the unpacked size over the cap of ${this.maxBytes} bytes`);
  }

  async dir(rel: string): Promise<void> {
    if (rel) await mkdir(join(this.opts.dest, rel), { recursive: true });
  }

  /** Wait for every background write; the first failure is thrown (here, or by the next file()). */
  async settle(): Promise<void> {
    while (this.inflight.size) await Promise.all(this.inflight);
    if (this.inflightError !== undefined) throw this.inflightError;
  }

  private async replace(rel: string): Promise<string> {
    const abs = join(this.opts.dest, rel);
    if (this.written.has(rel) || this.links.has(rel)) {
      // Replacing an entry (rare): let every background write land first.
      await this.settle();
      await rm(abs, { force: true, recursive: true });
      this.links.delete(rel);
      const i = this.files.indexOf(this.written.get(rel)!);
      if (i >= 0) this.files.splice(i, 1);
      this.written.delete(rel);
    }
    const parent = dirname(abs);
    if (!this.madeDirs.has(parent)) {
      await mkdir(parent, { recursive: true });
      this.madeDirs.add(parent);
    }
    return abs;
  }

  /**
   * Write one regular file. `exact`: the reader guarantees the body is exactly
   * `declaredSize` bytes (tar's parser cuts entries by their header's size), so
   * a small one is gathered by events, without an async iterator per file.
   */
  async file(rel: string, mode: number, declaredSize: number, body: AsyncIterable<Buffer> | Gatherable, exact = false): Promise<void> {
    this.count(rel, declaredSize);
    const abs = await this.replace(rel);
    if (exact && declaredSize <= SMALL_FILE && "on" in body) {
      if (this.inflightError !== undefined) throw this.inflightError;
      const chunks = await gather(body);
      if (this.opts.signal?.aborted) throw new CancelledError();
      const size = chunks.reduce((n, c) => n + c.length, 0);
      if (size !== declaredSize) throw new UnsupportedArchiveError(this.opts.label, `entry '${rel}' holds ${size} bytes, its header says ${declaredSize}`);
      const rec: FileRecord = { path: rel, type: "file", size, mode: (mode & 0o777) | 0o600 };
      await this.writeLater(rel, abs, rec.mode, chunks, rec);
      this.files.push(rec);
      this.written.set(rel, rec);
      return;
    }
    const iterable = body as AsyncIterable<Buffer>;
    const hash = createHash("sha256");
    let size = 0;
    const perm = (mode & 0o777) | 0o600;
    const overflow = (n: number): Error | undefined => {
      this.bytes += n;
      return this.bytes > this.maxBytes ? new UnsafeArchiveError(this.opts.label, rel, `takes the unpacked size over the cap of ${this.maxBytes} bytes`) : undefined;
    };
    if (this.inflightError !== undefined) throw this.inflightError;
    // Plain writes rather than a stream pipeline per file: toolchains have thousands of small files,
    // and per-file stream objects cost more than the writes. 'wx' = O_CREAT|O_EXCL: never follows a
    // link planted at this path.
    let fh = declaredSize <= SMALL_FILE ? undefined : await open(abs, "wx", perm);
    let pending: Buffer[] = [];
    try {
      let pendingBytes = 0;
      for await (const chunk of iterable) {
        if (this.opts.signal?.aborted) throw new CancelledError();
        const before = size;
        size += chunk.length;
        // Declared sizes were counted up front; count what a lying header adds.
        if (size > declaredSize) {
          const err = overflow(size - Math.max(before, declaredSize));
          if (err) throw err;
        }
        // A small file is hashed by the write thread, with its bytes.
        if (fh) hash.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        // A header that understated the size: stream the rest like a large file.
        if (!fh && pendingBytes > SMALL_FILE) {
          fh = await open(abs, "wx", perm);
          for (const c of pending) hash.update(c);
        }
        if (fh && pendingBytes >= 256 * 1024) {
          await fh.writev(pending);
          pending = [];
          pendingBytes = 0;
        }
      }
      if (fh && pending.length) await fh.writev(pending);
    } finally {
      await fh?.close();
    }
    const rec: FileRecord = { path: rel, type: "file", size, mode: perm };
    if (fh) rec.sha256 = hash.digest("hex");
    else await this.writeLater(rel, abs, perm, pending, rec);
    this.files.push(rec);
    this.written.set(rel, rec);
  }

  /** Hand a small file to the write thread (see `inflight`); `rec` gets its sha256 when written. */
  private async writeLater(rel: string, abs: string, perm: number, chunks: Buffer[], rec: FileRecord): Promise<void> {
    while (this.inflight.size >= IN_FLIGHT) await Promise.race(this.inflight);
    if (this.inflightError !== undefined) throw this.inflightError;
    this.inflightPaths.add(rel);
    const job: Promise<void> = writeThread()
      .write(abs, perm, chunks)
      .then((sha256) => {
        rec.sha256 = sha256;
      })
      .catch((e: unknown) => {
        this.inflightError ??= e;
      })
      .finally(() => {
        this.inflight.delete(job);
        this.inflightPaths.delete(rel);
      });
    this.inflight.add(job);
  }

  async symlink(rel: string, target: string): Promise<void> {
    const t = target.replace(/\\/g, "/");
    if (t.startsWith("/") || /^[a-zA-Z]:/.test(t)) this.refuse(rel, `is a symlink to the absolute path '${target}'`);
    const resolved = posix.normalize(posix.join(posix.dirname(rel), t));
    if (resolved === ".." || resolved.startsWith("../")) this.refuse(rel, `is a symlink pointing outside the package ('${target}')`);
    this.count(rel, 0);
    const abs = await this.replace(rel);
    await symlink(target, abs);
    this.links.add(rel);
    const rec: FileRecord = { path: rel, type: "symlink", size: 0, mode: 0o777, target };
    this.files.push(rec);
    this.written.set(rel, rec);
  }

  async hardlink(rel: string, targetRaw: string): Promise<void> {
    const target = this.checkLinkTarget(rel, targetRaw);
    if (this.inflightPaths.has(target)) await this.settle();
    const src = this.written.get(target);
    if (!src || src.type !== "file") this.refuse(rel, `is a hard link to '${targetRaw}', which is not a file of this package`);
    this.count(rel, src.size);
    const abs = await this.replace(rel);
    await link(join(this.opts.dest, target), abs);
    const rec: FileRecord = { ...src, path: rel };
    this.files.push(rec);
    this.written.set(rel, rec);
  }

  private checkLinkTarget(rel: string, raw: string): string {
    const p = raw.replace(/\\/g, "/");
    if (p.startsWith("/") || /^[a-zA-Z]:/.test(p)) this.refuse(rel, `is a hard link to the absolute path '${raw}'`);
    const parts = p.split("/").filter((s) => s !== "" && s !== ".");
    if (parts.includes("..")) this.refuse(rel, `is a hard link pointing outside the package ('${raw}')`);
    return parts.join("/");
  }
}

/** tar's parser alone (loaded once; a streamed install asks for it as the download starts). */
let tarParser: Promise<typeof import("tar/parse").Parser> | undefined;
const loadTarParser = (): Promise<typeof import("tar/parse").Parser> => (tarParser ??= import("tar/parse").then((m) => m.Parser));

/** A tar unpacking under way: write the archive's bytes to `head` and end it. */
interface TarRun {
  /** The decompressor, or the parser itself for a plain tar. */
  head: Writable;
  /** Set once unpacking has failed or been cancelled: bytes for `head` are then dropped. */
  readonly stopped: boolean;
  /** Stop it from the input's side (the download failed, restarted, was abandoned). */
  fail(e: unknown): void;
  /** Every entry written (and the write thread settled), or the first failure. */
  done: Promise<void>;
}

/**
 * Start unpacking a tar archive: the parser and decompressor are ready when
 * this resolves. `open` (an archive on disk) is opened then, piped in and
 * destroyed on a failure; without it the caller writes to `head` (a streamed download: no
 * stream of its own in between, which cost ~40 ms of CPU per 100 MB).
 */
async function startTar(opts: ExtractOptions, format: ArchiveFormat, w: Writer, open?: () => Readable): Promise<TarRun> {
  const Parser = await loadTarParser();
  let xz: { input: PassThrough; output: Readable } | undefined;
  if (format === "tar.xz") {
    const mod = (await import("xz-decompress")) as unknown as { XzReadableStream?: typeof import("xz-decompress").XzReadableStream; default?: { XzReadableStream: typeof import("xz-decompress").XzReadableStream } };
    const XzReadableStream = mod.XzReadableStream ?? mod.default!.XzReadableStream;
    const xzInput = new PassThrough({ highWaterMark: 64 * 1024 });
    xz = { input: xzInput, output: Readable.fromWeb(new XzReadableStream(Readable.toWeb(xzInput) as unknown as ReadableStream<Uint8Array>) as unknown as import("node:stream/web").ReadableStream) };
  }
  const dec = await decompressor(format);
  const input = open?.();
  let failure: unknown;
  let chain: Promise<void> = Promise.resolve();
  const parser = new Parser({ strict: true });
  let current: { destroy(e?: unknown): void; on(ev: "error", fn: () => void): void } | undefined;
  let failing = false;
  const fail = (e: unknown): void => {
    failure ??= e;
    if (failing) return;
    failing = true;
    // End the entry being written, or its file write would wait forever.
    current?.on("error", () => {});
    current?.destroy(e instanceof Error ? e : new Error(String(e)));
    input?.destroy();
    xz?.input.destroy();
    xz?.output.destroy();
    dec?.destroy();
    parser.abort(e instanceof Error ? e : new Error(String(e)));
  };
  parser.on("entry", (entry) => {
    const handle = async (): Promise<void> => {
      if (failing) return void entry.resume();
      current = entry as unknown as typeof current;
      const raw = entry.path;
      try {
        const rel = w.checkPath(raw);
        switch (entry.type) {
          case "Directory":
          case "GNUDumpDir":
            entry.resume();
            return void (await w.dir(rel));
          case "File":
          case "OldFile":
          case "ContiguousFile":
            if (!rel) return void entry.resume();
            return await w.file(rel, entry.mode ?? 0o644, entry.size, entry as unknown as Gatherable, true);
          case "SymbolicLink":
            entry.resume();
            return await w.symlink(rel, entry.linkpath ?? "");
          case "Link":
            entry.resume();
            return await w.hardlink(rel, entry.linkpath ?? "");
          case "CharacterDevice":
          case "BlockDevice":
          case "FIFO":
            throw new UnsafeArchiveError(opts.label, raw, `is a ${entry.type === "FIFO" ? "FIFO" : "device file"}, not allowed in a package`);
          default:
            throw new UnsafeArchiveError(opts.label, raw, `has an unsupported tar entry type (${entry.type})`);
        }
      } catch (e) {
        entry.resume();
        fail(e);
      }
    };
    // Entries arrive in order; each is written before the parser moves on
    // (the parser waits for the entry's stream to be consumed).
    chain = chain.then(handle);
  });
  const ended = new Promise<void>((resolve, reject) => {
    parser.on("error", (e: unknown) => {
      fail(e);
      reject(failure);
    });
    parser.on("end", () => resolve());
    parser.on("abort", () => reject(failure));
    for (const s of [input, xz?.input, xz?.output, dec]) {
      s?.on("error", (e: unknown) => {
        fail(e);
        reject(failure);
      });
    }
    opts.signal?.addEventListener("abort", () => fail(new CancelledError()), { once: true });
  });
  const parserIn = parser as unknown as Writable;
  if (xz) xz.output.pipe(parserIn);
  else dec?.pipe(parserIn);
  const head = xz?.input ?? dec ?? parserIn;
  input?.pipe(head);
  const done = (async () => {
    // Settle every file write before returning, so the caller can delete the dir.
    await ended.catch(() => undefined);
    await chain.catch(() => undefined);
    await w.settle().catch((e: unknown) => (failure ??= e));
    if (failure) throw failure;
  })();
  return {
    head,
    get stopped() {
      return failing;
    },
    fail,
    done,
  };
}

async function extractTar(opts: ExtractOptions, format: ArchiveFormat, w: Writer): Promise<void> {
  await (await startTar(opts, format, w, () => createReadStream(opts.archive, { highWaterMark: 1024 * 1024 }))).done;
}

async function extractZip(opts: ExtractOptions, w: Writer): Promise<void> {
  const yauzl = (await import("yauzl")).default;
  const zip = await new Promise<import("yauzl").ZipFile>((resolve, reject) =>
    yauzl.open(opts.archive, { lazyEntries: true, autoClose: true, validateEntrySizes: true, strictFileNames: false }, (e, z) => (e ? reject(e) : resolve(z))),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new CancelledError());
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      zip.on("error", reject);
      zip.on("end", () => resolve());
      zip.on("entry", (entry: import("yauzl").Entry) => {
        void (async () => {
          const rel = w.checkPath(entry.fileName);
          const unixMode = entry.versionMadeBy >> 8 === 3 ? (entry.externalFileAttributes >>> 16) & 0xffff : 0;
          const kind = unixMode & 0o170000;
          if (entry.fileName.endsWith("/") || kind === 0o040000) {
            await w.dir(rel);
          } else if (kind === 0o120000) {
            if (entry.uncompressedSize > 4096) throw new UnsafeArchiveError(opts.label, entry.fileName, "is a symlink with an oversized target");
            const stream = await openZipEntry(zip, entry);
            const chunks: Buffer[] = [];
            for await (const c of stream) chunks.push(c as Buffer);
            await w.symlink(rel, Buffer.concat(chunks).toString("utf8"));
          } else if (kind === 0 || kind === 0o100000) {
            if (rel) await w.file(rel, unixMode & 0o777 || 0o644, entry.uncompressedSize, await openZipEntry(zip, entry));
          } else {
            throw new UnsafeArchiveError(opts.label, entry.fileName, "is a device file, FIFO or socket, not allowed in a package");
          }
          zip.readEntry();
        })().catch(reject);
      });
      zip.readEntry();
    });
  } catch (e) {
    const msg = (e as Error).message ?? "";
    if (!(e instanceof UnsafeArchiveError) && /invalid relative path|absolute path|invalid characters/i.test(msg)) {
      throw new UnsafeArchiveError(opts.label, msg.replace(/^.*: /, ""), msg);
    }
    throw e;
  } finally {
    zip.close();
  }
}

function openZipEntry(zip: import("yauzl").ZipFile, entry: import("yauzl").Entry): Promise<Readable> {
  return new Promise((resolve, reject) => zip.openReadStream(entry, (e, s) => (e ? reject(e) : resolve(s))));
}

/**
 * Unpack `opts.archive` into `opts.dest`. Throws UnsafeArchiveError for a
 * hostile entry, UnsupportedArchiveError for an unknown format; the caller
 * deletes `dest` on any failure.
 */
export async function extractArchive(opts: ExtractOptions): Promise<ExtractResult> {
  const format = await sniffFormat(opts.archive);
  if (!format) throw new UnsupportedArchiveError(opts.label, "not a tar (gz, bz2, xz, zst) or zip archive");
  const w = new Writer(opts);
  try {
    if (format === "zip") await extractZip(opts, w);
    else await extractTar(opts, format, w);
  } catch (e) {
    throw classify(e, format, opts);
  }
  return finish(opts, format, w);
}

async function finish(opts: ExtractOptions, format: ArchiveFormat, w: Writer): Promise<ExtractResult> {
  await w.settle();
  const top = [...w.tops];
  let root: string | undefined;
  if (top.length === 1) {
    const only = top[0]!;
    const isDir = w.files.every((f) => f.path.startsWith(`${only}/`));
    if (isDir && (await readdir(join(opts.dest, only)).then(() => true, () => false))) root = only;
  }
  const files = root ? w.files.map((f) => ({ ...f, path: f.path.slice(root.length + 1) })) : w.files;
  return { format, root, files, unpackedBytes: w.unpackedBytes };
}


function classify(e: unknown, format: ArchiveFormat, opts: ExtractOptions): unknown {
  if (e instanceof UnsafeArchiveError || e instanceof CancelledError) return e;
  const code = errnoCode(e);
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EACCES" || code === "EROFS" || code === "EMFILE") return e;
  if (code === "ABORT_ERR") return new CancelledError();
  return new UnsupportedArchiveError(opts.label, `damaged ${format} archive (${(e as Error).message})`);
}

/** Where a streamed download's bytes go. */
interface Target {
  write(chunk: Buffer, cb: () => void): void;
  end(): void;
  abort(e: Error): void;
}

/** Events after which a writable takes more, or never will (tar's parser says 'abort'). */
const UNBLOCKED = ["drain", "close", "error", "abort"] as const;

/** Write `chunk`; `cb` once `to` may take more: now, on 'drain', or when it stops (then no 'drain' comes). */
function passOn(to: Writable, chunk: Buffer, cb: () => void): void {
  if (to.destroyed || to.write(chunk)) return cb();
  const go = (): void => {
    for (const ev of UNBLOCKED) to.off(ev, go);
    cb();
  };
  for (const ev of UNBLOCKED) to.on(ev, go);
}

/**
 * Unpack a tar archive while it downloads, like `curl | tar -x`, into a temp
 * dir that is used only if the download then verifies. Write the downloaded
 * bytes to `sink`. An archive that cannot be streamed (zip needs random
 * access; an unknown format gets its error from extractArchive) is written
 * to `opts.archive` instead, and `result` resolves to undefined once that
 * file is complete: the caller then unpacks it. A failure (hostile entry,
 * damaged data, disk full) rejects `result`; the sink itself never emits
 * 'error', so a download can keep writing to it and report the failure after.
 */
export function streamingExtractor(opts: ExtractOptions): { sink: Writable; result: Promise<ExtractResult | undefined> } {
  // Most packages are tar archives: load the parser while the request is under way.
  loadTarParser().catch(() => {});
  /** Where the bytes go once the first chunk has told the format: a tar unpacking, or the archive file. */
  let target: Promise<Target> | undefined;
  let ready: Target | undefined;
  let result: Promise<ExtractResult | undefined> | undefined;
  let aborted = false;
  let resolveFirst: (p: Promise<ExtractResult | undefined>) => void = () => {};
  const first = new Promise<Promise<ExtractResult | undefined>>((r) => (resolveFirst = r));
  const begin = (chunk: Buffer | undefined): Promise<Target> => {
    const format = chunk && sniffBuffer(chunk);
    if (!format || format === "zip") {
      const file = createWriteStream(opts.archive, { flags: "wx", highWaterMark: 256 * 1024 });
      const closed = finished(file);
      result = closed.then(() => undefined);
      target = Promise.resolve({ write: (c, cb) => passOn(file, c, cb), end: () => void file.end(), abort: (e) => void file.destroy(e) });
    } else {
      const w = new Writer(opts);
      const run = startTar(opts, format, w);
      target = run.then((r) => ({ write: (c, cb) => (r.stopped ? cb() : passOn(r.head, c, cb)), end: () => void (r.stopped || r.head.end()), abort: (e) => r.fail(e) }));
      result = run.then((r) => r.done).then(
        () => finish(opts, format, w),
        (e: unknown) => {
          if (aborted) return undefined;
          throw classify(e, format, opts);
        },
      );
    }
    target.then((t) => (ready = t), () => {});
    resolveFirst(result);
    return target;
  };
  const sink = new Writable({
    highWaterMark: 64 * 1024,
    // Finishing must not destroy the sink: that would abort the unpacking still reading from it.
    autoDestroy: false,
    write(chunk: Buffer, _enc, cb) {
      if (ready) return ready.write(chunk, cb);
      // A failed start leaves the bytes unread: `result` reports why.
      (target ?? begin(chunk)).then((t) => t.write(chunk, cb), () => cb());
    },
    final(cb) {
      (target ?? begin(undefined)).then((t) => t.end(), () => {});
      cb();
    },
    destroy(err, cb) {
      aborted = true;
      // With an error, so the unpacking settles instead of waiting forever for more bytes.
      const e = err ?? new Error("download restarted or abandoned");
      if (target) target.then((t) => t.abort(e), () => {});
      else resolveFirst(Promise.resolve(undefined));
      cb(null);
    },
  });
  const all = first.then((p) => p);
  // The caller awaits `result` only after the download; until then a failure must not count as unhandled.
  all.catch(() => {});
  return { sink, result: all };
}

/**
 * Copy a local directory into `dest` with the same checks and per-file
 * hashes as an archive (links must stay inside; no devices or FIFOs).
 */
export async function copyTree(src: string, dest: string, signal?: AbortSignal): Promise<ExtractResult> {
  const w = new Writer({ archive: src, dest, label: src, signal });
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(join(src, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      const abs = join(src, r);
      const checked = w.checkPath(r);
      if (d.isDirectory()) {
        await w.dir(checked);
        await walk(r);
      } else if (d.isSymbolicLink()) {
        await w.symlink(checked, await readlink(abs));
      } else if (d.isFile()) {
        const s = await lstat(abs);
        await w.file(checked, s.mode, s.size, createReadStream(abs));
      } else {
        throw new UnsafeArchiveError(src, r, "is a device file, FIFO or socket, not allowed in a package");
      }
    }
  };
  await walk("");
  // Small files are still being written (and hashed) in the background.
  await w.settle();
  return { format: "tar", root: undefined, files: w.files, unpackedBytes: w.unpackedBytes };
}
