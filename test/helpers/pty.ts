/**
 * Real pseudo-terminals for serial tests, made by socat (flashing.md §9.1).
 *
 * - `startPtyPair(dir)`: two linked ptys, `<dir>/a` and `<dir>/b` (stable
 *   symlinks to /dev/pts/N); bytes written to one come out of the other.
 *   One side can be opened and closed any number of times.
 * - `startPtyExec(dir, argv)`: one pty, `<dir>/tty`, whose far end is a
 *   program's stdin/stdout (a fake bootloader or device).
 *
 * The symlinks vanish when socat exits, which is how a test makes a "device"
 * disappear; starting again with the same names makes it come back.
 * socat is required: a missing socat fails the test (requireTool).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, lstat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { requireTool } from "./tools.js";

export interface PtyPair {
  /** Path of end a (a symlink to /dev/pts/N). */
  a: string;
  /** Path of end b. */
  b: string;
  /** socat's pid. */
  pid: number;
  /** Kill socat and wait until both links are gone. Idempotent. */
  stop(): Promise<void>;
}

export interface PtyExec {
  /** Path of the pty the program sits behind. */
  path: string;
  pid: number;
  /** socat's stderr so far (diagnostics when a test fails). */
  log(): string;
  /** Kill socat (and the program) and wait until the link is gone. Idempotent. */
  stop(): Promise<void>;
}

export interface PtyPairOptions {
  /** Link names inside `dir` (default "a" and "b"). */
  names?: [string, string];
  /** How long to wait for socat to create the links (default 5000 ms). */
  timeoutMs?: number;
}

const PTY_OPTS = "raw,echo=0";

function socatBin(): string {
  return requireTool("socat", "socat");
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: () => Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
    await sleep(20);
  }
}

function startSocat(args: string[], links: string[], timeoutMs: number): Promise<{ child: ChildProcess; log: () => string; stop: () => Promise<void> }> {
  const child = spawn(socatBin(), ["-d", "-d", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  let exited = false;
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  const gone = new Promise<void>((res) => child.on("exit", () => ((exited = true), res())));
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await gone;
      clearTimeout(killer);
    }
    // socat removes its links on exit; a SIGKILLed one cannot, so wait briefly, then give up quietly.
    const deadline = Date.now() + 2000;
    for (const l of links) while ((await exists(l)) && Date.now() < deadline) await sleep(20);
  };
  return (async () => {
    try {
      await waitFor(
        async () => {
          if (exited) throw new Error(`socat exited early: ${log}`);
          for (const l of links) if (!(await exists(l))) return false;
          return log.includes("starting data transfer loop");
        },
        timeoutMs,
        () => `socat links ${links.join(", ")}; socat said: ${log}`,
      );
    } catch (e) {
      await stop();
      throw e;
    }
    return { child, log: () => log, stop };
  })();
}

/** Two linked ptys in `dir`. The caller stops them (t.after(pair.stop)). */
export async function startPtyPair(dir: string, opts: PtyPairOptions = {}): Promise<PtyPair> {
  const [na, nb] = opts.names ?? ["a", "b"];
  const a = join(dir, na);
  const b = join(dir, nb);
  const s = await startSocat([`pty,${PTY_OPTS},link=${a}`, `pty,${PTY_OPTS},link=${b}`], [a, b], opts.timeoutMs ?? 5000);
  return { a, b, pid: s.child.pid!, stop: s.stop };
}

export interface PtyExecOptions {
  /** Link name inside `dir` (default "tty"). */
  name?: string;
  /** Extra environment for the program. */
  env?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * A pty at `<dir>/<name>` whose far end is `argv` (stdin/stdout). The program
 * is started through a small shell script written into `dir`, so argv needs no
 * socat address quoting; its stderr goes to `<dir>/<name>.stderr`.
 */
export async function startPtyExec(dir: string, argv: string[], opts: PtyExecOptions = {}): Promise<PtyExec> {
  if (argv.length === 0) throw new Error("startPtyExec: empty argv");
  const name = opts.name ?? "tty";
  const path = join(dir, name);
  const script = join(dir, `${name}.run.sh`);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const envLines = Object.entries(opts.env ?? {}).map(([k, v]) => `export ${k}=${q(v)}`);
  await writeFile(script, ["#!/bin/sh", ...envLines, `exec ${argv.map(q).join(" ")} 2>>${q(`${path}.stderr`)}`, ""].join("\n"));
  await chmod(script, 0o755);
  const s = await startSocat([`pty,${PTY_OPTS},link=${path}`, `EXEC:${script}`], [path], opts.timeoutMs ?? 5000);
  return { path, pid: s.child.pid!, log: s.log, stop: s.stop };
}
