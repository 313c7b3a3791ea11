/**
 * What may be written into a package, checked entry by entry: no absolute
 * paths, no `..`, no link pointing outside, no write through a link, at most
 * `maxEntries` entries and `maxBytes` of content. Pure bookkeeping, no I/O:
 * both unpackers use it, the main thread's (zip, local folders) and the
 * unpack thread's (tar: lib/toolchains/unpack-thread.ts).
 */
import { posix } from "node:path";
import { UnsafeArchiveError } from "./errors.js";

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

export const DEFAULT_MAX_BYTES = 8 * 1024 ** 3;
export const DEFAULT_MAX_ENTRIES = 500_000;

export class EntryRules {
  readonly files: FileRecord[] = [];
  /** First path segments seen: one folder alone is the root to strip. */
  readonly tops = new Set<string>();
  private readonly links = new Set<string>();
  private readonly written = new Map<string, FileRecord>();
  /** Sum of the entries' sizes so far. */
  bytes = 0;
  private entries = 0;

  constructor(
    readonly label: string,
    readonly maxBytes = DEFAULT_MAX_BYTES,
    readonly maxEntries = DEFAULT_MAX_ENTRIES,
  ) {}

  refuse(entry: string, reason: string): never {
    throw new UnsafeArchiveError(this.label, entry, reason);
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

  /** Count `size` more bytes of content; refuses past the cap. */
  count(entry: string, size: number): void {
    this.bytes += size;
    if (this.bytes > this.maxBytes) this.refuse(entry, `takes the unpacked size over the cap of ${this.maxBytes} bytes`);
  }

  /** A symlink's target must stay inside the package. */
  checkSymlink(rel: string, target: string): void {
    const t = target.replace(/\\/g, "/");
    if (t.startsWith("/") || /^[a-zA-Z]:/.test(t)) this.refuse(rel, `is a symlink to the absolute path '${target}'`);
    const resolved = posix.normalize(posix.join(posix.dirname(rel), t));
    if (resolved === ".." || resolved.startsWith("../")) this.refuse(rel, `is a symlink pointing outside the package ('${target}')`);
  }

  /** A hard link's target: a file this package wrote before it. Returns that file's record. */
  linkSource(rel: string, raw: string): FileRecord {
    const p = raw.replace(/\\/g, "/");
    if (p.startsWith("/") || /^[a-zA-Z]:/.test(p)) this.refuse(rel, `is a hard link to the absolute path '${raw}'`);
    const parts = p.split("/").filter((s) => s !== "" && s !== ".");
    if (parts.includes("..")) this.refuse(rel, `is a hard link pointing outside the package ('${raw}')`);
    const src = this.written.get(parts.join("/"));
    if (!src || src.type !== "file") this.refuse(rel, `is a hard link to '${raw}', which is not a file of this package`);
    return src;
  }

  /** Whether an earlier entry is at `rel` (it is then forgotten: the caller removes it from the disk). */
  replaces(rel: string): boolean {
    if (!this.written.has(rel) && !this.links.has(rel)) return false;
    this.links.delete(rel);
    const i = this.files.indexOf(this.written.get(rel)!);
    if (i >= 0) this.files.splice(i, 1);
    this.written.delete(rel);
    return true;
  }

  /** Record a written entry. */
  record(rec: FileRecord): void {
    this.files.push(rec);
    this.written.set(rec.path, rec);
    if (rec.type === "symlink") this.links.add(rec.path);
  }
}
