import assert from "node:assert/strict";
import { readFile, readdir, readlink, stat, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, after } from "node:test";
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { storePaths } from "../../lib/toolchains/paths.js";
import { installArchive, installDirectory, verifyStore, listEntries, gcStore, removePackage } from "../../lib/toolchains/store.js";
import { ChecksumMismatchError, DownloadError, SizeMismatchError, StoreWriteError, UnsafeArchiveError } from "../../lib/toolchains/errors.js";
import { tempDir } from "../helpers/cli.js";
import { makeArchive, makeCa, rawTar, rawZip, sha256, startConnectProxy, startHttpsServer, startServer, type Format, type Tree } from "./fixtures.js";

const TREE: Tree = { "bin/tool": "#!/bin/sh\necho hi\n", "lib/a.txt": "alpha\n", "lib/deep/b.txt": "beta\n".repeat(1000), "bin/tool-link": { symlink: "tool" } };
const fast = { retries: 2, backoffMs: 20, idleTimeoutMs: 2000 };

async function storeDir(): Promise<ReturnType<typeof storePaths>> {
  return storePaths(await tempDir("kiln-store-"));
}

async function leftovers(paths: ReturnType<typeof storePaths>): Promise<string[]> {
  return readdir(paths.tmp).catch(() => []);
}

describe("store install", () => {
  const server = startServer();
  after(async () => (await server).close());

  for (const format of ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"] as Format[]) {
    it(`installs a ${format} archive, stripping its top folder`, async () => {
      const s = await server;
      const body = await makeArchive(format, TREE);
      s.routes.set(`/pkg.${format}`, { body });
      const paths = await storeDir();
      const r = await installArchive(paths, { name: "tool-x", version: "1.0", host: "linux-x64", url: `${s.url}/pkg.${format}`, expected: { sha256: sha256(body), size: body.length } }, fast);
      assert.equal(r.key, sha256(body));
      assert.equal(await readFile(join(r.dir, "lib/deep/b.txt"), "utf8"), "beta\n".repeat(1000));
      assert.equal(await readlink(join(r.dir, "bin/tool-link")), "tool");
      assert.ok(((await stat(join(r.dir, "bin/tool"))).mode & 0o100) !== 0 || format === "zip", "executable bit kept");
      const meta = JSON.parse(await readFile(join(paths.entries, r.key, "meta.json"), "utf8"));
      assert.equal(meta.sha256, sha256(body));
      assert.deepEqual(await leftovers(paths), []);
      // Idempotent: a second install finds the entry and downloads nothing.
      const before = s.requests.length;
      const again = await installArchive(paths, { name: "tool-x", version: "1.0", host: "linux-x64", url: `${s.url}/pkg.${format}`, expected: { sha256: sha256(body), size: body.length } }, fast);
      assert.equal(again.downloaded, false);
      assert.equal(s.requests.length, before);
    });
  }

  it("reports the stored size of an archive it finds installed when the lock gives none", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", TREE);
    s.routes.set("/nosize.tgz", { body });
    const paths = await storeDir();
    const spec = { name: "tool-n", version: "1", host: "linux-x64", url: `${s.url}/nosize.tgz`, expected: { sha256: sha256(body) } };
    const first = await installArchive(paths, spec, fast);
    assert.equal(first.size, body.length);
    const again = await installArchive(paths, spec, fast);
    assert.equal(again.downloaded, false);
    assert.equal(again.size, body.length);
  });

  it("keeps an archive without a single top folder as is", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "a.txt": "a", "b/c.txt": "c" }, undefined);
    s.routes.set("/flat.tgz", { body });
    const r = await installArchive(await storeDir(), { name: "flat", version: "1", host: "linux-x64", url: `${s.url}/flat.tgz`, expected: { sha256: sha256(body) } }, fast);
    assert.equal(await readFile(join(r.dir, "a.txt"), "utf8"), "a");
    assert.equal(await readFile(join(r.dir, "b/c.txt"), "utf8"), "c");
  });

  it("stores identical archives once whatever their name or URL", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", TREE);
    s.routes.set("/one.tgz", { body });
    s.routes.set("/two.tgz", { body });
    const paths = await storeDir();
    const a = await installArchive(paths, { name: "a", version: "1", host: "linux-x64", url: `${s.url}/one.tgz`, expected: { sha256: sha256(body) } }, fast);
    const b = await installArchive(paths, { name: "b", version: "2", host: "linux-x64", url: `${s.url}/two.tgz`, expected: { sha256: sha256(body) } }, fast);
    assert.equal(a.dir, b.dir);
    assert.equal((await readdir(paths.entries)).length, 1);
    const list = await listEntries(paths);
    assert.deepEqual(list[0]!.refs.map((r) => r.name).sort(), ["a", "b"]);
  });

  it("refuses a checksum mismatch (exit 5) and leaves nothing behind", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", TREE);
    s.routes.set("/bad.tgz", { body });
    const paths = await storeDir();
    const wrong = "0".repeat(64);
    await assert.rejects(installArchive(paths, { name: "bad", version: "1", host: "linux-x64", url: `${s.url}/bad.tgz`, expected: { sha256: wrong, size: body.length } }, fast), (e: unknown) => {
      assert.ok(e instanceof ChecksumMismatchError);
      assert.equal(e.exitCode, 5);
      assert.match(e.message, new RegExp(`${s.url}/bad.tgz`));
      assert.match(e.message, new RegExp(`expected ${wrong}`));
      assert.match(e.message, new RegExp(`actual   ${sha256(body)}`));
      return true;
    });
    assert.deepEqual(await readdir(paths.entries).catch(() => []), []);
    assert.deepEqual(await leftovers(paths), []);
  });

  it("refuses a size mismatch announced by Content-Length", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", TREE);
    s.routes.set("/size.tgz", { body });
    await assert.rejects(installArchive(await storeDir(), { name: "s", version: "1", host: "linux-x64", url: `${s.url}/size.tgz`, expected: { sha256: sha256(body), size: body.length + 10 } }, fast), (e: unknown) => e instanceof SizeMismatchError && e.exitCode === 5);
  });

  it("retries a truncated response and resumes with Range", async () => {
    const s = await server;
    const big = randomBytes(300_000).toString("base64");
    const body = await makeArchive("tar.gz", { "big.bin": big });
    s.routes.set("/trunc.tgz", { body, mode: "truncate-once" });
    const r = await installArchive(await storeDir(), { name: "t", version: "1", host: "linux-x64", url: `${s.url}/trunc.tgz`, expected: { sha256: sha256(body), size: body.length } }, fast);
    assert.equal(r.sha256, sha256(body));
    // The unpacker was fed the first half, then the rest from the range response: one whole file.
    assert.equal(await readFile(join(r.dir, "big.bin"), "utf8"), big);
    const reqs = s.requests.filter((q) => q.path === "/trunc.tgz");
    assert.equal(reqs.length, 2);
    assert.match(reqs[1]!.range ?? "", /^bytes=\d+-$/);
  });

  for (const format of ["tar.gz", "zip"] as Format[]) {
    for (const ranges of [false, "ignore"] as const) {
      it(`restarts a truncated ${format} download from byte 0 when the server ${ranges === false ? "has no ranges" : "answers a range with 200"}`, async () => {
        const s = await server;
        const tree: Tree = { "big.bin": randomBytes(300_000).toString("base64"), "lib/a.txt": "alpha\n" };
        const body = await makeArchive(format, tree);
        const path = `/restart-${String(ranges)}.${format}`;
        s.routes.set(path, { body, mode: "truncate-once", ranges });
        const paths = await storeDir();
        const r = await installArchive(paths, { name: "t", version: "1", host: "linux-x64", url: `${s.url}${path}`, expected: { sha256: sha256(body), size: body.length } }, fast);
        const reqs = s.requests.filter((q) => q.path === path);
        assert.equal(reqs.length, 2);
        if (ranges === false) assert.equal(reqs[1]!.range, undefined);
        else assert.match(reqs[1]!.range ?? "", /^bytes=\d+-$/, "asked for the rest, got all of it");
        // Half of the first body was unpacked (or spooled) already: the second must start over cleanly.
        assert.equal(await readFile(join(r.dir, "big.bin"), "utf8"), tree["big.bin"]);
        assert.equal(await readFile(join(r.dir, "lib/a.txt"), "utf8"), "alpha\n");
        const files = JSON.parse(await readFile(join(paths.entries, r.key, "files.json"), "utf8")) as Array<{ path: string }>;
        assert.deepEqual(files.map((f) => f.path).sort(), ["big.bin", "lib/a.txt"]);
        assert.deepEqual(await leftovers(paths), []);
      });
    }
  }

  it("resumes a zip download with Range and unpacks the whole file", async () => {
    const s = await server;
    const tree: Tree = { "big.bin": randomBytes(300_000).toString("base64") };
    const body = await makeArchive("zip", tree);
    s.routes.set("/trunc.zip", { body, mode: "truncate-once" });
    const r = await installArchive(await storeDir(), { name: "t", version: "1", host: "linux-x64", url: `${s.url}/trunc.zip`, expected: { sha256: sha256(body), size: body.length } }, fast);
    assert.equal(await readFile(join(r.dir, "big.bin"), "utf8"), tree["big.bin"]);
    const reqs = s.requests.filter((q) => q.path === "/trunc.zip");
    assert.match(reqs[1]!.range ?? "", /^bytes=\d+-$/);
  });

  it("streams a tar archive straight into the unpacker: the archive itself never reaches the disk (a zip does)", async () => {
    const s = await server;
    for (const format of ["tar.gz", "zip"] as Format[]) {
      const body = await makeArchive(format, { "big.bin": randomBytes(200_000).toString("base64") });
      s.routes.set(`/slow.${format}`, { body, mode: "slow" });
      const paths = await storeDir();
      const seen = new Set<string>();
      let polling = true;
      const poll = (async () => {
        while (polling) {
          for (const job of await readdir(paths.tmp).catch(() => [] as string[])) {
            for (const name of await readdir(join(paths.tmp, job)).catch(() => [] as string[])) seen.add(name);
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await installArchive(paths, { name: "s", version: "1", host: "linux-x64", url: `${s.url}/slow.${format}`, expected: { sha256: sha256(body) } }, fast);
      polling = false;
      await poll;
      assert.ok(seen.has("unpacked"), `${format}: saw the install in progress (${[...seen].join(", ")})`);
      assert.equal(seen.has("archive"), format === "zip", `${format}: ${[...seen].join(", ")}`);
    }
  });

  it("retries a 500 then succeeds", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "f": "500 once" });
    s.routes.set("/flaky.tgz", { body, mode: "500-once" });
    const r = await installArchive(await storeDir(), { name: "f", version: "1", host: "linux-x64", url: `${s.url}/flaky.tgz`, expected: { sha256: sha256(body) } }, fast);
    assert.equal(r.sha256, sha256(body));
  });

  it("fails a truncated body that never completes with exit 4", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "big.bin": randomBytes(200_000).toString("base64") });
    s.routes.set("/always-trunc.tgz", { body, mode: "truncate-always", ranges: false });
    const paths = await storeDir();
    await assert.rejects(installArchive(paths, { name: "t", version: "1", host: "linux-x64", url: `${s.url}/always-trunc.tgz`, expected: { sha256: sha256(body), size: body.length } }, fast), (e: unknown) => e instanceof DownloadError && e.exitCode === 4 && /always-trunc/.test(e.message));
    assert.deepEqual(await leftovers(paths), []);
  });

  it("fails a 404 at once with exit 4, naming the URL", async () => {
    const s = await server;
    const before = s.requests.length;
    await assert.rejects(installArchive(await storeDir(), { name: "n", version: "1", host: "linux-x64", url: `${s.url}/missing.tgz`, expected: { sha256: "1".repeat(64) } }, fast), (e: unknown) => e instanceof DownloadError && e.exitCode === 4 && /missing\.tgz/.test(e.message) && /404/.test(e.message));
    assert.equal(s.requests.length - before, 1, "a 404 is not retried");
  });

  it("fails a persistent 500 after the retries with exit 4", async () => {
    const s = await server;
    s.routes.set("/down.tgz", { body: Buffer.from("x"), mode: "500" });
    await assert.rejects(installArchive(await storeDir(), { name: "d", version: "1", host: "linux-x64", url: `${s.url}/down.tgz`, expected: { sha256: "1".repeat(64) } }, fast), (e: unknown) => e instanceof DownloadError && /HTTP 500/.test(e.message) && /3 attempts/.test(e.message));
  });

  it("hits the inactivity timeout on a stalling server", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "big.bin": randomBytes(150_000).toString("base64") });
    s.routes.set("/stall.tgz", { body, mode: "stall", ranges: false });
    const started = Date.now();
    await assert.rejects(installArchive(await storeDir(), { name: "s", version: "1", host: "linux-x64", url: `${s.url}/stall.tgz`, expected: { sha256: sha256(body) } }, { retries: 1, backoffMs: 10, idleTimeoutMs: 300 }), (e: unknown) => e instanceof DownloadError && /inactivity/.test(e.message));
    assert.ok(Date.now() - started < 5000);
  });

  it("a slow but steady download is not cut by the inactivity timeout", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "big.bin": randomBytes(30_000).toString("base64") });
    s.routes.set("/slow.tgz", { body, mode: "slow" });
    const r = await installArchive(await storeDir(), { name: "s", version: "1", host: "linux-x64", url: `${s.url}/slow.tgz`, expected: { sha256: sha256(body) } }, { retries: 0, idleTimeoutMs: 1500 });
    assert.equal(r.sha256, sha256(body));
  });

  it("downloads over HTTPS from a server signed by a CA given in caFile", async () => {
    const ca = await makeCa();
    const body = await makeArchive("tar.gz", TREE);
    const s = await startHttpsServer(ca, { "/secure.tgz": { body } });
    try {
      const r = await installArchive(await storeDir(), { name: "s", version: "1", host: "linux-x64", url: `${s.url}/secure.tgz`, expected: { sha256: sha256(body) } }, { ...fast, caFile: ca.caFile });
      assert.equal(r.sha256, sha256(body));
      // Without the CA the certificate is rejected: verification is on.
      await assert.rejects(installArchive(await storeDir(), { name: "s", version: "1", host: "linux-x64", url: `${s.url}/secure.tgz`, expected: { sha256: sha256(body) } }, { ...fast, retries: 0 }), (e: unknown) => e instanceof DownloadError && /certificate/i.test(e.message));
    } finally {
      await s.close();
    }
  });
});

describe("hostile archives are refused", () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ["absolute path", rawTar([{ path: "/etc/evil", type: "File", body: "x" }]), /absolute path/],
    ["'..' in a path", rawTar([{ path: "pkg/../../evil", type: "File", body: "x" }]), /escapes the package/],
    ["symlink to an absolute path", rawTar([{ path: "pkg/link", type: "SymbolicLink", linkpath: "/etc/passwd" }]), /absolute path/],
    ["symlink escaping with ..", rawTar([{ path: "pkg/link", type: "SymbolicLink", linkpath: "../../outside" }]), /outside the package/],
    ["write through a symlink", rawTar([{ path: "pkg/dir", type: "SymbolicLink", linkpath: "." }, { path: "pkg/dir/x", type: "File", body: "x" }]), /through the link/],
    ["hardlink outside", rawTar([{ path: "pkg/h", type: "Link", linkpath: "../../etc/passwd" }]), /outside the package/],
    ["hardlink to an absolute path", rawTar([{ path: "pkg/h", type: "Link", linkpath: "/etc/passwd" }]), /absolute path/],
    ["character device", rawTar([{ path: "pkg/dev", type: "CharacterDevice" }]), /device file/],
    ["FIFO", rawTar([{ path: "pkg/fifo", type: "FIFO" }]), /FIFO/],
    ["zip with ..", rawZip([{ name: "pkg/../../evil.txt", body: "x" }]), /relative path|escapes/],
    ["zip with an absolute path", rawZip([{ name: "/evil.txt", body: "x" }]), /absolute path/],
    ["zip symlink outside", rawZip([{ name: "pkg/l", body: "../../../etc/passwd", unixMode: 0o120777 }]), /outside the package/],
    ["zip FIFO", rawZip([{ name: "pkg/f", body: "", unixMode: 0o010644 }]), /FIFO|device/],
  ];
  const server = startServer();
  after(async () => (await server).close());
  for (const [what, body, re] of cases) {
    it(what, async () => {
      const s = await server;
      const path = `/hostile-${what.replace(/\W+/g, "-")}`;
      s.routes.set(path, { body });
      const paths = await storeDir();
      await assert.rejects(installArchive(paths, { name: "h", version: "1", host: "linux-x64", url: `${s.url}${path}`, expected: { sha256: sha256(body) } }, fast), (e: unknown) => {
        assert.ok(e instanceof UnsafeArchiveError, String(e));
        assert.equal(e.exitCode, 5);
        assert.match(e.message, re);
        return true;
      });
      assert.deepEqual(await readdir(paths.entries).catch(() => []), []);
      assert.deepEqual(await leftovers(paths), []);
    });
  }

  for (const format of ["tar.gz", "tar"] as const) {
    it(`a hostile first entry of a large ${format} fails it while the download still has megabytes to send, leaving nothing`, async () => {
      const s = await server;
      // Incompressible: the unpacker is behind the download, writing and waiting for 'drain', when the entry fails it.
      const tarball = rawTar([{ path: "pkg/fifo", type: "FIFO" }, { path: "pkg/big.bin", type: "File", body: randomBytes(8 << 20) }]);
      const body = format === "tar" ? tarball : gzipSync(tarball, { level: 1 });
      s.routes.set(`/hostile-large.${format}`, { body });
      const paths = await storeDir();
      await assert.rejects(installArchive(paths, { name: "h", version: "1", host: "linux-x64", url: `${s.url}/hostile-large.${format}`, expected: { sha256: sha256(body) } }, fast), (e: unknown) => e instanceof UnsafeArchiveError && /FIFO/.test(e.message));
      assert.deepEqual(await readdir(paths.entries).catch(() => []), []);
      assert.deepEqual(await leftovers(paths), []);
    });
  }

  it("an extracted-size cap stops a bomb", async () => {
    const s = await server;
    const body = await makeArchive("tar.gz", { "zeros.bin": "\0".repeat(2_000_000) });
    s.routes.set("/bomb.tgz", { body });
    assert.ok(body.length < 20_000);
    const paths = await storeDir();
    await assert.rejects(installArchive(paths, { name: "b", version: "1", host: "linux-x64", url: `${s.url}/bomb.tgz`, expected: { sha256: sha256(body) } }, { ...fast, maxUnpackedBytes: 1_000_000 }), (e: unknown) => e instanceof UnsafeArchiveError && /cap of 1000000 bytes/.test(e.message));
    assert.deepEqual(await leftovers(paths), []);
  });
});

describe("verify, remove, gc", () => {
  it("verify reports a tampered entry and takes it out of the store", async () => {
    const s = await startServer();
    try {
      const body = await makeArchive("tar.gz", TREE);
      s.routes.set("/v.tgz", { body });
      const paths = await storeDir();
      const spec = { name: "v", version: "1", host: "linux-x64", url: `${s.url}/v.tgz`, expected: { sha256: sha256(body) } };
      const r = await installArchive(paths, spec, fast);
      assert.deepEqual((await verifyStore(paths)).map((x) => x.ok), [true]);
      await writeFile(join(r.dir, "lib/a.txt"), "tampered\n");
      const reports = await verifyStore(paths);
      assert.equal(reports[0]!.ok, false);
      assert.match(reports[0]!.problems.join("\n"), /lib\/a\.txt: (content changed|size)/);
      assert.deepEqual(await readdir(paths.entries), []);
      const again = await installArchive(paths, spec, fast);
      assert.equal(again.downloaded, true);
      assert.equal(await readFile(join(again.dir, "lib/a.txt"), "utf8"), "alpha\n");
    } finally {
      await s.close();
    }
  });

  it("remove drops the entry; gc removes entries unused for a while and dead tmp dirs", async () => {
    const s = await startServer();
    try {
      const a = await makeArchive("tar.gz", { f: "a" });
      const b = await makeArchive("tar.gz", { f: "b" });
      s.routes.set("/a.tgz", { body: a });
      s.routes.set("/b.tgz", { body: b });
      const paths = await storeDir();
      await installArchive(paths, { name: "a", version: "1", host: "linux-x64", url: `${s.url}/a.tgz`, expected: { sha256: sha256(a) } }, fast);
      await installArchive(paths, { name: "b", version: "1", host: "linux-x64", url: `${s.url}/b.tgz`, expected: { sha256: sha256(b) } }, fast);
      const removed = await removePackage(paths, "a", "1");
      assert.deepEqual(removed.map((e) => e.key), [sha256(a)]);
      await mkdir(join(paths.tmp, "999999-deadhost-0000-x"), { recursive: true });
      await mkdir(join(paths.tmp, `999999-${(await import("node:os")).hostname().replace(/[^A-Za-z0-9]/g, "")}-0000-x`), { recursive: true });
      const gc = await gcStore(paths, 0);
      assert.deepEqual(gc.removed.map((e) => e.key), [sha256(b)]);
      assert.equal(gc.tmpRemoved, 1);
      assert.deepEqual(await readdir(paths.entries), []);
    } finally {
      await s.close();
    }
  });
});

describe("proxy and disk full", () => {
  it("downloads through HTTP_PROXY, and NO_PROXY bypasses it", async () => {
    const s = await startServer();
    const proxy = await startConnectProxy();
    const proxied = proxy.tunnels;
    const proxyUrl = proxy.url;
    try {
      const body = await makeArchive("tar.gz", { f: "via proxy" });
      s.routes.set("/p.tgz", { body });
      const spec = { name: "p", version: "1", host: "linux-x64", url: `${s.url}/p.tgz`, expected: { sha256: sha256(body) } };
      await installArchive(await storeDir(), spec, { ...fast, proxy: proxyUrl });
      assert.deepEqual(proxied, [new URL(s.url).host]);
      await installArchive(await storeDir(), spec, { ...fast, proxy: proxyUrl, noProxy: ["127.0.0.1"] });
      assert.equal(proxied.length, 1, "NO_PROXY host goes direct");
    } finally {
      await s.close();
      await proxy.close();
    }
  });

  it("disk full: a clear error, and the store is left intact", async (t) => {
    // A real full disk: a 3 MB tmpfs (the suite runs as root, as CI does).
    const { execFileSync } = await import("node:child_process");
    const mnt = await tempDir("kiln-full-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]);
    t.after(() => execFileSync("umount", [mnt]));
    const s = await startServer();
    t.after(() => s.close());
    const paths = storePaths(mnt);
    const small = await makeArchive("tar.gz", { f: "fits" });
    const big = await makeArchive("tar.gz", { "zeros.bin": "\0".repeat(6_000_000) });
    s.routes.set("/small.tgz", { body: small });
    s.routes.set("/big.tgz", { body: big });
    const ok = await installArchive(paths, { name: "small", version: "1", host: "linux-x64", url: `${s.url}/small.tgz`, expected: { sha256: sha256(small) } }, fast);
    await assert.rejects(installArchive(paths, { name: "big", version: "1", host: "linux-x64", url: `${s.url}/big.tgz`, expected: { sha256: sha256(big) } }, fast), (e: unknown) => {
      assert.ok(e instanceof StoreWriteError, String(e));
      assert.match(e.message, /disk full/);
      assert.match(e.hint ?? "", /kiln pkg gc/);
      return true;
    });
    assert.deepEqual(await readdir(paths.entries), [ok.key], "only the complete entry");
    assert.deepEqual(await leftovers(paths), []);
    assert.deepEqual((await verifyStore(paths)).map((r) => r.ok), [true]);
  });
});

describe("unpacking writes small files in the background", () => {
  it("many small files, one large, a hard link to a file still being written, and a path given twice: all land as listed", async () => {
    const { extractArchive } = await import("../../lib/toolchains/extract.js");
    const dir = await tempDir("kiln-extract-");
    const entries: Parameters<typeof rawTar>[0] = [{ path: "pkg/", type: "Directory" }];
    for (let i = 0; i < 200; i++) entries.push({ path: `pkg/d${i % 7}/f${i}.txt`, type: "File", body: `file ${i} `.repeat(i + 1) });
    const big = randomBytes(600 * 1024).toString("base64");
    entries.push({ path: "pkg/big.bin", type: "File", body: big });
    entries.push({ path: "pkg/again.txt", type: "File", body: "first" });
    entries.push({ path: "pkg/hard", type: "Link", linkpath: "pkg/d3/f199.txt" });
    entries.push({ path: "pkg/again.txt", type: "File", body: "second" });
    const archive = join(dir, "a.tar");
    await writeFile(archive, rawTar(entries));
    const dest = join(dir, "out");
    await mkdir(dest);
    const r = await extractArchive({ archive, dest, label: "a.tar" });
    for (let i = 0; i < 200; i += 37) assert.equal(await readFile(join(dest, `pkg/d${i % 7}/f${i}.txt`), "utf8"), `file ${i} `.repeat(i + 1));
    assert.equal(await readFile(join(dest, "pkg/big.bin"), "utf8"), big);
    assert.equal(await readFile(join(dest, "pkg/hard"), "utf8"), "file 199 ".repeat(200));
    assert.equal(await readFile(join(dest, "pkg/again.txt"), "utf8"), "second");
    // Every recorded hash is the hash of what is on disk.
    assert.equal(r.files.length, 203);
    for (const f of r.files) assert.equal(f.sha256, sha256(await readFile(join(dest, r.root ?? "", f.path))), f.path);
  });
});

describe("directory snapshots (platform_packages NAME @ file:///dir)", () => {
  it("copies every file, hashed, before the entry is published; the same tree is stored once", async () => {
    const src = await tempDir("kiln-dir-src-");
    const want = new Map<string, Buffer>();
    for (let i = 0; i < 600; i++) {
      const rel = `lib/d${i % 7}/f${i}.h`;
      const body = randomBytes(500 + (i % 50) * 40);
      await mkdir(join(src, `lib/d${i % 7}`), { recursive: true });
      await writeFile(join(src, rel), body);
      want.set(rel, body);
    }
    await writeFile(join(src, "big.bin"), randomBytes(700_000));
    want.set("big.bin", await readFile(join(src, "big.bin")));
    const { symlink } = await import("node:fs/promises");
    await symlink("big.bin", join(src, "link.bin"));
    const paths = await storeDir();
    const spec = { name: "fw", version: "dir", host: "*", dir: src };
    const r = await installDirectory(paths, spec);
    for (const [rel, body] of want) assert.ok((await readFile(join(r.dir, rel))).equals(body), rel);
    assert.equal(await readlink(join(r.dir, "link.bin")), "big.bin");
    const again = await installDirectory(paths, { ...spec, name: "fw-copy" });
    assert.equal(again.key, r.key, "the same tree, the same entry");
    assert.equal((await listEntries(paths)).length, 1);
    const verified = await verifyStore(paths);
    assert.deepEqual(verified.map((v) => v.ok), [true]);
  });
});
