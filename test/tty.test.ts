/**
 * kiln at a terminal: a real pty from script(1). The spinner (ora) redraws
 * its line in place, which needs the terminal's width; a pty nobody sized
 * reports 0 columns, and kiln must then print plain lines instead of
 * spinning forever.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { kilnBin, tempDir, writeTree } from "./helpers/cli.js";
import { requireTool } from "./helpers/tools.js";
import { makeArchive, sha256, startServer } from "./toolchains/fixtures.js";

/** Run kiln under script(1); `stty` is run first in the pty when given (e.g. "cols 100 rows 30"). */
function atTerminal(args: string[], env: Record<string, string>, stty?: string): Promise<{ code: number | null; out: string }> {
  const scriptTool = requireTool("script", "bsdutils");
  const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
  const cmd = `${stty ? `stty ${stty}; ` : ""}${[process.execPath, kilnBin, ...args].map(quote).join(" ")}`;
  // Not in CI: a CI variable, even empty, turns kiln's and ora's terminal output off.
  const { CI: _ci, ...rest } = process.env;
  return new Promise((resolve) => {
    const child = spawn(scriptTool, ["-qfec", cmd, "/dev/null"], { env: { ...rest, ...env, TERM: "xterm", NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      // A spinner that never stops redrawing floods the pty: stop it rather than fill the disk.
      if (out.length > 1_000_000) child.kill("SIGKILL");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const project = { "platformio.ini": "[env:native]\nplatform = native\n", "src/main.c": '#include "util.h"\nint main(void){return util();}\n', "src/util.c": "int util(void){return 0;}\n", "include/util.h": "int util(void);\n" };

/** Build a small native project at a terminal sized by `stty`; the run must end, without a flood. */
async function buildAt(stty: string, maxOutput: number): Promise<string> {
  const dir = await tempDir("kiln-tty-");
  await writeTree(dir, project);
  const r = await atTerminal(["build", "-d", dir], { KILN_HOME: join(dir, "home") }, stty);
  assert.equal(r.code, 0, r.out.slice(0, 2000));
  assert.ok(r.out.length < maxOutput, `${r.out.length} bytes of output`);
  assert.match(r.out, /native/);
  return r.out;
}

test("on a pty that reports no width, kiln prints plain lines and finishes", async () => {
  const out = await buildAt("cols 0 rows 0", 10_000);
  assert.doesNotMatch(out, /\x1b\[1A/, "no cursor-up redraws");
});

test("on a sized pty, the spinner runs and ends on the build's result line", async () => {
  const out = await buildAt("cols 100 rows 30", 100_000);
  assert.match(out, /\x1b\[\?25l/, "ora hid the cursor: the spinner ran");
  assert.match(out, /✔/);
});

test("installing two packages at a terminal: one spinner for both, a line as each finishes", async () => {
  const s = await startServer();
  try {
    const gcc = await makeArchive("tar.gz", { "bin/avr-gcc": "g" }, "avr-gcc");
    const avrdude = await makeArchive("tar.gz", { "bin/avrdude": "a" }, "avrdude");
    s.routes.set("/gcc.tgz", { body: gcc, mode: "slow" });
    s.routes.set("/avrdude.tgz", { body: avrdude });
    const dir = await tempDir("kiln-tty-");
    await writeTree(dir, {
      "platformio.ini": `[env:uno]\nplatform = atmelavr\nboard = uno\nplatform_packages =\n  toolchain-atmelavr @ ${s.url}/gcc.tgz#sha256=${sha256(gcc)}\n  tool-avrdude @ ${s.url}/avrdude.tgz#sha256=${sha256(avrdude)}\n`,
    });
    const r = await atTerminal(["pkg", "install", "-d", dir], { KILN_HOME: join(dir, "home") }, "cols 100 rows 30");
    assert.equal(r.code, 0, r.out.slice(0, 2000));
    assert.match(r.out, /Installing 2 packages/);
    assert.match(r.out, /Installed tool-avrdude@url \(/);
    assert.match(r.out, /Installed toolchain-atmelavr@url \(/);
    assert.match(r.out, /✔ Installed 2 packages \(/);
    assert.doesNotMatch(r.out, /Installing (tool-avrdude|toolchain-atmelavr)@/, "no spinner of its own per package");
  } finally {
    await s.close();
  }
});
