/**
 * The published package works: `npm pack`, then in an empty directory
 * `npx ./kiln-<ver>.tgz build -d <project>` builds a native project.
 * (--ignore-scripts: the suite has just built dist/; prepack would rebuild it
 * under the feet of tests running in parallel.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot, tempDir, writeTree } from "./helpers/cli.js";

const run = promisify(execFile);

test("npm pack produces a package that installs in an empty dir and builds a project", { timeout: 300_000 }, async () => {
  const out = await tempDir("kiln-pack-");
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", out, "--json"], { cwd: repoRoot, maxBuffer: 32 << 20 });
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const paths = info!.files.map((f) => f.path);
  assert.ok(paths.includes("bin/kiln.js") && paths.includes("dist/bundle/cli.js"), "the tarball lacks bin/ or the bundle");
  // The launcher is CommonJS by bin/package.json, and require()s the fast path's own bundle.
  assert.ok(paths.includes("bin/package.json") && paths.includes("dist/bundle/fastpath.cjs"), "the tarball lacks bin/package.json or the fast path");
  assert.ok(!paths.some((p) => p.startsWith("test/") || p.startsWith("lib/") || p.startsWith("build-test/")), "the tarball ships sources or tests");

  const empty = await tempDir("kiln-npx-");
  const project = join(empty, "proj");
  await writeTree(project, {
    "platformio.ini": "[env:native]\nplatform = native\n",
    "src/main.c": '#include <stdio.h>\nint main(void) { puts("packed"); return 0; }\n',
  });
  const env = { ...process.env, KILN_HOME: join(empty, "home"), npm_config_cache: join(empty, "npm-cache"), CI: "1" };
  // Exactly what a user types: `npx ./kiln-<ver>.tgz …`, run next to the tarball.
  const spec = `./${info!.filename}`;
  const r = await run("npx", ["--yes", spec, "build", "-d", project], { cwd: out, env, maxBuffer: 32 << 20 });
  assert.match(r.stderr, /native: built/);
  const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string };
  const v = await run("npx", ["--yes", spec, "--version"], { cwd: out, env });
  assert.equal(v.stdout.trim(), pkg.version);
  const prog = await run(join(project, ".kiln/build/native/program"), []);
  assert.equal(prog.stdout, "packed\n");
});
