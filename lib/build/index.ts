/**
 * `buildProject`: for each selected env, resolve its platform and board,
 * make sure its packages are installed, ask the platform for a BuildPlan and
 * run it. Envs run one after the other; each one's compiles run in parallel.
 */
import { join } from "node:path";
import type { Settings } from "../core/config.js";
import type { Reporter } from "../core/report.js";
import { BuildFailedError, CancelledError, errnoCode, isKilnError, type KilnError } from "../core/errors.js";
import type { Project } from "../project/types.js";
import { parseBuildFlags } from "../project/flags.js";
import { getPlatform } from "../platforms/index.js";
import type { BuildPlan, PackageRequest } from "../platforms/types.js";
import { abandonHeadStarts, type StampedUnits } from "./headstart.js";
import { Prober } from "./probe.js";
import { runPlan, type EnvBuildResult } from "./runner.js";

export type { EnvBuildResult, CompileCommand } from "./runner.js";

export interface BuildOptions {
  project: Project;
  /** Env names to build (already selected, see Project.selectEnvs). */
  envNames: string[];
  settings: Settings;
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  jobs: number;
  keepGoing: boolean;
  offline?: boolean | undefined;
  frozenLockfile?: boolean | undefined;
  /** Coloured compiler diagnostics (stderr is a terminal and colour is on). */
  colorDiagnostics?: boolean | undefined;
  /** Also install upload tools (kiln upload). */
  includeUpload?: boolean | undefined;
  /**
   * The command's no-op key (lib/build/noop.ts): after a build that changed
   * nothing, write the stamp the launcher checks; after any other, remove it.
   */
  noopKey?: string | undefined;
  /** See RunPlanOptions.debugPrefixMap (a peer building a client's project). */
  debugPrefixMap?: { from: string; to: string } | undefined;
}

export interface BuildSummary {
  status: "ok" | "failed" | "cancelled";
  ms: number;
  envs: EnvBuildResult[];
  /** Failures by env (with --keep-going, several). */
  errors: Array<{ env: string; error: KilnError }>;
}

/** Resolve env → platform → packages → plan, without running anything but probes. */
export async function planEnv(opts: BuildOptions & { envName: string; prober: Prober }): Promise<BuildPlan> {
  const { project, settings } = opts;
  const env = project.env(opts.envName);
  const platform = getPlatform(env.platform, env.options.platform?.location ?? env.location);
  const board = platform.resolveBoard(env);
  const requests = platform.packages(env, board).filter((r) => opts.includeUpload || !r.forUpload);
  const packages =
    requests.length || env.platformPackages.length
      ? await installPackages(project, env, platform.id, requests, opts)
      : {};
  const buildDir = join(project.dirs.build, env.name);
  const flagsOf = (items: string[], option: string) => parseBuildFlags(items, { projectDir: project.dir, location: env.options[option]?.location });
  const flags = {
    build: flagsOf(env.buildFlags, "build_flags"),
    src: flagsOf(env.buildSrcFlags, "build_src_flags"),
    unflags: flagsOf(env.buildUnflags, "build_unflags"),
  };
  return platform.plan({
    project,
    env,
    board,
    flags,
    packages,
    buildDir,
    hostEnv: settings.env,
    probe: (argv, source, ext) => opts.prober.probe(argv, source, ext),
    toolVersion: (tool) => opts.prober.toolVersion(tool),
  });
}

export async function buildProject(opts: BuildOptions): Promise<BuildSummary> {
  const started = performance.now();
  const startedAt = Date.now();
  const { reporter } = opts;
  const prober = new Prober(join(opts.settings.cacheDir, "probes.json"), opts.settings.env, opts.signal);
  const results: EnvBuildResult[] = [];
  const errors: BuildSummary["errors"] = [];
  let cancelled = false;
  for (const envName of opts.envNames) {
    if (opts.signal?.aborted) {
      cancelled = true;
      break;
    }
    try {
      const plan = await planEnv({ ...opts, envName, prober });
      const r = await runPlan({
        plan,
        projectDir: opts.project.dir,
        reporter,
        signal: opts.signal,
        jobs: opts.jobs,
        keepGoing: opts.keepGoing,
        cacheDir: opts.settings.cacheDir,
        colorDiagnostics: opts.colorDiagnostics,
        debugPrefixMap: opts.debugPrefixMap,
        collectNoop: opts.noopKey !== undefined ? { path: opts.settings.env.PATH } : undefined,
        // The root compile_commands.json (for clangd) follows the first env built.
        rootCompileDb: results.length === 0 ? join(opts.project.dir, "compile_commands.json") : undefined,
      });
      results.push(r);
    } catch (e) {
      if (e instanceof CancelledError || opts.signal?.aborted) {
        cancelled = true;
        break;
      }
      if (!isKilnError(e)) throw e;
      errors.push({ env: envName, error: e });
      if (!opts.keepGoing) break;
    } finally {
      await prober.save();
    }
  }
  // Compiles the launcher started for a build that then went another way (lib/build/headstart.ts).
  abandonHeadStarts();
  const status: BuildSummary["status"] = cancelled ? "cancelled" : errors.length ? "failed" : "ok";
  if (opts.noopKey !== undefined) await stampNoop(opts, results, status, startedAt);
  const ms = Math.round(performance.now() - started);
  reporter.event({
    type: "summary",
    status,
    ms,
    envs: [
      ...results.map((r) => ({ env: r.env, status: r.status, ms: r.ms })),
      ...errors.map((e) => ({ env: e.env, status: "failed", ms: 0, code: e.error.code })),
    ],
  });
  return { status, ms, envs: results, errors };
}

/** After a successful build, record what it rested on (lib/build/noop.ts); otherwise forget any old record. */
async function stampNoop(opts: BuildOptions, results: EnvBuildResult[], status: BuildSummary["status"], startedAt: number): Promise<void> {
  const noop = await import("./noop.js");
  const dir = opts.project.dir;
  const all = results.map((r) => r.noop);
  // Only a shortcut: a project folder kiln may not write (build_dir elsewhere) just never gets one.
  try {
    if (status !== "ok" || opts.project.warnings.length || all.length !== opts.envNames.length || all.some((n) => !n)) {
      noop.removeStamp(dir);
      return;
    }
    const { settings } = opts;
    const inputs = [...opts.project.files, join(dir, "platformio.ini"), join(dir, "kiln.lock"), settings.settingsFile, join(settings.configDir, "peers.json")];
    noop.writeStamp(
      dir,
      {
        key: opts.noopKey!,
        envHash: noop.envHash(settings.env),
        // What the next build, a no-op, will print: every unit reused.
        envs: results.map((r) => ({ env: r.env, reused: r.reused + r.compiled, sizeText: r.noop!.sizeText })),
        units: mergeUnits(all.map((n) => n!.units)),
        jobs: opts.jobs,
        contents: all.flatMap((n) => n!.contents),
        finish: all.length === 1 ? all[0]!.finish : undefined,
      },
      [...inputs, ...all.flatMap((n) => n!.files)],
      all.flatMap((n) => n!.dirs),
      startedAt,
      new Set(all.flatMap((n) => n!.written)),
      all.flatMap((n) => n!.made),
      new Map(all.flatMap((n) => [...n!.known])),
    );
  } catch (e) {
    if (!errnoCode(e)) throw e;
  }
}

/** Several envs' compile commands as one table. */
function mergeUnits(parts: StampedUnits[]): StampedUnits {
  const out: StampedUnits = { prefixes: [], list: [] };
  for (const p of parts) {
    const base = out.prefixes.length;
    out.prefixes.push(...p.prefixes);
    out.list.push(...p.list.map(([source, object, i]): [string, string, number] => [source, object, base + i]));
  }
  return out;
}

/** ensurePackages for one env of a project (kiln.lock beside the config). */
async function installPackages(
  project: Project,
  env: ReturnType<Project["env"]>,
  platform: string,
  requests: PackageRequest[],
  o: { settings: Settings; reporter: Reporter; signal?: AbortSignal | undefined; offline?: boolean | undefined; frozenLockfile?: boolean | undefined; includeUpload?: boolean | undefined; only?: string[] | undefined },
): Promise<Record<string, string>> {
  const { ensurePackages } = await import("../toolchains/index.js");
  return ensurePackages({
    platform,
    envName: env.name,
    requests,
    platformPackages: env.platformPackages,
    lockFile: join(project.dir, "kiln.lock"),
    settings: o.settings,
    reporter: o.reporter,
    signal: o.signal,
    offline: o.offline ?? o.settings.offline,
    frozenLockfile: o.frozenLockfile,
    includeUpload: o.includeUpload,
    only: o.only,
  });
}

/** Throw the first failure of a summary (the command layer's exit code), after all were reported. */
export function throwIfFailed(summary: BuildSummary): void {
  if (summary.status === "cancelled") throw new CancelledError();
  const first = summary.errors[0];
  if (!first) return;
  if (summary.errors.length === 1) throw first.error;
  throw new BuildFailedError(`${summary.errors.length} environments failed: ${summary.errors.map((e) => `${e.env} (${e.error.code})`).join(", ")}`, {
    hint: "see the errors above",
  });
}


/** Plan one env and write its compile_commands.json (build dir and project root) without compiling. */
export async function writeCompileDb(opts: {
  project: Project;
  envName: string;
  settings: Settings;
  reporter: Reporter;
  signal?: AbortSignal | undefined;
}): Promise<string> {
  const prober = new Prober(join(opts.settings.cacheDir, "probes.json"), opts.settings.env, opts.signal);
  const base = { ...opts, envNames: [opts.envName], jobs: 1, keepGoing: false };
  const plan = await planEnv({ ...base, prober });
  await prober.save();
  const rootCompileDb = join(opts.project.dir, "compile_commands.json");
  await runPlan({ plan, projectDir: opts.project.dir, reporter: opts.reporter, signal: opts.signal, jobs: 1, keepGoing: false, cacheDir: opts.settings.cacheDir, compileDbOnly: true, rootCompileDb });
  return rootCompileDb;
}

/**
 * The manifest's `upload` and `tools` for an env as this machine sees them,
 * installing only the upload packages: a firmware built on a peer carries
 * the peer's tool paths, and what runs here is never a peer's choice.
 */
export async function localFlashSettings(opts: {
  project: Project;
  envName: string;
  settings: Settings;
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  offline?: boolean | undefined;
  /** Install the upload packages (kiln upload); otherwise `tools` names only what is installed already. */
  install: boolean;
}): Promise<{ upload: Record<string, unknown>; tools: Record<string, string> }> {
  const env = opts.project.env(opts.envName);
  const platform = getPlatform(env.platform, env.options.platform?.location ?? env.location);
  if (!platform.flashSettings) return { upload: {}, tools: {} };
  const board = platform.resolveBoard(env);
  const requests = platform.packages(env, board);
  const only = requests.filter((r) => r.forUpload).map((r) => r.name);
  const packages = only.length && opts.install ? await installPackages(opts.project, env, platform.id, requests, { ...opts, includeUpload: true, only }) : {};
  return platform.flashSettings(env, board, packages);
}
