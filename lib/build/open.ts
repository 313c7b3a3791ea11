/**
 * Open the project a command works on: a directory with platformio.ini or a
 * kiln config, or (arduino-cli style) a bare sketch folder plus `--board`.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Settings } from "../core/config.js";
import { nearest, UnknownBoardError } from "../core/errors.js";
import { loadProject } from "../project/index.js";
import type { Project } from "../project/types.js";
import { allPlatforms } from "../platforms/index.js";

export interface OpenProjectOptions {
  dir: string;
  settings: Settings;
  /** `--board`: build a folder without config for this board. */
  board?: string | undefined;
}

export async function openProject(opts: OpenProjectOptions): Promise<Project> {
  const hasConfig = existsSync(join(opts.dir, "platformio.ini"));
  if (!opts.board || hasConfig) return loadProject(opts.dir, { settings: opts.settings });
  const boards = allPlatforms().flatMap((p) => p.boards().map((b) => ({ platform: p.id, id: b.id })));
  const found = boards.find((b) => b.id === opts.board);
  if (!found) throw new UnknownBoardError(opts.board, nearest(opts.board, boards.map((b) => b.id)));
  return loadProject(opts.dir, {
    settings: opts.settings,
    synthetic: {
      envName: found.id,
      options: {
        platform: found.platform,
        board: found.id,
        framework: "arduino",
        // The user's default packages for config-less sketches (settings.json `platformPackages`).
        ...(opts.settings.platformPackages?.[found.platform]?.length ? { platform_packages: opts.settings.platformPackages[found.platform]!.join("\n") } : {}),
      },
      srcDir: opts.dir,
    },
  });
}
