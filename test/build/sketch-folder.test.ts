/**
 * arduino-cli style: `kiln build <sketch folder> --board ID` with no
 * platformio.ini, using the packages the user's settings name for the
 * platform (here Debian's system toolchain and core).
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, tempDir, writeTree } from "../helpers/cli.js";
import { requireTool } from "../helpers/tools.js";
import { DEBIAN_AVR_PACKAGES } from "../helpers/avr.js";

const SETTINGS = JSON.stringify({ platformPackages: { atmelavr: DEBIAN_AVR_PACKAGES } });

describe("sketch folder without a config", () => {
  before(() => requireTool("avr-gcc", "gcc-avr"));

  it("builds with --board, several .ino files, a function used before its definition", async () => {
    const root = await tempDir("kiln-sketch-");
    const home = join(root, "home");
    await writeTree(root, {
      "home/settings.json": SETTINGS,
      "Blinker/Blinker.ino": "void setup() { pinMode(13, OUTPUT); }\nvoid loop() { blinkTimes(3); }\n",
      "Blinker/helpers.ino": "void blinkTimes(int n) { for (int i = 0; i < n; i++) { digitalWrite(13, HIGH); delay(100); digitalWrite(13, LOW); delay(100); } }\n",
    });
    const r = await runCli(["build", join(root, "Blinker"), "--board", "uno", "--json"], { env: { KILN_HOME: home } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.ok(r.events.some((e) => e.type === "compile-start" && String(e.file).endsWith("Blinker.ino.cpp")));
    const size = r.events.find((e) => e.type === "size");
    assert.ok(Number(size?.flashBytes) > 500 && size?.flashMaxBytes === 32256, JSON.stringify(size));
  });

  it("an unknown --board exits 3 with the closest ids", async () => {
    const root = await tempDir("kiln-sketch-");
    await writeTree(root, { "S/S.ino": "void setup(){}\nvoid loop(){}\n" });
    const r = await runCli(["build", join(root, "S"), "--board", "unoo"], { env: { KILN_HOME: join(root, "home") } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /unknown board 'unoo'/);
    assert.match(r.stderr, /'uno'/);
  });

  it("a malformed platformPackages setting is a configuration error naming the file", async () => {
    const root = await tempDir("kiln-sketch-");
    await writeTree(root, { "home/settings.json": JSON.stringify({ platformPackages: { atmelavr: "toolchain-atmelavr @ symlink:///usr" } }), "S/S.ino": "void setup(){}\nvoid loop(){}\n" });
    const r = await runCli(["build", join(root, "S"), "--board", "uno"], { env: { KILN_HOME: join(root, "home") } });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /settings\.json/);
    assert.match(r.stderr, /platformPackages/);
  });
});
