/**
 * For the launcher's tests (test/build/noop-fastpath.test.ts, finish.test.ts):
 * a small native project whose compiler logs what it compiles, and a kiln run
 * traced by a module-resolution hook (did the CLI load?).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { kilnBin, repoRoot, runCli, tempDir, writeTree } from "./cli.js";

export async function readdirRecursive(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String);
}

/**
 * Start kiln with the import tracer: the child, its stderr so far, and when it has closed, its exit
 * code and whether the CLI bundle was loaded.
 */
export async function spawnTraced(args: string[], env: Record<string, string>, dir: string): Promise<{ child: ChildProcess; stderr: () => string; closed: Promise<{ code: number | null; stderr: string; fullPath: boolean }> }> {
  // One trace file per project: the environment is part of the stamp, so every run shares the variable.
  const trace = join(dir, "imports.txt");
  await writeFile(trace, "");
  let stderr = "";
  const child = spawn(process.execPath, ["--import", join(repoRoot, "test/fixtures/trace-imports.mjs"), kilnBin, ...args], {
    env: { ...process.env, CI: "1", NO_COLOR: "1", ...env, KILN_TRACE_IMPORTS: trace },
    cwd: repoRoot,
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve)).then(async (code) => {
    const urls = (await readFile(trace, "utf8")).split("\n").filter(Boolean);
    assert.ok(urls.some((u) => u.endsWith("/dist/bundle/fastpath.cjs")), "the launcher did not load the fast path");
    return { code, stderr, fullPath: urls.some((u) => u.endsWith("/dist/bundle/cli.js")) };
  });
  return { child, stderr: () => stderr, closed };
}

/** Run kiln with the import tracer; returns exit code, stderr, and whether the CLI bundle was loaded. */
export async function traced(args: string[], env: Record<string, string>, dir: string): Promise<{ code: number | null; stderr: string; fullPath: boolean }> {
  return (await spawnTraced(args, env, dir)).closed;
}

export async function project(): Promise<{ dir: string; env: Record<string, string>; compiles: () => Promise<string[]>; early: () => Promise<number> }> {
  const dir = await tempDir("kiln-noop-");
  const log = join(dir, "cc.log");
  await writeTree(dir, {
    "platformio.ini": "[env:native]\nplatform = native\n",
    "src/main.c": '#include "util.h"\nint main(void) { return util(); }\n',
    "src/util.c": '#include "util.h"\nint util(void) { return 0; }\n',
    "include/util.h": "int util(void);\n",
    // Logs the sources it compiles, and where each object goes (a head start's temp name ends in -early<N>).
    "cc": `#!/bin/sh\nprev=\nfor a in "$@"; do case "$a" in *.c) echo "$a" >> "${log}";; esac; [ "$prev" = "-o" ] && echo "$a" >> "${log}.out"; prev="$a"; done\nexec gcc "$@"\n`,
  });
  await chmod(join(dir, "cc"), 0o755);
  const env = { KILN_HOME: join(dir, "home"), CC: join(dir, "cc"), KILN_TRACE_IMPORTS: join(dir, "imports.txt") };
  const compiles = async (): Promise<string[]> => {
    const text = await readFile(log, "utf8").catch(() => "");
    await rm(log, { force: true });
    return text.split("\n").filter((l) => l.endsWith(".c") && !l.includes("/home/"));
  };
  return { dir, env, compiles, early: async () => (await readFile(`${log}.out`, "utf8").catch(() => "")).split("\n").filter((l) => /-early\d+$/.test(l)).length };
}

/** Build twice through the normal path (the second one, a no-op, writes the stamp), then expect the fast path. */
export async function settle(p: { dir: string; env: Record<string, string>; compiles: () => Promise<string[]> }, args: string[]): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const r = await runCli(args, { env: p.env });
    assert.equal(r.code, 0, r.stderr);
  }
  // Recorded times must predate the recording build: let the clock move on.
  await new Promise((r) => setTimeout(r, 20));
  const again = await runCli(args, { env: p.env });
  assert.equal(again.code, 0, again.stderr);
  const fast = await traced(args, p.env, p.dir);
  assert.equal(fast.code, 0, fast.stderr);
  assert.equal(fast.fullPath, false, "an unchanged no-op build loaded the CLI");
  await p.compiles();
}

