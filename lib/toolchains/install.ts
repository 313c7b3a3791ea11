/**
 * Installing what the store lacks, with progress: a spinner line with bytes,
 * rate and ETA on a TTY, a line per package in plain output, and `package`
 * NDJSON events with --json. Imported only when something must be installed.
 */
import type { Settings } from "../core/config.js";
import type { Reporter } from "../core/report.js";
import type { Host } from "./hosts.js";
import { networkOptions } from "./index.js";
import type { LockedArchive, LockedPackage } from "./lockfile.js";
import type { StorePaths } from "./paths.js";
import { installArchive, installDirectory, type InstallProgress } from "./store.js";

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

function progressFor(reporter: Reporter, name: string, version: string, url: string): InstallProgress & { done(size: number): void; failed(): void } {
  const label = `Installing ${name}@${version}`;
  const step = reporter.step(label);
  const started = Date.now();
  let lastUi = 0;
  let lastEvent = 0;
  return {
    onStart: () => reporter.event({ type: "package", phase: "start", name, version, url }),
    onBytes(bytes, total) {
      const now = Date.now();
      if (now - lastUi >= 100) {
        lastUi = now;
        const secs = Math.max((now - started) / 1000, 0.001);
        const rate = bytes / secs;
        const eta = total && rate > 0 ? Math.max(0, Math.round((total - bytes) / rate)) : undefined;
        step.update(`${formatBytes(bytes)}${total ? ` / ${formatBytes(total)}` : ""}, ${formatBytes(rate)}/s${eta !== undefined ? `, ETA ${eta}s` : ""}`);
      }
      if (reporter.isJson && now - lastEvent >= 1000) {
        lastEvent = now;
        reporter.event({ type: "package", phase: "progress", name, version, bytes, totalBytes: total });
      }
    },
    onPhase(phase) {
      step.update(phase === "wait" ? "waiting for another kiln process installing it" : phase === "extract" ? "unpacking" : "verifying");
      reporter.event({ type: "package", phase, name, version });
    },
    onRetry(attempt, reason) {
      reporter.warn(`${name}@${version}: ${reason}; retrying (attempt ${attempt + 1})`);
    },
    done(size) {
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      step.succeed(`Installed ${name}@${version} (${formatBytes(size)}, ${secs} s)`);
      reporter.event({ type: "package", phase: "done", name, version, bytes: size, ms: Date.now() - started });
    },
    failed() {
      step.fail(`${label}: failed`);
    },
  };
}

/** Install each missing package (one at a time: downloads share one link). */
export async function installMissing(opts: { paths: StorePaths; host: Host; missing: MissingPackage[]; settings: Settings; reporter: Reporter; signal?: AbortSignal | undefined }): Promise<InstalledPackage[]> {
  const out: InstalledPackage[] = [];
  for (const m of opts.missing) {
    if (m.pkg.type === "directory") {
      const r = await installDirectory(opts.paths, { name: m.name, version: m.pkg.version, host: "*", dir: m.pkg.path! }, opts.signal);
      out.push({ name: m.name, ...r });
      continue;
    }
    const a = m.archive!;
    const p = progressFor(opts.reporter, m.name, m.pkg.version, a.url);
    try {
      const r = await installArchive(
        opts.paths,
        { name: m.name, version: m.pkg.version, host: opts.host, url: a.url, expected: { size: a.size, sha256: a.sha256, sha1: a.sha1, md5: a.md5 } },
        { ...networkOptions(opts.settings), signal: opts.signal },
        p,
      );
      if (!a.sha256 && (a.md5 || a.sha1)) opts.reporter.warn(`${m.name}@${m.pkg.version}: the vendor publishes only ${a.md5 ? "MD5" : "SHA-1"} (weak); pinned sha256 ${r.sha256} in kiln.lock`);
      p.done(r.size);
      out.push({ name: m.name, ...r });
    } catch (e) {
      p.failed();
      throw e;
    }
  }
  return out;
}
