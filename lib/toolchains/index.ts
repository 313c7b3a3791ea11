/**
 * lib/toolchains: packages (toolchains, frameworks, tools) for a build.
 *
 * `ensurePackages` is the one entry point of the build: it reads kiln.lock,
 * resolves what the lock lacks (catalog, platform_packages, Arduino indexes),
 * and installs what the store lacks. When everything is locked and installed
 * it costs one lock-file read and one stat per package: no hashing, no network,
 * and none of got/tar/yauzl is loaded (store.ts is imported only to install).
 */
import type { Settings } from "../core/config.js";
import type { Reporter } from "../core/report.js";
import { canonicalHost, type Host } from "./hosts.js";
import { diffEnv, readLockfile, writeLockfile, type LockedArchive, type LockedEnv, type LockedPackage } from "./lockfile.js";
import { contentDir, entryInstalled, storePaths, type StorePaths } from "./paths.js";
import { parsePlatformPackage, resolvePackage, type PlatformPackageItem } from "./sources.js";
import { LockfileOutdatedError, OfflineError, PackageUnavailableError } from "./errors.js";
import type { NetworkOptions } from "./download.js";
import type { PackageIndex } from "./arduino-index.js";

export * from "./errors.js";
export type { Host } from "./hosts.js";
export type { Lockfile, LockedPackage } from "./lockfile.js";

/** What a platform asks for (structurally lib/platforms' PackageRequest). */
export interface PackageRequestLike {
  name: string;
  kind: string;
  forUpload?: boolean | undefined;
}

export interface EnsurePackagesOptions {
  platform: string;
  envName: string;
  requests: readonly PackageRequestLike[];
  /** The env's platform_packages items (`toolchain-atmelavr @ symlink:///usr`). */
  platformPackages: readonly string[];
  /** `<projectDir>/kiln.lock`. */
  lockFile: string;
  settings: Settings;
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  offline?: boolean | undefined;
  /** Fail (exit 3) instead of changing kiln.lock. */
  frozenLockfile?: boolean | undefined;
  /** Install upload-only packages too (kiln upload, kiln pkg install). */
  includeUpload?: boolean | undefined;
  /** Re-resolve every package from its source (kiln pkg update). */
  update?: boolean | undefined;
  /**
   * Install only these packages (the lock still covers every request): a
   * client flashing a firmware built on a peer needs the uploader, not the
   * compiler.
   */
  only?: readonly string[] | undefined;
  /** Override the host (tests; cross-host lock checks). */
  host?: Host | undefined;
}

export function networkOptions(settings: Settings): NetworkOptions {
  return { caFile: settings.caFile, proxy: settings.proxy, noProxy: settings.noProxy, idleTimeoutMs: settings.downloadTimeoutMs };
}

function archiveFor(pkg: LockedPackage, host: Host): LockedArchive | undefined {
  return pkg.archives?.[host] ?? pkg.archives?.["*"];
}

/** Resolve the lock for one env (reading, and unless frozen writing, kiln.lock). */
async function lockEnv(opts: EnsurePackagesOptions, paths: StorePaths, items: Map<string, PlatformPackageItem>): Promise<{ env: LockedEnv; write: (env: LockedEnv) => Promise<void> }> {
  const lock = await readLockfile(opts.lockFile);
  const prev = lock.envs[opts.envName];
  const wanted = new Map<string, boolean | undefined>();
  for (const r of opts.requests) wanted.set(r.name, r.forUpload);
  for (const name of items.keys()) if (!wanted.has(name)) wanted.set(name, false);
  // A build may leave out the uploaders (kiln build vs kiln upload): keep their pins, so the lock
  // does not churn between the two.
  if (!opts.includeUpload && prev?.platform === opts.platform) {
    for (const [name, p] of Object.entries(prev.packages)) if (p.forUpload && !wanted.has(name)) wanted.set(name, true);
  }
  const sourceOf = (name: string): string => (items.has(name) ? `platform_packages:${items.get(name)!.raw.trim()}` : `catalog:${opts.platform}`);

  const upToDate =
    !opts.update &&
    prev !== undefined &&
    prev.platform === opts.platform &&
    Object.keys(prev.packages).length === wanted.size &&
    [...wanted.keys()].every((n) => prev.packages[n]?.source === sourceOf(n));
  const write = async (env: LockedEnv): Promise<void> => {
    const changes = diffEnv(opts.envName, prev, env);
    if (!changes.length) return;
    if (opts.frozenLockfile) throw new LockfileOutdatedError(opts.lockFile, changes);
    const fresh = await readLockfile(opts.lockFile);
    fresh.envs[opts.envName] = env;
    await writeLockfile(opts.lockFile, fresh);
    for (const c of changes) opts.reporter.event({ type: "lockfile", change: c, file: opts.lockFile });
  };
  if (upToDate) return { env: prev, write };

  let indexes: Promise<PackageIndex> | undefined;
  const ctx = {
    platform: opts.platform,
    env: opts.settings.env,
    indexes: () =>
      (indexes ??= import("./index-cache.js").then((m) =>
        m.loadIndexes(opts.settings.indexUrls ?? [], { ...networkOptions(opts.settings), dir: paths.indexes, offline: opts.offline ?? opts.settings.offline, refresh: opts.update, signal: opts.signal, warn: (w) => opts.reporter.warn(w) }),
      )),
  };
  const next: LockedEnv = { platform: opts.platform, packages: {} };
  for (const [name, forUpload] of wanted) {
    const old = prev?.packages[name];
    next.packages[name] = !opts.update && old && old.source === sourceOf(name) && prev?.platform === opts.platform ? old : await resolvePackage(ctx, name, items.get(name), forUpload || undefined);
  }
  await write(next);
  return { env: next, write };
}

/**
 * Make every package the env needs available and return name → absolute
 * directory (a store entry's content, or a symlink:// / system directory used
 * in place). Throws LockfileOutdatedError (frozen), OfflineError, and the
 * install errors (ChecksumMismatchError, DownloadError, UnsafeArchiveError…).
 */
export async function ensurePackages(opts: EnsurePackagesOptions): Promise<Record<string, string>> {
  const paths = storePaths(opts.settings.cacheDir);
  const host = opts.host ?? canonicalHost();
  const items = new Map<string, PlatformPackageItem>();
  for (const raw of opts.platformPackages) {
    const item = parsePlatformPackage(raw);
    items.set(item.name, item);
  }
  const { env, write } = await lockEnv(opts, paths, items);
  const offline = opts.offline ?? opts.settings.offline ?? false;
  const dirs: Record<string, string> = {};
  const missing: Array<{ name: string; pkg: LockedPackage; archive?: LockedArchive }> = [];
  for (const [name, pkg] of Object.entries(env.packages)) {
    if (pkg.forUpload && !opts.includeUpload) continue;
    if (opts.only && !opts.only.includes(name)) continue;
    if (pkg.type === "symlink" || pkg.type === "system") {
      dirs[name] = pkg.path!;
      continue;
    }
    if (pkg.type === "directory") {
      if (pkg.key && (await entryInstalled(paths, pkg.key))) dirs[name] = contentDir(paths, pkg.key);
      else missing.push({ name, pkg });
      continue;
    }
    if (!host) throw new PackageUnavailableError(name, `kiln has no packages for ${process.platform}-${process.arch}`);
    const archive = archiveFor(pkg, host);
    if (!archive) throw new PackageUnavailableError(name, `version ${pkg.version} has no archive for ${host}`);
    if (archive.sha256 && (await entryInstalled(paths, archive.sha256))) dirs[name] = contentDir(paths, archive.sha256);
    else missing.push({ name, pkg, archive });
  }
  if (!missing.length) return dirs;
  if (offline && missing.some((m) => m.archive)) {
    throw new OfflineError(missing.filter((m) => m.archive).map((m) => `${m.name}@${m.pkg.version}`));
  }
  const { installMissing } = await import("./install.js");
  const installed = await installMissing({ paths, host: host!, missing, settings: opts.settings, reporter: opts.reporter, signal: opts.signal });
  let pinned = false;
  const nextEnv: LockedEnv = structuredClone(env);
  for (const r of installed) {
    dirs[r.name] = r.dir;
    const p = nextEnv.packages[r.name]!;
    if (p.type === "directory" && p.key !== r.key) {
      p.key = r.key;
      pinned = true;
    }
    const a = p.archives?.[host!] ?? p.archives?.["*"];
    if (a && !a.sha256) {
      a.sha256 = r.sha256;
      a.size = r.size;
      pinned = true;
    }
  }
  // Sources without a published sha256 are pinned on first download (P7).
  if (pinned) await write(nextEnv);
  return dirs;
}

