/**
 * The content-addressed store: one directory per archive, named by the
 * archive's sha256, holding `meta.json`, `files.json` (every file's sha256,
 * for `verify`) and `content/` (the unpacked package, top folder stripped).
 * `refs/` maps name@version+host to an entry; `locks/` holds per-package
 * locks; `../tmp/` holds work in progress, renamed into place when complete.
 *
 * Invariant: an entry exists only complete and verified. Everything else is
 * in tmp/ and is deleted by the next run once its owner is dead.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, readdir, readlink, rename, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { CancelledError, errnoCode } from "../core/errors.js";
import { readJson } from "../core/fs.js";
import { download, type ExpectedDigest, type NetworkOptions } from "./download.js";
import { StoreWriteError } from "./errors.js";
import { extractArchive, copyTree, streamingExtractor, type FileRecord } from "./extract.js";
import { acquireLock } from "./lock.js";
import { contentDir, entryDir, entryInstalled, metaFile, refFile, type StorePaths } from "./paths.js";

export interface EntryMeta {
  schema: 1;
  sha256: string;
  size: number;
  url: string;
  format: string;
  names: Array<{ name: string; version: string; host: string }>;
  installedAt: string;
  unpackedBytes: number;
  fileCount: number;
}

export interface InstallSpec {
  name: string;
  version: string;
  host: string;
  url: string;
  expected: ExpectedDigest;
}

export interface InstallProgress {
  onStart?(spec: InstallSpec): void;
  onBytes?(bytes: number, totalBytes: number | undefined): void;
  onPhase?(phase: "verify" | "extract" | "wait"): void;
  onRetry?(attempt: number, reason: string): void;
}

export interface InstallResult {
  key: string;
  dir: string;
  downloaded: boolean;
  sha256: string;
  size: number;
}

const cleanedTmp = new Set<string>();

/** Remove tmp/ leftovers of dead kiln processes (a SIGKILL mid-install). */
export async function cleanTmp(paths: StorePaths): Promise<number> {
  let names: string[];
  try {
    names = await readdir(paths.tmp);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return 0;
    throw e;
  }
  let removed = 0;
  const host = hostname();
  for (const n of names) {
    const m = /^(\d+)-([^-]+)-/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (m[2] !== host.replace(/[^A-Za-z0-9]/g, "") || pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = errnoCode(e) === "EPERM";
    }
    if (!alive) {
      await rm(join(paths.tmp, n), { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

async function makeTmp(paths: StorePaths, what: string): Promise<string> {
  if (!cleanedTmp.has(paths.tmp)) {
    cleanedTmp.add(paths.tmp);
    await cleanTmp(paths);
  }
  const dir = join(paths.tmp, `${process.pid}-${hostname().replace(/[^A-Za-z0-9]/g, "")}-${randomBytes(4).toString("hex")}-${what.replace(/[^\w.@+-]/g, "_").slice(0, 60)}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

function storeError(e: unknown, where: string): unknown {
  const code = errnoCode(e) ?? errnoCode((e as { cause?: unknown })?.cause);
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EACCES" || code === "EROFS" || code === "EPERM") return new StoreWriteError(where, code, e);
  return e;
}

async function writeRef(paths: StorePaths, spec: { name: string; version: string; host: string; url: string }, key: string): Promise<void> {
  const file = refFile(paths, spec.name, spec.version, spec.host);
  await mkdir(paths.refs, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(3).toString("hex")}`;
  await writeFile(tmp, JSON.stringify({ key, name: spec.name, version: spec.version, host: spec.host, url: spec.url }));
  await rename(tmp, file);
}

/** Put a finished entry dir in place; an entry already there (a concurrent install) is success. */
async function publish(paths: StorePaths, staged: string, key: string): Promise<void> {
  await mkdir(paths.entries, { recursive: true });
  try {
    await rename(staged, entryDir(paths, key));
  } catch (e) {
    const code = errnoCode(e);
    if (code !== "EEXIST" && code !== "ENOTEMPTY" && code !== "EPERM") throw e;
    if (!(await entryInstalled(paths, key))) throw e;
  }
}

async function stage(staging: string, unpacked: string, root: string | undefined, meta: EntryMeta, files: FileRecord[]): Promise<void> {
  await rename(root ? join(unpacked, root) : unpacked, join(staging, "content"));
  await writeFile(join(staging, "files.json"), JSON.stringify(files));
  await writeFile(join(staging, "meta.json"), JSON.stringify(meta, null, 1));
}

/** An archive already in the store (installed earlier, or by a sibling while we waited for the lock). */
async function foundInstalled(paths: StorePaths, spec: InstallSpec, key: string): Promise<InstallResult> {
  await writeRef(paths, spec, key);
  // A lock without sizes (a URL pinned by its sha256 alone) would otherwise report "0 B".
  const size = spec.expected.size ?? (await readJson<EntryMeta>(metaFile(paths, key)))?.size ?? 0;
  return { key, dir: contentDir(paths, key), downloaded: false, sha256: key, size };
}

/**
 * Make sure the archive of `spec` is in the store: download → verify →
 * extract → rename, once, under a per-package lock. Concurrent callers for
 * the same archive wait and then find it installed. Leaves nothing behind on
 * failure.
 */
export async function installArchive(paths: StorePaths, spec: InstallSpec, net: NetworkOptions & { signal?: AbortSignal | undefined; maxUnpackedBytes?: number | undefined }, progress: InstallProgress = {}): Promise<InstallResult> {
  const known = spec.expected.sha256?.toLowerCase();
  if (known && (await entryInstalled(paths, known))) return foundInstalled(paths, spec, known);
  const lockKey = known ?? createHash("sha256").update(spec.url).digest("hex");
  await mkdir(paths.locks, { recursive: true });
  const lock = await acquireLock(join(paths.locks, `${lockKey}.lock`), { signal: net.signal, onWait: () => progress.onPhase?.("wait") });
  let tmp: string | undefined;
  try {
    if (known && (await entryInstalled(paths, known))) return foundInstalled(paths, spec, known);
    tmp = await makeTmp(paths, `${spec.name}@${spec.version}`);
    progress.onStart?.(spec);
    const archive = join(tmp, "archive");
    const unpacked = join(tmp, "unpacked");
    await mkdir(unpacked);
    const xopts = { archive, dest: unpacked, label: spec.url, maxBytes: net.maxUnpackedBytes, signal: net.signal };
    // Unpack while downloading (into tmp/, trusted only once the sha256 checks out); the archive
    // itself reaches the disk only when it cannot be streamed (zip).
    let streaming: ReturnType<typeof streamingExtractor> | undefined;
    const abandon = async (): Promise<void> => {
      streaming?.sink.destroy();
      await streaming?.result.catch(() => undefined);
    };
    const open = async (): Promise<Writable> => {
      if (streaming) {
        // The download restarts from byte 0: so does the unpacking.
        await abandon();
        await Promise.all([rm(unpacked, { recursive: true, force: true }), rm(archive, { force: true })]);
        await mkdir(unpacked);
      }
      streaming = streamingExtractor(xopts);
      return streaming.sink;
    };
    let got;
    try {
      got = await download({ ...net, url: spec.url, open, expected: spec.expected, signal: net.signal, onProgress: progress.onBytes, onRetry: progress.onRetry });
    } catch (e) {
      await abandon();
      throw e;
    }
    const key = got.sha256;
    if (await entryInstalled(paths, key)) {
      await abandon();
      await writeRef(paths, spec, key);
      return { key, dir: contentDir(paths, key), downloaded: true, sha256: key, size: got.size };
    }
    progress.onPhase?.("extract");
    const x = (await streaming!.result) ?? (await extractArchive(xopts));
    await rm(archive, { force: true });
    const staging = join(tmp, "entry");
    await mkdir(staging);
    const meta: EntryMeta = { schema: 1, sha256: key, size: got.size, url: spec.url, format: x.format, names: [{ name: spec.name, version: spec.version, host: spec.host }], installedAt: new Date().toISOString(), unpackedBytes: x.unpackedBytes, fileCount: x.files.length };
    await stage(staging, unpacked, x.root, meta, x.files);
    await publish(paths, staging, key);
    await writeRef(paths, spec, key);
    return { key, dir: contentDir(paths, key), downloaded: true, sha256: key, size: got.size };
  } catch (e) {
    if (net.signal?.aborted) throw new CancelledError();
    throw storeError(e, paths.root);
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true }).catch(() => {});
    await lock.release();
  }
}

/**
 * Snapshot a local directory into the store (PlatformIO's `file://` dir
 * source): copied with every file hashed; the entry key is the sha256 of the
 * file list, so the same tree is stored once.
 */
export async function installDirectory(paths: StorePaths, spec: { name: string; version: string; host: string; dir: string }, signal?: AbortSignal): Promise<InstallResult> {
  const tmp = await makeTmp(paths, `${spec.name}-dir`);
  try {
    const unpacked = join(tmp, "unpacked");
    await mkdir(unpacked);
    const x = await copyTree(spec.dir, unpacked, signal);
    const key = treeKey(x.files);
    const url = `file://${spec.dir}`;
    if (!(await entryInstalled(paths, key))) {
      const staging = join(tmp, "entry");
      await mkdir(staging);
      const meta: EntryMeta = { schema: 1, sha256: key, size: x.unpackedBytes, url, format: "directory", names: [{ name: spec.name, version: spec.version, host: spec.host }], installedAt: new Date().toISOString(), unpackedBytes: x.unpackedBytes, fileCount: x.files.length };
      await stage(staging, unpacked, undefined, meta, x.files);
      await publish(paths, staging, key);
    }
    await writeRef(paths, { ...spec, url }, key);
    return { key, dir: contentDir(paths, key), downloaded: false, sha256: key, size: x.unpackedBytes };
  } catch (e) {
    throw storeError(e, paths.root);
  } finally {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  }
}

/** The key of a directory snapshot: sha256 over the sorted file list. */
export function treeKey(files: readonly FileRecord[]): string {
  const h = createHash("sha256");
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) h.update(`${f.type} ${f.path} ${f.sha256 ?? f.target ?? ""}\n`);
  return h.digest("hex");
}

export interface EntryInfo extends EntryMeta {
  key: string;
  dir: string;
  lastUsed: string;
  refs: Array<{ name: string; version: string; host: string }>;
}

interface Ref {
  key: string;
  name: string;
  version: string;
  host: string;
  url: string;
  file: string;
}

async function listRefs(paths: StorePaths): Promise<Ref[]> {
  const names = await readdir(paths.refs).catch((e: unknown) => (errnoCode(e) === "ENOENT" ? [] : Promise.reject(e)));
  const out: Ref[] = [];
  for (const n of names) {
    if (!n.endsWith(".json")) continue;
    const r = await readJson<Omit<Ref, "file">>(join(paths.refs, n));
    if (r) out.push({ ...r, file: join(paths.refs, n) });
  }
  return out;
}

/** Every installed entry with its names, sizes and last-used time. */
export async function listEntries(paths: StorePaths): Promise<EntryInfo[]> {
  const keys = await readdir(paths.entries).catch((e: unknown) => (errnoCode(e) === "ENOENT" ? [] : Promise.reject(e)));
  const refs = await listRefs(paths);
  const out: EntryInfo[] = [];
  for (const key of keys.sort()) {
    const file = metaFile(paths, key);
    const meta = await readJson<EntryMeta>(file);
    if (!meta) continue;
    const s = await stat(file);
    const named = refs.filter((r) => r.key === key).map(({ name, version, host }) => ({ name, version, host }));
    out.push({ ...meta, key, dir: contentDir(paths, key), lastUsed: s.mtime.toISOString(), refs: named.length ? named : meta.names });
  }
  return out;
}

/** Delete an entry atomically: rename it out of the store (under its lock), then remove. */
async function dropEntry(paths: StorePaths, key: string): Promise<void> {
  const lock = await acquireLock(join(paths.locks, `${key}.lock`));
  try {
    const tmp = await makeTmp(paths, `drop-${key.slice(0, 12)}`);
    try {
      await rename(entryDir(paths, key), join(tmp, "entry"));
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") throw e;
    }
    await rm(tmp, { recursive: true, force: true });
  } finally {
    await lock.release();
  }
}

/** Remove NAME or NAME@VERSION: its refs, and each entry no other ref uses. */
export async function removePackage(paths: StorePaths, name: string, version?: string): Promise<EntryInfo[]> {
  const refs = await listRefs(paths);
  const hit = refs.filter((r) => r.name === name && (version === undefined || r.version === version));
  const entries = await listEntries(paths);
  const removed: EntryInfo[] = [];
  for (const r of hit) await rm(r.file, { force: true });
  const keep = new Set(refs.filter((r) => !hit.includes(r)).map((r) => r.key));
  for (const key of new Set(hit.map((r) => r.key))) {
    if (keep.has(key)) continue;
    const info = entries.find((e) => e.key === key);
    await dropEntry(paths, key);
    if (info) removed.push(info);
  }
  return removed;
}

/**
 * Garbage-collect: tmp/ leftovers of dead processes, refs to missing entries,
 * entries no ref names, and with `olderThanMs` entries unused for that long.
 */
export async function gcStore(paths: StorePaths, olderThanMs?: number): Promise<{ removed: EntryInfo[]; freedBytes: number; tmpRemoved: number }> {
  const tmpRemoved = await cleanTmp(paths);
  const entries = await listEntries(paths);
  const refs = await listRefs(paths);
  const byKey = new Set(entries.map((e) => e.key));
  for (const r of refs) if (!byKey.has(r.key)) await rm(r.file, { force: true });
  const referenced = new Set(refs.map((r) => r.key));
  const removed: EntryInfo[] = [];
  const now = Date.now();
  for (const e of entries) {
    const old = olderThanMs !== undefined && now - Date.parse(e.lastUsed) > olderThanMs;
    if (referenced.has(e.key) && !old) continue;
    await dropEntry(paths, e.key);
    for (const r of refs) if (r.key === e.key) await rm(r.file, { force: true });
    removed.push(e);
  }
  return { removed, freedBytes: removed.reduce((n, e) => n + e.unpackedBytes, 0), tmpRemoved };
}

export interface VerifyReport {
  key: string;
  names: string[];
  ok: boolean;
  problems: string[];
}

async function hashFile(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest("hex");
}

/**
 * Re-hash every file of every entry against files.json. A damaged entry is
 * reported and taken out of the store, so the next install repairs it.
 */
export async function verifyStore(paths: StorePaths, opts: { repair?: boolean; onEntry?: (r: VerifyReport) => void } = {}): Promise<VerifyReport[]> {
  const reports: VerifyReport[] = [];
  for (const e of await listEntries(paths)) {
    const problems: string[] = [];
    const files = await readJson<FileRecord[]>(join(entryDir(paths, e.key), "files.json"));
    if (!files) problems.push("files.json is missing or damaged");
    for (const f of files ?? []) {
      const abs = join(e.dir, f.path);
      try {
        if (f.type === "symlink") {
          if ((await readlink(abs)) !== f.target) problems.push(`${f.path}: link target changed`);
        } else {
          const s = await lstat(abs);
          if (!s.isFile()) problems.push(`${f.path}: not a regular file`);
          else if (s.size !== f.size) problems.push(`${f.path}: size ${s.size}, expected ${f.size}`);
          else if ((await hashFile(abs)) !== f.sha256) problems.push(`${f.path}: content changed (sha256 differs)`);
        }
      } catch (err) {
        if (errnoCode(err) !== "ENOENT") throw err;
        problems.push(`${f.path}: missing`);
      }
    }
    const r: VerifyReport = { key: e.key, names: e.refs.map((n) => `${n.name}@${n.version}`), ok: problems.length === 0, problems };
    if (!r.ok && opts.repair !== false) await dropEntry(paths, e.key);
    opts.onEntry?.(r);
    reports.push(r);
  }
  return reports;
}

