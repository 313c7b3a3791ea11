/**
 * What `kiln monitor` needs from a project: the env's monitor_* settings,
 * upload_port, the board's USB ids and the exception decoder's inputs.
 */
import { join } from "node:path";
import type { Settings } from "../core/config.js";
import type { ResolvedEnv } from "../project/types.js";

export interface MonitorContext {
  projectDir: string;
  env: string;
  platform: string;
  monitor: ResolvedEnv["monitor"];
  uploadPort?: string | undefined;
  usbIds: string[];
  boardName?: string | undefined;
  warnings: string[];
  decoder(): Promise<import("../serial/index.js").DecoderConfig | undefined>;
}

/** undefined when `dir` has no project config and no env was asked for (`kiln monitor --port X` anywhere). */
export async function monitorContext(dir: string, envs: readonly string[], settings: Settings): Promise<MonitorContext | undefined> {
  const { loadProject } = await import("../project/index.js");
  const { getPlatform } = await import("../platforms/index.js");
  const { isKilnError } = await import("../core/errors.js");
  let project;
  try {
    project = await loadProject(dir, { settings });
  } catch (e) {
    if (isKilnError(e) && e.code === "KILN_NO_CONFIG" && envs.length === 0) return undefined;
    throw e;
  }
  const name = project.selectEnvs(envs)[0] ?? project.envNames[0];
  if (!name) throw new Error(`project ${dir} has no environments`);
  const env = project.env(name);
  const board = env.board ? getPlatform(env.platform, env.location).resolveBoard(env) : undefined;
  return {
    projectDir: project.dir,
    env: name,
    platform: env.platform,
    monitor: env.monitor,
    uploadPort: env.upload.port,
    usbIds: board?.usbIds ?? [],
    boardName: board?.name,
    warnings: project.warnings,
    async decoder() {
      const { readManifest, MANIFEST_NAME } = await import("../core/manifest.js");
      const { decoderFromManifest } = await import("../serial/index.js");
      const buildDir = join(project.dirs.build, name);
      try {
        return decoderFromManifest(await readManifest(join(buildDir, MANIFEST_NAME)), buildDir, project.dir);
      } catch (e) {
        if (isKilnError(e)) return undefined;
        throw e;
      }
    },
  };
}
