/**
 * AVR end to end through the real CLI with Debian's toolchain and core
 * (platform_packages symlink:///usr…): builds run in simavr, match
 * arduino-builder's sizes to the byte, and flash through the real avrdude to
 * a fake Optiboot on a pty.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot, runCli, tempDir, writeTree, type CliResult } from "../helpers/cli.js";
import { requireTool } from "../helpers/tools.js";
import { startPtyExec } from "../helpers/pty.js";
import { DEBIAN_AVR_CORE, debianAvrIni } from "../helpers/avr.js";

const exec = promisify(execFile);
const CORE = DEBIAN_AVR_CORE;
const EXAMPLES = "/usr/share/doc/arduino/examples";

const ini = debianAvrIni;

const MULTI = {
  "src/Multi.ino": `#include <SPI.h>
#include <Wire.h>
#include <EEPROM.h>
#include <SoftwareSerial.h>
#include <Greeter.h>

SoftwareSerial soft(10, 11);

void setup() {
  Serial.begin(115200);
  SPI.begin();
  Wire.begin();
  soft.begin(9600);
  EEPROM.write(0, 42);
  Serial.println(greeting());
  report(EEPROM.read(0));
}

void loop() {}

void report(int v) {
  Serial.print("eeprom=");
  Serial.println(v);
}
`,
  "lib/Greeter/src/Greeter.h": "#pragma once\nconst char *greeting();\n",
  "lib/Greeter/src/Greeter.cpp": '#include "Greeter.h"\nconst char *greeting() { return "hello from kiln"; }\n',
};

/** simavr's UART output (stderr, green, CR LF shown as ".."), as lines. */
async function simavrLines(elf: string, mcu: string, until: string, seconds = 5): Promise<string[]> {
  const simavr = requireTool("simavr", "simavr");
  const child = spawn(simavr, ["-m", mcu, "-f", "16000000", elf], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const lines = (): string[] => err.replace(/\x1b\[\d+m/g, "").split("\n").map((l) => l.replace(/\.\.$/, "").trim()).filter(Boolean);
  await new Promise<void>((res) => {
    const timer = setTimeout(res, seconds * 1000);
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      if (lines().some((l) => l.includes(until))) {
        clearTimeout(timer);
        res();
      }
    });
  });
  child.kill("SIGKILL");
  return lines();
}

function explain(r: CliResult, dir: string): string {
  return `exit ${r.code} in ${dir}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

describe("AVR end to end (Debian toolchain)", () => {
  let home: string;
  before(async () => {
    requireTool("avr-gcc", "gcc-avr");
    home = await tempDir("kiln-avr-home-");
  });
  after(() => rm(home, { recursive: true, force: true }));
  const cli = (args: string[], cwd?: string) => runCli(args, { env: { KILN_HOME: home }, cwd, timeoutMs: 180_000 });

  async function project(t: { after(fn: () => unknown): void }, files: Record<string, string>): Promise<string> {
    const dir = await tempDir("kiln-avr-");
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeTree(dir, files);
    return dir;
  }

  it("Blink for the Uno: arduino-builder's size, a manifest, and the size report", async (t) => {
    const dir = await project(t, { "platformio.ini": ini("uno"), "src/Blink.ino": await readFile(`${EXAMPLES}/01.Basics/Blink/Blink.ino`, "utf8") });
    const r = await cli(["build", "-d", dir]);
    assert.equal(r.code, 0, explain(r, dir));
    assert.match(r.stderr, /flash 930 \/ 32256 B \(2\.9%\), RAM 9 \/ 2048 B/);
    const manifest = JSON.parse(await readFile(join(dir, ".kiln/build/uno/manifest.json"), "utf8")) as { images: Array<{ path: string; role: string }>; size: { flashBytes: number }; upload: { boardProtocol: string } };
    assert.deepEqual(manifest.images.map((i) => i.path), ["firmware.hex", "firmware.eep", "firmware.elf"]);
    assert.equal(manifest.size.flashBytes, 930);
    assert.equal(manifest.upload.boardProtocol, "arduino");
    // No-op: nothing recompiled or relinked.
    const again = await cli(["build", "-d", dir, "--json"]);
    const end = again.events.find((e) => e.type === "env-end") as { compiled: number; linked: boolean };
    assert.equal(end.compiled, 0);
    assert.equal(end.linked, false);
  });

  it("a sketch printing over Serial runs in simavr", async (t) => {
    const dir = await project(t, {
      "platformio.ini": ini("uno"),
      "src/Hello.ino": 'void setup() {\n  Serial.begin(9600);\n  greet("kiln");\n}\nvoid loop() {\n  Serial.println(counter++);\n  delay(100);\n}\nint counter = 0;\nvoid greet(const char *who) {\n  Serial.print("Hello, ");\n  Serial.println(who);\n}\n',
    });
    // `counter` is used before its definition: that must fail like in the IDE (prototypes are for functions only).
    const bad = await cli(["build", "-d", dir]);
    assert.equal(bad.code, 6);
    await writeFile(join(dir, "src/Hello.ino"), 'int counter = 0;\nvoid setup() {\n  Serial.begin(9600);\n  greet("kiln");\n}\nvoid loop() {\n  Serial.println(counter++);\n  delay(100);\n}\nvoid greet(const char *who) {\n  Serial.print("Hello, ");\n  Serial.println(who);\n}\n');
    const r = await cli(["build", "-d", dir]);
    assert.equal(r.code, 0, explain(r, dir));
    const lines = await simavrLines(join(dir, ".kiln/build/uno/firmware.elf"), "atmega328p", "3");
    assert.equal(lines.find((l) => l.startsWith("Hello")), "Hello, kiln");
    assert.ok(lines.includes("0") && lines.includes("1") && lines.includes("2"), lines.join("\n"));
  });

  it("SPI + Wire + EEPROM + SoftwareSerial + a lib/ library build, and run", async (t) => {
    const dir = await project(t, { "platformio.ini": ini("uno"), ...MULTI });
    const r = await cli(["build", "-d", dir]);
    assert.equal(r.code, 0, explain(r, dir));
    for (const lib of ["SPI", "Wire", "EEPROM", "SoftwareSerial", "Greeter"]) assert.ok(!r.stderr.includes(`${lib}: not found`));
    const lines = await simavrLines(join(dir, ".kiln/build/uno/firmware.elf"), "atmega328p", "eeprom=");
    assert.ok(lines.includes("hello from kiln"), lines.join("\n"));
    assert.ok(lines.includes("eeprom=42"), lines.join("\n"));
  });

  it("a compile error in an .ino points at that file and line (exit 6)", async (t) => {
    const dir = await project(t, { "platformio.ini": ini("uno"), "src/Broken.ino": "void setup() {\n  helper();\n}\n\nvoid loop() {\n  int x = undefined_thing;\n}\n\nvoid helper() {}\n" });
    const r = await cli(["build", "-d", dir]);
    assert.equal(r.code, 6, explain(r, dir));
    assert.match(r.stderr + r.stdout, /Broken\.ino:6:\d+: error: .undefined_thing. was not declared/);
  });

  it("firmware over the board's maximum fails with both numbers (exit 6)", async (t) => {
    // 30700 bytes of PROGMEM plus Serial: past the Uno's 32256-byte maximum (bootloader space) but under the chip's 32 KiB.
    const dir = await project(t, {
      "platformio.ini": ini("uno"),
      "src/Big.ino": "const unsigned char big[30700] PROGMEM = { 1 };\nvoid setup() { Serial.begin(9600); Serial.println(pgm_read_byte(&big[millis() % sizeof big])); }\nvoid loop() {}\n",
    });
    const r = await cli(["build", "-d", dir, "--json"]);
    assert.equal(r.code, 6, explain(r, dir));
    const err = r.events.find((e) => e.type === "error") as { code: string; used: number; max: number; message: string };
    assert.equal(err.code, "KILN_FIRMWARE_TOO_LARGE");
    assert.equal(err.max, 32256);
    assert.ok(err.used > 32256);
    assert.match(err.message, new RegExp(`${err.used} bytes.*32256`));
    // board_upload.maximum_size lowers the limit for a small sketch too.
    const small = await project(t, { "platformio.ini": ini("uno", "board_upload.maximum_size = 512\n"), "src/Blink.ino": await readFile(`${EXAMPLES}/01.Basics/Blink/Blink.ino`, "utf8") });
    const s = await cli(["build", "-d", small]);
    assert.equal(s.code, 6, explain(s, small));
    assert.match(s.stderr, /930 bytes, over the 512-byte maximum/);
  });

  it("flash sizes equal arduino-builder's to the byte, with the same toolchain", async (t) => {
    const ab = requireTool("arduino-builder", "arduino-builder");
    const sketches = [`${EXAMPLES}/01.Basics/Blink`, `${EXAMPLES}/04.Communication/ASCIITable`, `${EXAMPLES}/11.ArduinoISP/ArduinoISP`, `${CORE}/libraries/SPI/examples/BarometricPressureSensor`, `${CORE}/libraries/SoftwareSerial/examples/SoftwareSerialExample`, `${CORE}/libraries/Wire/examples/slave_sender`];
    for (const sketch of sketches) {
      const name = sketch.split("/").pop()!;
      const dir = await project(t, { "platformio.ini": `[platformio]\nsrc_dir = ${sketch}\n\n${ini("uno")}` });
      const r = await cli(["build", "-d", dir]);
      assert.equal(r.code, 0, explain(r, dir));
      const kiln = JSON.parse(await readFile(join(dir, ".kiln/build/uno/manifest.json"), "utf8")) as { size: { flashBytes: number; ramBytes: number } };
      const out = join(dir, "ab");
      await mkdir(out);
      const { stdout } = await exec(ab, ["-compile", "-hardware", "/usr/share/arduino/hardware", "-tools", "/usr/share/arduino/hardware/tools", "-fqbn", "arduino:avr:uno", "-core-api-version", "10819", "-prefs", "compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__", "-build-path", out, join(sketch, `${name}.ino`)]);
      const flash = Number(/Sketch uses (\d+) bytes/.exec(stdout)?.[1]);
      const ram = Number(/Global variables use (\d+) bytes/.exec(stdout)?.[1]);
      assert.deepEqual({ name, flash: kiln.size.flashBytes, ram: kiln.size.ramBytes }, { name, flash, ram });
    }
  });

  it("other boards match arduino-builder too: Mega 2560 (links with --relax), Leonardo (USB core), old Nano", async (t) => {
    const ab = requireTool("arduino-builder", "arduino-builder");
    const sketch = `${EXAMPLES}/04.Communication/ASCIITable`;
    for (const [board, fqbn] of [["megaatmega2560", "arduino:avr:mega:cpu=atmega2560"], ["leonardo", "arduino:avr:leonardo"], ["nanoatmega328", "arduino:avr:nano:cpu=atmega328old"]] as const) {
      const dir = await project(t, { "platformio.ini": `[platformio]\nsrc_dir = ${sketch}\n\n${ini(board)}` });
      const r = await cli(["build", "-d", dir]);
      assert.equal(r.code, 0, explain(r, dir));
      const kiln = JSON.parse(await readFile(join(dir, `.kiln/build/${board}/manifest.json`), "utf8")) as { size: { flashBytes: number } };
      const out = join(dir, "ab");
      await mkdir(out);
      const { stdout } = await exec(ab, ["-compile", "-hardware", "/usr/share/arduino/hardware", "-tools", "/usr/share/arduino/hardware/tools", "-fqbn", fqbn, "-core-api-version", "10819", "-prefs", "compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__", "-build-path", out, join(sketch, "ASCIITable.ino")]);
      assert.deepEqual({ board, flash: kiln.size.flashBytes }, { board, flash: Number(/Sketch uses (\d+) bytes/.exec(stdout)?.[1]) });
    }
  });

  it("Leonardo, Micro, Mega 2560 and the old Nano build (USB core, other variants)", async (t) => {
    const dir = await project(t, {
      "platformio.ini": [ini("leonardo"), ini("micro"), ini("megaatmega2560"), ini("nanoatmega328")].join("\n"),
      "src/main.cpp": '#include <Arduino.h>\nvoid setup() { Serial.begin(9600); }\nvoid loop() { Serial.println("x"); delay(500); }\n',
    });
    const r = await cli(["build", "-d", dir, "--json"]);
    assert.equal(r.code, 0, explain(r, dir));
    const ends = r.events.filter((e) => e.type === "env-end") as Array<{ env: string; status: string; size: { flashMaxBytes: number } }>;
    assert.deepEqual(ends.map((e) => [e.env, e.status, e.size.flashMaxBytes]), [
      ["leonardo", "ok", 28672],
      ["micro", "ok", 28672],
      ["megaatmega2560", "ok", 253952],
      ["nanoatmega328", "ok", 30720],
    ]);
  });

  it("the compiled core is shared between projects through the user cache", async (t) => {
    const blink = await readFile(`${EXAMPLES}/01.Basics/Blink/Blink.ino`, "utf8");
    const a = await project(t, { "platformio.ini": ini("pro8MHzatmega328"), "src/Blink.ino": blink });
    const b = await project(t, { "platformio.ini": ini("pro8MHzatmega328"), "src/main.cpp": "#include <Arduino.h>\nvoid setup() {}\nvoid loop() {}\n" });
    const first = await cli(["build", "-d", a, "--json"]);
    assert.equal(first.code, 0, explain(first, a));
    const second = await cli(["build", "-d", b, "--json"]);
    assert.equal(second.code, 0, explain(second, b));
    const end = second.events.find((e) => e.type === "env-end") as { compiled: number };
    assert.equal(end.compiled, 1, "only main.cpp is compiled; the core comes from the cache");
  });

  it("kiln upload flashes through the real avrdude to a fake Optiboot; --dry-run prints the command", async (t) => {
    requireTool("avrdude", "avrdude");
    const dir = await project(t, { "platformio.ini": ini("uno"), "src/Blink.ino": await readFile(`${EXAMPLES}/01.Basics/Blink/Blink.ino`, "utf8") });
    const image = join(dir, "flash.bin");
    const pty = await startPtyExec(dir, [process.execPath, join(repoRoot, "test/helpers/fake-optiboot.mjs"), image]);
    t.after(() => pty.stop());
    const dry = await cli(["upload", "-d", dir, "--port", pty.path, "--dry-run"]);
    assert.equal(dry.code, 0, explain(dry, dir));
    const hex = join(dir, ".kiln/build/uno/firmware.hex");
    assert.equal(dry.stdout.trim(), `/usr/bin/avrdude -C/etc/avrdude.conf -patmega328p -carduino -P${pty.path} -b115200 -D -Uflash:w:${hex}:i`);
    assert.ok(!existsSync(image), "a dry run writes nothing");
    const r = await cli(["upload", "-d", dir, "--port", pty.path]);
    assert.equal(r.code, 0, explain(r, dir));
    const { stdout: bin } = await exec("avr-objcopy", ["-I", "ihex", "-O", "binary", hex, join(dir, "expected.bin")]);
    assert.equal(bin, "");
    const expected = await readFile(join(dir, "expected.bin"));
    const written = await readFile(image);
    assert.ok(expected.length > 900);
    assert.deepEqual(written.subarray(0, expected.length), expected);
  });

  it("upload --dry-run --json for a programmer (usbasp) needs no port", async (t) => {
    const dir = await project(t, { "platformio.ini": ini("uno", "upload_protocol = usbasp\nupload_flags = -B10\n"), "src/main.cpp": "#include <Arduino.h>\nvoid setup() {}\nvoid loop() {}\n" });
    const r = await cli(["upload", "-d", dir, "--dry-run", "--json"]);
    assert.equal(r.code, 0, explain(r, dir));
    const result = r.events.find((e) => e.type === "result") as { argv: string[] };
    assert.deepEqual(result.argv, ["/usr/bin/avrdude", "-C/etc/avrdude.conf", "-patmega328p", "-cusbasp", "-B10", `-Uflash:w:${join(dir, ".kiln/build/uno/firmware.hex")}:i`]);
  });

  it("an unknown board in platformio.ini exits 3 with the closest ids", async (t) => {
    const dir = await project(t, { "platformio.ini": ini("unoo"), "src/main.cpp": "" });
    const r = await cli(["build", "-d", dir]);
    assert.equal(r.code, 3, explain(r, dir));
    assert.match(r.stderr, /unknown board 'unoo'/);
    assert.match(r.stderr, /did you mean 'uno'/);
  });
});

describe("kiln boards and kiln init", () => {
  it("boards lists AVR boards with mcu, clock, flash and RAM; --json", async () => {
    const r = await runCli(["boards", "atmelavr"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ID\s+NAME\s+PLATFORM\s+MCU\s+CLOCK\s+FLASH\s+RAM/);
    assert.match(r.stdout, /\nuno\s+Arduino Uno\s+atmelavr\s+atmega328p\s+16 MHz\s+31\.5 KiB\s+2 KiB\n/);
    const j = await runCli(["boards", "nano", "--json"]);
    const result = j.events.find((e) => e.type === "result") as { boards: Array<{ id: string; flashBytes: number }> };
    assert.deepEqual(result.boards.map((b) => b.id).sort(), ["nanoatmega168", "nanoatmega328", "nanoatmega328new"]);
  });

  it("init creates a project that builds, and never overwrites", async (t) => {
    const dir = await tempDir("kiln-init-");
    t.after(() => rm(dir, { recursive: true, force: true }));
    const r = await runCli(["init", dir, "--board", "nanoatmega328new"]);
    assert.equal(r.code, 0, r.stderr);
    const iniText = await readFile(join(dir, "platformio.ini"), "utf8");
    assert.match(iniText, /\[env:nanoatmega328new\]\nplatform = atmelavr\nboard = nanoatmega328new\nframework = arduino/);
    assert.match(await readFile(join(dir, "src/main.cpp"), "utf8"), /void setup\(\)[\s\S]*void loop\(\)/);
    assert.match(await readFile(join(dir, ".gitignore"), "utf8"), /^\.kiln\/$/m);
    await writeFile(join(dir, "src/main.cpp"), "// mine\n");
    const again = await runCli(["init", dir, "--board", "uno"]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /never overwrites/);
    assert.equal(await readFile(join(dir, "src/main.cpp"), "utf8"), "// mine\n");
    assert.equal(await readFile(join(dir, "platformio.ini"), "utf8"), iniText);
  });

  it("init with an unknown board exits 3 with suggestions", async (t) => {
    const dir = await tempDir("kiln-init-");
    t.after(() => rm(dir, { recursive: true, force: true }));
    const r = await runCli(["init", dir, "--board", "leonardoo"]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /did you mean 'leonardo'/);
    assert.ok(!existsSync(join(dir, "platformio.ini")));
  });
});
