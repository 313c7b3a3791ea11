/**
 * `kiln pkg install` / `kiln pkg update` for a whole project: every selected
 * env's packages, uploaders included. The caller supplies what each env asks
 * for (lib/platforms), since lib/toolchains may not import platforms.
 */
import { join } from "node:path";
import type { Settings } from "../core/config.js";
import type { Reporter } from "../core/report.js";
import { ensurePackages, type PackageRequestLike } from "./index.js";

export interface EnvPackageNeeds {
  platform: string;
  requests: readonly PackageRequestLike[];
  platformPackages: readonly string[];
}

export interface InstallEnvsOptions {
  projectDir: string;
  envNames: readonly string[];
  needs: (envName: string) => EnvPackageNeeds;
  settings: Settings;
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  offline?: boolean | undefined;
  frozenLockfile?: boolean | undefined;
  update?: boolean | undefined;
}

export interface EnvPackages {
  env: string;
  platform: string;
  packages: Record<string, string>;
}

export async function installEnvs(opts: InstallEnvsOptions): Promise<EnvPackages[]> {
  const out: EnvPackages[] = [];
  for (const env of opts.envNames) {
    const n = opts.needs(env);
    const packages = await ensurePackages({
      platform: n.platform,
      envName: env,
      requests: n.requests,
      platformPackages: n.platformPackages,
      lockFile: join(opts.projectDir, "kiln.lock"),
      settings: opts.settings,
      reporter: opts.reporter,
      signal: opts.signal,
      offline: opts.offline,
      frozenLockfile: opts.frozenLockfile,
      includeUpload: true,
      update: opts.update,
    });
    out.push({ env, platform: n.platform, packages });
  }
  return out;
}

/** The parts of lib/project and lib/platforms installProject uses, passed in by the command. */
export interface ProjectServices {
  loadProject(dir: string, opts: { settings: Settings }): Promise<{
    dir: string;
    warnings: string[];
    selectEnvs(requested: readonly string[]): string[];
    env(name: string): { platform: string; platformPackages: string[]; location?: { file: string; line?: number } | undefined };
  }>;
  getPlatform(spec: string, location?: { file: string; line?: number }): {
    id: string;
    resolveBoard(env: never): unknown;
    packages(env: never, board: never): PackageRequestLike[];
  };
}

/** Load the project in `dir` and install the packages of the selected envs. */
export async function installProject(
  services: ProjectServices,
  opts: Omit<InstallEnvsOptions, "projectDir" | "envNames" | "needs"> & { dir: string; environments: readonly string[] },
): Promise<EnvPackages[]> {
  const project = await services.loadProject(opts.dir, { settings: opts.settings });
  for (const w of project.warnings) opts.reporter.warn(w);
  return installEnvs({
    ...opts,
    projectDir: project.dir,
    envNames: project.selectEnvs(opts.environments),
    needs: (name) => {
      const env = project.env(name);
      const platform = services.getPlatform(env.platform, env.location);
      const board = platform.resolveBoard(env as never);
      return { platform: platform.id, requests: platform.packages(env as never, board as never), platformPackages: env.platformPackages };
    },
  });
}

/** `30d`, `12h`, `45m`, `90s` → milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(d|h|m|s|w)$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as "s" | "m" | "h" | "d" | "w"];
  return Number(m[1]) * unit;
}
