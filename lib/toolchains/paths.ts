/**
 * Where the store keeps things (DESIGN.md "Places on disk"), and the cheap
 * checks the no-op build path needs: stat an entry, touch its last-used time.
 * No heavy imports here.
 */
import { stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode } from "../core/errors.js";

export interface StorePaths {
  root: string;
  entries: string;
  refs: string;
  locks: string;
  tmp: string;
  indexes: string;
}

export function storePaths(cacheDir: string): StorePaths {
  const root = join(cacheDir, "store");
  return { root, entries: join(root, "sha256"), refs: join(root, "refs"), locks: join(root, "locks"), tmp: join(cacheDir, "tmp"), indexes: join(cacheDir, "indexes") };
}

export function entryDir(paths: StorePaths, key: string): string {
  return join(paths.entries, key);
}

/** The directory a package's files are in. */
export function contentDir(paths: StorePaths, key: string): string {
  return join(paths.entries, key, "content");
}

export function metaFile(paths: StorePaths, key: string): string {
  return join(paths.entries, key, "meta.json");
}

/** `name@version+host` as a file name. */
export function refFile(paths: StorePaths, name: string, version: string, host: string): string {
  return join(paths.refs, `${encodeURIComponent(name)}@${encodeURIComponent(version)}+${host}.json`);
}

const TOUCH_EVERY_MS = 60 * 60 * 1000;

/**
 * Whether entry `key` is installed; refreshes its last-used time (the mtime of
 * meta.json) at most hourly. One stat on the fast path.
 */
export async function entryInstalled(paths: StorePaths, key: string): Promise<boolean> {
  const file = metaFile(paths, key);
  try {
    const s = await stat(file);
    if (Date.now() - s.mtimeMs > TOUCH_EVERY_MS) {
      const now = new Date();
      await utimes(file, now, now).catch(() => {});
    }
    return true;
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return false;
    throw e;
  }
}
