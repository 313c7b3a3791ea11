/**
 * The real avrdude 7.1 (`-c arduino`) writes a firmware through a socat pty to
 * a fake Optiboot bootloader (test/helpers/fake-optiboot.mjs); the bytes the
 * fake stored must equal the .hex content. Also: the Leonardo 1200-baud touch
 * and new-port hand-off, through injected port services.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { MemoryReporter } from "../../lib/core/report.js";
import type { FirmwareManifest } from "../../lib/core/manifest.js";
import { uploadFirmware, type PortServices } from "../../lib/flash/index.js";
import { avrBoard, avrUploadSettings } from "../../lib/platforms/atmelavr.js";
import type { ResolvedEnv } from "../../lib/project/types.js";
import { repoRoot, requireTool, tempDir } from "../helpers/cli.js";
import { startPtyExec } from "../helpers/pty.js";
import { access } from "node:fs/promises";

const exec = promisify(execFile);
const fakeOptiboot = join(repoRoot, "test", "helpers", "fake-optiboot.mjs");

/** Intel HEX → bytes from address 0 (data records only). */
export function hexToBinary(text: string): Buffer {
  const out: number[] = [];
  let base = 0;
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith(":")) continue;
    const bytes = Buffer.from(line.slice(1), "hex");
    const len = bytes[0]!;
    const addr = (bytes[1]! << 8) | bytes[2]!;
    const type = bytes[3]!;
    if (type === 0) for (let i = 0; i < len; i++) out[base + addr + i] = bytes[4 + i]!;
    else if (type === 2) base = ((bytes[4]! << 8) | bytes[5]!) * 16;
    else if (type === 4) base = ((bytes[4]! << 8) | bytes[5]!) << 16;
  }
  return Buffer.from(Array.from(out, (b) => b ?? 0xff));
}

async function makeFirmware(dir: string, boardId: string, upload: Partial<ResolvedEnv["upload"]> = {}): Promise<string> {
  const avrGcc = requireTool("avr-gcc", "gcc-avr");
  const avrdude = requireTool("avrdude", "avrdude");
  const board = avrBoard(boardId);
  // Big enough for several pages, with every byte value.
  const src = `const unsigned char table[1500] __attribute__((used)) = { ${Array.from({ length: 1500 }, (_, i) => (i * 7) % 256).join(",")} };\nint main(void) { volatile unsigned char x = 0; for (;;) x += table[x]; }\n`;
  await writeFile(join(dir, "m.c"), src);
  await exec(avrGcc, [`-mmcu=${board.mcu}`, "-Os", join(dir, "m.c"), "-o", join(dir, "firmware.elf")]);
  await exec("avr-objcopy", ["-O", "ihex", "-R", ".eeprom", join(dir, "firmware.elf"), join(dir, "firmware.hex")]);
  const manifest: FirmwareManifest = {
    schema: 1,
    env: boardId,
    platform: "atmelavr",
    board: { id: board.id, name: board.name, mcu: board.mcu, fCpu: board.fCpu, usbIds: board.usbIds },
    images: [{ path: "firmware.hex", sha256: "", sizeBytes: 0, format: "hex", role: "flash" }],
    upload: avrUploadSettings({ name: boardId, upload: { flags: [], ...upload } } as unknown as ResolvedEnv, board),
    tools: { avrdude, "avrdude.conf": "/etc/avrdude.conf" },
    toolchain: "avr-gcc",
    builtAt: new Date().toISOString(),
  };
  const path = join(dir, "manifest.json");
  await writeFile(path, JSON.stringify(manifest));
  return path;
}

describe("uploadFirmware with real avrdude and a fake Optiboot", () => {
  it("uno: the fake receives exactly the .hex bytes, verified", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const manifestPath = await makeFirmware(dir, "uno");
    const image = join(dir, "flash.bin");
    await access(fakeOptiboot);
    const pty = await startPtyExec(dir, [process.execPath, fakeOptiboot, image]);
    t.after(() => pty.stop());
    const reporter = new MemoryReporter();
    const noPorts: PortServices = {
      listPorts: async () => [],
      findPort: async ({ explicit }) => explicit ?? assert.fail("no explicit port"),
      touch1200: async () => assert.fail("uno must not be touched"),
      waitForNewPort: async () => undefined,
    };
    // A fake that died would leave avrdude spinning on a hung-up pty: bound the run.
    const r = await uploadFirmware(manifestPath, { reporter, port: pty.path, ports: noPorts, verbose: true, signal: AbortSignal.timeout(60_000) });
    assert.equal(r.protocol, "arduino");
    assert.ok(r.argv.includes(`-P${pty.path}`));
    const hex = hexToBinary(await readFile(join(dir, "firmware.hex"), "utf8"));
    const written = await readFile(image);
    assert.ok(hex.length > 1500);
    assert.deepEqual(written.subarray(0, hex.length), hex);
    assert.ok(written.subarray(hex.length).every((b) => b === 0xff), "nothing written beyond the image");
    const log = (await readFile(`${image}.log`, "utf8")).trim().split("\n");
    assert.ok(log.filter((l) => l === "0x74").length > 0, "avrdude read the flash back (verify)");
    assert.ok(reporter.lines.some((l) => /bytes of flash verified/.test(l)), reporter.lines.join("\n"));
  });

  it("a board that does not answer fails with exit code 7 and a hint", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const manifestPath = await makeFirmware(dir, "uno");
    const ports: PortServices = { listPorts: async () => [], findPort: async ({ explicit }) => explicit!, touch1200: async () => {}, waitForNewPort: async () => undefined };
    const signal = AbortSignal.timeout(60_000);
    await assert.rejects(uploadFirmware(manifestPath, { reporter: new MemoryReporter(), port: join(dir, "no-such-tty"), ports, signal }), (e: { exitCode: number; code: string; hint?: string }) => {
      assert.equal(e.exitCode, 7);
      assert.equal(e.code, "KILN_TOOL_FAILED");
      assert.match(e.hint ?? "", /port/);
      return true;
    });
  });

  it("leonardo: 1200-baud touch on the sketch port, avrdude on the bootloader's new port", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const manifestPath = await makeFirmware(dir, "leonardo");
    const calls: string[] = [];
    const ports: PortServices = {
      listPorts: async () => [{ path: "/dev/ttyACM0" }],
      findPort: async (o) => {
        calls.push(`find ${o.explicit ?? ""} ${o.usbIds.join(",")}`);
        return "/dev/ttyACM0";
      },
      touch1200: async (p) => void calls.push(`touch ${p}`),
      waitForNewPort: async (before, ms) => {
        calls.push(`wait ${JSON.stringify(before)} ${ms}`);
        return "/dev/ttyACM1";
      },
    };
    const dry = await uploadFirmware(manifestPath, { reporter: new MemoryReporter(), ports, dryRun: true });
    assert.equal(dry.touched, true);
    assert.deepEqual(calls, ["find  2341:8036,2341:0036,2a03:0036,2a03:8036"]);
    assert.deepEqual(dry.argv.slice(1), ["-C/etc/avrdude.conf", "-patmega32u4", "-cavr109", "-P/dev/ttyACM0", "-b57600", "-D", `-Uflash:w:${join(dir, "firmware.hex")}:i`]);
    // A real run: avrdude is pointed at a fake bootloader port that does not exist, so it fails after the dance.
    calls.length = 0;
    await assert.rejects(uploadFirmware(manifestPath, { reporter: new MemoryReporter(), ports, signal: AbortSignal.timeout(60_000) }), { exitCode: 7 });
    assert.deepEqual(calls.slice(0, 3), ["find  2341:8036,2341:0036,2a03:0036,2a03:8036", "touch /dev/ttyACM0", 'wait [{"path":"/dev/ttyACM0"}] 8000']);
  });

  it("a missing manifest says to build first", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, "x"));
    await assert.rejects(uploadFirmware(join(dir, "x", "manifest.json"), { reporter: new MemoryReporter() }), { code: "KILN_NO_FIRMWARE" });
  });
});
