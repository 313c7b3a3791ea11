/**
 * The launcher's first stop. `kiln build` with nothing to do is the command
 * people run most, and Node's own start-up is most of its time; so before
 * the CLI, the config reader and the build code are even loaded, an exact
 * repeat of the last no-op build is answered from its stamp
 * (lib/build/noop.ts): a few hundred stat() calls. Anything else, or any
 * doubt, returns undefined and the normal path runs.
 *
 * Only plain arguments take this path: `build` with -d/-e/-j/-q. The output
 * is what the normal path prints for a no-op in plain mode (CI, pipes) or
 * with -q; a terminal without -q gets the normal path and its spinners.
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { startHeadStarts } from "./build/headstart.js";
import { armInterrupts, releaseInterrupts } from "./interrupts.js";
import { canFinish, envHash, kilnStamp, noopKey, readStamp, stampChanges, type NoopStamp } from "./build/noop.js";
import type { FinishOptions } from "./build/finish.js";

interface FastArgs {
  projectDir: string;
  envs: string[];
  quiet: boolean;
  jobs: number | undefined;
}

/** `build [-d DIR] [-e ENV]… [-j N] [-q]`, or undefined for anything else. */
export function parseFastArgs(argv: readonly string[], cwd: string): FastArgs | undefined {
  if (argv[0] !== "build") return undefined;
  let dir: string | undefined;
  const envs: string[] = [];
  let quiet = false;
  let jobs: number | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf("=");
    const [flag, inline] = a.startsWith("--") && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    if (flag === "-q" || flag === "--quiet") quiet = true;
    else if (flag === "-d" || flag === "--project-dir") {
      dir = value();
      if (dir === undefined) return undefined;
    } else if (flag === "-e" || flag === "--environment") {
      const v = value();
      if (v === undefined) return undefined;
      envs.push(v);
    } else if (flag === "-j" || flag === "--jobs") {
      const v = value() ?? "";
      if (!/^[1-9]\d*$/.test(v)) return undefined;
      jobs = Number(v);
    } else if (/^-j[1-9]\d*$/.test(a)) jobs = Number(a.slice(2));
    else return undefined;
  }
  return { projectDir: resolve(cwd, dir ?? "."), envs, quiet, jobs };
}

/**
 * The exit code when the last build's stamp still holds, else undefined. When
 * it fails only because a few sources changed, their compiles are started
 * here (lib/build/headstart.ts); when the build after them is only a link, a
 * promise of the launcher finishing it (lib/build/finish.ts), which resolves
 * to undefined if the normal path must. Otherwise the normal path adopts them.
 */
export function fastNoop(argv: readonly string[]): number | Promise<number | undefined> | undefined {
  const t0 = performance.now();
  const startedAtMs = Date.now();
  try {
    const args = parseFastArgs(argv, process.cwd());
    if (!args) return undefined;
    const env = process.env;
    const stamp = readStamp(args.projectDir);
    if (!stamp) return undefined;
    const changed = stampChanges(stamp, noopKey(args.projectDir, args.envs, kilnStamp()), envHash(env));
    if (changed === undefined) return undefined;
    const ci = Boolean(env.CI) && env.CI !== "false" && env.CI !== "0";
    // A terminal without -q gets the normal path's spinners.
    const plain = args.quiet || !process.stderr.isTTY || ci;
    if (changed.length > 0) {
      if (!stamp.units) return undefined;
      armInterrupts();
      const started = startHeadStarts(stamp.units, changed, args.projectDir, args.jobs ?? stamp.jobs ?? availableParallelism());
      if (started === 0) releaseInterrupts();
      return started > 0 && plain && canFinish(stamp, changed) ? finish(stamp, changed, args.quiet, { projectDir: args.projectDir, startedAtMs, t0 }) : undefined;
    }
    if (!plain) return undefined;
    if (!args.quiet) {
      const secs = ((performance.now() - t0) / 1000).toFixed(2);
      process.stderr.write(stamp.envs.map((e) => `Building ${e.env}\n${e.env}: built in ${secs}s (compiled 0, reused ${e.reused}${e.sizeText})\n`).join(""));
    }
    return 0;
  } catch {
    // Any surprise (a permission, a torn stamp): the normal path decides.
    return undefined;
  }
}

/** The launcher's finish of a head-started build, when the stamp allows it; loaded only then. */
async function finish(stamp: NoopStamp, changed: string[], quiet: boolean, opts: FinishOptions): Promise<number | undefined> {
  let onSignal: (() => void) | undefined;
  try {
    const { startFinish } = await import("./build/finish.js");
    const run = startFinish(stamp, changed, opts);
    // Ctrl-C now stops what the finish started, as the normal path would, before exiting 130.
    onSignal = () => void run.stop().finally(() => process.exit(130));
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    releaseInterrupts();
    const result = await run.done;
    if (result && !quiet) process.stderr.write(result.report);
    return result?.code;
  } catch {
    // As above: whatever was done is recorded as done, and the normal path does the rest.
    return undefined;
  } finally {
    if (onSignal) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    // Handed back to the CLI (or done): until the CLI has loaded, the stand-in answers again.
    armInterrupts();
  }
}
