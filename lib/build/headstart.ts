/**
 * Head starts: when the launcher finds that the last build's stamp
 * (lib/build/noop.ts) fails only because a few source files changed, it
 * starts their compiles at once — with exactly the command the last build
 * ran, into temp files — and then loads the CLI, reads the config and plans
 * as usual. The runner adopts a started compile only when the command it
 * works out is word for word the one already running; anything else is
 * killed and its files removed. So the ~100 ms kiln spends before its first
 * compile overlaps the compile instead of preceding it (what ninja never
 * pays), and a wrong guess costs a killed process.
 *
 * Imported by the launcher before anything else: node built-ins only.
 */
import type { ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { rmSync } from "node:fs";

/** Where the temp object and depfile go in a stamped command. */
export const TMP_WORD = "\0tmp";
export const DEP_WORD = "\0dep";

/** The compile commands of the last build: shared word prefixes, then [source, object, prefix index] per unit. */
export interface StampedUnits {
  prefixes: string[][];
  list: Array<[source: string, object: string, prefix: number]>;
}

/** What a finished compile reports (the runner's RunResult, less what it adds). */
export interface EarlyOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Set when the compiler could not be started: the runner then compiles as usual. */
  failedToStart: boolean;
}

export interface HeadStart {
  object: string;
  /** The command with TMP_WORD and DEP_WORD in place of the temp paths. */
  template: string[];
  tmp: string;
  dep: string;
  /** Date.now() when it was spawned (the runner's "inputs changed during the compile" check uses it). */
  startedMs: number;
  done: Promise<EarlyOutcome>;
  child: ChildProcess;
}

/**
 * Started and not yet claimed. Kept on globalThis: the launcher's bundle (dist/bundle/fastpath.cjs)
 * and the CLI's each carry a copy of this module, and the CLI's runner claims what the launcher started.
 */
const started = ((globalThis as Record<symbol, unknown>)[Symbol.for("kiln.headStarts")] ??= new Map<string, HeadStart>()) as Map<string, HeadStart>;

/** The compile command the runner runs for `source`: its words before `-c`, then the temp object and depfile. */
export function compileTemplate(prefix: readonly string[], source: string): string[] {
  return [...prefix, "-c", source, "-o", TMP_WORD, "-MMD", "-MF", DEP_WORD];
}

/** The full command for a stamped unit, with the temp words in place. */
export function unitTemplate(units: StampedUnits, i: number): string[] {
  const [source, , prefix] = units.list[i]!;
  return compileTemplate(units.prefixes[prefix]!, source);
}

/** A template with the temp object and depfile paths in place. */
export function fillTemplate(template: readonly string[], tmp: string, dep: string): string[] {
  return template.map((w) => (w === TMP_WORD ? tmp : w === DEP_WORD ? dep : w));
}

/**
 * Start the compiles of `changed` files that are sources of stamped units,
 * when there are at most `maxJobs` of them and nothing else changed (the
 * caller checks the rest). Returns how many were started.
 */
export function startHeadStarts(units: StampedUnits, changed: readonly string[], cwd: string, maxJobs: number): number {
  // Killing a head start means killing its process group: POSIX only (Windows builds go the usual way).
  if (process.platform === "win32") return 0;
  const bySource = new Map<string, number[]>();
  units.list.forEach(([source], i) => bySource.set(source, [...(bySource.get(source) ?? []), i]));
  const picks = changed.flatMap((f) => bySource.get(f) ?? [-1]);
  if (picks.length === 0 || picks.length > maxJobs || picks.includes(-1)) return 0;
  const { spawn } = createRequire(import.meta.url)("node:child_process") as typeof import("node:child_process");
  for (const i of picks) {
    const object = units.list[i]![1];
    const template = unitTemplate(units, i);
    const tmp = `${object}.tmp-${process.pid}-early${i}`;
    const dep = `${tmp}.d`;
    const argv = fillTemplate(template, tmp, dep);
    // Its own process group, as the runner's compiles: an abort kills the whole tree.
    const child = spawn(argv[0]!, argv.slice(1), { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => err.push(d));
    const done = new Promise<EarlyOutcome>((resolve) => {
      child.once("error", () => {
        if (child.pid === undefined) resolve({ exitCode: 1, stdout: "", stderr: "", failedToStart: true });
      });
      child.once("close", (code, signal) => {
        resolve({ exitCode: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), failedToStart: false });
      });
    });
    started.set(object, { object, template, tmp, dep, startedMs: Date.now(), done, child });
  }
  process.once("exit", abandonHeadStarts);
  return picks.length;
}

/**
 * The runner asks for `object` with the command it would run: the head
 * start if it is running exactly that command; otherwise any head start for
 * the object is abandoned and undefined is returned.
 */
export function claimHeadStart(object: string, template: readonly string[]): HeadStart | undefined {
  const h = started.get(object);
  if (!h) return undefined;
  started.delete(object);
  if (h.template.length === template.length && h.template.every((w, i) => w === template[i])) return h;
  drop(h);
  return undefined;
}

/** The head start for `object`, left in place (the launcher's finish looks before it claims: lib/build/finish.ts). */
export function peekHeadStart(object: string): HeadStart | undefined {
  return started.get(object);
}

/** Kill what nobody claimed and remove its files (end of the build, or process exit). */
export function abandonHeadStarts(): void {
  for (const h of started.values()) drop(h);
  started.clear();
}

/** Kill a head start's process group and remove its files (again once it has exited, in case it was still writing). */
export function drop(h: HeadStart): void {
  const remove = (): void => {
    rmSync(h.tmp, { force: true });
    rmSync(h.dep, { force: true });
  };
  if (h.child.exitCode === null && h.child.signalCode === null && h.child.pid !== undefined) {
    try {
      process.kill(-h.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    void h.done.then(remove);
  }
  remove();
}

/** How many head starts are waiting to be claimed (for tests). */
export function pendingHeadStarts(): number {
  return started.size;
}
