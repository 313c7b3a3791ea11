/**
 * Shared fixtures for the lib/project tests: a temp project written from a
 * file map, loaded with settings whose environment is exactly `env`.
 */
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { loadSettings } from "../../lib/core/config.js";
import { loadProject, type Project } from "../../lib/project/index.js";

export async function tempProject(t: TestContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-project-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), text);
  }
  return dir;
}

export function settingsWith(dir: string, env: Record<string, string> = {}) {
  return loadSettings({ HOME: dir, KILN_HOME: join(dir, ".kiln-home"), ...env });
}

/** Write `ini` as platformio.ini (plus extra files) and load it. */
export async function loadIni(t: TestContext, ini: string, env: Record<string, string> = {}, extra: Record<string, string> = {}): Promise<Project> {
  const dir = await tempProject(t, { "platformio.ini": ini, ...extra });
  return loadProject(dir, { settings: settingsWith(dir, env) });
}
