#!/usr/bin/env node
/**
 * AVR build benchmark, every tool side by side in one run (debian-avr.md §7):
 * kiln, arduino-builder, Arduino-Makefile (make -j2), a ninja file of kiln's
 * own compiler commands (the lower bound) and `node -e 0` (the Node floor),
 * on Blink, a multi-library sketch and ArduinoISP; cold, no-op and
 * incremental (touch the sketch, and a real edit). Uses hyperfine -N, the
 * tools' runs interleaved round by round, the floor in the same rounds.
 *
 *   node scripts/bench/avr.mjs [--runs 15] [--warmup 3] [--out results.json] [--md table.md]
 *
 * Needs `npm run build` and Debian's gcc-avr, arduino-core-avr,
 * arduino-builder, arduino-mk, ninja-build, hyperfine.
 */
import { execFile, execFileSync } from "node:child_process";
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { hyperfine as runInterleaved, median } from "./lib.mjs";

const exec = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const kiln = join(root, "bin", "kiln.js");
const CORE = "/usr/share/arduino/hardware/arduino/avr";
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const RUNS = Number(opt("--runs", "15"));
const WARMUP = Number(opt("--warmup", "3"));

const MULTILIB = {
  "MultiLib.ino": `#include <SPI.h>
#include <Wire.h>
#include <EEPROM.h>
#include <SoftwareSerial.h>
#include "Greeter.h"

SoftwareSerial soft(10, 11);

// Defined before use: Arduino-Makefile generates no prototypes.
void report(int v) {
  Serial.print("eeprom=");
  Serial.println(v);
}

void setup() {
  Serial.begin(115200);
  SPI.begin();
  Wire.begin();
  soft.begin(9600);
  EEPROM.write(0, 42);
  Serial.println(greeting());
  report(EEPROM.read(0));
}

void loop() {
  Wire.beginTransmission(8);
  Wire.write(SPI.transfer(0x42));
  Wire.endTransmission();
  soft.println(millis());
  delay(100);
}
`,
  "Greeter.h": "#pragma once\nconst char *greeting();\n",
  "Greeter.cpp": '#include "Greeter.h"\nconst char *greeting() { return "hello from kiln"; }\n',
};

const MAKEFILE = "BOARD_TAG = uno\nCXXFLAGS += -DDECIMAL_DIG=__DECIMAL_DIG__\ninclude /usr/share/arduino/Arduino.mk\n";

const sh = (script) => `sh -c ${JSON.stringify(script)}`;

async function setupWorkload(work, name, source) {
  const sketch = join(work, name, name);
  await mkdir(sketch, { recursive: true });
  if (typeof source === "string") await cp(source, sketch, { recursive: true });
  else for (const [f, text] of Object.entries(source)) await writeFile(join(sketch, f), text);
  await writeFile(join(sketch, "Makefile"), MAKEFILE);
  const proj = join(work, name, "kiln");
  await mkdir(proj, { recursive: true });
  await writeFile(
    join(proj, "platformio.ini"),
    `[platformio]\nsrc_dir = ${sketch}\n\n[env:uno]\nplatform = atmelavr\nboard = uno\nframework = arduino\nplatform_packages =\n  toolchain-atmelavr @ symlink:///usr\n  framework-arduino-avr @ symlink://${CORE}\n`,
  );
  return { name, sketch, ino: join(sketch, `${name}.ino`), proj, home: join(work, name, "home"), ab: join(work, name, "ab"), mk: join(work, name, "mk"), ninja: join(work, name, "ninja") };
}

/** build.ninja from kiln's compile_commands.json: the same commands, gcc depfiles, one `ar`, link, objcopy. */
async function writeNinja(w) {
  const env = { ...process.env, KILN_HOME: w.home, CI: "1" };
  execFileSync(process.execPath, [kiln, "build", "-d", w.proj], { env, stdio: "ignore" });
  const commands = JSON.parse(await readFile(join(w.proj, "compile_commands.json"), "utf8"));
  const kb = join(w.proj, ".kiln", "build", "uno");
  await mkdir(join(w.ninja, "obj"), { recursive: true });
  const stash = join(w.ninja, `${w.name}.ino.cpp.stash`);
  await copyFile(join(kb, "sketch", `${w.name}.ino.cpp`), stash);
  const q = (s) => s.replace(/([ :$])/g, "$$$1");
  const lines = ["rule cc", "  command = $cmd -MMD -MF $out.d", "  depfile = $out.d", "  deps = gcc", "rule copy", "  command = cp $src $out", "rule ar", "  command = rm -f $out && avr-gcc-ar rcs $out $in", "rule link", "  command = avr-gcc -w -Os -g -flto -fuse-linker-plugin -Wl,--gc-sections -mmcu=atmega328p -o $out $in -lm", "rule objcopy", "  command = avr-objcopy $flags $in $out", ""];
  const sketchCpp = join(w.ninja, `${w.name}.ino.cpp`);
  const inos = commands.length ? [w.ino] : [];
  lines.push(`build ${q(sketchCpp)}: copy ${inos.map(q).join(" ")} | ${q(stash)}`, `  src = ${stash}`);
  const coreObjs = [];
  const otherObjs = [];
  commands.forEach((c, i) => {
    const args = [...c.arguments];
    const isSketch = c.file.endsWith(".ino.cpp");
    const src = isSketch ? sketchCpp : c.file;
    const obj = join(w.ninja, "obj", `${i}-${basename(c.file)}.o`);
    const ci = args.indexOf("-c");
    args.splice(ci, 4, "-c", src, "-o", obj);
    (c.file.startsWith(join(CORE, "cores")) ? coreObjs : otherObjs).push(obj);
    lines.push(`build ${q(obj)}: cc ${q(src)}`, `  cmd = ${args.map((a) => (/[\s"'()]/.test(a) ? `'${a}'` : a)).join(" ")}`);
  });
  const core = join(w.ninja, "core.a");
  const elf = join(w.ninja, "firmware.elf");
  lines.push(`build ${q(core)}: ar ${coreObjs.map(q).join(" ")}`);
  lines.push(`build ${q(elf)}: link ${otherObjs.map(q).join(" ")} ${q(core)}`);
  lines.push(`build ${q(join(w.ninja, "firmware.hex"))}: objcopy ${q(elf)}`, "  flags = -O ihex -R .eeprom");
  lines.push(`build ${q(join(w.ninja, "firmware.eep"))}: objcopy ${q(elf)}`, "  flags = -O ihex -j .eeprom --set-section-flags=.eeprom=alloc,load --no-change-warnings --change-section-lma .eeprom=0");
  await writeFile(join(w.ninja, "build.ninja"), `${lines.join("\n")}\n`);
}

function tools(w) {
  const kilnEnv = `KILN_HOME=${w.home} CI=1 NO_COLOR=1`;
  const abArgs = `arduino-builder -compile -hardware /usr/share/arduino/hardware -tools /usr/share/arduino/hardware/tools -fqbn arduino:avr:uno -core-api-version 10819 -prefs compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__ -build-path ${w.ab} ${w.ino}`;
  const list = [
    { id: "kiln", cmd: `env ${kilnEnv} ${process.execPath} ${kiln} build -d ${w.proj}`, clean: `rm -rf ${w.proj}/.kiln ${w.home}` },
    { id: "kiln (core cached)", cmd: `env ${kilnEnv} ${process.execPath} ${kiln} build -d ${w.proj}`, clean: `rm -rf ${w.proj}/.kiln`, coldOnly: true },
    { id: "arduino-builder", cmd: abArgs, clean: `rm -rf ${w.ab} && mkdir -p ${w.ab}` },
    { id: "Arduino-Makefile", cmd: `make -s -C ${w.sketch} -j2 OBJDIR=${w.mk}`, clean: `rm -rf ${w.mk}`, skip: w.name === "ArduinoISP" },
    { id: "ninja", cmd: `ninja -C ${w.ninja} -j2`, clean: `rm -rf ${w.ninja}/obj ${w.ninja}/.ninja_log ${w.ninja}/.ninja_deps ${w.ninja}/core.a ${w.ninja}/firmware.* ${w.ninja}/${w.name}.ino.cpp` },
  ];
  return list.filter((t) => !t.skip);
}

/** The entries' runs interleaved round by round (scripts/bench/lib.mjs), summarised per tool. */
async function hyperfine(label, entries) {
  const rows = runInterleaved(label, entries, { runs: RUNS, warmup: WARMUP });
  return rows.map((r) => {
    const t = [...r.times].sort((a, b) => a - b);
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    const sd = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, t.length - 1));
    return { name: r.name, median: median(r), min: t[0], max: t.at(-1), mean, sd, cpu: r.cpu, runs: t.length };
  });
}

async function main() {
  const work = await mkdtemp(join(tmpdir(), "kiln-bench-"));
  const workloads = [
    await setupWorkload(work, "Blink", "/usr/share/doc/arduino/examples/01.Basics/Blink"),
    await setupWorkload(work, "MultiLib", MULTILIB),
    await setupWorkload(work, "ArduinoISP", "/usr/share/doc/arduino/examples/11.ArduinoISP/ArduinoISP"),
  ];
  const rows = [];
  const loadBefore = loadavg()[0];
  for (const w of workloads) {
    await writeNinja(w);
    const ts = tools(w);
    // incr = touch (kiln notices the content is unchanged); edit = the sketch's text really changes.
    const prepares = { cold: undefined, noop: undefined, incr: sh(`touch ${w.ino}`), edit: sh(`echo "// edit $(date +%s%N)" >> ${w.ino}`) };
    for (const scenario of ["cold", "noop", "incr", "edit"]) {
      const entries = ts
        .filter((t) => scenario === "cold" || !t.coldOnly)
        .map((t) => ({ name: t.id, cmd: t.cmd, prepare: scenario === "cold" ? sh(t.clean) : prepares[scenario] }));
      // The Node floor, in the same rounds as the builds it is compared with.
      if (scenario !== "cold") entries.push({ name: "node -e 0", cmd: `${process.execPath} -e 0` });
      process.stderr.write(`${w.name} ${scenario}…\n`);
      for (const r of await hyperfine(`${w.name}-${scenario}`, entries)) rows.push({ workload: w.name, scenario, ...r });
    }
  }
  const loadAfter = loadavg()[0];
  const fmt = (n) => (n < 10 ? n.toFixed(1) : String(Math.round(n)));
  const md = [
    `| Workload | Scenario | Tool | Median | Min–max | Mean ± sd | CPU | Runs |`,
    `|---|---|---|---:|---:|---:|---:|---:|`,
    ...rows.map((r) => `| ${r.workload} | ${r.scenario} | ${r.name} | ${fmt(r.median)} | ${fmt(r.min)}–${fmt(r.max)} | ${fmt(r.mean)} ± ${fmt(r.sd)} | ${fmt(r.cpu)} | ${r.runs} |`),
  ].join("\n");
  const checks = [];
  for (const w of workloads) {
    const get = (s, n) => rows.find((r) => r.workload === w.name && r.scenario === s && r.name === n)?.median;
    const nodeFloor = get("noop", "node -e 0");
    const editFloor = get("edit", "node -e 0");
    const k = (s) => get(s, "kiln");
    const peers = (s) => ["arduino-builder", "Arduino-Makefile"].map((n) => get(s, n)).filter((x) => x !== undefined);
    checks.push(`- ${w.name}: cold ${fmt(k("cold"))} ms = ${(k("cold") / get("cold", "ninja")).toFixed(2)}× ninja (target ≤ 1.2×); no-op ${fmt(k("noop"))} ms = ${(k("noop") / nodeFloor).toFixed(2)}× node -e 0 (target ≤ 1.5×); incremental (touch) ${fmt(k("incr"))} ms and (edit) ${fmt(k("edit"))} ms vs ninja + Node floor ${fmt(get("edit", "ninja") + editFloor)} ms; faster than both peers: cold ${peers("cold").every((p) => k("cold") < p)}, no-op ${peers("noop").every((p) => k("noop") < p)}, touch ${peers("incr").every((p) => k("incr") < p)}, edit ${peers("edit").every((p) => k("edit") < p)}`);
  }
  const text = `${md}\n\nLoad average (1 min) before ${loadBefore.toFixed(2)}, after ${loadAfter.toFixed(2)}; ${RUNS} runs, ${WARMUP} warm-ups, hyperfine -N, interleaved.\n\n${checks.join("\n")}\n`;
  process.stdout.write(text);
  if (argv.includes("--out")) await writeFile(opt("--out"), JSON.stringify({ rows, loadBefore, loadAfter }, null, 2));
  if (argv.includes("--md")) await writeFile(opt("--md"), text);
  await rm(work, { recursive: true, force: true });
}

await main();
