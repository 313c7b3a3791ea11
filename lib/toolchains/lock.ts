/**
 * An inter-process lock per package: a file created with O_EXCL holding the
 * owner's pid, host and a nonce, refreshed (mtime) while held. A waiter breaks
 * the lock when its owner is dead (same host, `kill(pid, 0)` says ESRCH) or
 * when it has not been refreshed for `staleMs` (another host, or a reused pid).
 *
 * The lock only keeps concurrent kiln processes from downloading the same
 * archive twice. The store stays correct without it: entries appear by one
 * atomic rename and an existing entry counts as success.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { link, mkdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { CancelledError, errnoCode } from "../core/errors.js";

export interface LockOptions {
  /** A lock not refreshed for this long is stale (default 60 s). */
  staleMs?: number;
  /** Poll interval while waiting (default 100 ms). */
  pollMs?: number;
  signal?: AbortSignal | undefined;
  /** Called once when the lock is busy, with the owner's pid. */
  onWait?: ((ownerPid: number | undefined) => void) | undefined;
}

export interface LockHandle {
  release(): Promise<void>;
}

interface Owner {
  pid: number;
  host: string;
  nonce: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}

async function readOwner(file: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as Owner;
  } catch {
    return undefined;
  }
}

/** Take the lock at `file`, waiting while a live owner holds it. */
export async function acquireLock(file: string, opts: LockOptions = {}): Promise<LockHandle> {
  const staleMs = opts.staleMs ?? 60_000;
  const me: Owner = { pid: process.pid, host: hostname(), nonce: randomBytes(8).toString("hex") };
  await mkdir(dirname(file), { recursive: true });
  let waited = false;
  for (;;) {
    if (opts.signal?.aborted) throw new CancelledError();
    try {
      await writeFile(file, JSON.stringify(me), { flag: "wx" });
      break;
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw e;
    }
    const owner = await readOwner(file);
    const mtime = await stat(file).then((s) => s.mtimeMs, () => undefined);
    if (mtime === undefined) continue;
    const dead = owner !== undefined && owner.host === me.host && !isAlive(owner.pid);
    // A file still being written (no owner yet) gets a grace period.
    const stale = Date.now() - mtime > (owner ? staleMs : Math.min(staleMs, 5000));
    if (dead || stale) {
      await breakLock(file, owner);
      continue;
    }
    if (!waited) opts.onWait?.(owner?.pid);
    waited = true;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
  const beat = setInterval(() => {
    const now = new Date();
    utimes(file, now, now).catch(() => {});
  }, Math.max(1000, Math.floor(staleMs / 4)));
  beat.unref();
  return {
    async release() {
      clearInterval(beat);
      const owner = await readOwner(file);
      if (owner?.nonce === me.nonce) await rm(file, { force: true });
    },
  };
}

/**
 * Move the stale lock aside, then delete it. If what was moved is not the
 * lock judged stale (another process broke it and took a new one meanwhile),
 * put it back (unless a newer lock exists): no live owner loses its lock.
 */
async function breakLock(file: string, judged: Owner | undefined): Promise<void> {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await rename(file, aside);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return;
    throw e;
  }
  const moved = await readOwner(aside);
  if (judged && moved && moved.nonce !== judged.nonce) {
    // link() fails if a newer lock exists meanwhile: never overwrite one.
    await link(aside, file).catch(() => {});
    await rm(aside, { force: true });
    return;
  }
  await rm(aside, { force: true });
}
