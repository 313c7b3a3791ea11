/**
 * The base of every kiln command: shared flags, reporter choice, and the one
 * place where thrown errors become exit codes and messages.
 */
import { existsSync } from "node:fs";
import { join, resolve as resolvePath } from "node:path";
import { Command, Option, UsageError as ClipanionUsageError } from "clipanion";
import type { BaseContext } from "clipanion";
import { ExitCode, KilnError, CancelledError, UsageError, errnoCode, isKilnError } from "../core/errors.js";
import type { Settings } from "../core/config.js";
import { createReporter, type Reporter } from "../core/report.js";
import type { BuildOptions, BuildSummary } from "../build/index.js";

export interface KilnContext extends BaseContext {
  settings: Settings;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** Whether stdout/stderr are terminals. */
  isTTY: boolean;
}

/** File-system failures that are the user's to fix, with the hint for each. */
const FS_ERRORS: Record<string, (path: string) => string> = {
  EACCES: (p) => `kiln may not write ${p}: check its permissions and owner`,
  EPERM: (p) => `the system refused an operation on ${p}: check its permissions`,
  EROFS: (p) => `${p} is on a read-only file system: set build_dir (or KILN_HOME) to a writable place`,
  ENOSPC: (p) => `the disk holding ${p} is full: free some space ('kiln clean', 'kiln pkg gc')`,
  EDQUOT: (p) => `your disk quota is exhausted on ${p}: free some space`,
  ENOTDIR: (p) => `a file stands where kiln needs a folder (${p}): check build_dir, src_dir and the paths in the config`,
  EISDIR: (p) => `a folder stands where kiln needs a file: ${p}`,
};

export abstract class KilnCommand extends Command<KilnContext> {
  json = Option.Boolean("--json", false, { description: "Print NDJSON events and results on stdout" });
  verbose = Option.Boolean("-v,--verbose", false, { description: "Print every external command exactly as run" });
  quiet = Option.Boolean("-q,--quiet", false, { description: "Print errors only" });
  color = Option.Boolean("--color", { description: "Force colours on or off (--no-color); NO_COLOR and FORCE_COLOR also work" });

  private reporterCache: Reporter | undefined;

  /** The reporter for this run: JSON, TTY (spinners) or plain lines. */
  async reporter(): Promise<Reporter> {
    if (this.reporterCache) return this.reporterCache;
    const { settings, isTTY } = this.context;
    const mode = this.json ? "json" : isTTY && !settings.ci ? "tty" : "plain";
    const color = this.useColor();
    this.reporterCache = await createReporter({
      mode,
      verbose: this.verbose,
      quiet: this.quiet,
      color,
      stdout: this.context.stdout,
      stderr: this.context.stderr,
    });
    return this.reporterCache;
  }

  /** Set by catch(); lib/cli.ts returns it as the exit code. */
  failedWith: number | undefined;

  /** Whether human output (and compiler diagnostics) should be coloured. */
  protected useColor(): boolean {
    return !this.json && (this.color ?? this.context.settings.color ?? (this.context.isTTY && !this.context.settings.ci));
  }

  /** Map any failure to an exit code; a KilnError is a message and a hint, never a stack. */
  override async catch(error: unknown): Promise<void> {
    this.failedWith = await this.report(error);
  }

  protected async report(error: unknown): Promise<number> {
    if (error instanceof ClipanionUsageError) {
      const e = new KilnError("KILN_USAGE", ExitCode.usage, error.message, { hint: `run 'kiln ${this.path?.join(" ") ?? ""} --help'`.replace("  ", " ") });
      (await this.reporter()).error(e);
      return ExitCode.usage;
    }
    if (isKilnError(error)) {
      if (!(error instanceof CancelledError) || this.json) (await this.reporter()).error(error);
      return error instanceof CancelledError ? 130 : error.exitCode;
    }
    // The file system refusing (permissions, a full or read-only disk, a file where a folder should be)
    // is the user's environment, not a kiln bug: a message and a hint, no stack.
    const sys = errnoCode(error);
    if (sys && FS_ERRORS[sys] && error instanceof Error) {
      const path = (error as NodeJS.ErrnoException).path;
      const e = new KilnError("KILN_FS_ERROR", ExitCode.config, error.message, { hint: FS_ERRORS[sys]!(path ?? "the path above"), cause: error, data: { errno: sys, path } });
      (await this.reporter()).error(e);
      return ExitCode.config;
    }
    const err = error instanceof Error ? error : new Error(String(error));
    this.context.stderr.write(`kiln: internal error: ${err.stack ?? err.message}\nThis is a bug in kiln; please report it with the command you ran.\n`);
    return ExitCode.internal;
  }
}

/** A command that works on a project: `-d/--project-dir` and `-e/--environment`. */
export abstract class ProjectCommand extends KilnCommand {
  projectDir = Option.String("-d,--project-dir", { description: "Project directory (default: current directory)" });
  environments = Option.Array("-e,--environment", [], { description: "Environment to use (repeatable; default: default_envs, else all)" });

  protected resolvedProjectDir(): string {
    return resolvePath(this.projectDir ?? ".");
  }

  /** `-d` wins; else a positional directory; else the current directory. */
  protected projectDirOr(positional: string | undefined): string {
    return resolvePath(this.projectDir ?? positional ?? ".");
  }
}

/**
 * `-j N`: a positive integer. Validated by hand rather than with typanion so
 * that start-up does not load a validation library for one number.
 */
export function parseJobs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`-j/--jobs must be a positive integer, got '${value}'`, { hint: "e.g. -j 4" });
  return n;
}

/** `--remote auto|always|never`, else settings (`remote` in settings.json, KILN_REMOTE), else auto. */
export function parseRemote(value: string | undefined, settings: Settings): "auto" | "always" | "never" {
  const v = value ?? settings.remote ?? "auto";
  if (v !== "auto" && v !== "always" && v !== "never") throw new UsageError(`--remote must be auto, always or never, got '${v}'`);
  return v;
}

/**
 * Build locally, or through the peer scheduler when peers are paired (or
 * `--remote always`). Without a peers file nothing of lib/remote is loaded.
 */
export async function buildMaybeRemote(options: BuildOptions, remote: { mode: "auto" | "always" | "never"; board?: string | undefined }): Promise<BuildSummary> {
  // --offline means no network at all, peers included.
  const mode = options.offline ? "never" : remote.mode;
  const usePeers = mode === "always" || (mode === "auto" && existsSync(join(options.settings.configDir, "peers.json")));
  if (!usePeers) return (await import("../build/index.js")).buildProject(options);
  const { buildWithPeers } = await import("../remote/build.js");
  // The launcher's no-op answer is for local builds only: with peers, the scheduler speaks.
  return buildWithPeers({ ...options, noopKey: undefined, mode, board: remote.board });
}

/**
 * What `kiln pkg install` and `kiln pkg update` run: lib/project, lib/platforms and the installer,
 * imported at once (awaiting each import() in turn cost the module loader a round trip each).
 */
export async function loadInstaller() {
  const [project, platforms, envs] = await Promise.all([import("../project/index.js"), import("../platforms/index.js"), import("../toolchains/envs.js")]);
  return { services: { ...project, ...platforms }, installProject: envs.installProject };
}
