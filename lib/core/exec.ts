/**
 * The one way kiln runs external programs (compilers, avrdude, simavr…).
 *
 * - argv arrays only, never shell strings;
 * - every command is announced to the reporter first (`--verbose` shows it);
 * - an AbortSignal kills the child's whole process group, so Ctrl-C reaches
 *   a compiler's cc1plus and as too;
 * - nothing is imported until a program actually runs, so a no-op build
 *   loads neither child_process nor execa.
 */
import type { Reporter } from "./report.js";
import { shellQuote } from "./report.js";
import { CancelledError, ExitCode, type ExitCodeValue, ToolFailedError } from "./errors.js";

export interface RunOptions {
  cwd?: string;
  env?: Readonly<Record<string, string | undefined>>;
  signal?: AbortSignal;
  reporter?: Reporter;
  input?: string | Buffer;
  /** `inherit` hands the terminal to the child (kiln run, interactive tools). */
  stdio?: "pipe" | "inherit";
  /** Exit code family for a failure (default: build). */
  failureExitCode?: ExitCodeValue;
  /** Hint attached to a ToolFailedError. */
  hint?: string;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The argv as a shell-quoted string, for messages. */
  command: string;
  durationMs: number;
}

type Execa = typeof import("execa").execa;
let execaFn: Execa | undefined;
async function loadExeca(): Promise<Execa> {
  execaFn ??= (await import("execa")).execa;
  return execaFn;
}

/** What a finished child reports, whichever way it was spawned. */
interface Outcome {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started. */
  spawnError?: NodeJS.ErrnoException | undefined;
}

/**
 * Run a program to completion and return its exit code and output. A
 * non-zero exit is returned, not thrown. Throws ToolFailedError when the
 * program cannot be started (not found, not executable) and CancelledError
 * when the signal aborts.
 *
 * On POSIX, node:child_process is used directly: importing execa costs about
 * 100 ms, more than the incremental build it would serve (measured in
 * docs/benchmarks.md). On Windows, execa resolves `.cmd`/`.bat` shims and
 * PATHEXT, which plain spawn does not.
 */
export async function runTool(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file] = argv;
  if (file === undefined) throw new Error("runTool: empty argv");
  if (opts.signal?.aborted) throw new CancelledError();
  opts.reporter?.command(argv, opts.cwd);
  const started = performance.now();
  const r = process.platform === "win32" ? await runWithExeca(argv, opts) : await runWithSpawn(argv, opts);
  const command = shellQuote(argv);
  if (opts.signal?.aborted) throw new CancelledError();
  if (r.spawnError) {
    const code = r.spawnError.code;
    throw new ToolFailedError(command, undefined, code === "ENOENT" ? `  ${file}: not found` : `  ${r.spawnError.message}`, opts.failureExitCode ?? ExitCode.build, {
      hint: opts.hint ?? (code === "ENOENT" ? `install '${file}' or check the toolchain configuration` : code === "EACCES" ? `'${file}' is not executable` : undefined),
      cause: r.spawnError,
    });
  }
  return {
    exitCode: r.exitCode ?? (r.signal ? 128 : 1),
    stdout: r.stdout,
    stderr: r.stderr,
    command,
    durationMs: performance.now() - started,
  };
}

async function runWithSpawn(argv: readonly string[], opts: RunOptions): Promise<Outcome> {
  const { spawn } = await import("node:child_process");
  const inherit = opts.stdio === "inherit";
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env as NodeJS.ProcessEnv | undefined,
    // Our own process group (unless interactive) so an abort can kill the whole tree.
    detached: !inherit,
    stdio: [inherit ? "inherit" : opts.input === undefined ? "ignore" : "pipe", inherit ? "inherit" : "pipe", inherit ? "inherit" : "pipe"],
  });
  const onAbort = (): void => {
    if (child.pid === undefined) return;
    try {
      if (inherit) child.kill("SIGTERM");
      else process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (d: Buffer) => out.push(d));
  child.stderr?.on("data", (d: Buffer) => err.push(d));
  if (child.stdin && opts.input !== undefined) child.stdin.end(opts.input);
  try {
    return await new Promise<Outcome>((resolve) => {
      let spawnError: NodeJS.ErrnoException | undefined;
      child.once("error", (e: NodeJS.ErrnoException) => {
        spawnError = e;
        // A child that never started emits no "close" on some Node versions.
        if (child.pid === undefined) resolve({ exitCode: undefined, signal: undefined, stdout: "", stderr: "", spawnError });
      });
      child.once("close", (code, signal) => {
        resolve({
          exitCode: code ?? undefined,
          signal: signal ?? undefined,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          spawnError,
        });
      });
    });
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

async function runWithExeca(argv: readonly string[], opts: RunOptions): Promise<Outcome> {
  const execa = await loadExeca();
  const inherit = opts.stdio === "inherit";
  const r = await execa(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env as Record<string, string> | undefined,
    extendEnv: opts.env === undefined,
    reject: false,
    stripFinalNewline: false,
    stdin: inherit ? "inherit" : opts.input === undefined ? "ignore" : "pipe",
    stdout: inherit ? "inherit" : "pipe",
    stderr: inherit ? "inherit" : "pipe",
    input: opts.input,
    encoding: "utf8",
    cancelSignal: opts.signal,
    forceKillAfterDelay: 2000,
  });
  const cause = (r as { cause?: NodeJS.ErrnoException }).cause;
  const notStarted = r.failed && r.exitCode === undefined && !r.isTerminated && !r.isCanceled;
  return {
    exitCode: r.exitCode,
    signal: r.signal,
    stdout: typeof r.stdout === "string" ? r.stdout : "",
    stderr: typeof r.stderr === "string" ? r.stderr : "",
    spawnError: notStarted ? (cause ?? Object.assign(new Error(r.message), { code: "ENOENT" })) : undefined,
  };
}

/** Like runTool, but a non-zero exit throws ToolFailedError with the last 20 lines of stderr. */
export async function runToolChecked(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runTool(argv, opts);
  if (r.exitCode !== 0) {
    const tail = (r.stderr || r.stdout).trimEnd().split("\n").slice(-20).join("\n");
    throw new ToolFailedError(r.command, r.exitCode, tail, opts.failureExitCode ?? ExitCode.build, opts.hint ? { hint: opts.hint } : {});
  }
  return r;
}
