/**
 * Every check on what crosses the wire between a client and a build peer.
 * Both sides run the same functions: the peer checks the client's file
 * manifest and paths before it writes anything, the client checks the
 * peer's firmware manifest before it writes or flashes anything (K6). A
 * check either returns a fresh, typed value built from the checked fields or
 * throws; nothing from the other side is used before it has been through here.
 *
 * These checks are lexical. `containedPath` cannot see symbolic links, so a
 * writer must still refuse to follow links (lstat each component it creates,
 * open files with O_NOFOLLOW | O_EXCL into directories it created itself).
 */
import { isAbsolute, relative, resolve, sep } from "node:path";
import { ExitCode, KilnError } from "../core/errors.js";
import type { FirmwareManifest, ManifestImage } from "../core/manifest.js";
import { MANIFEST_NAME } from "../core/manifest.js";

export const LIMITS = {
  /** JSON request bodies. */
  jsonBodyBytes: 1 << 20,
  /** A job request: its file list may hold 20,000 entries of long paths. */
  jobBodyBytes: 8 << 20,
  /** One uploaded file. */
  blobBytes: 64 << 20,
  /** All project inputs of one job. */
  projectBytes: 512 << 20,
  entries: 20_000,
  depth: 32,
  componentBytes: 255,
  images: 64,
  imageBytes: 32 << 20,
  imagesTotalBytes: 64 << 20,
  logLineBytes: 16 << 10,
} as const;

export interface FileEntry {
  /** Relative POSIX path, checked by `unsafePathReason`. */
  path: string;
  /** 64 lower-case hex digits. */
  sha256: string;
  size: number;
  /** 0o644 or 0o755 only. */
  mode: number;
}

export const IMAGE_FORMATS: ReadonlySet<string> = new Set(["hex", "eep", "bin", "elf", "uf2"]);
export const IMAGE_ROLES: ReadonlySet<string> = new Set(["flash", "eeprom", "bootloader", "partitions", "otadata", "app", "factory", "uf2", "program", "elf"]);
const FILE_MODES: ReadonlySet<number> = new Set([0o644, 0o755]);
const SHA256 = /^[0-9a-f]{64}$/;
const IMAGE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const HEX_OFFSET = /^0[xX][0-9a-fA-F]{1,13}$/;
const FILE_ENTRY_KEYS = ["mode", "path", "sha256", "size"];

/** The other side sent a path or file list kiln will not use. Nothing was written. */
export class GuardError extends KilnError {
  constructor(reason: string, path?: string) {
    super("KILN_UNSAFE_INPUT", ExitCode.integrity, path === undefined ? `refusing remote input: ${reason}` : `refusing remote input: path ${show(path)} ${reason}`, {
      data: path === undefined ? { reason } : { path, reason },
    });
  }
}

/** A peer's firmware manifest failed a check. Nothing was written or flashed. */
export class ArtifactError extends KilnError {
  constructor(reason: string, path?: string) {
    super("KILN_ARTIFACT_INTEGRITY", ExitCode.integrity, path === undefined ? `refusing the peer's firmware: ${reason}` : `refusing the peer's firmware: image ${show(path)} ${reason}`, {
      hint: "nothing was flashed; rebuild, or build locally with --remote never",
      data: path === undefined ? { reason } : { path, reason },
    });
  }
}

/**
 * A value from the other side, for a message. Strings are quoted and
 * JSON-escaped, with C1 controls, line/paragraph separators and bidi
 * overrides escaped too (so a hostile name cannot drive the terminal), and
 * cut at 200 characters; other values show as their type or number.
 */
export function show(value: unknown): string {
  if (typeof value !== "string") {
    if (value === null || ["number", "boolean", "undefined", "bigint"].includes(typeof value)) return String(value);
    return Array.isArray(value) ? "(an array)" : `(a ${typeof value})`;
  }
  const cut = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  return JSON.stringify(cut).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSize(value: unknown, max: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

/**
 * Why `p` is not a safe relative POSIX path, or undefined when it is. The
 * reason reads after the quoted path ("… is absolute").
 */
export function unsafePathReason(p: string): string | undefined {
  if (typeof p !== "string") return "is not a string";
  if (p === "") return "is empty";
  if (p.includes("\0")) return "contains a NUL character";
  // C0 controls and DEL: never in a source tree, and they drive terminals.
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return "contains a control character";
  }
  if (Buffer.from(p, "utf8").toString("utf8") !== p) return "is not valid Unicode (lone surrogate)";
  if (p.includes("\\")) return "contains a backslash";
  if (p.startsWith("/")) return "is absolute";
  if (/^[A-Za-z]:/.test(p)) return "starts with a drive letter";
  const parts = p.split("/");
  if (parts.length > LIMITS.depth) return `is nested ${parts.length} deep, over the limit of ${LIMITS.depth}`;
  for (const part of parts) {
    if (part === "") return "has an empty component ('//' or a trailing '/')";
    if (part === ".") return "has a '.' component";
    if (part === "..") return "has a '..' component";
    if (Buffer.byteLength(part, "utf8") > LIMITS.componentBytes) return `has a component over ${LIMITS.componentBytes} bytes`;
  }
  return undefined;
}

/** The key two paths collide on when a file system ignores case or Unicode normalisation (macOS, Windows). */
function foldKey(p: string): string {
  return p.normalize("NFC").toLowerCase().normalize("NFC");
}

/**
 * Shape- and safety-check a client's file manifest (parsed JSON). Returns
 * fresh `FileEntry` objects; throws GuardError naming the offending path.
 */
export function checkFileManifest(value: unknown): FileEntry[] {
  if (!Array.isArray(value)) throw new GuardError("the file manifest is not an array");
  if (value.length > LIMITS.entries) throw new GuardError(`the file manifest has ${value.length} entries, over the limit of ${LIMITS.entries}`);
  const out: FileEntry[] = [];
  const byKey = new Map<string, string>();
  let total = 0;
  for (let i = 0; i < value.length; i++) {
    const e: unknown = value[i];
    if (!isPlainObject(e)) throw new GuardError(`file manifest entry ${i} is not an object`);
    const p = e.path;
    if (typeof p !== "string") throw new GuardError(`file manifest entry ${i}: path is not a string`);
    const keys = Object.keys(e).sort();
    if (keys.length !== FILE_ENTRY_KEYS.length || keys.some((k, n) => k !== FILE_ENTRY_KEYS[n])) {
      throw new GuardError(`has fields ${show(keys.join(","))}; expected exactly path, sha256, size, mode`, p);
    }
    const reason = unsafePathReason(p);
    if (reason) throw new GuardError(reason, p);
    if (typeof e.sha256 !== "string" || !SHA256.test(e.sha256)) throw new GuardError("has a sha256 that is not 64 lower-case hex digits", p);
    if (!isSize(e.size, LIMITS.blobBytes)) {
      throw new GuardError(typeof e.size === "number" && Number.isSafeInteger(e.size) && e.size > LIMITS.blobBytes ? `is ${e.size} bytes, over the per-file limit of ${LIMITS.blobBytes}` : `has a size that is not an integer from 0 to ${LIMITS.blobBytes}`, p);
    }
    if (typeof e.mode !== "number" || !FILE_MODES.has(e.mode)) throw new GuardError("has a mode other than 0644 or 0755", p);
    const key = foldKey(p);
    const prior = byKey.get(key);
    if (prior !== undefined) {
      throw new GuardError(prior === p ? "is listed twice" : `collides with ${show(prior)} (names differ only by case or Unicode normalisation)`, p);
    }
    byKey.set(key, p);
    total += e.size;
    if (total > LIMITS.projectBytes) throw new GuardError(`takes the project over the limit of ${LIMITS.projectBytes} bytes`, p);
    out.push({ path: p, sha256: e.sha256, size: e.size, mode: e.mode });
  }
  // A file that is also a directory of another entry ("a" and "a/b").
  for (const entry of out) {
    const parts = foldKey(entry.path).split("/");
    for (let n = 1; n < parts.length; n++) {
      const file = byKey.get(parts.slice(0, n).join("/"));
      if (file !== undefined) throw new GuardError(`needs ${show(file)} to be a directory, but it is listed as a file`, entry.path);
    }
  }
  return out;
}

/**
 * `root` joined with `rel`, after `unsafePathReason`, resolved and checked to
 * be strictly inside `root`. This is lexical only: it does not look at the
 * disk, so a symlink already inside `root` can still lead out. Writers must
 * not follow links (lstat / O_NOFOLLOW, fresh directories).
 */
export function containedPath(root: string, rel: string): string {
  const reason = unsafePathReason(rel);
  if (reason) throw new GuardError(reason, rel);
  const base = resolve(root);
  const full = resolve(base, rel);
  const r = relative(base, full);
  if (r === "" || r === ".." || r.startsWith(`..${sep}`) || isAbsolute(r)) throw new GuardError("resolves outside the destination", rel);
  return full;
}

/** Why an image name is refused, or undefined: flat names only, no leading dot, never the manifest's own name. */
function unsafeImageName(name: string): string | undefined {
  if (!IMAGE_NAME.test(name)) return "is not a flat name of 1-64 letters, digits, '.', '_' or '-'";
  if (name.startsWith(".")) return "starts with '.'";
  if (name.toLowerCase() === MANIFEST_NAME) return `would overwrite ${MANIFEST_NAME}`;
  return undefined;
}

function checkOffset(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && HEX_OFFSET.test(value)) return Number.parseInt(value.slice(2), 16);
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw new ArtifactError(`has offset ${show(value)}; expected a non-negative integer or a '0x…' hex string`, name);
}

function checkImage(value: unknown, index: number, opts: { flashBytes?: number | undefined }): ManifestImage {
  if (!isPlainObject(value)) throw new ArtifactError(`image ${index} is not an object`);
  const name = value.path;
  if (typeof name !== "string") throw new ArtifactError(`image ${index}: path is not a string`);
  const reason = unsafeImageName(name);
  if (reason) throw new ArtifactError(reason, name);
  if (typeof value.sha256 !== "string" || !SHA256.test(value.sha256)) throw new ArtifactError("has a sha256 that is not 64 lower-case hex digits", name);
  const size = value.sizeBytes;
  if (!isSize(size, LIMITS.imageBytes)) {
    throw new ArtifactError(typeof size === "number" && Number.isSafeInteger(size) && size > LIMITS.imageBytes ? `is ${size} bytes, over the per-image limit of ${LIMITS.imageBytes}` : `has a sizeBytes that is not an integer from 0 to ${LIMITS.imageBytes}`, name);
  }
  if (typeof value.format !== "string" || !IMAGE_FORMATS.has(value.format)) throw new ArtifactError(`has format ${show(value.format)}; expected one of ${[...IMAGE_FORMATS].join(", ")}`, name);
  if (typeof value.role !== "string" || !IMAGE_ROLES.has(value.role)) throw new ArtifactError(`has role ${show(value.role)}; expected one of ${[...IMAGE_ROLES].join(", ")}`, name);
  const offset = checkOffset(value.offset, name);
  if (offset !== undefined && opts.flashBytes !== undefined && offset + size > opts.flashBytes) {
    throw new ArtifactError(`at offset 0x${offset.toString(16)} with ${size} bytes ends past the board's ${opts.flashBytes}-byte flash`, name);
  }
  const image: ManifestImage = { path: name, sha256: value.sha256, sizeBytes: size, format: value.format, role: value.role };
  if (offset !== undefined) image.offset = offset;
  return image;
}

function checkStringRecord(value: unknown, field: string): Record<string, string> {
  if (!isPlainObject(value)) throw new ArtifactError(`'${field}' is not an object`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new ArtifactError(`'${field}' entry ${show(k)} is not a string`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(Object.entries(value)) as Record<string, string>;
}

function checkBoard(value: unknown): FirmwareManifest["board"] {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw new ArtifactError("'board' is not an object");
  const { id, name, mcu, fCpu, usbIds } = value;
  if (typeof id !== "string" || typeof name !== "string" || typeof mcu !== "string") throw new ArtifactError("'board' needs string id, name and mcu");
  if (typeof fCpu !== "number" || !Number.isFinite(fCpu) || fCpu < 0) throw new ArtifactError("'board.fCpu' is not a non-negative number");
  if (!Array.isArray(usbIds) || !usbIds.every((u): u is string => typeof u === "string")) throw new ArtifactError("'board.usbIds' is not an array of strings");
  return { id, name, mcu, fCpu, usbIds: [...usbIds] };
}

function checkSize(value: unknown): FirmwareManifest["size"] {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw new ArtifactError("'size' is not an object");
  const n = (k: string, optional: boolean): number | undefined => {
    const v = value[k];
    if (v === undefined && optional) return undefined;
    if (!isSize(v, Number.MAX_SAFE_INTEGER)) throw new ArtifactError(`'size.${k}' is not a non-negative integer`);
    return v;
  };
  const size: NonNullable<FirmwareManifest["size"]> = { flashBytes: n("flashBytes", false)!, ramBytes: n("ramBytes", false)! };
  const flashMax = n("flashMaxBytes", true);
  const ramMax = n("ramMaxBytes", true);
  if (flashMax !== undefined) size.flashMaxBytes = flashMax;
  if (ramMax !== undefined) size.ramMaxBytes = ramMax;
  return size;
}

/**
 * Check a firmware manifest that came from a peer (parsed JSON) before
 * anything is written or flashed. Returns a fresh manifest holding only the
 * known, checked fields; throws ArtifactError.
 *
 * `tools` and `upload` are only shape-checked here: their values name local
 * programs and their flags, which a peer must not choose for the client.
 */
export function checkArtifactManifest(value: unknown, opts: { flashBytes?: number } = {}): FirmwareManifest {
  if (!isPlainObject(value)) throw new ArtifactError("the manifest is not an object");
  if (value.schema !== 1) throw new ArtifactError(`unsupported manifest schema ${show(value.schema)}`);
  for (const field of ["env", "platform", "toolchain", "builtAt"] as const) {
    if (typeof value[field] !== "string") throw new ArtifactError(`'${field}' is missing or not a string`);
  }
  const images = value.images;
  if (!Array.isArray(images)) throw new ArtifactError("'images' is missing or not an array");
  if (images.length === 0) throw new ArtifactError("'images' is empty");
  if (images.length > LIMITS.images) throw new ArtifactError(`${images.length} images, over the limit of ${LIMITS.images}`);
  const checked: ManifestImage[] = [];
  const names = new Map<string, string>();
  let total = 0;
  for (let i = 0; i < images.length; i++) {
    const image = checkImage(images[i], i, opts);
    const key = image.path.toLowerCase();
    const prior = names.get(key);
    if (prior !== undefined) throw new ArtifactError(prior === image.path ? "is listed twice" : `collides with ${show(prior)} (names differ only by case)`, image.path);
    names.set(key, image.path);
    total += image.sizeBytes;
    if (total > LIMITS.imagesTotalBytes) throw new ArtifactError(`takes the images over the limit of ${LIMITS.imagesTotalBytes} bytes`, image.path);
    checked.push(image);
  }
  // [offset, offset + size) intervals; empty images occupy nothing.
  const placed = checked.filter((i) => i.offset !== undefined && i.sizeBytes > 0).sort((a, b) => a.offset! - b.offset! || a.path.localeCompare(b.path));
  let reach: ManifestImage | undefined;
  for (const cur of placed) {
    if (reach && reach.offset! + reach.sizeBytes > cur.offset!) {
      throw new ArtifactError(`at 0x${cur.offset!.toString(16)} overlaps ${show(reach.path)} (0x${reach.offset!.toString(16)}..0x${(reach.offset! + reach.sizeBytes).toString(16)})`, cur.path);
    }
    if (!reach || cur.offset! + cur.sizeBytes > reach.offset! + reach.sizeBytes) reach = cur;
  }
  const upload = value.upload;
  if (!isPlainObject(upload)) throw new ArtifactError("'upload' is missing or not an object");
  const manifest: FirmwareManifest = {
    schema: 1,
    env: value.env as string,
    platform: value.platform as string,
    images: checked,
    upload: Object.fromEntries(Object.entries(upload)),
    tools: checkStringRecord(value.tools, "tools"),
    toolchain: value.toolchain as string,
    builtAt: value.builtAt as string,
  };
  const board = checkBoard(value.board);
  if (board) manifest.board = board;
  const size = checkSize(value.size);
  if (size) manifest.size = size;
  return manifest;
}
