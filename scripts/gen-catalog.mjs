#!/usr/bin/env node
// Generate lib/toolchains/catalog.json from the vendors' Arduino package indexes.
//
//   npm run build && node scripts/gen-catalog.mjs [INDEX_DIR]
//
// INDEX_DIR defaults to ../shared/data/indexes (copies of the vendors' published
// package_*_index.json). Run it again when a vendor publishes; review the diff and
// commit the JSON. Nothing at runtime reads INDEX_DIR: kiln ships the output.
// Host matching and index parsing are kiln's own (dist/toolchains), so the catalog
// and a user-configured index resolve identically.
import { readFile, readdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseIndex, mergeIndexes, resolvePlatform, toolSystem, parseChecksum } from "../dist/toolchains/arduino-index.js";
import { CATALOG_HOSTS, classifyTriplet } from "../dist/toolchains/hosts.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const indexDir = resolve(process.argv[2] ?? join(root, "..", "shared", "data", "indexes"));
const out = join(root, "lib", "toolchains", "catalog.json");

// kiln platform id → the Arduino platform that supplies it, and PlatformIO-style
// names for its archive and tools. `kind` follows PlatformIO's package types.
const PLATFORMS = {
  atmelavr: {
    title: "Atmel AVR (Arduino AVR Boards)",
    packager: "arduino",
    architecture: "avr",
    // 1.8.8: the newest AVR core in Arduino's index; platform.txt/boards.txt in
    // shared/data are from its tag, and it ships with avrdude 8.0.0-arduino1.
    version: "1.8.8",
    core: { name: "framework-arduino-avr", kind: "framework" },
    tools: {
      "avr-gcc": { name: "toolchain-atmelavr", kind: "toolchain" },
      avrdude: { name: "tool-avrdude", kind: "uploader" },
      arduinoOTA: { name: "tool-arduinoota", kind: "uploader" },
    },
  },
  espressif32: {
    title: "Espressif 32 (Arduino-ESP32)",
    packager: "esp32",
    architecture: "esp32",
    core: { name: "framework-arduinoespressif32", kind: "framework" },
    tools: {
      "esp-x32": { name: "toolchain-xtensa-esp-elf", kind: "toolchain" },
      "esp-rv32": { name: "toolchain-riscv32-esp", kind: "toolchain" },
      "xtensa-esp-elf-gdb": { name: "tool-xtensa-esp-elf-gdb", kind: "tool" },
      "riscv32-esp-elf-gdb": { name: "tool-riscv32-esp-elf-gdb", kind: "tool" },
      "openocd-esp32": { name: "tool-openocd-esp32", kind: "tool" },
      esptool_py: { name: "tool-esptoolpy", kind: "uploader" },
      mkspiffs: { name: "tool-mkspiffs", kind: "tool" },
      mklittlefs: { name: "tool-mklittlefs", kind: "tool" },
      "dfu-util": { name: "tool-dfuutil-arduino", kind: "uploader" },
    },
    // esp32s3-libs → framework-arduinoespressif32-libs-esp32s3
    toolName: (n) => (/^(.*)-libs$/.test(n) ? { name: `framework-arduinoespressif32-libs-${n.replace(/-libs$/, "")}`, kind: "framework" } : undefined),
  },
  espressif8266: {
    title: "Espressif 8266 (ESP8266 Arduino)",
    packager: "esp8266",
    architecture: "esp8266",
    core: { name: "framework-arduinoespressif8266", kind: "framework" },
    tools: {
      "xtensa-lx106-elf-gcc": { name: "toolchain-xtensa", kind: "toolchain" },
      mkspiffs: { name: "tool-mkspiffs", kind: "tool" },
      mklittlefs: { name: "tool-mklittlefs", kind: "tool" },
      python3: { name: "tool-python3", kind: "tool" },
    },
  },
  teensy: {
    title: "Teensy (Teensyduino)",
    packager: "teensy",
    architecture: "avr",
    core: { name: "framework-arduinoteensy", kind: "framework" },
    tools: {
      "teensy-compile": { name: "toolchain-gccarmnoneeabi-teensy", kind: "toolchain" },
      "teensy-tools": { name: "tool-teensy", kind: "uploader" },
      "teensy-discovery": { name: "tool-teensy-discovery", kind: "tool" },
      "teensy-monitor": { name: "tool-teensy-monitor", kind: "tool" },
    },
  },
  raspberrypi: {
    title: "Raspberry Pi RP2040/RP2350 (arduino-pico)",
    packager: "rp2040",
    architecture: "rp2040",
    core: { name: "framework-arduinopico", kind: "framework" },
    tools: {
      "pqt-gcc": { name: "toolchain-rp2040-earlephilhower", kind: "toolchain" },
      "pqt-gcc-riscv": { name: "toolchain-riscv-rp2350-earlephilhower", kind: "toolchain" },
      "pqt-picotool": { name: "tool-picotool-rp2040-earlephilhower", kind: "uploader" },
      "pqt-openocd": { name: "tool-openocd-rp2040-earlephilhower", kind: "uploader" },
      "pqt-pioasm": { name: "tool-pioasm-rp2040-earlephilhower", kind: "tool" },
      "pqt-mklittlefs": { name: "tool-mklittlefs-rp2040-earlephilhower", kind: "tool" },
      "pqt-python3": { name: "tool-python3-rp2040-earlephilhower", kind: "tool" },
    },
  },
  nordicnrf52: {
    title: "Nordic nRF52 (Adafruit nRF52)",
    packager: "adafruit",
    architecture: "nrf52",
    core: { name: "framework-arduinoadafruitnrf52", kind: "framework" },
    tools: {
      "arm-none-eabi-gcc": { name: "toolchain-gccarmnoneeabi", kind: "toolchain" },
      nrfjprog: { name: "tool-nrfjprog", kind: "uploader" },
      CMSIS: { name: "framework-cmsis", kind: "framework" },
      openocd: { name: "tool-openocd", kind: "uploader" },
    },
  },
};

function archiveFor(a, triplet) {
  const { algorithm, hex } = parseChecksum(a.checksum);
  return { url: a.url, archiveFileName: a.archiveFileName, size: a.size, [algorithm]: hex, triplet };
}

const files = (await readdir(indexDir)).filter((f) => f.endsWith(".json")).sort();
const parsed = [];
for (const f of files) parsed.push(parseIndex(JSON.parse(await readFile(join(indexDir, f), "utf8")), f));
const index = mergeIndexes(parsed);

const catalog = {
  schema: 1,
  generatedBy: "scripts/gen-catalog.mjs",
  sources: files,
  hosts: CATALOG_HOSTS,
  platforms: {},
  packages: {},
};

for (const [id, spec] of Object.entries(PLATFORMS)) {
  const resolved = resolvePlatform(index, spec.packager, spec.architecture, spec.version);
  if (!resolved) throw new Error(`${id}: ${spec.packager}:${spec.architecture}@${spec.version ?? "newest"} not in ${indexDir}`);
  const { platform } = resolved;
  const entries = {};
  const add = (name, kind, version, upstream, hosts) => {
    const key = `${name}@${version}`;
    const missing = CATALOG_HOSTS.filter((h) => !hosts[h]);
    catalog.packages[key] = { name, version, kind, upstream, hosts, ...(missing.length ? { unavailableOn: missing } : {}) };
    entries[name] = key;
  };
  // The platform archive itself is host-independent.
  const coreArchive = archiveFor(platform, "all");
  add(spec.core.name, spec.core.kind, platform.version, `${platform.packager}:${platform.architecture}@${platform.version}`, Object.fromEntries(CATALOG_HOSTS.map((h) => [h, coreArchive])));
  for (const { ref, tool } of resolved.tools) {
    if (!tool) throw new Error(`${id}: ${ref.packager}:${ref.name}@${ref.version ?? "newest"} is not in any index`);
    const mapped = spec.tools[tool.name] ?? spec.toolName?.(tool.name) ?? { name: `tool-${tool.name.toLowerCase()}`, kind: "tool" };
    const hosts = {};
    for (const h of CATALOG_HOSTS) {
      const sys = toolSystem(tool, h);
      if (sys) hosts[h] = archiveFor(sys, sys.host);
    }
    add(mapped.name, mapped.kind, tool.version, `${tool.packager}:${tool.name}@${tool.version}`, hosts);
  }
  catalog.platforms[id] = { title: spec.title, upstream: `${platform.packager}:${platform.architecture}@${platform.version}`, packages: entries };
}

// Every triplet must classify, or a system would be dropped without a word.
for (const t of index.tools) for (const s of t.systems) {
  if (!classifyTriplet(s.host)) throw new Error(`${t.packager}:${t.name}@${t.version}: unknown host triplet '${s.host}'; teach lib/toolchains/hosts.ts`);
}

await writeFile(out, `${JSON.stringify(catalog, null, 1)}\n`);
process.stdout.write(`wrote ${relative(process.cwd(), out)}: ${Object.keys(catalog.platforms).length} platforms, ${Object.keys(catalog.packages).length} packages\n`);
