import { rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Project } from "../project/types.js";

/** Remove the build dirs of `envNames`, or the whole build root; returns what existed and was removed. */
export async function cleanBuild(project: Project, envNames?: string[]): Promise<string[]> {
  const targets = envNames ? envNames.map((e) => join(project.dirs.build, e)) : [project.dirs.build];
  const removed: string[] = [];
  for (const dir of targets) {
    if (!existsSync(dir)) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
