#!/usr/bin/env node
/**
 * A fake Optiboot (STK500v1) bootloader on stdin/stdout, for running the real
 * avrdude -c arduino against it behind a socat pty (flashing.md §9.2).
 *
 *   node fake-optiboot.mjs <image-out.bin> [flashBytes=32768] [signature=1e950f]
 *
 * Keeps a flash image filled with 0xFF, so avrdude's verify reads back what it
 * wrote, and writes the image to <image-out.bin> on LEAVE_PROGMODE (atomically:
 * temp file, then rename). Appends one line per command to <image-out.bin>.log.
 * With FAKE_SKETCH_OUTPUT set, it then prints that text every 200 ms, like the
 * freshly flashed sketch would (for `kiln upload --monitor`).
 */
import { appendFileSync, renameSync, writeFileSync } from "node:fs";

const [outFile, sizeArg, sigArg] = process.argv.slice(2);
if (!outFile) {
  process.stderr.write("usage: fake-optiboot.mjs <image-out.bin> [flashBytes] [signature]\n");
  process.exit(2);
}
const flash = Buffer.alloc(Number(sizeArg ?? 32768), 0xff);
const eeprom = Buffer.alloc(1024, 0xff);
const signature = Buffer.from(sigArg ?? "1e950f", "hex");
const INSYNC = 0x14;
const OK = 0x10;
const NOSYNC = 0x15;
const EOP = 0x20;

/** opcode → number of argument bytes before EOP (PROG_PAGE's data is counted separately). */
const ARGS = { 0x30: 0, 0x31: 0, 0x41: 1, 0x42: 20, 0x45: 5, 0x50: 0, 0x51: 0, 0x52: 0, 0x55: 2, 0x56: 4, 0x64: 3, 0x74: 3, 0x75: 0 };

let buf = Buffer.alloc(0);
let address = 0;
let sketchTimer;

function log(line) {
  appendFileSync(`${outFile}.log`, `${line}\n`);
}

function reply(data) {
  process.stdout.write(Buffer.concat([Buffer.from([INSYNC]), data ?? Buffer.alloc(0), Buffer.from([OK])]));
}

function memory(type) {
  return type === 0x45 /* 'E' */ ? eeprom : flash;
}

function handle() {
  for (;;) {
    if (buf.length === 0) return;
    const op = buf[0];
    const argc = ARGS[op];
    if (argc === undefined) {
      buf = buf.subarray(1);
      process.stdout.write(Buffer.from([NOSYNC]));
      continue;
    }
    let need = 1 + argc;
    let dataLen = 0;
    if (op === 0x64) {
      if (buf.length < 4) return;
      dataLen = (buf[1] << 8) | buf[2];
      need += dataLen;
    }
    if (buf.length < need + 1) return;
    if (buf[need] !== EOP) {
      buf = buf.subarray(1);
      process.stdout.write(Buffer.from([NOSYNC]));
      continue;
    }
    const args = buf.subarray(1, need);
    buf = buf.subarray(need + 1);
    log(`0x${op.toString(16)}`);
    switch (op) {
      case 0x41: {
        const id = args[0];
        reply(Buffer.from([id === 0x80 ? 2 : id === 0x81 || id === 0x82 ? 4 : 3]));
        break;
      }
      case 0x55:
        address = args[0] | (args[1] << 8);
        reply();
        break;
      case 0x56:
        reply(Buffer.from([0]));
        break;
      case 0x64: {
        const type = args[2];
        const data = args.subarray(3, 3 + dataLen);
        const mem = memory(type);
        const at = type === 0x45 ? address : address * 2;
        data.copy(mem, at);
        reply();
        break;
      }
      case 0x74: {
        const len = (args[0] << 8) | args[1];
        const type = args[2];
        const mem = memory(type);
        const at = type === 0x45 ? address : address * 2;
        const out = Buffer.alloc(len, 0xff);
        mem.copy(out, 0, at, Math.min(mem.length, at + len));
        reply(out);
        break;
      }
      case 0x75:
        reply(signature);
        break;
      case 0x51: {
        const tmp = `${outFile}.tmp`;
        writeFileSync(tmp, flash);
        renameSync(tmp, outFile);
        reply();
        // Like a board leaving its bootloader for the sketch: print a line now and then ($FAKE_SKETCH_OUTPUT).
        if (process.env.FAKE_SKETCH_OUTPUT && !sketchTimer) {
          sketchTimer = setInterval(() => process.stdout.write(`${process.env.FAKE_SKETCH_OUTPUT}\r\n`), 200);
        }
        break;
      }
      default:
        reply();
    }
  }
}

process.stdin.on("data", (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  handle();
});
process.stdin.on("end", () => process.exit(0));
