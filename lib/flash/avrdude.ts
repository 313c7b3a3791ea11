/**
 * avrdude command lines from a firmware manifest (pure; no I/O).
 *
 * The shape follows Arduino AVR's platform.txt upload pattern
 * (`-C conf -v|-V -p mcu -c protocol -P port -b speed -D -Uflash:w:hex:i`)
 * for serial bootloaders (Optiboot `arduino`, Mega `wiring`, Caterina
 * `avr109`), and its "upload using programmer" pattern (no `-D`, so avrdude
 * erases the chip first, which an ISP write needs) for programmers: USBasp,
 * USBtinyISP, AVRISP mkII, Atmel-ICE, an Arduino as ISP (`stk500v1` at
 * 19200 baud on a serial port)…
 */
import { join } from "node:path";
import type { FirmwareManifest } from "../core/manifest.js";
import { UsageError } from "../core/errors.js";

/** Protocols spoken by bootloaders on a serial port: need port and speed, keep the bootloader (`-D`). */
const BOOTLOADERS = new Set(["arduino", "wiring", "avr109", "butterfly", "urclock"]);

/** Programmers reached over a serial port: need `-P`; speed when known. */
const SERIAL_PROGRAMMERS: Record<string, { protocol: string; speedBps?: number }> = {
  stk500v1: { protocol: "stk500v1", speedBps: 19200 },
  arduinoasisp: { protocol: "stk500v1", speedBps: 19200 },
  arduino_as_isp: { protocol: "stk500v1", speedBps: 19200 },
  "arduino-as-isp": { protocol: "stk500v1", speedBps: 19200 },
  arduinoisp: { protocol: "stk500v1", speedBps: 19200 },
  avrisp: { protocol: "stk500v1" },
  stk500: { protocol: "stk500" },
  stk500v2: { protocol: "stk500v2" },
  avrispv2: { protocol: "avrispv2" },
  buspirate: { protocol: "buspirate" },
  serialupdi: { protocol: "serialupdi", speedBps: 115200 },
  jtag2updi: { protocol: "jtag2updi" },
};

/** Programmers on USB: avrdude finds them itself (`-P usb` only when asked). */
const USB_PROGRAMMERS: Record<string, string> = {
  usbasp: "usbasp",
  "usbasp-clone": "usbasp-clone",
  usbtiny: "usbtiny",
  usbtinyisp: "usbtiny",
  avrispmkii: "avrispmkII",
  atmelice: "atmelice_isp",
  atmelice_isp: "atmelice_isp",
  dragon_isp: "dragon_isp",
  jtag3isp: "jtag3isp",
  pickit2: "pickit2",
  pickit4_isp: "pickit4_isp",
  snap_isp: "snap_isp",
  ft232r: "ft232r",
};

export type AvrdudeKind = "bootloader" | "serial-programmer" | "usb-programmer";

export interface AvrdudeTarget {
  /** What avrdude gets after `-c`. */
  protocol: string;
  kind: AvrdudeKind;
  /** `-b`, when the connection has a speed. */
  speedBps?: number | undefined;
  /** A serial port must be found before running. */
  needsPort: boolean;
  /** Leonardo/Micro: 1200-baud touch, then wait for the bootloader's new port. */
  touch1200: boolean;
  waitForNewPort: boolean;
}

export interface AvrdudeOverrides {
  /** `--protocol` / a programmer name; overrides the manifest's protocol. */
  protocol?: string | undefined;
  speedBps?: number | undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}
function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** How to talk to the board: protocol, speed, port and reset needs. Throws UsageError for `custom` (not supported). */
export function avrdudeTarget(manifest: FirmwareManifest, overrides: AvrdudeOverrides = {}): AvrdudeTarget {
  const u = manifest.upload;
  const requested = (overrides.protocol ?? str(u.protocol) ?? str(u.boardProtocol) ?? "arduino").trim();
  const key = requested.toLowerCase();
  const userSpeed = overrides.speedBps ?? num(u.speed);
  if (key === "custom") throw new UsageError("upload_protocol = custom is not supported by kiln", { hint: "use an avrdude programmer id (usbasp, stk500v1, …) with upload_flags" });
  if (BOOTLOADERS.has(key)) {
    const isBoardLoader = key === (str(u.boardProtocol) ?? "").toLowerCase();
    return {
      protocol: key,
      kind: "bootloader",
      speedBps: userSpeed ?? num(u.boardSpeed) ?? 115200,
      needsPort: true,
      touch1200: isBoardLoader && u.use1200bpsTouch === true,
      waitForNewPort: isBoardLoader && u.waitForUploadPort === true,
    };
  }
  const serial = SERIAL_PROGRAMMERS[key];
  if (serial) return { protocol: serial.protocol, kind: "serial-programmer", speedBps: userSpeed ?? serial.speedBps, needsPort: true, touch1200: false, waitForNewPort: false };
  const usb = USB_PROGRAMMERS[key];
  return { protocol: usb ?? requested, kind: "usb-programmer", speedBps: undefined, needsPort: false, touch1200: false, waitForNewPort: false };
}

export interface AvrdudeArgvOptions {
  /** Directory of the manifest (image paths are relative to it). */
  manifestDir: string;
  target: AvrdudeTarget;
  port?: string | undefined;
  /** upload_flags, after `$UPLOAD_PORT`/`$UPLOAD_SPEED`/`$BOARD_MCU`/`$UPLOAD_PROTOCOL` substitution. */
  extraFlags?: readonly string[] | undefined;
  /** Verify after writing (avrdude's default); false adds `-V`. */
  verify?: boolean | undefined;
  verbose?: boolean | undefined;
  /** Write the EEPROM image too (`-Ueeprom:w:…`). */
  eeprom?: boolean | undefined;
}

/** The flash image (hex) of a manifest, absolute. */
export function flashImagePath(manifest: FirmwareManifest, manifestDir: string): string {
  const image = manifest.images.find((i) => i.role === "flash" && i.format === "hex") ?? manifest.images.find((i) => i.format === "hex");
  if (!image) throw new UsageError(`the firmware manifest in ${manifestDir} has no .hex image to flash`, { hint: "rebuild with 'kiln build'" });
  return join(manifestDir, image.path);
}

/** Substitute PlatformIO's `$UPLOAD_PORT`-style variables in upload_flags. */
export function expandUploadFlags(flags: readonly string[], vars: Record<string, string | undefined>): string[] {
  return flags.map((f) => f.replace(/\$\{?(UPLOAD_PORT|UPLOAD_SPEED|BOARD_MCU|UPLOAD_PROTOCOL|BOARD_F_CPU)\}?/g, (_, name: string) => vars[name] ?? ""));
}

/** The exact avrdude argv for a manifest. */
export function avrdudeArgv(manifest: FirmwareManifest, opts: AvrdudeArgvOptions): string[] {
  const { target } = opts;
  const mcu = str(manifest.upload.mcu) ?? manifest.board?.mcu;
  if (!mcu) throw new UsageError("the firmware manifest names no MCU", { hint: "rebuild with 'kiln build'" });
  const argv = [manifest.tools.avrdude ?? "avrdude"];
  const conf = manifest.tools["avrdude.conf"];
  if (conf) argv.push(`-C${conf}`);
  if (opts.verbose) argv.push("-v");
  if (opts.verify === false) argv.push("-V");
  argv.push(`-p${mcu}`, `-c${target.protocol}`);
  if (opts.port) argv.push(`-P${opts.port}`);
  if (target.speedBps !== undefined && target.kind !== "usb-programmer") argv.push(`-b${target.speedBps}`);
  if (target.kind === "bootloader") argv.push("-D");
  const vars = {
    UPLOAD_PORT: opts.port,
    UPLOAD_SPEED: target.speedBps === undefined ? undefined : String(target.speedBps),
    BOARD_MCU: mcu,
    UPLOAD_PROTOCOL: target.protocol,
    BOARD_F_CPU: manifest.board ? `${manifest.board.fCpu}L` : undefined,
  };
  argv.push(...expandUploadFlags(opts.extraFlags ?? [], vars));
  argv.push(`-Uflash:w:${flashImagePath(manifest, opts.manifestDir)}:i`);
  if (opts.eeprom) {
    const eep = manifest.images.find((i) => i.role === "eeprom");
    if (eep) argv.push(`-Ueeprom:w:${join(opts.manifestDir, eep.path)}:i`);
  }
  return argv;
}
