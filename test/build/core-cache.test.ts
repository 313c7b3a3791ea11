/**
 * The shared core cache with the real Debian AVR toolchain and core: a core
 * compiled for one project is reused by another, and two kiln processes
 * building at once with an empty cache both succeed and leave one entry.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli, tempDir, writeTree, type CliResult } from "../helpers/cli.js";
import { requireTool } from "../helpers/tools.js";
import { debianAvrIni } from "../helpers/avr.js";

async function sketchProject(name: string, board = "uno"): Promise<string> {
  const dir = await tempDir(`kiln-core-${name}-`);
  await writeTree(dir, {
    "platformio.ini": debianAvrIni(board),
    "src/main.cpp": `#include <Arduino.h>\nvoid setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, !digitalRead(13)); delay(${name.length * 100}); }\n`,
  });
  return dir;
}

const compiledCore = (r: CliResult): string[] =>
  r.events.filter((e) => e.type === "compile-start" && String(e.file).includes("/cores/arduino/")).map((e) => String(e.file));

async function cacheEntries(home: string): Promise<string[]> {
  const root = join(home, "objects");
  const out: string[] = [];
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const key of await readdir(join(root, prefix))) if (!key.includes(".tmp-")) out.push(key);
  }
  return out;
}

describe("shared Arduino core cache", () => {
  before(() => {
    requireTool("avr-gcc", "gcc-avr");
    requireTool("avr-size", "binutils-avr");
  });

  it("a second project with the same board and toolchain reuses the compiled core", async () => {
    const home = await tempDir("kiln-home-");
    const a = await sketchProject("alpha");
    const b = await sketchProject("beta");
    const ra = await runCli(["build", "-d", a, "--json"], { env: { KILN_HOME: home } });
    assert.equal(ra.code, 0, ra.stderr + ra.stdout);
    assert.ok(compiledCore(ra).length > 20, "the first build did not compile the core");
    const rb = await runCli(["build", "-d", b, "--json"], { env: { KILN_HOME: home } });
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    assert.deepEqual(compiledCore(rb), [], "the second project recompiled the core");
    assert.deepEqual(rb.events.filter((e) => e.type === "compile-start").map((e) => e.file), ["src/main.cpp"]);
    assert.equal((await cacheEntries(home)).length, 1);
    // A different board (other MCU flags) is another core.
    const c = await sketchProject("gamma", "megaatmega2560");
    const rc = await runCli(["build", "-d", c, "--json"], { env: { KILN_HOME: home } });
    assert.equal(rc.code, 0, rc.stderr + rc.stdout);
    assert.ok(compiledCore(rc).length > 20);
    assert.equal((await cacheEntries(home)).length, 2);
  });

  it("two builds at once with an empty cache both succeed and leave one intact entry", async () => {
    const home = await tempDir("kiln-home-");
    const a = await sketchProject("one");
    const b = await sketchProject("two");
    const [ra, rb] = await Promise.all([
      runCli(["build", "-d", a, "--json", "-j", "1"], { env: { KILN_HOME: home } }),
      runCli(["build", "-d", b, "--json", "-j", "1"], { env: { KILN_HOME: home } }),
    ]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const entries = await cacheEntries(home);
    assert.equal(entries.length, 1, entries.join(", "));
    // A third project takes the core from the cache, and its firmware is the same size as a fresh build's.
    const c = await sketchProject("one");
    const rc = await runCli(["build", "-d", c, "--json"], { env: { KILN_HOME: home } });
    assert.equal(rc.code, 0, rc.stderr);
    assert.deepEqual(compiledCore(rc), []);
    const sizeA = ra.events.find((e) => e.type === "size");
    const sizeC = rc.events.find((e) => e.type === "size");
    assert.equal(sizeC?.flashBytes, sizeA?.flashBytes);
    const hexA = await readFile(join(a, ".kiln/build/uno/firmware.hex"), "utf8");
    const hexC = await readFile(join(c, ".kiln/build/uno/firmware.hex"), "utf8");
    assert.equal(hexC, hexA, "firmware linked against the cached core differs");
  });
});
