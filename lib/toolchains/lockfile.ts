/**
 * kiln.lock: beside the project config, pins per env every package the env
 * needs: name, version, where it comes from, and per host the archive URL,
 * sha256 and size. All hosts are written at once, so one lock serves a team
 * on Linux, macOS and Windows without churn.
 */
import { readFile } from "node:fs/promises";
import { errnoCode } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { LockfileInvalidError } from "./errors.js";

export interface LockedArchive {
  url: string;
  sha256?: string | undefined;
  /** Old vendor entries carry only a weak checksum until first download. */
  md5?: string | undefined;
  sha1?: string | undefined;
  size?: number | undefined;
}

export interface LockedPackage {
  version: string;
  /** What asked for it: `catalog:<platform>` or `platform_packages:<item>`. */
  source: string;
  /** How it is obtained. */
  type: "archive" | "symlink" | "directory" | "system";
  /** `archive`: per canonical host, or `*` for a host-independent archive. */
  archives?: Record<string, LockedArchive> | undefined;
  /** `symlink`/`system`: the directory used in place; `directory`: the source directory. */
  path?: string | undefined;
  /** `directory`: the store key of the snapshot. */
  key?: string | undefined;
  forUpload?: boolean | undefined;
}

export interface LockedEnv {
  platform: string;
  packages: Record<string, LockedPackage>;
}

export interface Lockfile {
  lockfileVersion: 1;
  envs: Record<string, LockedEnv>;
}

export function emptyLockfile(): Lockfile {
  return { lockfileVersion: 1, envs: {} };
}

/** Read kiln.lock; a missing file is an empty lock. */
export async function readLockfile(file: string): Promise<Lockfile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return emptyLockfile();
    throw e;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new LockfileInvalidError(file, `not valid JSON (${(e as Error).message})`);
  }
  const d = data as Partial<Lockfile>;
  if (typeof d !== "object" || d === null || d.lockfileVersion !== 1 || typeof d.envs !== "object" || d.envs === null) {
    throw new LockfileInvalidError(file, "expected { \"lockfileVersion\": 1, \"envs\": { … } }");
  }
  for (const [env, e] of Object.entries(d.envs)) {
    if (typeof e?.packages !== "object" || e.packages === null) throw new LockfileInvalidError(file, `env '${env}' has no 'packages' object`);
    for (const [name, p] of Object.entries(e.packages)) {
      if (typeof p?.version !== "string" || typeof p.source !== "string" || !["archive", "symlink", "directory", "system"].includes(p.type)) {
        throw new LockfileInvalidError(file, `env '${env}', package '${name}': needs version, source and type`);
      }
    }
  }
  return d as Lockfile;
}

/** Stable text: sorted keys, so diffs show real changes only. */
export function formatLockfile(lock: Lockfile): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    return v;
  };
  return `${JSON.stringify({ lockfileVersion: 1, envs: sort(lock.envs) }, null, 2)}\n`;
}

export async function writeLockfile(file: string, lock: Lockfile): Promise<void> {
  await writeFileAtomic(file, formatLockfile(lock));
}

/** Human lines describing how `next` differs from `prev` for one env. */
export function diffEnv(envName: string, prev: LockedEnv | undefined, next: LockedEnv): string[] {
  const out: string[] = [];
  const a = prev?.packages ?? {};
  const b = next.packages;
  for (const name of Object.keys(b)) {
    const was = a[name];
    const now = b[name]!;
    if (!was) out.push(`${envName}: add ${name}@${now.version} (${now.source})`);
    else if (JSON.stringify(formatOne(was)) !== JSON.stringify(formatOne(now))) out.push(`${envName}: change ${name} ${was.version} → ${now.version}${was.source !== now.source ? ` (${was.source} → ${now.source})` : ""}`);
  }
  for (const name of Object.keys(a)) if (!(name in b)) out.push(`${envName}: remove ${name}@${a[name]!.version}`);
  return out;
}

function formatOne(p: LockedPackage): unknown {
  return JSON.parse(formatLockfile({ lockfileVersion: 1, envs: { x: { platform: "", packages: { p } } } }));
}
