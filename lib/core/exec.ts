/**
 * The one way kiln runs external programs (compilers, avrdude, simavr…).
 *
 * - argv arrays only, never shell strings;
 * - every command is announced to the reporter first (`--verbose` shows it);
 * - an AbortSignal kills the child's whole process group, so Ctrl-C reaches
 *   a compiler's cc1plus and as too;
 * - execa is imported on first use, so a no-op build never loads it.
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

/**
 * Run a program to completion and return its exit code and output. A
 * non-zero exit is returned, not thrown. Throws ToolFailedError when the
 * program cannot be started (not found, not executable) and CancelledError
 * when the signal aborts.
 */
export async function runTool(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("runTool: empty argv");
  if (opts.signal?.aborted) throw new CancelledError();
  opts.reporter?.command(argv, opts.cwd);
  const execa = await loadExeca();
  const started = performance.now();
  const inherit = opts.stdio === "inherit";
  const child = execa(file, args, {
    cwd: opts.cwd,
    env: opts.env as Record<string, string> | undefined,
    extendEnv: opts.env === undefined,
    reject: false,
    stripFinalNewline: false,
    // Our own process group (unless interactive) so an abort can kill the whole tree.
    detached: !inherit,
    stdin: inherit ? "inherit" : opts.input === undefined ? "ignore" : "pipe",
    stdout: inherit ? "inherit" : "pipe",
    stderr: inherit ? "inherit" : "pipe",
    input: opts.input,
    encoding: "utf8",
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
  try {
    const r = await child;
    const command = shellQuote(argv);
    if (opts.signal?.aborted) throw new CancelledError();
    if (r.failed && r.exitCode === undefined && !r.isTerminated) {
      const cause = (r as { cause?: unknown }).cause;
      const code = (cause as { code?: string } | undefined)?.code;
      throw new ToolFailedError(command, undefined, code === "ENOENT" ? `  ${file}: not found` : String((cause as Error | undefined)?.message ?? r.message), opts.failureExitCode ?? ExitCode.build, {
        hint: opts.hint ?? (code === "ENOENT" ? `install '${file}' or check the toolchain configuration` : undefined),
        cause,
      });
    }
    return {
      exitCode: r.exitCode ?? (r.isTerminated ? 128 : 1),
      stdout: typeof r.stdout === "string" ? r.stdout : "",
      stderr: typeof r.stderr === "string" ? r.stderr : "",
      command,
      durationMs: performance.now() - started,
    };
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
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
