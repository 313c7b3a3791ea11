import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli, tempDir, writeTree } from "./helpers/cli.js";

test("kiln help lists the commands, and every command's --help has examples", async () => {
  const r = await runCli(["help"]);
  assert.equal(r.code, 0, r.stderr);
  // "  kiln pkg gc [--json] …" → "pkg gc": the words before the first option or argument.
  const names = [...new Set([...r.stdout.matchAll(/^\s+kiln ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)*)/gm)].map((m) => m[1]!))];
  for (const expected of ["build", "clean", "config", "compiledb", "run", "help"]) assert.ok(names.includes(expected), `kiln help does not list ${expected}: ${names.join(", ")}`);
  for (const name of names) {
    const h = await runCli([...name.split(" "), "--help"]);
    assert.equal(h.code, 0, `${name} --help: ${h.stderr}`);
    assert.match(h.stdout, /Examples/, `'kiln ${name} --help' has no examples`);
    assert.ok((h.stdout.match(/\$ kiln /g) ?? []).length >= 2, `'kiln ${name} --help' has fewer than two example command lines`);
  }
  const one = await runCli(["help", "build"]);
  assert.match(one.stdout, /kiln build -e uno/);
  assert.doesNotMatch(r.stdout, /\x1b\[/, "help is coloured although stdout is not a terminal");
});

test("usage errors exit 2 without a stack trace", async () => {
  for (const args of [["build", "--no-such-option"], ["build", "-j", "0"], ["frobnicate"]]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  // Option values checked by typanion (bundled into kiln's chunks) are named with what was expected.
  for (const [args, message] of [[["monitor", "-b", "abc"], /Invalid value for -b: expected a number \(got "abc"\)/], [["upload", "--speed", "0"], /Invalid value for --speed/]] as const) {
    const r = await runCli([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  // A group's unknown second word loads the whole group, to suggest its commands.
  for (const [args, suggestion] of [[["pkg", "instal"], /kiln pkg install/], [["peer", "aprove"], /kiln peer approve/]] as const) {
    const r = await runCli([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout + r.stderr, suggestion);
  }
});

test("a missing project config exits 3 with a hint", async () => {
  const dir = await tempDir();
  const r = await runCli(["build", "-d", dir]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /kiln init/);
});

test("--json errors are one NDJSON object with code, message and hint; nothing else on stdout", async () => {
  const dir = await tempDir();
  await writeTree(dir, { "platformio.ini": "[env:a]\nplatform = nosuchplatform\n", "src/main.c": "int main(void){return 0;}\n" });
  const r = await runCli(["build", "-d", dir, "--json"]);
  assert.equal(r.code, 3);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, r.events.length, "stdout holds a line that is not JSON");
  const err = r.events.find((e) => e.type === "error");
  assert.equal(err?.code, "KILN_UNKNOWN_PLATFORM");
  assert.match(String(err?.hint), /known platforms: .*native/);
  assert.match(String(err?.message), /platformio\.ini:2/);
});

test("colour follows NO_COLOR and FORCE_COLOR", async () => {
  const dir = await tempDir();
  const forced = await runCli(["build", "-d", dir], { env: { NO_COLOR: undefined, FORCE_COLOR: "1" } });
  assert.match(forced.stderr, /\x1b\[/);
  const plain = await runCli(["build", "-d", dir], { env: { NO_COLOR: "1" } });
  assert.doesNotMatch(plain.stderr, /\x1b\[/);
  const flag = await runCli(["build", "-d", dir, "--no-color"], { env: { NO_COLOR: undefined, FORCE_COLOR: "1" } });
  assert.doesNotMatch(flag.stderr, /\x1b\[/);
});

test("-j4 works like -j 4 (make style)", async () => {
  const dir = await tempDir();
  await writeTree(dir, { "platformio.ini": "[env:native]\nplatform = native\n", "src/main.c": "int main(void){return 0;}\n" });
  const r = await runCli(["build", "-d", dir, "-j4"]);
  assert.equal(r.code, 0, r.stderr);
});

test("a file system refusal (a file where the build dir should be) is a message and a hint, not a stack", async () => {
  const dir = await tempDir();
  await writeTree(dir, {
    "platformio.ini": "[platformio]\nbuild_dir = not-a-dir\n\n[env:native]\nplatform = native\n",
    "src/main.c": "int main(void){return 0;}\n",
    "not-a-dir": "a file\n",
  });
  const r = await runCli(["build", "-d", dir]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /KILN_FS_ERROR/);
  assert.match(r.stderr, /not-a-dir/);
  assert.match(r.stderr, /hint: a file stands where kiln needs a folder/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.doesNotMatch(r.stderr, /internal error/);
});
