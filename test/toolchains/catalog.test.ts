import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseIndex, mergeIndexes, resolvePlatform, toolSystem, parseChecksum } from "../../lib/toolchains/arduino-index.js";
import { CATALOG_HOSTS, classifyTriplet, canonicalHost, pickForHost } from "../../lib/toolchains/hosts.js";
import { loadCatalog, catalogPackage } from "../../lib/toolchains/catalog.js";
import { repoRoot } from "../helpers/cli.js";

const indexDir = join(repoRoot, "..", "shared", "data", "indexes");

async function realIndexes() {
  const files = (await readdir(indexDir)).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 6, `expected the vendor indexes in ${indexDir}`);
  return mergeIndexes(await Promise.all(files.map(async (f) => parseIndex(JSON.parse(await readFile(join(indexDir, f), "utf8")), f))));
}

describe("host triplets", () => {
  it("classifies with anchored patterns", () => {
    assert.equal(classifyTriplet("x86_64-pc-linux-gnu"), "linux-x64");
    assert.equal(classifyTriplet("x86_64-linux-gnu"), "linux-x64");
    assert.equal(classifyTriplet("aarch64-linux-gnu"), "linux-arm64");
    assert.equal(classifyTriplet("arm64-linux-gnueabihf"), "linux-arm64");
    assert.equal(classifyTriplet("arm-linux-gnueabihf"), "linux-arm");
    assert.equal(classifyTriplet("i686-pc-linux-gnu"), "linux-ia32");
    assert.equal(classifyTriplet("x86_64-apple-darwin14"), "darwin-x64");
    assert.equal(classifyTriplet("aarch64-apple-darwin"), "darwin-arm64");
    assert.equal(classifyTriplet("arm64-apple-darwin"), "darwin-arm64");
    assert.equal(classifyTriplet("i686-mingw32"), "win32-ia32");
    assert.equal(classifyTriplet("x86_64-mingw32"), "win32-x64");
    assert.equal(classifyTriplet("arm64-mingw32"), "win32-arm64");
    assert.equal(classifyTriplet("all"), "all");
    assert.equal(canonicalHost("linux", "x64"), "linux-x64");
    assert.equal(canonicalHost("darwin", "arm64"), "darwin-arm64");
  });

  it("never picks an aarch64 build for 32-bit ARM, and falls back Rosetta/WOW64-style", () => {
    const systems = [{ host: "arm64-linux-gnueabihf" }, { host: "arm-linux-gnueabihf" }, { host: "x86_64-apple-darwin" }, { host: "i686-mingw32" }];
    assert.equal(pickForHost(systems, "linux-arm", (s) => s.host)?.host, "arm-linux-gnueabihf");
    assert.equal(pickForHost(systems, "linux-arm64", (s) => s.host)?.host, "arm64-linux-gnueabihf");
    assert.equal(pickForHost(systems, "darwin-arm64", (s) => s.host)?.host, "x86_64-apple-darwin");
    assert.equal(pickForHost(systems, "win32-x64", (s) => s.host)?.host, "i686-mingw32");
    assert.equal(pickForHost([{ host: "arm-linux-gnueabihf", n: 1 }, { host: "arm-linux-gnueabihf", n: 2 }], "linux-arm", (s) => s.host)?.n, 1, "first listed wins");
  });

  it("parses checksums and sizes as real indexes write them", () => {
    assert.deepEqual(parseChecksum("SHA-256:" + "A".repeat(64)), { algorithm: "sha256", hex: "a".repeat(64) });
    assert.deepEqual(parseChecksum("MD5:" + "0".repeat(32)), { algorithm: "md5", hex: "0".repeat(32) });
    assert.throws(() => parseChecksum("SHA-256:abc"));
  });
});

describe("the real vendor indexes", () => {
  it("parse, and every platform resolves every tool for every catalog host", async () => {
    const index = await realIndexes();
    assert.ok(index.platforms.length >= 9);
    for (const p of index.platforms) {
      const r = resolvePlatform(index, p.packager, p.architecture, p.version)!;
      for (const { ref, tool } of r.tools) {
        assert.ok(tool, `${p.packager}:${p.architecture}@${p.version} needs ${ref.packager}:${ref.name}@${ref.version ?? "newest"}`);
        for (const h of CATALOG_HOSTS) assert.ok(toolSystem(tool, h), `${tool.name}@${tool.version} has no system for ${h}`);
      }
    }
  });

  it("the AVR 1.8.6 core is the cross-checked archive", async () => {
    const index = await realIndexes();
    const p = resolvePlatform(index, "arduino", "avr", "1.8.6")!.platform;
    assert.equal(p.url, "https://downloads.arduino.cc/cores/staging/avr-1.8.6.tar.bz2");
    assert.equal(p.size, 7127080);
    assert.match(p.checksum, /^SHA-256:ff1d1727.*c3b6$/);
  });

  it("the committed catalog matches the indexes (regenerate with scripts/gen-catalog.mjs)", async () => {
    const index = await realIndexes();
    const catalog = await loadCatalog();
    const avr = catalog.platforms.atmelavr!;
    assert.equal(avr.upstream, "arduino:avr@1.8.8");
    const gcc = catalogPackage(catalog, "atmelavr", "toolchain-atmelavr")!;
    assert.equal(gcc.version, "7.3.0-atmel3.6.1-arduino7");
    assert.equal(catalogPackage(catalog, "atmelavr", "tool-avrdude")!.version, "8.0.0-arduino1");
    assert.equal(catalogPackage(catalog, "atmelavr", "framework-arduino-avr")!.version, "1.8.8");
    for (const id of ["atmelavr", "espressif32", "espressif8266", "teensy", "raspberrypi", "nordicnrf52"]) assert.ok(catalog.platforms[id], id);
    // Every catalog archive is exactly the index's URL, checksum and size.
    const byUrl = new Map<string, { checksum: string; size: number }>();
    for (const t of index.tools) for (const s of t.systems) byUrl.set(s.url, s);
    for (const p of index.platforms) byUrl.set(p.url, p);
    for (const pkg of Object.values(catalog.packages)) {
      for (const h of CATALOG_HOSTS) {
        const a = pkg.hosts[h];
        assert.ok(a, `${pkg.name}@${pkg.version} on ${h}`);
        const src = byUrl.get(a.url)!;
        assert.ok(src, a.url);
        assert.equal(a.size, src.size);
        const c = parseChecksum(src.checksum);
        assert.equal(a[c.algorithm], c.hex);
      }
    }
    assert.equal(gcc.hosts["linux-x64"]!.url, "https://downloads.arduino.cc/tools/avr-gcc-7.3.0-atmel3.6.1-arduino7-x86_64-pc-linux-gnu.tar.bz2");
  });
});
