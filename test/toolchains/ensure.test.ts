import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadSettings } from "../../lib/core/config.js";
import { MemoryReporter } from "../../lib/core/report.js";
import { ensurePackages, LockfileOutdatedError, OfflineError, ChecksumMismatchError, SizeMismatchError } from "../../lib/toolchains/index.js";
import { loadIndexes } from "../../lib/toolchains/index-cache.js";
import { PackageUnavailableError } from "../../lib/toolchains/errors.js";
import { readdir } from "node:fs/promises";
import { tempDir } from "../helpers/cli.js";
import { makeArchive, sha256, startConnectProxy, startServer } from "./fixtures.js";

async function setup() {
  const home = await tempDir("kiln-ensure-");
  const project = join(home, "project");
  await mkdir(project);
  const settings = loadSettings({ HOME: home, KILN_HOME: join(home, "kiln"), PATH: process.env.PATH });
  return { home, project, settings, lockFile: join(project, "kiln.lock"), reporter: new MemoryReporter() };
}

const AVR = [
  { name: "toolchain-atmelavr", kind: "toolchain" },
  { name: "framework-arduino-avr", kind: "framework" },
  { name: "tool-avrdude", kind: "uploader", forUpload: true },
];

describe("ensurePackages", () => {
  it("resolves the AVR catalog into kiln.lock and, offline, names what the store lacks", async () => {
    const t = await setup();
    await assert.rejects(
      ensurePackages({ platform: "atmelavr", envName: "uno", requests: AVR, platformPackages: [], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter, offline: true }),
      (e: unknown) => {
        assert.ok(e instanceof OfflineError);
        assert.equal(e.exitCode, 4);
        assert.match(e.message, /toolchain-atmelavr@7\.3\.0-atmel3\.6\.1-arduino7/);
        assert.match(e.message, /framework-arduino-avr@1\.8\.8/);
        assert.doesNotMatch(e.message, /avrdude/, "upload-only packages are not needed for a build");
        return true;
      },
    );
    const lock = JSON.parse(await readFile(t.lockFile, "utf8"));
    const gcc = lock.envs.uno.packages["toolchain-atmelavr"];
    assert.equal(gcc.source, "catalog:atmelavr");
    assert.equal(gcc.archives["linux-x64"].url, "https://downloads.arduino.cc/tools/avr-gcc-7.3.0-atmel3.6.1-arduino7-x86_64-pc-linux-gnu.tar.bz2");
    assert.equal(gcc.archives["linux-x64"].sha256, "bd8c37f6952a2130ac9ee32c53f6a660feb79bee8353c8e289eb60fdcefed91e");
    assert.equal(lock.envs.uno.packages["tool-avrdude"].version, "8.0.0-arduino1");
    // A build that leaves out the uploaders keeps their pins (no churn between build and upload).
    const before = await readFile(t.lockFile, "utf8");
    await assert.rejects(ensurePackages({ platform: "atmelavr", envName: "uno", requests: AVR.slice(0, 2), platformPackages: [], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter, offline: true, frozenLockfile: true }), OfflineError);
    assert.equal(await readFile(t.lockFile, "utf8"), before);
    // With includeUpload, avrdude is missing too.
    await assert.rejects(ensurePackages({ platform: "atmelavr", envName: "uno", requests: AVR, platformPackages: [], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter, offline: true, includeUpload: true }), /tool-avrdude@8\.0\.0-arduino1/);
  });

  it("uses symlink:// directories in place and records them in the lock", async () => {
    const t = await setup();
    const sys = join(t.home, "usr");
    await mkdir(join(sys, "bin"), { recursive: true });
    const dirs = await ensurePackages({ platform: "atmelavr", envName: "uno", requests: [AVR[0]!], platformPackages: [`toolchain-atmelavr @ symlink://${sys}`], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter, offline: true });
    assert.deepEqual(dirs, { "toolchain-atmelavr": sys });
    const lock = JSON.parse(await readFile(t.lockFile, "utf8"));
    assert.equal(lock.envs.uno.packages["toolchain-atmelavr"].type, "symlink");
  });

  it("installs from an Arduino index over HTTP, pins it, and the next run is offline-fast", async () => {
    const t = await setup();
    const s = await startServer();
    try {
      const body = await makeArchive("tar.bz2", { "bin/acme-gcc": "#!/bin/sh\n" }, "acme-gcc");
      s.routes.set("/acme-gcc.tar.bz2", { body });
      const index = {
        packages: [{ name: "acme", platforms: [], tools: [{ name: "acme-gcc", version: "2.0", systems: ["x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf", "x86_64-apple-darwin", "i686-mingw32"].map((host) => ({ host, url: `${s.url}/acme-gcc.tar.bz2`, archiveFileName: "acme-gcc.tar.bz2", checksum: `SHA-256:${sha256(body)}`, size: String(body.length) })) }] }],
      };
      s.routes.set("/package_acme_index.json", { body: Buffer.from(JSON.stringify(index)) });
      const settings = { ...t.settings, indexUrls: [`${s.url}/package_acme_index.json`] };
      const opts = { platform: "atmelavr", envName: "uno", requests: [AVR[0]!], platformPackages: ["toolchain-atmelavr @ arduino:acme/acme-gcc@2.0"], lockFile: t.lockFile, settings, reporter: t.reporter };
      const dirs = await ensurePackages(opts);
      assert.equal(await readFile(join(dirs["toolchain-atmelavr"]!, "bin/acme-gcc"), "utf8"), "#!/bin/sh\n");
      const lock = JSON.parse(await readFile(t.lockFile, "utf8"));
      assert.equal(lock.envs.uno.packages["toolchain-atmelavr"].archives["linux-x64"].sha256, sha256(body));
      const n = s.requests.length;
      assert.deepEqual(await ensurePackages({ ...opts, offline: true, frozenLockfile: true }), dirs);
      assert.equal(s.requests.length, n, "a satisfied lock touches no network");
      // The cached index revalidates with If-None-Match → 304.
      await loadIndexes(settings.indexUrls, { dir: join(settings.cacheDir, "indexes"), refresh: true });
      assert.equal(s.requests.at(-1)!.path, "/package_acme_index.json");
    } finally {
      await s.close();
    }
  });

  it("fetches an index through the proxy setting (NO_PROXY respected), and refuses one over the size cap", async () => {
    const s = await startServer();
    const proxy = await startConnectProxy();
    try {
      const index = { packages: [{ name: "acme", platforms: [], tools: [{ name: "acme-gcc", version: "1.0", systems: [] }] }] };
      s.routes.set("/package_acme_index.json", { body: Buffer.from(JSON.stringify(index)) });
      const url = `${s.url}/package_acme_index.json`;
      const dir = await tempDir("kiln-indexes-");
      const merged = await loadIndexes([url], { dir, proxy: proxy.url });
      assert.deepEqual(merged.tools.map((t) => t.name), ["acme-gcc"]);
      assert.deepEqual(proxy.tunnels, [new URL(s.url).host], "the index came through the proxy");
      await loadIndexes([url], { dir, proxy: proxy.url, noProxy: ["127.0.0.1"], refresh: true });
      assert.equal(proxy.tunnels.length, 1, "NO_PROXY host goes direct");

      // A server sending far more than any index: refused while it arrives, nothing cached.
      s.routes.set("/huge_index.json", { body: Buffer.alloc(200_000, 0x20), mode: "slow" });
      const fresh = await tempDir("kiln-indexes-");
      await assert.rejects(
        loadIndexes([`${s.url}/huge_index.json`], { dir: fresh, maxIndexBytes: 50_000 }),
        (e: unknown) => e instanceof PackageUnavailableError && /larger than 50000 bytes/.test(e.message) && /huge_index\.json/.test(e.message),
      );
      assert.deepEqual(await readdir(fresh), []);
    } finally {
      await proxy.close();
      await s.close();
    }
  });

  it("--frozen-lockfile fails when resolution would change kiln.lock, and leaves it untouched", async () => {
    const t = await setup();
    const dir = join(t.home, "fw");
    await mkdir(dir);
    await ensurePackages({ platform: "atmelavr", envName: "uno", requests: [AVR[0]!], platformPackages: [`toolchain-atmelavr @ symlink://${dir}`], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter, offline: true });
    const before = await readFile(t.lockFile, "utf8");
    await assert.rejects(
      ensurePackages({ platform: "atmelavr", envName: "uno", requests: AVR.slice(0, 2), platformPackages: [`toolchain-atmelavr @ symlink://${dir}`, `framework-arduino-avr @ symlink://${dir}`], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter, offline: true, frozenLockfile: true }),
      (e: unknown) => e instanceof LockfileOutdatedError && e.exitCode === 3 && /add framework-arduino-avr/.test(e.message),
    );
    assert.equal(await readFile(t.lockFile, "utf8"), before);
  });

  it("a file:// archive without a checksum is pinned on first install and verified after", async () => {
    const t = await setup();
    const archive = join(t.home, "core.tar.gz");
    await writeFile(archive, await makeArchive("tar.gz", { "cores/main.cpp": "int main(){}\n" }, "core"));
    const opts = { platform: "atmelavr", envName: "uno", requests: [AVR[1]!], platformPackages: [`framework-arduino-avr @ file://${archive}`], lockFile: t.lockFile, settings: t.settings, reporter: t.reporter };
    const dirs = await ensurePackages(opts);
    assert.equal(await readFile(join(dirs["framework-arduino-avr"]!, "cores/main.cpp"), "utf8"), "int main(){}\n");
    const lock = JSON.parse(await readFile(t.lockFile, "utf8"));
    assert.equal(lock.envs.uno.packages["framework-arduino-avr"].archives["*"].sha256, sha256(await readFile(archive)));
    // The file changes behind kiln's back: a fresh store refuses it.
    await writeFile(archive, await makeArchive("tar.gz", { "cores/main.cpp": "evil\n" }, "core"));
    const other = loadSettings({ HOME: t.home, KILN_HOME: join(t.home, "kiln2") });
    await assert.rejects(ensurePackages({ ...opts, settings: other }), (e: unknown) => (e instanceof ChecksumMismatchError || e instanceof SizeMismatchError) && e.exitCode === 5 && e.message.includes(archive));
  });
});
