/**
 * Installing what the store lacks, a few packages at once, with progress: a
 * spinner line with bytes, rate and ETA on a TTY, a line per package in plain
 * output, and `package` NDJSON events with --json. Imported only when
 * something must be installed.
 */
import { setFlagsFromString } from "node:v8";
import type { Settings } from "../core/config.js";
import type { Reporter, StepHandle } from "../core/report.js";
import type { Host } from "./hosts.js";
import { loadGot } from "./download.js";
import { networkOptions } from "./index.js";
import type { LockedArchive, LockedPackage } from "./lockfile.js";
import type { StorePaths } from "./paths.js";
import { installArchive, installDirectory, type InstallProgress } from "./store.js";
import { writeThread } from "./write-thread.js";

export interface MissingPackage {
  name: string;
  pkg: LockedPackage;
  archive?: LockedArchive | undefined;
}

export interface InstalledPackage {
  name: string;
  dir: string;
  key: string;
  sha256: string;
  size: number;
  downloaded: boolean;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["kB", "MB", "GB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function rateText(bytes: number, total: number | undefined, started: number, now: number): string {
  const secs = Math.max((now - started) / 1000, 0.001);
  const rate = bytes / secs;
  const eta = total && rate > 0 ? Math.max(0, Math.round((total - bytes) / rate)) : undefined;
  return `${formatBytes(bytes)}${total ? ` / ${formatBytes(total)}` : ""}, ${formatBytes(rate)}/s${eta !== undefined ? `, ETA ${eta}s` : ""}`;
}

/**
 * What the user sees of installs that run at once: one step for all of them
 * (a spinner has one line), updated with their total bytes, and a line as
 * each one finishes.
 */
class Board {
  private readonly step: StepHandle;
  private readonly bytes = new Map<string, { bytes: number; total: number | undefined }>();
  private readonly started = Date.now();
  private lastUi = 0;
  private size = 0;

  constructor(
    private readonly reporter: Reporter,
    private readonly count: number,
  ) {
    this.step = reporter.step(`Installing ${count} packages`);
  }

  bytesOf(name: string, bytes: number, total: number | undefined): void {
    this.bytes.set(name, { bytes, total });
    const now = Date.now();
    if (now - this.lastUi < 100) return;
    this.lastUi = now;
    let sum = 0;
    let all: number | undefined = 0;
    for (const b of this.bytes.values()) {
      sum += b.bytes;
      all = b.total === undefined || all === undefined ? undefined : all + b.total;
    }
    this.step.update(rateText(sum, all, this.started, now));
  }

  installed(text: string, size: number): void {
    this.size += size;
    this.reporter.info(text);
  }

  done(): void {
    this.step.succeed(`Installed ${this.count} packages (${formatBytes(this.size)}, ${((Date.now() - this.started) / 1000).toFixed(1)} s)`);
  }

  failed(label: string): void {
    this.step.fail(`${label}: failed`);
  }
}

function progressFor(reporter: Reporter, name: string, version: string, url: string, board?: Board): InstallProgress & { done(size: number): void; failed(): void } {
  const label = `Installing ${name}@${version}`;
  const step = board ? undefined : reporter.step(label);
  const started = Date.now();
  let lastUi = 0;
  let lastEvent = 0;
  return {
    onStart: () => reporter.event({ type: "package", phase: "start", name, version, url }),
    onBytes(bytes, total) {
      const now = Date.now();
      if (board) board.bytesOf(name, bytes, total);
      else if (now - lastUi >= 100) {
        lastUi = now;
        step!.update(rateText(bytes, total, started, now));
      }
      if (reporter.isJson && now - lastEvent >= 1000) {
        lastEvent = now;
        reporter.event({ type: "package", phase: "progress", name, version, bytes, totalBytes: total });
      }
    },
    onPhase(phase) {
      step?.update(phase === "wait" ? "waiting for another kiln process installing it" : phase === "extract" ? "unpacking" : "verifying");
      reporter.event({ type: "package", phase, name, version });
    },
    onRetry(attempt, reason) {
      reporter.warn(`${name}@${version}: ${reason}; retrying (attempt ${attempt + 1})`);
    },
    done(size) {
      const text = `Installed ${name}@${version} (${formatBytes(size)}, ${((Date.now() - started) / 1000).toFixed(1)} s)`;
      if (board) board.installed(text, size);
      else step!.succeed(text);
      reporter.event({ type: "package", phase: "done", name, version, bytes: size, ms: Date.now() - started });
    },
    failed() {
      if (board) board.failed(label);
      else step!.fail(`${label}: failed`);
    },
  };
}

/**
 * Packages installed at once. Their downloads share the link, but a
 * request's latency, one package's unpacking and another's transfer
 * overlap (a board needs a compiler, a framework and an uploader).
 */
const AT_ONCE = 3;

/** Installs under way in this process (a peer serves several builds at once). */
let installing = 0;

/**
 * Run `f` with V8's optimizing compiler (TurboFan) off. An install's work is
 * native — sha256, inflate, file writes — joined by JavaScript glue that runs
 * for a second or two: compiling that glue in the background took ~15 % of
 * the CPU of a 100 MB install (perf, 2 cores), more than it saved. Measured:
 * 1.62 s instead of 1.80 s median, 75 instead of 84 MB peak RSS (eight
 * alternating runs of scripts/bench/pkg-install.mjs's archive). Back on when
 * the last install ends, for the build that may follow.
 */
async function withoutOptimizer<T>(f: () => Promise<T>): Promise<T> {
  if (installing++ === 0) setFlagsFromString("--no-turbofan");
  try {
    return await f();
  } finally {
    if (--installing === 0) setFlagsFromString("--turbofan");
  }
}

/**
 * Install each missing package, up to AT_ONCE at a time. The first failure
 * stops the others (each cleans up after itself) and is the one thrown.
 */
export function installMissing(opts: { paths: StorePaths; host: Host; missing: MissingPackage[]; settings: Settings; reporter: Reporter; signal?: AbortSignal | undefined }): Promise<InstalledPackage[]> {
  // The unpacking's write thread boots, and the download client loads, while the locks are taken.
  writeThread().prestart();
  if (opts.missing.some((m) => m.archive && /^https?:/i.test(m.archive.url))) loadGot().catch(() => undefined);
  return withoutOptimizer(() => installAll(opts));
}

async function installAll(opts: Parameters<typeof installMissing>[0]): Promise<InstalledPackage[]> {
  const archives = opts.missing.filter((m) => m.pkg.type !== "directory").length;
  const board = archives > 1 ? new Board(opts.reporter, archives) : undefined;
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const out: InstalledPackage[] = [];
  let failure: { error: unknown } | undefined;
  let next = 0;
  const installOne = async (m: MissingPackage): Promise<InstalledPackage> => {
    if (m.pkg.type === "directory") {
      const r = await installDirectory(opts.paths, { name: m.name, version: m.pkg.version, host: "*", dir: m.pkg.path! }, signal);
      return { name: m.name, ...r };
    }
    const a = m.archive!;
    const p = progressFor(opts.reporter, m.name, m.pkg.version, a.url, board);
    try {
      const r = await installArchive(
        opts.paths,
        { name: m.name, version: m.pkg.version, host: opts.host, url: a.url, expected: { size: a.size, sha256: a.sha256, sha1: a.sha1, md5: a.md5 } },
        { ...networkOptions(opts.settings), signal },
        p,
      );
      if (!a.sha256 && (a.md5 || a.sha1)) opts.reporter.warn(`${m.name}@${m.pkg.version}: the vendor publishes only ${a.md5 ? "MD5" : "SHA-1"} (weak); pinned sha256 ${r.sha256} in kiln.lock`);
      p.done(r.size);
      return { name: m.name, ...r };
    } catch (e) {
      // A package stopped because another failed says nothing of its own.
      if (!failure) p.failed();
      throw e;
    }
  };
  const lane = async (): Promise<void> => {
    while (!failure && next < opts.missing.length) {
      const i = next++;
      try {
        out[i] = await installOne(opts.missing[i]!);
      } catch (e) {
        if (!failure) {
          failure = { error: e };
          stop.abort();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(AT_ONCE, opts.missing.length) }, lane));
  if (failure) throw failure.error;
  board?.done();
  return out;
}
