/**
 * The atmelavr platform module as data: boards, overrides, packages, and the
 * plan it describes (flags as Arduino AVR's platform.txt, DECIMAL_DIG only
 * when the toolchain needs it, images, size parsing, upload settings).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { emptyFlags } from "../../lib/project/flags.js";
import type { Project, ResolvedEnv } from "../../lib/project/types.js";
import type { PlanContext } from "../../lib/platforms/types.js";
import { atmelavrPlatform, avrBoard, avrBoardIds, DECIMAL_DIG_FIX, DECIMAL_DIG_PROBE, linkFlags, parseAvrSize } from "../../lib/platforms/atmelavr.js";
import { getPlatform } from "../../lib/platforms/index.js";
import { tempDir } from "../helpers/cli.js";

function env(over: Partial<ResolvedEnv> = {}): ResolvedEnv {
  return {
    name: "uno",
    platform: "atmelavr",
    board: "uno",
    framework: ["arduino"],
    buildType: "release",
    buildFlags: [],
    buildSrcFlags: [],
    buildUnflags: [],
    buildSrcFilter: ["+<*>"],
    libDeps: [],
    libIgnore: [],
    libExtraDirs: [],
    libLdfMode: "chain",
    libArchive: true,
    platformPackages: [],
    upload: { flags: [] },
    monitor: { speed: 9600, parity: "N", filters: [], eol: "CRLF", raw: false, echo: false, encoding: "UTF-8" },
    boardOverrides: {},
    options: {},
    ...over,
  } as ResolvedEnv;
}

async function planFor(e: ResolvedEnv, opts: { probeOk?: boolean; sketch?: boolean; unflags?: string[]; version?: string } = {}) {
  const dir = await tempDir();
  await mkdir(join(dir, "src"), { recursive: true });
  if (opts.sketch) await writeFile(join(dir, "src", "Blink.ino"), "void setup(){}\nvoid loop(){}\n");
  const probes: string[][] = [];
  const unflags = emptyFlags();
  unflags.ccFlags.push(...(opts.unflags ?? []));
  const project = { dir, dirs: { src: join(dir, "src"), include: join(dir, "include"), lib: join(dir, "lib"), build: join(dir, ".kiln", "build") } } as unknown as Project;
  const board = atmelavrPlatform.resolveBoard(e);
  const ctx: PlanContext = {
    project,
    env: e,
    board,
    flags: { build: emptyFlags(), src: emptyFlags(), unflags },
    packages: { "toolchain-atmelavr": "/tc", "framework-arduino-avr": "/fw", "tool-avrdude": "/ad" },
    buildDir: join(dir, ".kiln", "build", e.name),
    hostEnv: {},
    probe: async (argv, source) => {
      probes.push([...argv, source]);
      return opts.probeOk ?? true;
    },
    toolVersion: async (tool) => opts.version ?? `${tool} (GCC) 7.3.0`,
  };
  const plan = await atmelavrPlatform.plan(ctx);
  await rm(dir, { recursive: true, force: true });
  return { plan, probes, dir };
}

describe("atmelavr boards", () => {
  it("is registered and has the standard Arduino AVR boards under PlatformIO ids", () => {
    assert.equal(getPlatform("platformio/atmelavr @ ^5").id, "atmelavr");
    const ids = avrBoardIds();
    for (const id of ["uno", "nanoatmega328", "nanoatmega328new", "megaatmega2560", "leonardo", "micro", "pro16MHzatmega328", "pro8MHzatmega328", "megaatmega1280", "miniatmega328", "LilyPadUSB", "yun", "esplora", "ethernet", "fio"]) {
      assert.ok(ids.includes(id), id);
    }
    assert.ok(ids.length >= 30);
  });
  it("uno: PlatformIO's data", () => {
    const b = avrBoard("uno");
    assert.deepEqual([b.name, b.mcu, b.fCpu, b.flashBytes, b.ramBytes], ["Arduino Uno", "atmega328p", 16_000_000, 32256, 2048]);
    assert.ok(b.usbIds.includes("2341:0043") && b.usbIds.includes("2a03:0043"));
  });
  it("board_build.* and board_upload.* overrides apply", () => {
    const b = avrBoard("uno", { "build.mcu": "atmega328pb", "build.f_cpu": "8000000L", "upload.maximum_size": "30000", "upload.speed": "57600" });
    assert.deepEqual([b.mcu, b.fCpu, b.flashBytes], ["atmega328pb", 8_000_000, 30000]);
    assert.equal((b.manifest.upload as { speed: number }).speed, 57600);
  });
  it("an unknown board is KILN_UNKNOWN_BOARD (exit 3) with the closest ids", () => {
    assert.throws(() => avrBoard("unoo"), (e: { code: string; exitCode: number; suggestions: string[] }) => e.code === "KILN_UNKNOWN_BOARD" && e.exitCode === 3 && e.suggestions[0] === "uno");
    assert.throws(() => avrBoard("nano"), (e: { suggestions: string[] }) => e.suggestions.some((s) => s.startsWith("nanoatmega")));
  });
  it("a missing board is a config error", () => {
    assert.throws(() => atmelavrPlatform.resolveBoard(env({ board: undefined })), { code: "KILN_BOARD_MISSING", exitCode: 3 });
  });
  it("packages under PlatformIO's names; avrdude only for uploads", () => {
    assert.deepEqual(atmelavrPlatform.packages(env(), undefined), [
      { name: "toolchain-atmelavr", kind: "toolchain" },
      { name: "framework-arduino-avr", kind: "framework" },
      { name: "tool-avrdude", kind: "uploader", forUpload: true },
    ]);
  });
});

describe("atmelavr plan", () => {
  it("uses Arduino AVR platform.txt flags and board defines", async () => {
    const { plan } = await planFor(env());
    const cxx = plan.project.recipe.cxx;
    assert.equal(cxx[0], "/tc/bin/avr-g++");
    for (const f of ["-Os", "-flto", "-ffunction-sections", "-fdata-sections", "-std=gnu++11", "-fpermissive", "-fno-exceptions", "-fno-threadsafe-statics", "-mmcu=atmega328p", "-DF_CPU=16000000L", "-DARDUINO=10819", "-DARDUINO_AVR_UNO", "-DARDUINO_ARCH_AVR"]) {
      assert.ok(cxx.includes(f), f);
    }
    assert.ok(plan.project.recipe.c.includes("-std=gnu11"));
    assert.deepEqual(plan.toolchain.arFlags, ["rcs"]);
    assert.equal(plan.toolchain.ar, "/tc/bin/avr-gcc-ar");
    const link = plan.link.argv(["/b/sketch.o"], ["/b/core.a"], "/b/firmware.elf.tmp");
    assert.deepEqual(link, ["/tc/bin/avr-gcc", "-w", "-Os", "-g", "-flto", "-fuse-linker-plugin", "-Wl,--gc-sections", "-mmcu=atmega328p", "-o", "/b/firmware.elf.tmp", "/b/sketch.o", "/b/core.a", `-L${plan.buildDir}`, "-lm"]);
  });
  it("the core is one shared group archived as core.a; libraries come from the framework and lib/", async () => {
    const { plan } = await planFor(env());
    const core = plan.groups.find((g) => g.id === "core")!;
    assert.equal(core.archive, "core.a");
    assert.equal(core.shared, true);
    assert.deepEqual(core.recipe.includeDirs, ["/fw/cores/arduino", "/fw/variants/standard"]);
    assert.deepEqual(plan.libraries.storages.slice(-1), ["/fw/libraries"]);
  });
  it("adds -DDECIMAL_DIG=__DECIMAL_DIG__ to C++ for avr-gcc < 7 only", async () => {
    const gcc7 = await planFor(env(), { version: "avr-gcc (GCC) 7.3.0" });
    assert.ok(!gcc7.plan.project.recipe.cxx.includes(DECIMAL_DIG_FIX));
    const gcc5 = await planFor(env(), { version: "avr-gcc (GCC) 5.4.0" });
    assert.ok(gcc5.plan.project.recipe.cxx.includes(DECIMAL_DIG_FIX));
    assert.ok(gcc5.plan.groups[0]!.recipe.cxx.includes(DECIMAL_DIG_FIX));
    assert.ok(!gcc5.plan.project.recipe.c.includes(DECIMAL_DIG_FIX));
    assert.equal(gcc7.probes.length + gcc5.probes.length, 0, "a known version needs no probe");
  });
  it("asks the probe when the compiler's version cannot be read", async () => {
    const good = await planFor(env(), { probeOk: true, version: "some vendor compiler" });
    assert.ok(!good.plan.project.recipe.cxx.includes(DECIMAL_DIG_FIX));
    assert.equal(good.probes.length, 1);
    assert.equal(good.probes[0]!.at(-1), DECIMAL_DIG_PROBE);
    assert.ok(good.probes[0]!.includes("-std=gnu++11"));
    const bad = await planFor(env(), { probeOk: false, version: "some vendor compiler" });
    assert.ok(bad.plan.project.recipe.cxx.includes(DECIMAL_DIG_FIX));
  });
  it("the probe agrees with the version rule on Debian's gcc-avr 5.4", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { requireTool } = await import("../helpers/tools.js");
    const gxx = requireTool("avr-g++", "gcc-avr");
    const dir = await tempDir();
    await writeFile(join(dir, "p.cpp"), DECIMAL_DIG_PROBE);
    const compile = (extra: string[]) => promisify(execFile)(gxx, ["-std=gnu++11", "-mmcu=atmega328p", ...extra, "-c", join(dir, "p.cpp"), "-o", join(dir, "p.o")]);
    await assert.rejects(compile([]), /DECIMAL_DIG/);
    await compile([DECIMAL_DIG_FIX]);
    await rm(dir, { recursive: true, force: true });
  });
  it("leonardo gets the USB descriptor defines of build.usb_flags", async () => {
    const { plan } = await planFor(env({ name: "leo", board: "leonardo" }));
    const cxx = plan.project.recipe.cxx;
    for (const f of ["-mmcu=atmega32u4", "-DARDUINO_AVR_LEONARDO", "-DUSB_VID=0x2341", "-DUSB_PID=0x8036", '-DUSB_PRODUCT="Arduino Leonardo"', '-DUSB_MANUFACTURER="Unknown"']) assert.ok(cxx.includes(f), f);
    assert.equal(plan.upload!.use1200bpsTouch, true);
    assert.equal(plan.upload!.boardProtocol, "avr109");
  });
  it("the ATmega2560 links with --relax, as arduino-builder does", async () => {
    assert.ok(linkFlags("atmega2560").includes("-Wl,--gc-sections,--relax"));
    assert.ok(linkFlags("atmega328p").includes("-Wl,--gc-sections"));
    const { plan } = await planFor(env({ name: "mega", board: "megaatmega2560" }));
    assert.ok(plan.link.argv([], [], "x").includes("-Wl,--gc-sections,--relax"));
  });
  it("boards.txt extra defines are kept (UNO WiFi's ESP_CH_UART)", () => {
    assert.equal((avrBoard("unowifi").manifest.build as { extra_flags: string }).extra_flags, "-DARDUINO_AVR_UNO_WIFI_DEV_ED -DESP_CH_UART -DESP_CH_UART_BR=19200");
  });
  it("board_build.f_cpu reaches -DF_CPU", async () => {
    const { plan } = await planFor(env({ boardOverrides: { "build.f_cpu": "8000000L" } }));
    assert.ok(plan.project.recipe.cxx.includes("-DF_CPU=8000000L"));
  });
  it("build_unflags removes kiln's own flags too", async () => {
    const { plan } = await planFor(env(), { unflags: ["-flto"] });
    assert.ok(!plan.project.recipe.cxx.includes("-flto"));
    assert.ok(!plan.link.argv([], [], "x").includes("-flto"));
  });
  it("a folder of .ino files is a sketch; its libraries are linked as objects like the IDE does", async () => {
    const { plan } = await planFor(env(), { sketch: true });
    assert.equal(plan.project.sketch, true);
    assert.equal(plan.libraries.archive, false);
  });
  it("images: .hex and .eep by objcopy, sizes by avr-size, tools for the flasher", async () => {
    const { plan } = await planFor(env());
    assert.deepEqual(plan.images.map((i) => i.argv("T").slice(0, 3)), [
      ["/tc/bin/avr-objcopy", "-O", "ihex"],
      ["/tc/bin/avr-objcopy", "-O", "ihex"],
    ]);
    assert.ok(plan.images[1]!.argv("T").includes("-R"));
    assert.deepEqual(plan.manifestImages.map((i) => i.path), ["firmware.hex", "firmware.eep", "firmware.elf"]);
    assert.equal(plan.size!.flashMaxBytes, 32256);
    assert.equal(plan.size!.ramMaxBytes, 2048);
    assert.equal(plan.tools!.avrdude, "/ad/bin/avrdude");
  });
});

describe("parseAvrSize", () => {
  it("flash = .text + .data (+ .bootloader), RAM = .data + .bss + .noinit", () => {
    const out = "firmware.elf  :\nsection                     size      addr\n.data                         28   8388864\n.text                       4374         0\n.bss                         454   8388892\n.noinit                        2   8389346\n.comment                      17         0\n.debug_info                 9999         0\nTotal                      14000\n";
    assert.deepEqual(parseAvrSize(out), { flashBytes: 4402, ramBytes: 484 });
  });
});
