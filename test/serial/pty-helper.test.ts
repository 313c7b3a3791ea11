import { test } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { startPtyPair, startPtyExec } from "../helpers/pty.js";
import { tempDir } from "../helpers/cli.js";

async function readSome(path: string, wanted: string, timeoutMs = 3000): Promise<string> {
  const fh = await open(path, "r+");
  try {
    let got = "";
    const deadline = Date.now() + timeoutMs;
    const buf = Buffer.alloc(256);
    while (!got.includes(wanted) && Date.now() < deadline) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      got += buf.subarray(0, bytesRead).toString();
    }
    return got;
  } finally {
    await fh.close();
  }
}

test("startPtyPair links two ptys and removes the links on stop", async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pair = await startPtyPair(dir);
  t.after(pair.stop);
  const reading = readSome(pair.b, "hello");
  const w = await open(pair.a, "r+");
  await w.write("hello\n");
  await w.close();
  assert.match(await reading, /hello/);
  await pair.stop();
  await assert.rejects(readFile(pair.a), { code: "ENOENT" });
});

test("startPtyExec puts a program behind a pty", async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dev = await startPtyExec(dir, [process.execPath, "-e", "process.stdin.on('data', d => process.stdout.write(d.toString().toUpperCase()))"]);
  t.after(dev.stop);
  const fh = await open(dev.path, "r+");
  await fh.write("ping\n");
  const buf = Buffer.alloc(64);
  const { bytesRead } = await fh.read(buf, 0, 64, null);
  await fh.close();
  assert.match(buf.subarray(0, bytesRead).toString(), /PING/);
  await dev.stop();
  await assert.rejects(readFile(join(dir, "tty")), { code: "ENOENT" });
});
