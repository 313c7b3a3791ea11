/**
 * PlatformIO's `platform = atmelavr` with `framework = arduino`: Arduino Uno,
 * Nano, Mega, Leonardo, Micro, Pro and the other Arduino AVR boards, built the
 * way the Arduino IDE builds them (Arduino AVR 1.8.x platform.txt flags, core
 * archived as core.a, sketches converted by lib/build/sketch.ts), with
 * PlatformIO's package names and board ids.
 *
 * Pure description: the only I/O here is listing the core's and the sketch's
 * files; compiling, probing and sizing are the builder's.
 */
import { access, readdir } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, nearest, UnknownBoardError } from "../core/errors.js";
import { applyUnflags, flagsToArgs } from "../project/flags.js";
import type { ResolvedEnv } from "../project/types.js";
import boardData from "./atmelavr-boards.json" with { type: "json" };
import type { BoardDefinition, BuildPlan, CompileRecipe, PackageRequest, PlanContext, PlatformModule, SizeRecipe } from "./types.js";

export const AVR_TOOLCHAIN = "toolchain-atmelavr";
export const AVR_FRAMEWORK = "framework-arduino-avr";
export const AVR_UPLOADER = "tool-avrdude";

/** `-DARDUINO=` value: the IDE version arduino-builder passes (1.8.19). */
export const ARDUINO_VERSION = 10819;

type Manifest = Record<string, unknown> & {
  name: string;
  vendor?: string;
  frameworks?: string[];
  build: Record<string, unknown> & { mcu: string; f_cpu: string; core?: string; variant?: string; extra_flags?: string; hwids?: string[][]; usb_product?: string };
  upload: Record<string, unknown> & { maximum_size: number; maximum_ram_size: number; protocol?: string; speed?: number };
  arduino?: { fqbn: string; board: string; vid?: string; pid?: string; usb_flags?: boolean; usb_manufacturer?: string };
};

const BOARDS = boardData as unknown as Record<string, Manifest>;

/** Compile flags of Arduino AVR 1.8.x platform.txt (`compiler.*.flags`, warnings "none"), without `-c`/`-MMD`, which the builder adds. */
export const ARDUINO_FLAGS = {
  c: ["-g", "-Os", "-w", "-std=gnu11", "-ffunction-sections", "-fdata-sections", "-flto", "-fno-fat-lto-objects"],
  cxx: ["-g", "-Os", "-w", "-std=gnu++11", "-fpermissive", "-fno-exceptions", "-ffunction-sections", "-fdata-sections", "-fno-threadsafe-statics", "-Wno-error=narrowing", "-flto"],
  asm: ["-g", "-x", "assembler-with-cpp", "-flto"],
  link: ["-w", "-Os", "-g", "-flto", "-fuse-linker-plugin", "-Wl,--gc-sections"],
} as const;

/**
 * The link flags. For the ATmega2560 arduino-builder links with
 * `-Wl,--gc-sections,--relax` (its own addition, not in platform.txt; seen
 * in its `-verbose` link line); kiln does the same so Mega firmware has the
 * IDE's size.
 */
export function linkFlags(mcu: string): string[] {
  return ARDUINO_FLAGS.link.map((f) => (f === "-Wl,--gc-sections" && mcu === "atmega2560" ? "-Wl,--gc-sections,--relax" : f));
}

/**
 * gcc-avr 5.4's <float.h> defines DECIMAL_DIG only for C99+, not C++11, and
 * Arduino AVR 1.8.7's WString.cpp uses it (debian-avr.md §3). Compiled as
 * C++ with the sketch flags, this snippet fails exactly when the define is needed.
 */
export const DECIMAL_DIG_PROBE = "#include <float.h>\nint kiln_decimal_dig = DECIMAL_DIG;\n";
export const DECIMAL_DIG_FIX = "-DDECIMAL_DIG=__DECIMAL_DIG__";

/**
 * Whether C++ compiles need DECIMAL_DIG_FIX: avr-gcc < 7 does (its <float.h>
 * hides DECIMAL_DIG from C++11), 7 and later do not; a compiler whose
 * version cannot be read is asked with the probe (debian-avr.md §3).
 */
export async function needsDecimalDigFix(versionLine: string, probe: () => Promise<boolean>): Promise<boolean> {
  const m = /\bgcc\b.*?\s(\d+)\.(\d+)(?:\.\d+)?/i.exec(versionLine);
  if (m) return Number(m[1]) < 7;
  return !(await probe());
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

/** `board_upload.speed = 57600` arrives as a string; numbers and booleans become typed like PlatformIO's JSON. */
function overrideValue(path: string, raw: string): unknown {
  const v = raw.trim();
  if (path === "build.f_cpu" || path === "build.mcu") return v;
  if (/^-?\d+$/.test(v)) return Number(v);
  if (v === "true" || v === "yes") return true;
  if (v === "false" || v === "no") return false;
  return v;
}

function clockHz(fCpu: string): number {
  return Number.parseInt(fCpu.replace(/[lLuU]+$/, ""), 10);
}

function normaliseUsbId([vid, pid]: string[]): string {
  const hex = (s: string | undefined) => (s ?? "").replace(/^0x/i, "").toLowerCase().padStart(4, "0");
  return `${hex(vid)}:${hex(pid)}`;
}

function toDefinition(id: string, manifest: Manifest): BoardDefinition {
  return {
    id,
    name: manifest.name,
    platform: "atmelavr",
    vendor: manifest.vendor,
    mcu: manifest.build.mcu,
    fCpu: clockHz(manifest.build.f_cpu),
    flashBytes: Number(manifest.upload.maximum_size),
    ramBytes: Number(manifest.upload.maximum_ram_size),
    frameworks: manifest.frameworks ?? ["arduino"],
    usbIds: (manifest.build.hwids ?? []).map(normaliseUsbId),
    manifest,
  };
}

/** Every known board id (PlatformIO's spelling). */
export function avrBoardIds(): string[] {
  return Object.keys(BOARDS);
}

/**
 * The board `id` with PlatformIO-style `board_*` overrides deep-merged into
 * its manifest (`build.mcu`, `build.f_cpu`, `upload.speed`, …). Throws
 * UnknownBoardError with the nearest ids.
 */
export function avrBoard(id: string, overrides: Record<string, string> = {}, location?: { file: string; line?: number }): BoardDefinition {
  const base = BOARDS[id];
  if (!base) throw new UnknownBoardError(id, nearest(id, Object.keys(BOARDS)), location);
  const manifest = structuredClone(base);
  for (const [path, raw] of Object.entries(overrides)) setPath(manifest, path, overrideValue(path, raw));
  return toDefinition(id, manifest);
}

/** Every board, without overrides. */
export function avrBoards(): BoardDefinition[] {
  return Object.entries(BOARDS).map(([id, m]) => toDefinition(id, m));
}

async function listSources(dir: string, recursive: boolean): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive) out.push(...(await listSources(p, true)));
    } else if (/\.(c|cpp|S)$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

async function hasSketchFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).some((n) => /\.(ino|pde)$/i.test(n));
  } catch {
    return false;
  }
}

/** Board defines in platform.txt order: F_CPU, ARDUINO, ARDUINO_<board> (extra_flags), ARDUINO_ARCH_AVR, then USB descriptor defines. */
function boardDefines(m: Manifest): string[] {
  const out = [`-mmcu=${m.build.mcu}`, `-DF_CPU=${m.build.f_cpu}`, `-DARDUINO=${ARDUINO_VERSION}`];
  const extra = (m.build.extra_flags ?? "").split(/\s+/).filter(Boolean);
  out.push(...extra, "-DARDUINO_ARCH_AVR");
  if (m.build.usb_product) {
    // build.usb_flags of platform.txt; PlatformIO's manifests carry the ids in hwids.
    const firstId = m.build.hwids?.[0];
    const vid = m.arduino?.vid ?? firstId?.[0] ?? "0x2341";
    const pid = m.arduino?.pid ?? firstId?.[1] ?? "0x0000";
    const manufacturer = m.arduino?.usb_manufacturer ?? "Unknown";
    out.push(`-DUSB_VID=${vid}`, `-DUSB_PID=${pid}`, `-DUSB_MANUFACTURER="${manufacturer}"`, `-DUSB_PRODUCT="${m.build.usb_product}"`);
  }
  return out;
}

/** `avr-size -A` output → flash (.text + .data + .bootloader) and RAM (.data + .bss + .noinit), as platform.txt's size regexes. */
export function parseAvrSize(stdout: string): { flashBytes: number; ramBytes: number } {
  let flashBytes = 0;
  let ramBytes = 0;
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^(\.\w+)\s+(\d+)/.exec(line.trim());
    if (!m) continue;
    const size = Number(m[2]);
    if (m[1] === ".text" || m[1] === ".data" || m[1] === ".bootloader") flashBytes += size;
    if (m[1] === ".data" || m[1] === ".bss" || m[1] === ".noinit") ramBytes += size;
  }
  return { flashBytes, ramBytes };
}

function requirePackage(ctx: PlanContext, name: string): string {
  const dir = ctx.packages[name];
  if (!dir) throw new Error(`atmelavr: package ${name} was not installed before planning`);
  return dir;
}

/**
 * Upload settings for the manifest: the board's protocol and speed, and the
 * env's upload_* options kept apart, so a flasher can tell "the board's
 * bootloader" from "a programmer the user chose".
 */
export function avrUploadSettings(env: ResolvedEnv, board: BoardDefinition): Record<string, unknown> {
  const u = (board.manifest as Manifest).upload;
  return {
    tool: "avrdude",
    mcu: board.mcu,
    boardProtocol: u.protocol ?? "arduino",
    boardSpeed: u.speed,
    protocol: env.upload.protocol,
    speed: env.upload.speed,
    flags: env.upload.flags,
    port: env.upload.port,
    requireUploadPort: u.require_upload_port !== false,
    use1200bpsTouch: u.use_1200bps_touch === true,
    waitForUploadPort: u.wait_for_upload_port === true,
    disableFlushing: u.disable_flushing === true,
  };
}

/**
 * avrdude and its configuration inside the tool-avrdude package: Arduino's
 * archive has `etc/avrdude.conf`; Debian's avrdude (`symlink:///usr`) keeps
 * it in `/etc`. Without either, avrdude uses its built-in default.
 */
async function avrdudeTools(dir: string | undefined): Promise<Record<string, string>> {
  if (!dir) return {};
  const tools: Record<string, string> = { avrdude: join(dir, "bin", "avrdude") };
  for (const conf of [join(dir, "etc", "avrdude.conf"), join(dir, "..", "etc", "avrdude.conf")]) {
    try {
      await access(conf);
      tools["avrdude.conf"] = conf;
      break;
    } catch {
      // try the next layout
    }
  }
  return tools;
}

function emptyRecipeFlags(): { c: string[]; cxx: string[]; asm: string[] } {
  return { c: [], cxx: [], asm: [] };
}

export const atmelavrPlatform: PlatformModule = {
  id: "atmelavr",
  title: "Atmel AVR",
  frameworks: ["arduino"],
  boards: avrBoards,
  resolveBoard(env: ResolvedEnv): BoardDefinition {
    if (!env.board) {
      throw new ConfigError("KILN_BOARD_MISSING", `env '${env.name}' has platform atmelavr but no board`, {
        location: env.location,
        hint: "add 'board = uno' (or another id from 'kiln boards atmelavr') to the env",
      });
    }
    const where = env.options.board?.location ?? env.location;
    return avrBoard(env.board, env.boardOverrides, where);
  },
  packages(env: ResolvedEnv): PackageRequest[] {
    const out: PackageRequest[] = [{ name: AVR_TOOLCHAIN, kind: "toolchain" }];
    if (env.framework.includes("arduino")) out.push({ name: AVR_FRAMEWORK, kind: "framework" });
    out.push({ name: AVR_UPLOADER, kind: "uploader", forUpload: true });
    return out;
  },
  async flashSettings(env, board, packages) {
    return { upload: avrUploadSettings(env, board ?? atmelavrPlatform.resolveBoard(env)!), tools: await avrdudeTools(packages[AVR_UPLOADER]) };
  },
  async plan(ctx: PlanContext): Promise<BuildPlan> {
    const { env, project, buildDir } = ctx;
    const board = ctx.board ?? atmelavrPlatform.resolveBoard(env)!;
    const m = board.manifest as Manifest;
    const bin = join(requirePackage(ctx, AVR_TOOLCHAIN), "bin");
    const cc = join(bin, "avr-gcc");
    const cxx = join(bin, "avr-g++");
    const isArduino = env.framework.includes("arduino");
    const frameworkDir = isArduino ? requirePackage(ctx, AVR_FRAMEWORK) : undefined;

    const debug = env.buildType === "debug";
    const opt = (flags: readonly string[]) => (debug ? flags.map((f) => (f === "-Os" ? "-Og" : f)) : [...flags]);
    const defines = boardDefines(m);
    const version = await ctx.toolVersion(cc);
    const identity = `${version} | arduino-avr flags ${ARDUINO_VERSION}`;

    const cxxBase = [cxx, ...opt(ARDUINO_FLAGS.cxx), ...defines];
    const needsDecimalDig = isArduino && (await needsDecimalDigFix(version, () => ctx.probe(cxxBase, DECIMAL_DIG_PROBE, "cpp")));
    const cxxQuirks = needsDecimalDig ? [DECIMAL_DIG_FIX] : [];

    const core = frameworkDir ? join(frameworkDir, "cores", m.build.core ?? "arduino") : undefined;
    const variant = frameworkDir && m.build.variant ? join(frameworkDir, "variants", m.build.variant) : undefined;
    const frameworkIncludes = [core, variant].filter((d): d is string => d !== undefined);

    const common = flagsToArgs(applyUnflags(ctx.flags.build, ctx.flags.unflags));
    const srcOnly = flagsToArgs(applyUnflags(ctx.flags.src, ctx.flags.unflags));
    const un = ctx.flags.unflags;
    // build_unflags also removes kiln's own Arduino flags (`-flto`, `-Os`, `-w`…), as in PlatformIO.
    const unflagged = new Set([...un.ccFlags, ...un.cFlags, ...un.cxxFlags, ...un.asFlags, ...un.linkFlags, ...un.defines.map((d) => `-D${d}`)]);
    const keep = (words: string[]) => words.filter((w) => !unflagged.has(w));

    const recipe = (extra: { c: string[]; cxx: string[]; asm: string[] }, includeDirs: string[]): CompileRecipe => ({
      c: keep([cc, ...opt(ARDUINO_FLAGS.c), ...defines, ...common.c, ...extra.c]),
      cxx: keep([...cxxBase, ...cxxQuirks, ...common.cxx, ...extra.cxx]),
      asm: keep([cc, ...ARDUINO_FLAGS.asm, ...defines, ...common.asm, ...extra.asm]),
      includeDirs,
    });

    const groups: BuildPlan["groups"] = [];
    if (core) {
      groups.push({ id: "core", root: core, sources: await listSources(core, true), recipe: recipe(emptyRecipeFlags(), frameworkIncludes), archive: "core.a", shared: true });
    }
    if (variant) {
      const variantSources = await listSources(variant, true);
      if (variantSources.length) groups.push({ id: "variant", root: variant, sources: variantSources, recipe: recipe(emptyRecipeFlags(), frameworkIncludes) });
    }

    const sketch = isArduino && (await hasSketchFiles(project.dirs.src));
    const elf = join(buildDir, "firmware.elf");
    const hex = join(buildDir, "firmware.hex");
    const eep = join(buildDir, "firmware.eep");
    const objcopy = join(bin, "avr-objcopy");
    const storages = [...env.libExtraDirs, project.dirs.lib];
    if (frameworkDir) storages.push(join(frameworkDir, "libraries"));

    const size: SizeRecipe = {
      argv: [join(bin, "avr-size"), "-A", elf],
      parse: parseAvrSize,
      flashMaxBytes: board.flashBytes,
      ramMaxBytes: board.ramBytes,
    };

    return {
      env: env.name,
      platform: "atmelavr",
      board,
      buildDir,
      toolchain: { cc, cxx, ar: join(bin, "avr-gcc-ar"), arFlags: ["rcs"], identity },
      project: {
        srcDir: project.dirs.src,
        srcFilter: env.buildSrcFilter,
        recipe: recipe({ c: srcOnly.c, cxx: srcOnly.cxx, asm: srcOnly.asm }, [project.dirs.include, project.dirs.src, ...frameworkIncludes]),
        sketch,
      },
      libraries: {
        storages,
        ignore: env.libIgnore,
        ldfMode: env.libLdfMode,
        recipe: recipe(emptyRecipeFlags(), [project.dirs.include, ...frameworkIncludes]),
        // The Arduino IDE links library objects directly; PlatformIO archives them (lib_archive).
        archive: sketch ? false : env.libArchive,
      },
      groups,
      link: {
        output: elf,
        argv: (objects, archives, tmpOutput) => keep([
          cc,
          ...linkFlags(board.mcu).map((f) => (debug && f === "-Os" ? "-Og" : f)),
          `-mmcu=${board.mcu}`,
          ...common.link,
          "-o",
          tmpOutput,
          ...objects,
          ...archives,
          `-L${buildDir}`,
          "-lm",
          ...common.libs,
        ]),
      },
      images: [
        { label: "firmware.eep", output: eep, argv: (tmp) => [objcopy, "-O", "ihex", "-j", ".eeprom", "--set-section-flags=.eeprom=alloc,load", "--no-change-warnings", "--change-section-lma", ".eeprom=0", elf, tmp] },
        { label: "firmware.hex", output: hex, argv: (tmp) => [objcopy, "-O", "ihex", "-R", ".eeprom", elf, tmp] },
      ],
      size,
      manifestImages: [
        { path: "firmware.hex", format: "hex", role: "flash" },
        { path: "firmware.eep", format: "eep", role: "eeprom" },
        { path: "firmware.elf", format: "elf", role: "program" },
      ],
      upload: avrUploadSettings(env, board),
      tools: await avrdudeTools(ctx.packages[AVR_UPLOADER]),
    };
  },
};
