#!/usr/bin/env node
/**
 * Generate lib/platforms/atmelavr-boards.json from PlatformIO's atmelavr board
 * manifests and Arduino AVR's boards.txt (../shared/data). PlatformIO's JSON
 * wins where it exists; the other standard Arduino AVR boards are made from
 * boards.txt under PlatformIO's ids. Run: node scripts/gen-avr-boards.mjs
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const data = join(root, "..", "shared", "data");
const out = join(root, "lib", "platforms", "atmelavr-boards.json");

/** boards.txt → { boardId: { "build.mcu": "…", "menu.cpu.x.build.mcu": "…" } } */
function parseBoardsTxt(text) {
  const boards = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const dot = key.indexOf(".");
    if (dot < 0) continue;
    const id = key.slice(0, dot);
    if (id === "menu") continue;
    (boards[id] ??= {})[key.slice(dot + 1)] = value;
  }
  return boards;
}

/** Properties of one board, with a menu.cpu choice applied. */
function flatten(props, cpu) {
  const result = {};
  for (const [k, v] of Object.entries(props)) if (!k.startsWith("menu.")) result[k] = v;
  if (cpu) {
    const prefix = `menu.cpu.${cpu}.`;
    for (const [k, v] of Object.entries(props)) if (k.startsWith(prefix)) result[k.slice(prefix.length)] = v;
  }
  return result;
}

/**
 * PlatformIO id → boards.txt board (and cpu menu choice). The first eight have
 * PlatformIO manifests in shared/data; the rest use PlatformIO's ids for the
 * same boards in platform-atmelavr.
 */
const MAP = [
  ["uno", "uno"],
  ["nanoatmega328", "nano", "atmega328old"],
  ["nanoatmega328new", "nano", "atmega328"],
  ["nanoatmega168", "nano", "atmega168"],
  ["megaatmega2560", "mega", "atmega2560"],
  ["megaatmega1280", "mega", "atmega1280"],
  ["megaADK", "megaADK"],
  ["leonardo", "leonardo"],
  ["leonardoeth", "leonardoeth"],
  ["micro", "micro"],
  ["pro16MHzatmega328", "pro", "16MHzatmega328"],
  ["pro8MHzatmega328", "pro", "8MHzatmega328"],
  ["pro16MHzatmega168", "pro", "16MHzatmega168"],
  ["pro8MHzatmega168", "pro", "8MHzatmega168"],
  ["diecimilaatmega328", "diecimila", "atmega328"],
  ["diecimilaatmega168", "diecimila", "atmega168"],
  ["miniatmega328", "mini", "atmega328"],
  ["miniatmega168", "mini", "atmega168"],
  ["btatmega328", "bt", "atmega328"],
  ["btatmega168", "bt", "atmega168"],
  ["lilypadatmega328", "lilypad", "atmega328"],
  ["lilypadatmega168", "lilypad", "atmega168"],
  ["LilyPadUSB", "LilyPadUSB"],
  ["atmegangatmega168", "atmegang", "atmega168"],
  ["atmegangatmega8", "atmegang", "atmega8"],
  ["ethernet", "ethernet"],
  ["fio", "fio"],
  ["esplora", "esplora"],
  ["yun", "yun"],
  ["yunmini", "yunmini"],
  ["chiwawa", "chiwawa"],
  ["one", "one"],
  ["robotControl", "robotControl"],
  ["robotMotor", "robotMotor"],
  ["gemma", "gemma"],
  ["circuitplay_classic", "circuitplay32u4cat"],
  ["unowifi", "unowifi"],
  ["uno_mini", "unomini"],
];

/** SRAM by MCU, for boards.txt entries that omit maximum_data_size. */
const RAM = { attiny85: 512, atmega32u4: 2560, atmega328p: 2048, atmega168: 1024, atmega8: 1024, atmega2560: 8192, atmega1280: 8192 };

/** boards.txt build.extra_flags other than the USB descriptor flags (kiln adds those itself), with {build.x} expanded. */
function boardExtraFlags(p) {
  const raw = (p["build.extra_flags"] ?? "").replace("{build.usb_flags}", "").trim();
  return raw ? [raw.replace(/\{(build\.[\w.]+)\}/g, (_, k) => p[k] ?? "")] : [];
}

const unquote = (s) => (s ?? "").replace(/^"(.*)"$/, "$1");
const hex4 = (s) => `0x${s.replace(/^0x/i, "").toUpperCase().padStart(4, "0")}`;

const txt = parseBoardsTxt(readFileSync(join(data, "boards-txt", "arduino-avr.txt"), "utf8"));
const pioDir = join(data, "boards", "atmelavr");
const pio = Object.fromEntries(readdirSync(pioDir).filter((f) => f.endsWith(".json")).map((f) => [f.slice(0, -5), JSON.parse(readFileSync(join(pioDir, f), "utf8"))]));

const boards = {};
for (const [id, txtId, cpu] of MAP) {
  const props = txt[txtId];
  if (!props) throw new Error(`boards.txt has no board '${txtId}'`);
  const p = flatten(props, cpu);
  // USB ids: vid.N/pid.N (older) or upload_port.N.vid/pid (1.8.8).
  const hwids = [];
  const seen = new Set();
  const addId = (vid, pid) => {
    if (!vid || !pid) return;
    const pair = [hex4(vid), hex4(pid)];
    const key = pair.join(":");
    if (!seen.has(key)) (seen.add(key), hwids.push(pair));
  };
  for (let i = 0; i < 16; i++) {
    addId(p[`vid.${i}`], p[`pid.${i}`]);
    addId(p[`upload_port.${i}.vid`], p[`upload_port.${i}.pid`]);
  }
  const usbProduct = unquote(p["build.usb_product"]);
  const fromTxt = {
    build: {
      core: p["build.core"] ?? "arduino",
      extra_flags: [`-DARDUINO_${p["build.board"]}`, ...boardExtraFlags(p)].join(" "),
      f_cpu: p["build.f_cpu"],
      ...(hwids.length ? { hwids } : {}),
      mcu: p["build.mcu"],
      ...(usbProduct ? { usb_product: usbProduct } : {}),
      variant: p["build.variant"],
    },
    bootloader: {
      ...(p["bootloader.extended_fuses"] ? { efuse: p["bootloader.extended_fuses"] } : {}),
      ...(p["bootloader.file"] ? { file: p["bootloader.file"] } : {}),
      ...(p["bootloader.high_fuses"] ? { hfuse: p["bootloader.high_fuses"] } : {}),
      ...(p["bootloader.lock_bits"] ? { lock_bits: p["bootloader.lock_bits"] } : {}),
      ...(p["bootloader.low_fuses"] ? { lfuse: p["bootloader.low_fuses"] } : {}),
      ...(p["bootloader.unlock_bits"] ? { unlock_bits: p["bootloader.unlock_bits"] } : {}),
    },
    frameworks: ["arduino"],
    name: cpu ? `${unquote(props.name)} ${p["build.mcu"].replace(/^atmega/, "ATmega").replace(/p$/, "P")}` : unquote(props.name),
    upload: {
      ...(p["upload.disable_flushing"] === "true" ? { disable_flushing: true } : {}),
      maximum_ram_size: Number(p["upload.maximum_data_size"] ?? RAM[p["build.mcu"]]),
      maximum_size: Number(p["upload.maximum_size"]),
      // Gemma has no serial bootloader: its USBtiny-compatible loader is an avrdude programmer.
      protocol: p["upload.protocol"] ?? "usbtiny",
      require_upload_port: p["upload.protocol"] !== undefined,
      ...(p["upload.speed"] ? { speed: Number(p["upload.speed"]) } : {}),
      ...(p["upload.use_1200bps_touch"] === "true" ? { use_1200bps_touch: true } : {}),
      ...(p["upload.wait_for_upload_port"] === "true" ? { wait_for_upload_port: true } : {}),
    },
    vendor: "Arduino",
  };
  const board = pio[id] ? structuredClone(pio[id]) : fromTxt;
  if (!pio[id] && hwids.length === 0) delete board.build.hwids;
  // Port detection uses every id either source knows.
  if (pio[id] && hwids.length) {
    const known = new Set((board.build.hwids ?? []).map(([v, q]) => `${v}:${q}`.toLowerCase()));
    for (const pair of hwids) if (!known.has(pair.join(":").toLowerCase())) (board.build.hwids ??= []).push(pair);
  }
  // What the Arduino IDE needs beyond PlatformIO's shape: the FQBN, the
  // ARDUINO_<board> name and the USB descriptor defines (build.usb_flags).
  board.arduino = {
    fqbn: `arduino:avr:${txtId}${cpu ? `:cpu=${cpu}` : ""}`,
    board: p["build.board"],
    ...(p["build.vid"] || p["build.pid"] ? { vid: p["build.vid"] ?? "0x2341", pid: p["build.pid"] } : {}),
    ...(/usb_flags/.test(p["build.extra_flags"] ?? "") ? { usb_flags: true, usb_manufacturer: unquote(p["build.usb_manufacturer"]) || "Unknown" } : {}),
  };
  if (board.arduino.usb_flags && !board.arduino.vid) board.arduino.vid = "0x2341";
  boards[id] = board;
}
for (const id of Object.keys(pio)) if (!boards[id]) throw new Error(`PlatformIO board ${id} has no boards.txt mapping`);

writeFileSync(out, `${JSON.stringify(boards, null, 2)}\n`);
console.log(`wrote ${Object.keys(boards).length} boards to ${out}`);
