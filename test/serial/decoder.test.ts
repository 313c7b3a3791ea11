/**
 * esp32_exception_decoder with a real addr2line on a real ELF: the host's
 * gcc builds a small program, and a backtrace of its addresses is decoded
 * into `function at file:line`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { PassThrough } from "node:stream";
import { ExceptionDecoder, createFilterChain, decoderFromManifest, runMonitor } from "../../lib/serial/index.js";
import { MemoryReporter } from "../../lib/core/report.js";
import type { FirmwareManifest } from "../../lib/core/manifest.js";
import { requireTool, tempDir } from "../helpers/cli.js";
import { startPtyPair } from "../helpers/pty.js";
import { openDevice, waitUntil } from "../helpers/serial-device.js";

const run = promisify(execFile);

const SOURCE = `#include <stdio.h>
static int __attribute__((noinline)) leaf(int x) {
  return x * 3;
}
int __attribute__((noinline)) helper(int x) {
  return leaf(x) + 1;
}
int main(void) {
  printf("%d\\n", helper(2));
  return 0;
}
`;

/** Build the ELF (non-PIE, so addresses are absolute and fit 8 hex digits) and find two code addresses. */
async function buildElf(dir: string): Promise<{ elf: string; leaf: string; helper: string; src: string }> {
  const gcc = requireTool("gcc", "gcc");
  requireTool("addr2line", "binutils");
  const src = join(dir, "prog.c");
  const elf = join(dir, "firmware.elf");
  await writeFile(src, SOURCE);
  await run(gcc, ["-g", "-O0", "-no-pie", "-fno-pie", "-o", elf, src]);
  const { stdout } = await run("nm", [elf]);
  const addr = (name: string): string => {
    const m = new RegExp(`^([0-9a-f]+) [tT] ${name}$`, "m").exec(stdout);
    assert.ok(m, `symbol ${name} in nm output`);
    // A few bytes into the function: inside its body, as a return address would be.
    return `0x${(Number.parseInt(m[1]!, 16) + 4).toString(16).padStart(8, "0")}`;
  };
  return { elf, leaf: addr("leaf"), helper: addr("helper"), src };
}

describe("esp32_exception_decoder", () => {
  it("decodes a backtrace line into numbered 'function at file:line' lines", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const { elf, leaf, helper } = await buildElf(dir);
    const d = new ExceptionDecoder({ addr2line: "addr2line", elf, projectDir: dir }, new MemoryReporter());
    const line = `Backtrace: ${leaf}:0x3ffb1f20 ${helper}:0x3ffb1f40 0x7ffe0000:0x3ffb1f60\r\n`;
    const out = await d.rx(`Guru Meditation Error\r\n${line.slice(0, 20)}`);
    assert.equal(out, `Guru Meditation Error\r\n${line.slice(0, 20)}`, "nothing added before the line is complete");
    const rest = await d.rx(line.slice(20));
    const lines = rest.split("\n");
    assert.equal(lines[0], line.slice(20, -1));
    assert.match(lines[1]!, new RegExp(`^  #0  ${leaf} in leaf at prog\\.c:[23]$`));
    assert.match(lines[2]!, new RegExp(`^  #1  ${helper} in helper at prog\\.c:[56]$`));
    assert.equal(lines.length, 5, `unknown addresses are left out: ${JSON.stringify(rest)}`);
  });

  it("works inside the monitor on a pty, for an espressif32 env", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const { elf, leaf } = await buildElf(dir);
    const pair = await startPtyPair(dir);
    t.after(pair.stop);
    const device = await openDevice(pair.b);
    t.after(device.close);
    const reporter = new MemoryReporter();
    let out = "";
    const stdout = new PassThrough().setEncoding("utf8");
    stdout.on("data", (d: string) => (out += d));
    const done = runMonitor({
      port: pair.a,
      monitor: { speed: 115200, filters: ["esp32_exception_decoder"] },
      platform: "espressif32",
      decoder: { addr2line: "addr2line", elf, projectDir: dir },
      reporter,
      stdout,
      lockDir: join(dir, "locks"),
      until: /^END/,
      timeoutMs: 10_000,
    });
    await waitUntil(() => reporter.lines.some((l) => l.includes("8-N-1")), 5000, () => reporter.lines.join("\n"));
    await device.write(`Backtrace:${leaf}:0x3ffb1f20\r\nEND\r\n`);
    await done;
    assert.match(out, new RegExp(`Backtrace:${leaf}:0x3ffb1f20\\n  #0  ${leaf} in leaf at prog\\.c:[23]\\n\\nEND\\n`));
  });

  it("is a no-op for AVR envs", async () => {
    const chain = await createFilterChain(["esp32_exception_decoder"], { eol: "LF", reporter: new MemoryReporter(), logDir: "/tmp", platform: "atmelavr", decoder: { addr2line: "addr2line", elf: "/nonexistent.elf" } });
    assert.deepEqual(chain.filters.map((f) => f.name), []);
    assert.equal(await chain.rx("Backtrace: 0x400d1234:0x3ffb1f20\n"), "Backtrace: 0x400d1234:0x3ffb1f20\n");
  });

  it("takes addr2line and the ELF from the firmware manifest", () => {
    const m = {
      schema: 1,
      env: "esp32dev",
      platform: "espressif32",
      images: [{ path: "firmware.bin", sha256: "", sizeBytes: 1, format: "bin", role: "program" }],
      upload: {},
      tools: { gcc: "/store/xtensa/bin/xtensa-esp32-elf-gcc", objcopy: "/store/xtensa/bin/xtensa-esp32-elf-objcopy" },
      toolchain: "",
      builtAt: "",
    } as unknown as FirmwareManifest;
    assert.deepEqual(decoderFromManifest(m, "/p/.kiln/build/esp32dev", "/p"), { addr2line: "/store/xtensa/bin/xtensa-esp32-elf-addr2line", elf: "/p/.kiln/build/esp32dev/firmware.elf", projectDir: "/p" });
    const withTool = { ...m, tools: { addr2line: "/x/addr2line" }, images: [{ path: "out.elf", format: "elf" }] } as unknown as FirmwareManifest;
    assert.deepEqual(decoderFromManifest(withTool, "/b"), { addr2line: "/x/addr2line", elf: "/b/out.elf", projectDir: undefined });
    assert.equal(decoderFromManifest({ ...m, tools: {} }, "/b"), undefined);
  });
});
