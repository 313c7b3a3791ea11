/**
 * Golden avrdude command lines per board and protocol (arduino-cli's
 * upload_mock style): the argv is the contract with avrdude.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { FirmwareManifest } from "../../lib/core/manifest.js";
import { avrBoard, avrUploadSettings } from "../../lib/platforms/atmelavr.js";
import type { ResolvedEnv } from "../../lib/project/types.js";
import { avrdudeArgv, avrdudeTarget, expandUploadFlags } from "../../lib/flash/avrdude.js";

function env(upload: Partial<ResolvedEnv["upload"]> = {}): ResolvedEnv {
  return { name: "e", upload: { flags: [], ...upload } } as unknown as ResolvedEnv;
}

function manifest(boardId: string, upload: Partial<ResolvedEnv["upload"]> = {}, tools: Record<string, string> = { avrdude: "/opt/avrdude/bin/avrdude", "avrdude.conf": "/opt/avrdude/etc/avrdude.conf" }): FirmwareManifest {
  const board = avrBoard(boardId);
  return {
    schema: 1,
    env: boardId,
    platform: "atmelavr",
    board: { id: board.id, name: board.name, mcu: board.mcu, fCpu: board.fCpu, usbIds: board.usbIds },
    images: [
      { path: "firmware.hex", sha256: "x", sizeBytes: 1, format: "hex", role: "flash" },
      { path: "firmware.eep", sha256: "y", sizeBytes: 1, format: "eep", role: "eeprom" },
    ],
    upload: avrUploadSettings(env(upload), board),
    tools,
    toolchain: "avr-gcc",
    builtAt: "2026-01-01T00:00:00Z",
  };
}

function argv(boardId: string, upload: Partial<ResolvedEnv["upload"]> = {}, port: string | undefined = "/dev/ttyACM0", extra: { verify?: boolean; verbose?: boolean; eeprom?: boolean } = {}): string[] {
  const m = manifest(boardId, upload);
  const target = avrdudeTarget(m);
  return avrdudeArgv(m, { manifestDir: "/p/.kiln/build/e", target, port: target.needsPort ? port : upload.port, extraFlags: m.upload.flags as string[], ...extra });
}

const A = "/opt/avrdude/bin/avrdude";
const C = "-C/opt/avrdude/etc/avrdude.conf";
const HEX = "-Uflash:w:/p/.kiln/build/e/firmware.hex:i";

describe("avrdude argv", () => {
  it("uno: arduino (Optiboot) at 115200, keeps the bootloader", () => {
    assert.deepEqual(argv("uno"), [A, C, "-patmega328p", "-carduino", "-P/dev/ttyACM0", "-b115200", "-D", HEX]);
  });
  it("nanoatmega328 (old bootloader): 57600", () => {
    assert.deepEqual(argv("nanoatmega328", {}, "/dev/ttyUSB0"), [A, C, "-patmega328p", "-carduino", "-P/dev/ttyUSB0", "-b57600", "-D", HEX]);
  });
  it("nanoatmega328new: 115200", () => {
    assert.deepEqual(argv("nanoatmega328new", {}, "/dev/ttyUSB0"), [A, C, "-patmega328p", "-carduino", "-P/dev/ttyUSB0", "-b115200", "-D", HEX]);
  });
  it("pro8MHzatmega328: 57600", () => {
    assert.deepEqual(argv("pro8MHzatmega328", {}, "/dev/ttyUSB0"), [A, C, "-patmega328p", "-carduino", "-P/dev/ttyUSB0", "-b57600", "-D", HEX]);
  });
  it("megaatmega2560: wiring (STK500v2) at 115200", () => {
    assert.deepEqual(argv("megaatmega2560"), [A, C, "-patmega2560", "-cwiring", "-P/dev/ttyACM0", "-b115200", "-D", HEX]);
  });
  it("leonardo and micro: avr109 at 57600 after the 1200-baud touch", () => {
    for (const id of ["leonardo", "micro"]) {
      const m = manifest(id);
      const target = avrdudeTarget(m);
      assert.equal(target.touch1200, true);
      assert.equal(target.waitForNewPort, true);
      assert.deepEqual(argv(id, {}, "/dev/ttyACM1"), [A, C, "-patmega32u4", "-cavr109", "-P/dev/ttyACM1", "-b57600", "-D", HEX]);
    }
  });
  it("upload_speed overrides the board's speed", () => {
    assert.deepEqual(argv("uno", { speed: 57600 }), [A, C, "-patmega328p", "-carduino", "-P/dev/ttyACM0", "-b57600", "-D", HEX]);
  });
  it("usbasp programmer: no port, no speed, no -D (chip erase)", () => {
    assert.deepEqual(argv("uno", { protocol: "usbasp" }), [A, C, "-patmega328p", "-cusbasp", HEX]);
  });
  it("usbasp with upload_flags", () => {
    assert.deepEqual(argv("uno", { protocol: "usbasp", flags: ["-Pusb", "-B10"] }), [A, C, "-patmega328p", "-cusbasp", "-Pusb", "-B10", HEX]);
  });
  it("usbtiny and avrispmkII are USB programmers", () => {
    assert.deepEqual(argv("uno", { protocol: "usbtiny" }), [A, C, "-patmega328p", "-cusbtiny", HEX]);
    assert.deepEqual(argv("megaatmega2560", { protocol: "avrispmkII" }), [A, C, "-patmega2560", "-cavrispmkII", HEX]);
  });
  it("stk500v1 (Arduino as ISP): serial port at 19200, no -D", () => {
    assert.deepEqual(argv("uno", { protocol: "stk500v1" }, "/dev/ttyUSB1"), [A, C, "-patmega328p", "-cstk500v1", "-P/dev/ttyUSB1", "-b19200", HEX]);
  });
  it("arduinoasisp alias with upload_speed and PlatformIO-style $UPLOAD_PORT flags", () => {
    assert.deepEqual(argv("uno", { protocol: "arduinoasisp", speed: 38400, flags: ["-e", "-P$UPLOAD_PORT", "-b${UPLOAD_SPEED}"] }, "/dev/ttyUSB1"), [
      A,
      C,
      "-patmega328p",
      "-cstk500v1",
      "-P/dev/ttyUSB1",
      "-b38400",
      "-e",
      "-P/dev/ttyUSB1",
      "-b38400",
      HEX,
    ]);
  });
  it("gemma: its USBtiny loader is a programmer", () => {
    assert.deepEqual(argv("gemma"), [A, C, "-pattiny85", "-cusbtiny", HEX]);
  });
  it("--no-verify adds -V, --verbose -v, --eeprom writes the .eep", () => {
    assert.deepEqual(argv("uno", {}, "/dev/ttyACM0", { verify: false, verbose: true, eeprom: true }), [
      A,
      C,
      "-v",
      "-V",
      "-patmega328p",
      "-carduino",
      "-P/dev/ttyACM0",
      "-b115200",
      "-D",
      HEX,
      "-Ueeprom:w:/p/.kiln/build/e/firmware.eep:i",
    ]);
  });
  it("without a packaged avrdude, the one on PATH and its default config", () => {
    const m = manifest("uno", {}, {});
    assert.deepEqual(avrdudeArgv(m, { manifestDir: "/b", target: avrdudeTarget(m), port: "/dev/ttyACM0" }), ["avrdude", "-patmega328p", "-carduino", "-P/dev/ttyACM0", "-b115200", "-D", "-Uflash:w:/b/firmware.hex:i"]);
  });
  it("upload_protocol = custom is refused with a hint", () => {
    assert.throws(() => avrdudeTarget(manifest("uno", { protocol: "custom" })), { code: "KILN_USAGE" });
  });
  it("expands only the known variables", () => {
    assert.deepEqual(expandUploadFlags(["-P$UPLOAD_PORT", "$HOME", "-p${BOARD_MCU}"], { UPLOAD_PORT: "/dev/x", BOARD_MCU: "m" }), ["-P/dev/x", "$HOME", "-pm"]);
  });
});
