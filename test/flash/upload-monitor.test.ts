/**
 * `kiln upload --monitor`: real avrdude flashes a fake Optiboot on a socat
 * pty, then the monitor opens the same port and shows what the "sketch" prints.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { kilnBin, repoRoot, tempDir, writeTree } from "../helpers/cli.js";
import { startPtyExec } from "../helpers/pty.js";
import { requireTool } from "../helpers/tools.js";
import { debianAvrIni } from "../helpers/avr.js";

it("kiln upload --monitor flashes, then monitors the same port", async (t) => {
  requireTool("avrdude", "avrdude");
  requireTool("avr-gcc", "gcc-avr");
  requireTool("socat", "socat");
  const dir = await tempDir("kiln-upmon-");
  await writeTree(dir, {
    "platformio.ini": debianAvrIni("uno", "monitor_speed = 115200\n"),
    "src/main.cpp": "#include <Arduino.h>\nvoid setup() { Serial.begin(115200); }\nvoid loop() { Serial.println(\"sketch says hi\"); delay(200); }\n",
  });
  const image = join(dir, "flash.bin");
  const pty = await startPtyExec(dir, [process.execPath, join(repoRoot, "test/helpers/fake-optiboot.mjs"), image], { env: { FAKE_SKETCH_OUTPUT: "sketch says hi" } });
  t.after(() => pty.stop());

  const child = spawn(process.execPath, [kilnBin, "upload", "-d", dir, "--port", pty.path, "--monitor"], {
    env: { ...process.env, KILN_HOME: join(dir, "home"), CI: "1", NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  const deadline = Date.now() + 90_000;
  while (!stdout.includes("sketch says hi") && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  assert.match(stdout, /sketch says hi/, `no monitor output\nstdout: ${stdout}\nstderr: ${stderr}`);
  child.kill("SIGINT");
  const code = await closed;
  assert.equal(code, 0, stderr);
  assert.match(stderr, /Uploaded uno to /);
  // What the monitor saw came after a real, verified flash of this firmware.
  const hex = join(dir, ".kiln/build/uno/firmware.hex");
  const written = await readFile(image);
  const hexText = await readFile(hex, "utf8");
  const firstRecord = hexText.split("\n")[0]!.trim();
  const bytes = Buffer.from(firstRecord.slice(9, 9 + 2 * parseInt(firstRecord.slice(1, 3), 16)), "hex");
  assert.deepEqual(written.subarray(0, bytes.length), bytes);
});
