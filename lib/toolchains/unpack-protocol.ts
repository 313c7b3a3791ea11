/**
 * What the main thread (lib/toolchains/write-thread.ts) and the unpack thread
 * (lib/toolchains/unpack-thread.ts) say to each other, and how an error
 * crosses between them with its class, code and path.
 */
import type { FileRecord } from "./entry-rules.js";
import { UnsafeArchiveError, UnsupportedArchiveError } from "./errors.js";

/** Bytes per slot of the shared buffer: the largest small file, or one piece of a tar stream. */
export const SLOT_BYTES = 256 * 1024;
/** Slots of the shared buffer (each is resident memory; more were not faster). */
export const SLOTS = 8;

export type ToThread =
  /** Hash the slot's `size` bytes and write them to `path` (a small file of a zip or a folder). */
  | { op: "write"; id: number; slot: number; size: number; path: string; mode: number }
  /** Start unpacking a tar stream into the empty folder `dest`. */
  | { op: "tar"; job: number; dest: string; label: string; maxBytes: number; maxEntries: number }
  /** The next `size` bytes of job's tar stream are in `slot` (a multiple of 512: see TarSink). */
  | { op: "data"; job: number; slot: number; size: number }
  /** The stream ends with `tail` (under 512 bytes, copied). */
  | { op: "end"; job: number; tail: Uint8Array }
  /** Stop the job: its files are not wanted. */
  | { op: "abort"; job: number };

export type FromThread =
  | { op: "written"; id: number; sha256?: string; error?: SerializedError }
  /** A data slot is read and may be reused. */
  | { op: "free"; slot: number }
  | { op: "done"; job: number; files: FileRecord[]; tops: string[]; bytes: number }
  /** The job failed (or was aborted): the thread writes nothing more for it. */
  | { op: "failed"; job: number; error: SerializedError };

export interface SerializedError {
  kind: "unsafe" | "unsupported" | "error";
  message: string;
  entry?: string;
  reason?: string;
  detail?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof UnsafeArchiveError) return { kind: "unsafe", message: e.message, entry: e.entry, reason: String(e.data.reason) };
  if (e instanceof UnsupportedArchiveError) return { kind: "unsupported", message: e.message, detail: e.detail };
  const x = (e ?? {}) as NodeJS.ErrnoException;
  return { kind: "error", message: String(x.message ?? e), code: x.code, errno: x.errno, syscall: x.syscall, path: x.path };
}

/** The error again, as its class; `label` names the archive as the main thread knows it. */
export function deserializeError(s: SerializedError, label: string): Error {
  if (s.kind === "unsafe") return new UnsafeArchiveError(label, s.entry!, s.reason!);
  if (s.kind === "unsupported") return new UnsupportedArchiveError(label, s.detail!);
  return Object.assign(new Error(s.message), { code: s.code, errno: s.errno, syscall: s.syscall, path: s.path });
}
