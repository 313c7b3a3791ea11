#!/usr/bin/env node
// Benchmark: kiln vs ninja (same compile commands) vs `node -e 0`, on a generated 300-file C/C++
// project: cold, no-op and one-file-touched builds, side by side, the tools' runs interleaved round by
// round (scripts/bench/lib.mjs), with `node -e 0` in the same rounds as the floor.
//
//   node scripts/bench/native.mjs [--files 300] [--jobs 2] [--runs 15] [--scenarios cold,noop,incr]
//
// The ninja file is generated from kiln's own compile_commands.json (same argv, same -j), so it is
// the lower bound for these commands. Prints medians and ratios; docs/benchmarks.md records them.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hyperfine, median, printTable, requireTools } from "./lib.mjs";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const FILES = opt("files", 300);
const JOBS = opt("jobs", cpus().length);
const RUNS = opt("runs", 15);
// Which scenarios (cold, the slowest by far, can be left out of a quick rerun).
const SCENARIOS = new Set((args.includes("--scenarios") ? args[args.indexOf("--scenarios") + 1] : "cold,noop,incr").split(","));
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const kiln = join(repo, "bin", "kiln.js");
requireTools(["hyperfine", "ninja", "gcc", "g++"]);

const root = mkdtempSync(join(tmpdir(), "kiln-bench-native-"));
const proj = join(root, "proj");
const home = join(root, "home");
generate(proj, FILES);

// One kiln build gives the compile commands the ninja file reuses.
const env = { ...process.env, KILN_HOME: home, CI: "1" };
execFileSync(process.execPath, [kiln, "build", "-d", proj, "-j", String(JOBS), "-q"], { env, stdio: "inherit" });
const ninjaDir = join(root, "ninja");
writeNinja(proj, ninjaDir);

const kilnCmd = `${process.execPath} ${kiln} build -d ${proj} -j ${JOBS} -q`;
const ninjaCmd = `ninja -C ${ninjaDir} -j ${JOBS}`;
const nodeCmd = `${process.execPath} -e 0`;
const results = [];

// cold: everything rebuilt each run.
if (SCENARIOS.has("cold")) results.push(
  ...hyperfine("cold", [
    { name: "kiln", cmd: kilnCmd, prepare: `rm -rf ${join(proj, ".kiln")}` },
    { name: "ninja", cmd: ninjaCmd, prepare: `rm -rf ${join(ninjaDir, "obj")} ${join(ninjaDir, "program")} ${join(ninjaDir, ".ninja_log")} ${join(ninjaDir, ".ninja_deps")}` },
  ], { runs: Math.max(3, Math.round(RUNS / 5)), env }),
);
// no-op: nothing changed.
execFileSync("sh", ["-c", `${kilnCmd} && ${ninjaCmd} >/dev/null`], { env });
if (SCENARIOS.has("noop")) results.push(
  ...hyperfine("noop", [
    { name: "kiln", cmd: kilnCmd },
    { name: "ninja", cmd: ninjaCmd },
    { name: "node -e 0", cmd: nodeCmd },
  ], { runs: RUNS, env }),
);
// incremental: one source touched before each run.
const touched = join(proj, "src", "mod_1.cpp"); // mod_N is C++ when N % 3 != 0
if (SCENARIOS.has("incr")) results.push(
  ...hyperfine("incr", [
    { name: "kiln", cmd: kilnCmd, prepare: `touch ${touched}` },
    { name: "ninja", cmd: ninjaCmd, prepare: `touch ${touched}` },
    // The floor measured in the same rounds as the two builds it is added to.
    { name: "node -e 0", cmd: nodeCmd },
  ], { runs: RUNS, env }),
);

printTable(`native, ${FILES} files, -j${JOBS}`, results, {
  ratios: [
    ["cold", "kiln", "ninja"],
    ["noop", "kiln", "node -e 0"],
    ["incr", "kiln", "ninja", "floor"],
  ].filter(([scenario]) => SCENARIOS.has(scenario)),
  floor: (scenario) => median(results.find((r) => r.scenario === scenario && r.name === "node -e 0")),
});
rmSync(root, { recursive: true, force: true });

function generate(dir, n) {
  const write = (rel, text) => {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
  };
  write("platformio.ini", "[env:native]\nplatform = native\nbuild_flags = -O1 -Wall\n");
  write("include/common.h", "#pragma once\n#include <stddef.h>\nstatic inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }\n");
  const decls = [];
  for (let i = 0; i < n; i++) {
    const cpp = i % 3 !== 0;
    const fn = `mod_${i}`;
    decls.push(`int ${fn}(int);`);
    write(`src/group_${i % 10}.h`, `#pragma once\n#include "common.h"\n#define GROUP_${i % 10} ${i % 10}\n`);
    const body = cpp
      ? `#include <vector>\n#include <string>\n#include "group_${i % 10}.h"\nextern "C" int ${fn}(int x) {\n  std::vector<std::string> v;\n  for (int k = 0; k < (x & 7); k++) v.push_back(std::to_string(k * GROUP_${i % 10}));\n  return clampi((int)v.size() + x, 0, 1000);\n}\n`
      : `#include <string.h>\n#include "group_${i % 10}.h"\nint ${fn}(int x) {\n  char buf[32];\n  memset(buf, x, sizeof buf);\n  return clampi(buf[3] + GROUP_${i % 10}, 0, 255);\n}\n`;
    write(`src/mod_${i}.${cpp ? "cpp" : "c"}`, body);
  }
  write("src/mods.h", `#pragma once\n#ifdef __cplusplus\nextern "C" {\n#endif\n${decls.join("\n")}\n#ifdef __cplusplus\n}\n#endif\n`);
  const calls = Array.from({ length: n }, (_, i) => `  s += mod_${i}(${i});`).join("\n");
  write("src/main.cpp", `#include <cstdio>\n#include "mods.h"\nint main() {\n  long s = 0;\n${calls}\n  std::printf("%ld\\n", s);\n  return 0;\n}\n`);
}

/** A build.ninja running exactly kiln's compile commands (with depfiles) and an equivalent link. */
function writeNinja(projDir, outDir) {
  mkdirSync(outDir, { recursive: true });
  const db = JSON.parse(readFileSync(join(projDir, "compile_commands.json"), "utf8"));
  const q = (s) => s.replace(/\$/g, "$$$$").replace(/ /g, "$ ").replace(/:/g, "$:");
  const sh = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const lines = ["rule cc", "  command = $cmd -MMD -MF $out.d", "  depfile = $out.d", "  deps = gcc", "rule link", "  command = g++ -o $out $in", ""];
  const objs = [];
  for (const c of db) {
    const obj = join(outDir, "obj", c.output.slice(projDir.length + 1));
    const argv = [...c.arguments];
    argv[argv.length - 1] = obj;
    lines.push(`build ${q(obj)}: cc ${q(c.file)}`, `  cmd = mkdir -p ${sh(dirname(obj))} && ${argv.map(sh).join(" ").replace(/\$/g, "$$$$")}`);
    objs.push(q(obj));
  }
  lines.push(`build ${q(join(outDir, "program"))}: link ${objs.join(" ")}`, "");
  writeFileSync(join(outDir, "build.ninja"), lines.join("\n"));
}
