/**
 * The no-op stamp: what the last successful build looked at, so the next
 * identical `kiln build` can answer "up to date" from a few hundred stat()
 * calls, before loading the CLI, the config reader or the build code (the
 * way ninja answers from its log).
 *
 * Written after every successful build that left all its outputs up to date
 * (no output left unstamped because an input changed while it was made), and
 * only when every recorded input's time predates that build — so a file
 * edited while kiln was looking is never taken as seen; the files the build
 * wrote itself are recorded as they are. It records:
 * every output and every input the state knows (sources, headers, archives,
 * images, the manifest, compile_commands.json), the config files, settings
 * and lock file (missing ones too), the tools, the folders whose listing
 * decides what is compiled, the whole environment (minus shell bookkeeping),
 * the working directory, the arguments and kiln's own build. Any difference
 * and the normal path runs. It also keeps the compile commands, so a build
 * after a few sources changed can start them early (lib/build/headstart.ts).
 *
 * This module is imported by the launcher before anything else: node
 * built-ins only.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { VERSION } from "../version.js";
import type { StampedUnits } from "./headstart.js";

export const NOOP_VERSION = 1;

export interface NoopEnvLine {
  env: string;
  reused: number;
  /** `, flash … RAM …` as the normal path prints it. */
  sizeText: string;
}

export interface NoopStamp {
  v: number;
  /** Arguments, working directory, kiln build: see noopKey. */
  key: string;
  /** Fingerprint of the environment. */
  envHash: string;
  /** [path, mtimeMs] with -1 for "must not exist". */
  files: Array<[string, number]>;
  dirs: Array<[string, number]>;
  envs: NoopEnvLine[];
  /** The last build's compile commands, for head starts (lib/build/headstart.ts). */
  units?: StampedUnits | undefined;
  /** Its parallel compiles (`-j`, or the setting): no more head starts than that. */
  jobs?: number | undefined;
  /**
   * Files whose text, not their time, decides (a sketch: kiln converts it only when its text
   * changed): [path, contentStamp]. Such a file that was only touched is no change.
   */
  contents?: Array<[string, string]> | undefined;
  /** Set when the build had one env that a changed source needs only recompiled and relinked (lib/build/finish.ts). */
  finish?: FinishRecipe | undefined;
}

/**
 * What is left of a build after its compiles, when that is only the link: the
 * launcher then finishes a head-started build itself (lib/build/finish.ts).
 */
export interface FinishRecipe {
  env: string;
  buildDir: string;
  /**
   * The link's output and command, with TMP_WORD (lib/build/headstart.ts) where its temp output goes.
   * An object among its words is one the link takes directly (not through an archive).
   */
  link: { output: string; template: string[] };
  manifest: string;
  /** The manifest's images, in its order. */
  images: string[];
}

/** Whether the launcher may finish this build: a recipe, one env, and every changed source's object on the link's command line. */
export function canFinish(stamp: NoopStamp, changed: readonly string[]): boolean {
  const f = stamp.finish;
  if (!f || stamp.envs.length !== 1 || !stamp.units) return false;
  const linked = new Set(f.link.template);
  const sources = new Set(changed);
  return stamp.units.list.every(([source, object]) => !sources.has(source) || linked.has(object));
}

/** `<projectDir>/.kiln/noop.json` */
export function noopPath(projectDir: string): string {
  return join(projectDir, ".kiln", "noop.json");
}

/** Defined by scripts/bundle.mjs: a hash of kiln's code, the same in the launcher's bundle and the CLI's. */
declare const KILN_BUILD: string | undefined;

/** kiln's own build: its version and a hash of its code (unbundled: this file's time), so a rebuilt kiln is a new kiln. */
export function kilnStamp(): string {
  return `${VERSION}:${typeof KILN_BUILD === "string" ? KILN_BUILD : mtimeOf(fileURLToPath(import.meta.url))}`;
}

/** What a build command asked for: the project and the env selection, as given. */
export function noopKey(projectDir: string, envs: readonly string[], kilnStamp: string): string {
  return JSON.stringify([projectDir, envs, kilnStamp]);
}

/** Shell bookkeeping that changes between identical commands and never affects a build. */
const VOLATILE = new Set(["_", "OLDPWD", "PWD", "SHLVL", "COLUMNS", "LINES", "TERM_SESSION_ID", "WINDOWID", "HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET"]);

export function envHash(env: Readonly<Record<string, string | undefined>>): string {
  // FNV-1a in two 32-bit lanes: a fingerprint, not a secret (node:crypto costs the launcher ~6 ms to load),
  // and never the values themselves, which may hold tokens.
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (const k of Object.keys(env).sort()) {
    if (VOLATILE.has(k) || env[k] === undefined) continue;
    const text = `${k}=${env[k]}\0`;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
    }
  }
  return `${(a >>> 0).toString(16).padStart(8, "0")}${(b >>> 0).toString(16).padStart(8, "0")}`;
}

function mtimeOf(p: string): number {
  const st = statSync(p, { throwIfNoEntry: false });
  return st ? st.mtimeMs : -1;
}

/**
 * The recorded files that changed since the stamp, or undefined when the
 * stamp does not apply at all (other arguments, environment or kiln build,
 * a folder's listing changed, a file appeared or vanished).
 */
export function stampChanges(stamp: NoopStamp, key: string, hash: string): string[] | undefined {
  if (stamp.v !== NOOP_VERSION || stamp.key !== key || stamp.envHash !== hash) return undefined;
  for (const [p, m] of stamp.dirs) if (mtimeOf(p) !== m) return undefined;
  const changed: string[] = [];
  const byText = new Map(stamp.contents ?? []);
  for (const [p, m] of stamp.files) {
    const now = mtimeOf(p);
    if (now === m) continue;
    if (now < 0 || m < 0) return undefined;
    const text = byText.get(p);
    if (text !== undefined && contentStampOf(p) === text) continue;
    changed.push(p);
  }
  return changed;
}

let crypto: typeof import("node:crypto") | undefined;

/** A fingerprint of a file's text (sha256; the launcher loads node:crypto only when a sketch was touched). */
export function contentStamp(text: string): string {
  crypto ??= createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");
  return crypto.createHash("sha256").update(text).digest("hex");
}

function contentStampOf(path: string): string | undefined {
  try {
    return contentStamp(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

export function readStamp(projectDir: string): NoopStamp | undefined {
  try {
    return JSON.parse(readFileSync(noopPath(projectDir), "utf8")) as NoopStamp;
  } catch {
    return undefined;
  }
}

export function removeStamp(projectDir: string): void {
  rmSync(noopPath(projectDir), { force: true });
}

/**
 * Write the stamp, unless something recorded is not older than `startedAtMs`
 * (then a later run must look for itself). `written` are files this build
 * made itself (objects, archives, images, the manifest): their times are
 * recorded as they are; `made` (this build's outputs) must all still exist.
 * `known` holds times already looked at during the build (after the file's
 * last use): they are recorded instead of looking again.
 */
export function writeStamp(
  projectDir: string,
  stamp: Omit<NoopStamp, "v" | "files" | "dirs">,
  files: Iterable<string>,
  dirs: Iterable<string>,
  startedAtMs: number,
  written: ReadonlySet<string> = new Set(),
  made: Iterable<string> = [],
  known: ReadonlyMap<string, number> = new Map(),
): boolean {
  const at = (p: string): [string, number] => [p, known.get(p) ?? mtimeOf(p)];
  const f = [...new Set(files)].map(at);
  const d = [...new Set(dirs)].map(at);
  const gone = [...made].some((p) => mtimeOf(p) < 0);
  if (gone || [...f.filter(([p]) => !written.has(p)), ...d].some(([, m]) => m >= startedAtMs)) {
    removeStamp(projectDir);
    return false;
  }
  const file = noopPath(projectDir);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify({ v: NOOP_VERSION, ...stamp, files: f, dirs: d }));
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
  return true;
}

/** A bare tool name as PATH resolves it (the tool's file is an input too). */
export function whichSync(tool: string, path: string | undefined): string | undefined {
  if (tool.includes("/")) return resolve(tool);
  for (const dir of (path ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, tool);
    if (statSync(p, { throwIfNoEntry: false })?.isFile()) return p;
  }
  return undefined;
}
