/**
 * Start-up is lazy: a no-op build loads no network, archive, serial,
 * process-spawning or spinner module. Observed with a module-resolution hook,
 * on a real no-op build.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { kilnBin, repoRoot, runCli, tempDir, writeTree } from "./helpers/cli.js";

const HEAVY = ["got", "tar", "serialport", "@serialport", "execa", "p-limit", "ora", "kleur", "cosmiconfig", "yauzl", "unbzip2-stream", "xz-decompress", "fzstd", "typanion"];

test("a no-op build loads none of got, tar, serialport, execa, p-limit, ora…", async () => {
  const dir = await tempDir("kiln-startup-");
  await writeTree(dir, { "platformio.ini": "[env:native]\nplatform = native\n", "src/main.c": "int main(void){return 0;}\n" });
  const env = { KILN_HOME: join(dir, "home") };
  const first = await runCli(["build", "-d", dir], { env });
  assert.equal(first.code, 0, first.stderr);
  const traced = async (args: string[]): Promise<string[]> => {
    const trace = join(dir, "imports.txt");
    await writeFile(trace, "");
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ["--import", join(repoRoot, "test/fixtures/trace-imports.mjs"), kilnBin, ...args], {
        env: { ...process.env, ...env, CI: "1", NO_COLOR: "1", KILN_TRACE_IMPORTS: trace },
        stdio: "ignore",
      });
      child.on("close", resolve);
    });
    assert.equal(code, 0);
    const urls = (await readFile(trace, "utf8")).split("\n").filter(Boolean);
    assert.ok(urls.some((u) => u.includes("/dist/bundle/")), "the trace saw no kiln module: the hook did not run");
    return urls;
  };
  // `-k` is not one of the launcher's plain arguments: this no-op goes through the CLI, the config
  // reader and the runner — and still loads nothing heavy.
  for (const args of [["build", "-d", dir, "-k"], ["build", "-d", dir]]) {
    const urls = await traced(args);
    // Packages bundled into kiln's chunks (got, clipanion) show up by the module paths esbuild writes
    // into the chunk that holds them.
    const chunks = await Promise.all(urls.filter((u) => u.includes("/dist/bundle/")).map((u) => readFile(fileURLToPath(u), "utf8")));
    const loaded = HEAVY.filter((m) => urls.some((u) => u.includes(`/node_modules/${m}/`)) || chunks.some((c) => c.includes(`// node_modules/${m}/`)));
    assert.deepEqual(loaded, [], `a no-op build (${args.join(" ")}) loaded: ${loaded.join(", ")}`);
    if (args.includes("-k")) assert.ok(urls.some((u) => u.endsWith("/dist/bundle/cli.js")), "the -k run did not take the normal path");
  }
});

test("kiln's own modules load without Node's ESM loader (the bundle's chunks are CommonJS)", async () => {
  const dir = await tempDir("kiln-startup-cjs-");
  await writeTree(dir, { "platformio.ini": "[env:native]\nplatform = native\n", "src/main.c": "int main(void){return 0;}\n" });
  const probe = join(dir, "modules.txt");
  // A build that compiles and links, a config read, a store listing: none imports an ES-module package.
  for (const args of [["build", "-d", dir], ["config", "-d", dir], ["pkg", "list"]]) {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ["-r", join(repoRoot, "test/fixtures/esm-loader-probe.cjs"), kilnBin, ...args], {
        env: { ...process.env, KILN_HOME: join(dir, "home"), CI: "1", NO_COLOR: "1", KILN_PROBE_OUT: probe },
        stdio: "ignore",
      });
      child.on("close", resolve);
    });
    assert.equal(code, 0, args.join(" "));
    const loaded = (await readFile(probe, "utf8")).split("\n");
    assert.ok(loaded.some((m) => m.includes("internal/modules/cjs/loader")), "the probe saw no module list");
    // `node:module` (createRequire) brings in the loader's module without starting it; loading an ES
    // module takes a module job, and translators for its source.
    const esm = loaded.filter((m) => /internal\/modules\/esm\/(module_job|translators)$/.test(m));
    assert.deepEqual(esm, [], `kiln ${args.join(" ")} loaded an ES module`);
  }
});

test("`kiln --version` loads no command module", async () => {
  const dir = await tempDir("kiln-startup-version-");
  const trace = join(dir, "imports.txt");
  await writeFile(trace, "");
  let out = "";
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ["--import", join(repoRoot, "test/fixtures/trace-imports.mjs"), kilnBin, "--version"], {
      env: { ...process.env, KILN_HOME: join(dir, "home"), NO_COLOR: "1", KILN_TRACE_IMPORTS: trace },
      stdio: ["ignore", "pipe", "ignore"],
    });
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.on("close", resolve);
  });
  assert.equal(code, 0);
  assert.match(out, /^\d+\.\d+\.\d+/);
  const urls = (await readFile(trace, "utf8")).split("\n").filter((u) => u.includes("/dist/bundle/"));
  assert.ok(urls.length > 0, "the trace saw no kiln module: the hook did not run");
  const texts = await Promise.all(urls.map((u) => readFile(fileURLToPath(u), "utf8")));
  const commands = texts.flatMap((t) => t.match(/^\/\/ dist\/commands\/\S+\.js$/gm) ?? []).filter((c) => !/\/(base|index)\.js$/.test(c));
  assert.deepEqual(commands, []);
});

test("the bundled got still words its type errors (its Intl.ListFormat objects are made on first use)", async () => {
  // scripts/bundle.mjs makes @sindresorhus/is build its list formatters lazily; the wording needs them.
  const dir = join(repoRoot, "dist", "bundle", "chunks");
  let got: ((url: string, opts: object) => unknown) | undefined;
  for (const f of await readdir(dir)) {
    if (!(await readFile(join(dir, f), "utf8")).includes("// node_modules/got/")) continue;
    // The chunks are CommonJS (scripts/bundle.mjs): load one as the CLI does.
    const m = createRequire(import.meta.url)(join(dir, f)) as Record<string, unknown>;
    got = Object.values(m).find((v): v is NonNullable<typeof got> => typeof v === "function" && typeof (v as { stream?: unknown }).stream === "function");
  }
  assert.ok(got, "no bundled chunk exports got");
  await assert.rejects(async () => got("http://127.0.0.1:1/", { timeout: { request: "soon" } }), /Expected values which are `number` or `undefined`\. Received values of type `string`/);
});
