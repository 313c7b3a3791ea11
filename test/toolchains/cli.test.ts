import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, after } from "node:test";
import { kilnBin, runCli, tempDir } from "../helpers/cli.js";
import { makeArchive, makeCa, sha256, startConnectProxy, startHttpsServer, startServer, type Route, type Tree } from "./fixtures.js";

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

  it("downloads over HTTPS through HTTPS_PROXY, trusting only the CA given in KILN_CA_FILE", async () => {
    // got is bundled into kiln's chunks: this runs the shipped bundle's copy (store.test.ts runs the module).
    const ca = await makeCa();
    const s = await startHttpsServer(ca);
    const proxy = await startConnectProxy();
    try {
      const gcc = await makeArchive("tar.gz", { "bin/avr-gcc": "tls" }, "avr-gcc");
      const avrdude = await makeArchive("tar.gz", { "bin/avrdude": "tls" }, "avrdude");
      s.routes.set("/gcc.tgz", { body: gcc });
      s.routes.set("/avrdude.tgz", { body: avrdude });
      const p = await project({ gcc: `${s.url}/gcc.tgz#sha256=${sha256(gcc)}`, avrdude: `${s.url}/avrdude.tgz#sha256=${sha256(avrdude)}` });
      const env = { KILN_HOME: p.home, HTTPS_PROXY: proxy.url };
      const untrusted = await runCli(["pkg", "install", "-d", p.dir], { env });
      assert.equal(untrusted.code, 4, untrusted.stderr);
      assert.match(untrusted.stderr, /(gcc|avrdude)\.tgz/);
      assert.match(untrusted.stderr, /certificate/i);
      assert.equal(s.requests.length, 0, "no request completed without a trusted certificate");
      const r = await runCli(["pkg", "install", "-d", p.dir], { env: { ...env, KILN_CA_FILE: ca.caFile } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(s.requests.map((q) => q.path).sort(), ["/avrdude.tgz", "/gcc.tgz"]);
      assert.ok(proxy.tunnels.length >= 2 && proxy.tunnels.every((t) => t === new URL(s.url).host), `tunnels: ${proxy.tunnels.join(", ")}`);
      assert.deepEqual((await readdir(join(p.home, "store", "sha256"))).sort(), [sha256(gcc), sha256(avrdude)].sort());
    } finally {
      await proxy.close();
      await s.close();
    }
  });

  it("installs a project's packages at once, one line each as they finish", async () => {
    const s = await server;
    const gcc = await makeArchive("tar.gz", { "bin/avr-gcc": "g" }, "avr-gcc");
    const avrdude = await makeArchive("tar.gz", { "bin/avrdude": "a" }, "avrdude");
    // Each answer waits for the other request: installed one after the other, the first would wait 3 s.
    const gccRoute = { body: gcc, waitFor: "/o-avrdude.tgz" } as Route;
    const avrdudeRoute = { body: avrdude, waitFor: "/o-gcc.tgz" } as Route;
    s.routes.set("/o-gcc.tgz", gccRoute);
    s.routes.set("/o-avrdude.tgz", avrdudeRoute);
    const p = await project({ gcc: `${s.url}/o-gcc.tgz#sha256=${sha256(gcc)}`, avrdude: `${s.url}/o-avrdude.tgz#sha256=${sha256(avrdude)}` });
    const r = await runCli(["pkg", "install", "-d", p.dir], { env: { KILN_HOME: p.home } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([gccRoute.waited, avrdudeRoute.waited], ["request", "request"], "both requests were under way together");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines[0], "Installing 2 packages");
    assert.deepEqual(lines.slice(1, 3).map((l) => l.replace(/ \(.*/, "")).sort(), ["Installed tool-avrdude@url", "Installed toolchain-atmelavr@url"]);
    assert.match(lines[3]!, /^Installed 2 packages \(\d+ B, [\d.]+ s\)$/);
    assert.deepEqual((await readdir(join(p.home, "store", "sha256"))).sort(), [sha256(gcc), sha256(avrdude)].sort());
  });

  it("one package failing stops the others: its error alone, exit 4, nothing left behind", async () => {
    const s = await server;
    const big = await makeArchive("tar.gz", { "bin/avr-gcc": randomBytes(100_000).toString("base64") }, "avr-gcc");
    // The toolchain's answer never finishes (inactivity timeout 30 s); the uploader's 404 comes once both are under way.
    s.routes.set("/f-gcc.tgz", { body: big, mode: "stall" });
    s.routes.set("/f-avrdude.tgz", { body: Buffer.alloc(0), mode: "404", waitFor: "/f-gcc.tgz" });
    const p = await project({ gcc: `${s.url}/f-gcc.tgz#sha256=${sha256(big)}`, avrdude: `${s.url}/f-avrdude.tgz#sha256=${"cd".repeat(32)}` });
    const started = Date.now();
    const r = await runCli(["pkg", "install", "-d", p.dir], { env: { KILN_HOME: p.home } });
    assert.equal(r.code, 4, r.stderr);
    assert.ok(Date.now() - started < 20_000, "the stalled download was stopped, not timed out");
    assert.match(r.stderr, /f-avrdude\.tgz/);
    assert.match(r.stderr, /404/);
    assert.doesNotMatch(r.stderr, /f-gcc\.tgz|cancel/i);
    assert.match(r.stderr, /Installing tool-avrdude@url: failed/);
    assert.deepEqual(await readdir(join(p.home, "store", "sha256")).catch(() => []), []);
    assert.deepEqual(await readdir(join(p.home, "tmp")).catch(() => []), []);
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
