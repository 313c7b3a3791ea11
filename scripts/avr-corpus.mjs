#!/usr/bin/env node
/**
 * Build every example sketch Debian's Arduino packages ship (debian-avr.md §5)
 * for the Uno with kiln, using Debian's toolchain and core through
 * platform_packages, and report how many build. With --parity, also build
 * each with arduino-builder and compare flash sizes byte for byte.
 *
 *   node scripts/avr-corpus.mjs [--parity] [--json] [--jobs N] [--keep DIR]
 *
 * Needs `npm run build` first (uses bin/kiln.js). Exit code 0 when every
 * sketch arduino-builder builds also builds with kiln (and, with --parity,
 * with the same flash size); 1 otherwise.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const exec = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const kiln = join(root, "bin", "kiln.js");
const CORE = "/usr/share/arduino/hardware/arduino/avr";
const ROOTS = ["/usr/share/doc/arduino/examples", join(CORE, "libraries"), "/usr/share/doc/arduino-mk/examples"];

const args = process.argv.slice(2);
const parity = args.includes("--parity");
const json = args.includes("--json");
const jobsAt = args.indexOf("--jobs");
const jobs = jobsAt >= 0 ? Number(args[jobsAt + 1]) : 2;
const keepAt = args.indexOf("--keep");

/** Sketch folders holding `.ino` files (the 113 of debian-avr.md §5). */
async function findSketches(dir, out = []) {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  if (entries.some((e) => e.isFile() && e.name.endsWith(".ino"))) out.push(dir);
  for (const e of entries) if (e.isDirectory()) await findSketches(join(dir, e.name), out);
  return out;
}

function ini(srcDir) {
  return [
    "[platformio]",
    `src_dir = ${srcDir}`,
    "",
    "[env:uno]",
    "platform = atmelavr",
    "board = uno",
    "framework = arduino",
    "platform_packages =",
    "  toolchain-atmelavr @ symlink:///usr",
    `  framework-arduino-avr @ symlink://${CORE}`,
    "",
  ].join("\n");
}

function firstError(text) {
  const lines = text.split("\n");
  return (lines.find((l) => /error/i.test(l)) ?? lines.find((l) => l.trim()) ?? "").trim().slice(0, 200);
}

async function flashOf(elf) {
  const { stdout } = await exec("avr-size", ["-A", elf]);
  let flash = 0;
  for (const line of stdout.split("\n")) {
    const m = /^\.(text|data|bootloader)\s+(\d+)/.exec(line.trim());
    if (m) flash += Number(m[2]);
  }
  return flash;
}

async function buildWithKiln(sketch, work, home) {
  const project = join(work, "kiln");
  await mkdir(project, { recursive: true });
  await writeFile(join(project, "platformio.ini"), ini(sketch));
  try {
    await exec(process.execPath, [kiln, "build", "-d", project, "-j", "2"], { env: { ...process.env, KILN_HOME: home, CI: "1", NO_COLOR: "1" }, maxBuffer: 64 << 20 });
    const manifest = JSON.parse(await readFile(join(project, ".kiln", "build", "uno", "manifest.json"), "utf8"));
    return { ok: true, flash: manifest.size?.flashBytes, ram: manifest.size?.ramBytes };
  } catch (e) {
    return { ok: false, error: firstError(`${e.stderr ?? ""}${e.stdout ?? ""}`) };
  }
}

async function buildWithArduinoBuilder(sketch, work) {
  const out = join(work, "ab");
  await mkdir(out, { recursive: true });
  const main = join(sketch, `${basename(sketch)}.ino`);
  try {
    await stat(main);
  } catch {
    return { ok: false, error: `no ${basename(sketch)}.ino (arduino-builder needs the main sketch named like its folder)` };
  }
  try {
    await exec(
      "arduino-builder",
      ["-compile", "-hardware", "/usr/share/arduino/hardware", "-tools", "/usr/share/arduino/hardware/tools", "-fqbn", "arduino:avr:uno", "-core-api-version", "10819", "-prefs", "compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__", "-build-path", out, main],
      { maxBuffer: 64 << 20 },
    );
    return { ok: true, flash: await flashOf(join(out, `${basename(sketch)}.ino.elf`)) };
  } catch (e) {
    return { ok: false, error: firstError(`${e.stderr ?? ""}${e.stdout ?? ""}`) };
  }
}

async function main() {
  const sketches = [];
  for (const r of ROOTS) sketches.push(...(await findSketches(r)));
  // Core library examples are shipped twice (hardware/…/libraries and doc/arduino-core-avr); ROOTS has one copy.
  sketches.sort();
  const work = keepAt >= 0 ? args[keepAt + 1] : await mkdtemp(join(tmpdir(), "kiln-corpus-"));
  await mkdir(work, { recursive: true });
  const home = join(work, "home");
  const results = [];
  let next = 0;
  const started = Date.now();
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= sketches.length) return;
      const sketch = sketches[i];
      const dir = join(work, String(i).padStart(3, "0"));
      const k = await buildWithKiln(sketch, dir, home);
      const a = parity ? await buildWithArduinoBuilder(sketch, dir) : undefined;
      results[i] = { sketch, kiln: k, arduinoBuilder: a };
      if (!json) {
        const name = sketch.replace(/^\/usr\/share\/(doc\/)?/, "");
        const par = a ? (a.ok ? ` ab ${a.flash}${k.ok && a.flash !== k.flash ? " MISMATCH" : ""}` : " ab fails") : "";
        process.stderr.write(`${k.ok ? "ok  " : "FAIL"} ${name}${k.ok ? ` ${k.flash} B` : `: ${k.error}`}${par}\n`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  const built = results.filter((r) => r.kiln.ok);
  const summary = {
    sketches: results.length,
    kilnBuilds: built.length,
    kilnFails: results.filter((r) => !r.kiln.ok).map((r) => ({ sketch: r.sketch, error: r.kiln.error })),
    seconds: Math.round((Date.now() - started) / 1000),
  };
  let ok = true;
  if (parity) {
    const ab = results.filter((r) => r.arduinoBuilder?.ok);
    summary.arduinoBuilderBuilds = ab.length;
    summary.abOnly = ab.filter((r) => !r.kiln.ok).map((r) => r.sketch);
    summary.kilnOnly = built.filter((r) => !r.arduinoBuilder?.ok).map((r) => ({ sketch: r.sketch, abError: r.arduinoBuilder?.error }));
    summary.sizeMismatches = ab.filter((r) => r.kiln.ok && r.kiln.flash !== r.arduinoBuilder.flash).map((r) => ({ sketch: r.sketch, kiln: r.kiln.flash, arduinoBuilder: r.arduinoBuilder.flash }));
    summary.sameSize = ab.filter((r) => r.kiln.ok && r.kiln.flash === r.arduinoBuilder.flash).length;
    ok = summary.abOnly.length === 0 && summary.sizeMismatches.length === 0;
  }
  if (json) process.stdout.write(`${JSON.stringify({ summary, results }, null, 2)}\n`);
  else {
    process.stdout.write(`\n${summary.kilnBuilds} of ${summary.sketches} sketches build with kiln (${summary.seconds} s)\n`);
    if (parity) {
      process.stdout.write(`arduino-builder builds ${summary.arduinoBuilderBuilds}; same flash size: ${summary.sameSize}; size mismatches: ${summary.sizeMismatches.length}\n`);
      process.stdout.write(`built by arduino-builder but not kiln: ${summary.abOnly.length ? summary.abOnly.join(", ") : "none"}\n`);
      process.stdout.write(`built by kiln but not arduino-builder: ${summary.kilnOnly.map((k) => `${k.sketch} (${k.abError})`).join("; ") || "none"}\n`);
    }
  }
  if (keepAt < 0) await rm(work, { recursive: true, force: true });
  process.exitCode = ok ? 0 : 1;
}

await main();
