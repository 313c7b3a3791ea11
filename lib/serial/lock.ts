/**
 * The port hand-off between a running `kiln monitor` and a `kiln upload` in
 * another process, without a daemon.
 *
 * Files, in one directory per user (`<tmpdir>/kiln-<uid>/ports`), named after
 * the port path (and, when it differs, its real path, so `/dev/serial/by-id/…`
 * and `/dev/ttyACM0` meet):
 *
 * - `<key>.monitor.json` — written by a monitor while it runs:
 *   `{pid, port, state: "holding" | "released", releasedFor?}`.
 * - `<key>.upload.json` — created exclusively (`wx`) by an uploader for the
 *   duration of its upload: `{pid, port}`. It is both the request to release
 *   and the "upload in progress" marker.
 *
 * The uploader creates its file, signals the monitor (SIGUSR2; the monitor
 * also polls, which is what happens where there are no signals), and waits
 * until the monitor's file says `released` for its pid. The monitor closes
 * the port, says so, and waits until the upload file is gone (or its pid
 * dead), then reopens the port and prints a marker line. A lock whose pid is
 * dead is stale: it is ignored and removed.
 */
import { createHash } from "node:crypto";
import { mkdir, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ExitCode, KilnError, errnoCode } from "../core/errors.js";
import { readJson, writeFileAtomic } from "../core/fs.js";
import type { Reporter } from "../core/report.js";

/** The signal an uploader sends a monitor. SIGUSR1 belongs to Node's inspector. */
export const RELEASE_SIGNAL = "SIGUSR2";

export function defaultLockDir(): string {
  const uid = typeof process.getuid === "function" ? String(process.getuid()) : "user";
  return join(tmpdir(), `kiln-${uid}`, "ports");
}

export interface MonitorLockData {
  pid: number;
  port: string;
  state: "holding" | "released";
  /** The uploader's pid the port was released for. */
  releasedFor?: number | undefined;
}

export interface UploadLockData {
  pid: number;
  port: string;
}

/** Whether a process exists (EPERM: it does, under another user). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}

function keyOf(path: string): string {
  const slug = path.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(-40);
  return `${slug}-${createHash("sha256").update(path).digest("hex").slice(0, 10)}`;
}

/** The lock keys of a port: its absolute path and, when it resolves elsewhere, its real path. */
export async function portLockKeys(path: string): Promise<string[]> {
  if (/^(\\\\\.\\)?COM\d+$/i.test(path)) return [keyOf(path.toUpperCase())];
  const abs = resolve(path);
  const keys = [keyOf(abs)];
  try {
    const real = await realpath(abs);
    if (real !== abs) keys.push(keyOf(real));
  } catch {
    // gone right now (re-enumerating): the path alone
  }
  return keys;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A live lock of either kind for any of the keys (stale ones are removed on the way). */
async function liveLock<T extends { pid: number }>(dir: string, keys: readonly string[], kind: "monitor" | "upload"): Promise<(T & { file: string }) | undefined> {
  for (const key of keys) {
    const file = join(dir, `${key}.${kind}.json`);
    const data = await readJson<T>(file);
    if (!data) continue;
    if (data.pid === process.pid) return { ...data, file };
    if (isProcessAlive(data.pid)) return { ...data, file };
    await rm(file, { force: true });
  }
  return undefined;
}

/** The port is held by someone who did not let go in time. Exit code 7. */
export class PortBusyError extends KilnError {
  constructor(path: string, why: string, hint: string) {
    super("KILN_PORT_BUSY", ExitCode.device, `${path} is busy: ${why}`, { hint, data: { port: path } });
  }
}

export interface AcquireOptions {
  lockDir?: string | undefined;
  /** How long to wait for a monitor to let go, or another upload to finish (default 10 000 ms). */
  timeoutMs?: number | undefined;
  reporter?: Reporter | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Take `path` for an upload. If a kiln monitor in another process holds it,
 * ask it to release (signal + request file) and wait until it has; if another
 * upload is using it, wait for that one. Returns the release function: call it
 * (in a `finally`) after flashing, and the monitor reattaches. Throws
 * PortBusyError (exit 7) when the holder does not let go within `timeoutMs`.
 */
export async function acquirePortForUpload(path: string, opts: AcquireOptions = {}): Promise<() => Promise<void>> {
  const dir = opts.lockDir ?? defaultLockDir();
  await mkdir(dir, { recursive: true });
  const keys = await portLockKeys(path);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const mine: string[] = [];
  const release = async (): Promise<void> => {
    for (const f of mine.splice(0)) await rm(f, { force: true });
  };
  const me: UploadLockData = { pid: process.pid, port: path };
  try {
    for (const key of keys) {
      const file = join(dir, `${key}.upload.json`);
      let waited = false;
      for (;;) {
        try {
          await writeFile(file, JSON.stringify(me), { flag: "wx" });
          mine.push(file);
          break;
        } catch (e) {
          if (errnoCode(e) !== "EEXIST") throw e;
        }
        const other = await readJson<UploadLockData>(file);
        if (other && other.pid !== process.pid && isProcessAlive(other.pid)) {
          if (!waited) opts.reporter?.info(`Waiting for another upload (pid ${other.pid}) to finish with ${path}`);
          waited = true;
          if (Date.now() > deadline || opts.signal?.aborted) {
            throw new PortBusyError(path, `another kiln upload (pid ${other.pid}) is using it`, "wait for it to finish, or stop it");
          }
          await sleep(100);
        } else {
          await rm(file, { force: true });
        }
      }
    }
    const monitor = await liveLock<MonitorLockData>(dir, keys, "monitor");
    if (monitor && monitor.pid !== process.pid) {
      opts.reporter?.info(`Asking kiln monitor (pid ${monitor.pid}) to release ${path}`);
      try {
        process.kill(monitor.pid, RELEASE_SIGNAL);
      } catch {
        // no signals here (Windows) or not ours: the monitor's poll sees the request file
      }
      for (;;) {
        const now = await readJson<MonitorLockData>(monitor.file);
        if (!now || !isProcessAlive(now.pid)) break;
        if (now.state === "released" && now.releasedFor === process.pid) break;
        if (Date.now() > deadline || opts.signal?.aborted) {
          throw new PortBusyError(path, `kiln monitor (pid ${now.pid}) did not release it within ${Math.round(timeoutMs / 1000)} s`, `stop that monitor (kill ${now.pid}) and upload again`);
        }
        await sleep(50);
      }
    }
  } catch (e) {
    await release();
    throw e;
  }
  return release;
}

export interface MonitorLockOptions {
  lockDir?: string | undefined;
  /** Called when an uploader asks for the port (signal or poll). */
  onRequest: () => void;
  /** Poll for requests this often (default 500 ms); the signal makes it immediate. */
  pollMs?: number | undefined;
}

/**
 * A monitor's claim on a port. `acquire` writes the lock and starts listening
 * for upload requests; `dispose` removes both.
 */
export class MonitorPortLock {
  private keys: string[] = [];
  private state: MonitorLockData["state"] = "holding";
  private releasedFor: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly onSignal = (): void => this.opts.onRequest();

  private constructor(
    readonly path: string,
    private readonly dir: string,
    private readonly opts: MonitorLockOptions,
  ) {}

  static async acquire(path: string, opts: MonitorLockOptions): Promise<MonitorPortLock> {
    const lock = new MonitorPortLock(path, opts.lockDir ?? defaultLockDir(), opts);
    const other = await liveLock<MonitorLockData>(lock.dir, await portLockKeys(path), "monitor");
    if (other && other.pid !== process.pid) {
      throw new PortBusyError(path, `a kiln monitor (pid ${other.pid}) is already watching it`, `use that monitor, or stop it (kill ${other.pid})`);
    }
    // The handler first: a signal that lands before it would end the process.
    process.on(RELEASE_SIGNAL, lock.onSignal);
    await mkdir(lock.dir, { recursive: true });
    await lock.refresh();
    lock.timer = setInterval(() => opts.onRequest(), opts.pollMs ?? 500);
    lock.timer.unref();
    return lock;
  }

  /** Re-derive the keys (the port may now resolve to another /dev/pts/N) and rewrite the lock files. */
  async refresh(): Promise<void> {
    const keys = await portLockKeys(this.path);
    for (const old of this.keys) if (!keys.includes(old)) await rm(join(this.dir, `${old}.monitor.json`), { force: true });
    this.keys = [...new Set([...keys])];
    const data: MonitorLockData = { pid: process.pid, port: this.path, state: this.state, releasedFor: this.releasedFor };
    for (const key of this.keys) await writeFileAtomic(join(this.dir, `${key}.monitor.json`), JSON.stringify(data));
  }

  /** The live upload asking for this port, if any. */
  async pendingUpload(): Promise<UploadLockData | undefined> {
    const found = await liveLock<UploadLockData>(this.dir, this.keys, "upload");
    return found && found.pid !== process.pid ? { pid: found.pid, port: found.port } : undefined;
  }

  async markReleased(uploaderPid: number): Promise<void> {
    this.state = "released";
    this.releasedFor = uploaderPid;
    await this.refresh();
  }

  async markHolding(): Promise<void> {
    this.state = "holding";
    this.releasedFor = undefined;
    await this.refresh();
  }

  async dispose(): Promise<void> {
    process.off(RELEASE_SIGNAL, this.onSignal);
    if (this.timer) clearInterval(this.timer);
    for (const key of this.keys) {
      const file = join(this.dir, `${key}.monitor.json`);
      const data = await readJson<MonitorLockData>(file);
      if (data?.pid === process.pid) await rm(file, { force: true });
    }
  }
}
