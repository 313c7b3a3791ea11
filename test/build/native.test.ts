/**
 * The build pipeline end to end on the native platform: real gcc/g++, real
 * processes, observed through --json events and a compiler wrapper that logs
 * every invocation.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, cp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { kilnBin, runCli, tempDir, writeTree, type CliResult } from "../helpers/cli.js";
import { requireTool } from "../helpers/tools.js";

const INI = `[platformio]
default_envs = native

[env:native]
platform = native
build_flags = -DANSWER=42
monitor_speed = 9600
`;

const FILES: Record<string, string> = {
  "src/main.cpp": `#include <cstdio>
#include "util.h"
#include "config.h"
#include <used.h>
int main() { std::printf("answer=%d twice=%d used=%d\\n", ANSWER, twice(ANSWER), used_value()); return 0; }
`,
  "src/util.h": `#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int twice(int);
#ifdef __cplusplus
}
#endif
`,
  "src/util.c": `#include "util.h"\nint twice(int x) { return 2 * x; }\n`,
  "src/other.cpp": `#include "config.h"\nint other_value() { return CONFIG_VALUE; }\n`,
  "src/asm/nop.S": `.text\n.globl kiln_nop\nkiln_nop:\n  ret\n`,
  "include/config.h": `#pragma once\n#define CONFIG_VALUE 7\n`,
  "lib/Used/src/used.h": `#pragma once\nint used_value();\n`,
  "lib/Used/src/used.cpp": `#include "used.h"\nint used_value() { return 5; }\n`,
  "lib/Unused/src/unused.h": `#pragma once\nint unused_value();\n`,
  "lib/Unused/src/unused.cpp": `#error "the unused library must never be compiled"\n`,
};

/** A compiler wrapper that logs `start <pid> <ms> <args>` / `end` lines, optionally sleeping. */
async function makeWrappers(dir: string): Promise<{ env: Record<string, string>; log: string }> {
  const log = join(dir, "cc.log");
  const wrap = (real: string) => `#!/bin/sh
echo "start $$ $(date +%s%N) $*" >> "${log}"
if [ -n "$KILN_TEST_CC_SLEEP" ]; then sleep "$KILN_TEST_CC_SLEEP"; fi
${real} "$@"
rc=$?
echo "end $$ $(date +%s%N)" >> "${log}"
exit $rc
`;
  await writeFile(join(dir, "cc"), wrap("gcc"));
  await writeFile(join(dir, "cxx"), wrap("g++"));
  await chmod(join(dir, "cc"), 0o755);
  await chmod(join(dir, "cxx"), 0o755);
  return { env: { CC: join(dir, "cc"), CXX: join(dir, "cxx") }, log };
}

async function compilesLogged(log: string): Promise<string[]> {
  if (!existsSync(log)) return [];
  const lines = (await readFile(log, "utf8")).split("\n").filter((l) => l.startsWith("start "));
  return lines.map((l) => l.split(" ").slice(3).join(" "));
}

function compiledFiles(r: CliResult): string[] {
  return r.events.filter((e) => e.type === "compile-start").map((e) => String(e.file)).sort();
}

async function project(): Promise<{ dir: string; env: Record<string, string>; log: string; build(args?: string[], extraEnv?: Record<string, string>): Promise<CliResult> }> {
  const dir = await tempDir("kiln-native-");
  await writeTree(dir, { "platformio.ini": INI, ...FILES });
  const tools = await makeWrappers(dir);
  const home = join(dir, ".home");
  const env = { ...tools.env, KILN_HOME: home };
  return {
    dir,
    env,
    log: tools.log,
    build: (args = [], extraEnv = {}) => runCli(["build", "-d", dir, "--json", ...args], { env: { ...env, ...extraEnv } }),
  };
}

/** Like `touch`: set a file's mtime to now. */
async function touch(file: string): Promise<void> {
  const t = new Date();
  await utimes(file, t, t);
}

describe("native build pipeline", () => {
  before(() => {
    requireTool("gcc", "gcc");
    requireTool("g++", "g++");
  });

  it("builds used sources and libraries only, and the program runs", async () => {
    const p = await project();
    const r = await p.build();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compiledFiles(r), ["lib/Used/src/used.cpp", "src/asm/nop.S", "src/main.cpp", "src/other.cpp", "src/util.c"]);
    assert.ok(!(await compilesLogged(p.log)).some((c) => c.includes("unused.cpp")), "the unused library was compiled");
    const end = r.events.find((e) => e.type === "env-end");
    assert.equal(end?.status, "ok");
    assert.equal(end?.compiled, 5);
    assert.ok(r.events.some((e) => e.type === "link"));
    assert.equal(r.events.at(-1)?.type, "summary");
    const run = await runCli(["run", "-d", p.dir], { env: p.env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /answer=42 twice=84 used=5/);
    // compile_commands.json for clangd, at the root and per env.
    const db = JSON.parse(await readFile(join(p.dir, "compile_commands.json"), "utf8")) as Array<{ file: string; arguments: string[] }>;
    assert.equal(db.length, 5);
    assert.ok(db.every((c) => c.arguments.includes("-c")));
    assert.ok(existsSync(join(p.dir, ".kiln/build/native/compile_commands.json")));
  });

  it("a no-op build starts no compiler and no linker", async () => {
    const p = await project();
    assert.equal((await p.build()).code, 0);
    const before = (await compilesLogged(p.log)).length;
    const r = await p.build();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compiledFiles(r), []);
    assert.ok(!r.events.some((e) => e.type === "link"));
    assert.equal((await compilesLogged(p.log)).length, before, "a compiler or linker process was started");
    const end = r.events.find((e) => e.type === "env-end");
    assert.equal(end?.reused, 5);
  });

  it("touching a header rebuilds exactly its dependents, then relinks", async () => {
    const p = await project();
    assert.equal((await p.build()).code, 0);
    await touch(join(p.dir, "include/config.h"));
    const r = await p.build();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compiledFiles(r), ["src/main.cpp", "src/other.cpp"]);
    assert.ok(r.events.some((e) => e.type === "link"));
    await touch(join(p.dir, "lib/Used/src/used.h"));
    assert.deepEqual(compiledFiles(await p.build()), ["lib/Used/src/used.cpp", "src/main.cpp"]);
  });

  it("changing build_flags rebuilds everything; editing monitor_speed or a comment rebuilds nothing", async () => {
    const p = await project();
    assert.equal((await p.build()).code, 0);
    const ini = join(p.dir, "platformio.ini");
    await writeFile(ini, INI.replace("monitor_speed = 9600", "monitor_speed = 115200\n; a comment\nupload_speed = 57600"));
    const quiet = await p.build();
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual(compiledFiles(quiet), []);
    assert.ok(!quiet.events.some((e) => e.type === "link"));
    await writeFile(ini, INI.replace("-DANSWER=42", "-DANSWER=43"));
    const r = await p.build();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(compiledFiles(r).length, 5);
    const run = await runCli(["run", "-d", p.dir], { env: p.env });
    assert.match(run.stdout, /answer=43/);
  });

  it("deleting a source drops it from the link", async () => {
    const p = await project();
    assert.equal((await p.build()).code, 0);
    await rm(join(p.dir, "src/other.cpp"));
    const r = await p.build(["--verbose"]);
    assert.equal(r.code, 0, r.stderr);
    const link = r.events.filter((e) => e.type === "command").map((e) => (e.argv as string[]).join(" ")).find((c) => c.includes(" -o ") && !c.includes(" -c "));
    assert.ok(link, "no link command was run");
    assert.ok(!link.includes("other.cpp.o"), `link still uses other.cpp.o: ${link}`);
    assert.ok(link.includes("main.cpp.o"));
  });

  it("the state and the no-op stamp describe this build only: a deleted source's object and a copied project's old paths are forgotten", async () => {
    const p = await project();
    const outputs = async (dir: string): Promise<string[]> => Object.keys((JSON.parse(await readFile(join(dir, ".kiln/build/native/state.json"), "utf8")) as { outputs: object }).outputs);
    assert.equal((await p.build()).code, 0);
    assert.ok((await outputs(p.dir)).some((o) => o.endsWith("other.cpp.o")));
    await rm(join(p.dir, "src/other.cpp"));
    assert.equal((await p.build()).code, 0);
    assert.deepEqual((await outputs(p.dir)).filter((o) => o.endsWith("other.cpp.o")), []);
    // A copy of the folder builds under its own paths; then nothing it records lies in the original project (the tools may).
    const copy = `${p.dir}-copy`;
    await cp(p.dir, copy, { recursive: true });
    const r = await runCli(["build", "-d", copy], { env: p.env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await outputs(copy)).filter((o) => !o.startsWith(`${copy}/`) && !o.startsWith(`shared:${copy}/`)), []);
    const stamp = JSON.parse(await readFile(join(copy, ".kiln/noop.json"), "utf8")) as { files: Array<[string, number]> };
    const original = ["src", "include", "lib", ".kiln"].map((d) => `${join(p.dir, d)}/`);
    assert.deepEqual(stamp.files.map(([f]) => f).filter((f) => original.some((o) => f.startsWith(o))), []);
  });

  it("-j2 runs two compiles at once", async () => {
    const p = await project();
    const r = await p.build(["-j", "2"], { KILN_TEST_CC_SLEEP: "0.4" });
    assert.equal(r.code, 0, r.stderr);
    const lines = (await readFile(p.log, "utf8")).trim().split("\n").map((l) => l.split(" "));
    const spans = new Map<string, { start: number; end: number }>();
    for (const [kind, pid, ns] of lines) {
      const s = spans.get(pid!) ?? { start: 0, end: 0 };
      if (kind === "start") s.start = Number(ns);
      else s.end = Number(ns);
      spans.set(pid!, s);
    }
    const all = [...spans.values()];
    const overlap = all.some((a, i) => all.some((b, j) => i !== j && a.start < b.end && b.start < a.end));
    assert.ok(overlap, "no two compiler processes ran at the same time");
    const p1 = await project();
    const r1 = await p1.build(["-j", "1"], { KILN_TEST_CC_SLEEP: "0.1" });
    assert.equal(r1.code, 0);
    const l1 = (await readFile(p1.log, "utf8")).trim().split("\n");
    // With -j1 every start is followed by its own end.
    for (let i = 0; i < l1.length; i += 2) assert.ok(l1[i]!.startsWith("start") && l1[i + 1]!.startsWith("end"), l1.join("\n"));
  });

  it("a compile error exits 6 with the compiler's diagnostic, and --keep-going reports every broken file", async () => {
    const p = await project();
    await writeFile(join(p.dir, "src/util.c"), `#include "util.h"\nint twice(int x) { return 2 * y; }\n`);
    await writeFile(join(p.dir, "src/other.cpp"), `int other_value() { return undefined_thing; }\n`);
    const r = await p.build(["-j", "1"]);
    assert.equal(r.code, 6);
    const diags = r.events.filter((e) => e.type === "diagnostic" && e.severity === "error");
    assert.ok(diags.length >= 1);
    assert.ok(r.events.some((e) => e.type === "error" && e.code === "KILN_BUILD_FAILED"));
    const failed = r.events.filter((e) => e.type === "compile-end" && e.status === "failed");
    assert.equal(failed.length, 1, "without --keep-going no new compile starts after a failure");
    const k = await p.build(["-j", "1", "--keep-going"]);
    assert.equal(k.code, 6);
    const files = k.events.filter((e) => e.type === "diagnostic" && e.severity === "error").map((e) => String(e.file));
    assert.ok(files.some((f) => f.endsWith("util.c")) && files.some((f) => f.endsWith("other.cpp")), files.join(", "));
    const human = await runCli(["build", "-d", p.dir], { env: p.env });
    assert.equal(human.code, 6);
    assert.match(human.stderr, /util\.c:2:\d+: error: ['‘]y['’] undeclared/);
    assert.match(human.stderr, /KILN_BUILD_FAILED/);
    assert.doesNotMatch(human.stderr, /\n\s+at /, "a stack trace was printed");
  });

  it("compiler diagnostics are coloured when colour is on, and colour never causes a rebuild", async () => {
    const p = await project();
    await writeFile(join(p.dir, "src/other.cpp"), `int other_value() { int unused_var; return 1; }\n`);
    const coloured = await runCli(["build", "-d", p.dir, "-j", "1"], { env: { ...p.env, NO_COLOR: undefined, FORCE_COLOR: "1" } });
    assert.equal(coloured.code, 0, coloured.stderr);
    const before = (await compilesLogged(p.log)).length;
    assert.ok((await compilesLogged(p.log)).some((c) => c.includes("-fdiagnostics-color=always")));
    const plain = await p.build();
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(compiledFiles(plain), []);
    assert.equal((await compilesLogged(p.log)).length, before);
  });

  for (const signal of ["SIGINT", "SIGKILL"] as const) {
    it(`${signal} in the middle of a build, then a rebuild, gives a working program`, async () => {
      const p = await project();
      // gcc's own temp files, which a compiler killed mid-way leaves, go to the test's folder, not /tmp.
      const ccTmp = await tempDir("kiln-cc-tmp-");
      const child = spawn(process.execPath, [kilnBin, "build", "-d", p.dir, "--json", "-j", "2"], {
        env: { ...process.env, ...p.env, KILN_TEST_CC_SLEEP: "0.5", CI: "1", TMPDIR: ccTmp },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      await new Promise<void>((resolve) => {
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes('"compile-end"')) resolve();
        });
        child.on("close", () => resolve());
      });
      child.kill(signal);
      const [code] = await new Promise<[number | null]>((res) => child.on("close", (c) => res([c])));
      if (signal === "SIGINT") assert.equal(code, 130, "Ctrl-C exits 130");
      // Give orphaned compilers (SIGKILL cannot clean up) time to finish writing their temp files.
      await new Promise((r) => setTimeout(r, 1200));
      const r = await p.build();
      assert.equal(r.code, 0, r.stderr);
      const run = await runCli(["run", "-d", p.dir], { env: p.env });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /answer=42 twice=84 used=5/);
      const again = await p.build();
      assert.deepEqual(compiledFiles(again), []);
    });
  }

  it("kiln run forwards arguments and the exit code; kiln clean removes outputs", async () => {
    const p = await project();
    await writeFile(join(p.dir, "src/main.cpp"), `#include <cstdio>\n#include <cstdlib>\nint main(int argc, char** argv) { std::printf("args=%d last=%s\\n", argc, argv[argc-1]); return std::atoi(argv[argc-1]); }\n`);
    const r = await runCli(["run", "-d", p.dir, "--", "x", "3"], { env: p.env });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /args=3 last=3/);
    const c = await runCli(["clean", "-d", p.dir], { env: p.env });
    assert.equal(c.code, 0, c.stderr);
    await assert.rejects(stat(join(p.dir, ".kiln/build")));
  });

  it("kiln compiledb writes compile_commands.json without compiling", async () => {
    const p = await project();
    const r = await runCli(["compiledb", "-d", p.dir], { env: p.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await compilesLogged(p.log)).length, 0);
    const db = JSON.parse(await readFile(join(p.dir, "compile_commands.json"), "utf8")) as Array<{ file: string }>;
    assert.deepEqual(db.map((d) => d.file.slice(p.dir.length + 1)).sort(), ["lib/Used/src/used.cpp", "src/asm/nop.S", "src/main.cpp", "src/other.cpp", "src/util.c"]);
  });
});
