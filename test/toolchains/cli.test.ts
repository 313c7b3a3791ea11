import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, after } from "node:test";
import { kilnBin, runCli, tempDir } from "../helpers/cli.js";
import { makeArchive, sha256, startServer, type Tree } from "./fixtures.js";

async function project(urls: { gcc: string; avrdude: string }): Promise<{ dir: string; home: string }> {
  const dir = await tempDir("kiln-pkg-cli-");
  const home = await tempDir("kiln-pkg-home-");
  await writeFile(
    join(dir, "platformio.ini"),
    `[env:uno]\nplatform = atmelavr\nboard = uno\nplatform_packages =\n  toolchain-atmelavr @ ${urls.gcc}\n  tool-avrdude @ ${urls.avrdude}\n`,
  );
  return { dir, home };
}

describe("kiln pkg (CLI)", () => {
  const server = startServer();
  after(async () => (await server).close());

  async function serve(path: string, tree: Tree, top: string): Promise<string> {
    const s = await server;
    const body = await makeArchive("tar.gz", tree, top);
    s.routes.set(path, { body, mode: "slow" });
    return `${s.url}${path}#sha256=${sha256(body)}`;
  }

  it("4 concurrent kiln processes: one request per archive, 4 successes, one intact copy", async () => {
    const s = await server;
    const gcc = await serve("/c-gcc.tgz", { "bin/avr-gcc": randomBytes(200_000).toString("base64") }, "avr-gcc");
    const avrdude = await serve("/c-avrdude.tgz", { "bin/avrdude": "x" }, "avrdude");
    const p = await project({ gcc, avrdude });
    const runs = await Promise.all([0, 1, 2, 3].map(() => runCli(["pkg", "install", "-d", p.dir], { env: { KILN_HOME: p.home } })));
    for (const r of runs) assert.equal(r.code, 0, `${r.stderr}\n(home ${p.home})`);
    assert.equal(s.requests.filter((q) => q.path === "/c-gcc.tgz").length, 1);
    assert.equal(s.requests.filter((q) => q.path === "/c-avrdude.tgz").length, 1);
    assert.equal((await readdir(join(p.home, "store", "sha256"))).length, 2);
    assert.deepEqual(await readdir(join(p.home, "tmp")).catch(() => []), []);
    const lock = JSON.parse(await readFile(join(p.dir, "kiln.lock"), "utf8"));
    assert.ok(lock.envs.uno.packages["toolchain-atmelavr"].archives["*"].sha256);

    const list = await runCli(["pkg", "list", "--json"], { env: { KILN_HOME: p.home } });
    assert.equal(list.code, 0, list.stderr);
    const result = list.events.find((e) => e.type === "result") as { packages: Array<{ names: Array<{ name: string }> }> };
    assert.deepEqual(result.packages.flatMap((x) => x.names.map((n) => n.name)).sort(), ["tool-avrdude", "toolchain-atmelavr"]);

    const frozen = await runCli(["pkg", "install", "-d", p.dir, "--offline", "--frozen-lockfile"], { env: { KILN_HOME: p.home } });
    assert.equal(frozen.code, 0, frozen.stderr);

    const verify = await runCli(["pkg", "verify"], { env: { KILN_HOME: p.home } });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /2 of 2 packages intact/);

    const rm = await runCli(["pkg", "remove", "tool-avrdude"], { env: { KILN_HOME: p.home } });
    assert.equal(rm.code, 0, rm.stderr);
    const offline = await runCli(["pkg", "install", "-d", p.dir, "--offline"], { env: { KILN_HOME: p.home } });
    assert.equal(offline.code, 4);
    assert.match(offline.stderr, /KILN_OFFLINE_MISSING/);
    assert.match(offline.stderr, /tool-avrdude/);
  });

  it("SIGKILL mid-download-and-extract leaves no store entry; the next run cleans up and succeeds", async () => {
    const tree: Tree = {};
    for (let i = 0; i < 1500; i++) tree[`lib/f${i}.txt`] = randomBytes(12_000).toString("base64");
    const s = await server;
    const body = await makeArchive("tar.gz", tree, "big");
    s.routes.set("/big.tgz", { body, mode: "slow" });
    const avrdude = await serve("/k-avrdude.tgz", { "bin/avrdude": "y" }, "avrdude");
    const p = await project({ gcc: `${s.url}/big.tgz#sha256=${sha256(body)}`, avrdude });
    const child = spawn(process.execPath, [kilnBin, "pkg", "install", "-d", p.dir, "--json"], { env: { ...process.env, KILN_HOME: p.home, CI: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const killed = await new Promise<boolean>((resolve) => {
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        // Unpacking streams alongside the download: 300 ms in, both are under way.
        if (/"phase":"start"/.test(out) && !child.killed) setTimeout(() => child.kill("SIGKILL"), 300);
      });
      child.on("close", (_c, sig) => resolve(sig === "SIGKILL"));
    });
    assert.ok(killed, `kiln was not killed mid-extract:\n${out}`);
    assert.deepEqual(await readdir(join(p.home, "store", "sha256")).catch(() => []), [], "no partial entry in the store");
    assert.ok((await readdir(join(p.home, "tmp"))).length >= 1, "the killed run left its tmp dir");
    const again = await runCli(["pkg", "install", "-d", p.dir], { env: { KILN_HOME: p.home } });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await readdir(join(p.home, "tmp")), [], "leftovers cleaned");
    const entries = await readdir(join(p.home, "store", "sha256"));
    assert.ok(entries.includes(sha256(body)));
    const files = await readdir(join(p.home, "store", "sha256", sha256(body), "content", "lib"));
    assert.equal(files.length, 1500);
  });

  it("a checksum mismatch exits 5 and names the URL", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "bin/avr-gcc": "z" }, "x");
    s.routes.set("/mismatch.tgz", { body });
    const p = await project({ gcc: `${s.url}/mismatch.tgz#sha256=${"ab".repeat(32)}`, avrdude: `${s.url}/mismatch.tgz#sha256=${"ab".repeat(32)}` });
    const r = await runCli(["pkg", "install", "-d", p.dir], { env: { KILN_HOME: p.home } });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /KILN_CHECKSUM_MISMATCH/);
    assert.match(r.stderr, /mismatch\.tgz/);
    assert.deepEqual(await readdir(join(p.home, "store", "sha256")).catch(() => []), []);
  });
});
