/**
 * File helpers that keep kiln's invariant: nothing half-written is ever
 * trusted. Writes go to a unique temp name beside the target, then rename.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { errnoCode } from "./errors.js";

/** A unique sibling temp path for `file` (same directory, so rename is atomic). */
export function tempPathFor(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/**
 * Resolves once `stream`'s file is closed. A pipeline into a file stream can fail (a body refused on
 * its first chunk) before the stream's open has returned; a temp file removed then is created right
 * after. Wait for this before removing it.
 */
export function fileClosed(stream: WriteStream): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once("close", () => resolve()));
}

/** Write `data` to `file` atomically (temp + rename), creating the directory. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = tempPathFor(file);
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * writeFileAtomic without the thread pool: for the small files a build
 * writes at its very end (manifest, state), where nothing else runs and five
 * round trips through the pool would be most of the time.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = tempPathFor(file);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** mtime in ms, or undefined when the file does not exist. */
export async function mtimeMs(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).mtimeMs;
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

export async function pathExists(p: string): Promise<boolean> {
  return (await mtimeMs(p)) !== undefined;
}

/** A JSON file's value, or undefined when it is missing or not valid JSON (a torn or foreign file). */
export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || e instanceof SyntaxError) return undefined;
    throw e;
  }
}
