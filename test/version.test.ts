import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { VERSION } from "../lib/version.js";
import { repoRoot, runCli } from "./helpers/cli.js";

test("VERSION matches package.json and `kiln --version` prints it", async () => {
  const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { version: string };
  assert.equal(VERSION, pkg.version);
  const r = await runCli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test("an unknown command exits 2 with a hint on stderr", async () => {
  const r = await runCli(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /kiln --help/);
  assert.equal(r.stdout, "");
});
