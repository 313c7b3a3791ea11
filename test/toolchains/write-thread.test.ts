/**
 * The unpack thread (lib/toolchains/write-thread.ts, lib/toolchains/unpack-thread.ts),
 * used directly: small files written and hashed, more files than slots, the
 * file-system errors it must hand back, tar streams cut into pieces of any
 * size, several at once, aborted, and a thread that ends mid-way.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { UnsupportedArchiveError } from "../../lib/toolchains/errors.js";
import { SLOT_BYTES, SLOTS, writeThread, type TarUnpack } from "../../lib/toolchains/write-thread.js";
import { tempDir } from "../helpers/cli.js";
import { rawTar, type RawTarEntry } from "./fixtures.js";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("the write thread", () => {
  it("writes and hashes many more files than it has slots (a full slot and an empty file among them)", async () => {
    const dir = await tempDir("kiln-wt-");
    const files = Array.from({ length: 60 }, (_, i) => {
      const body = randomBytes(i === 0 ? SLOT_BYTES : i === 1 ? 0 : 1 + i * 997);
      // Split into uneven chunks, as tar hands them over.
      const chunks = [body.subarray(0, body.length >> 2), body.subarray(body.length >> 2)];
      return { path: join(dir, `f${i}`), body, chunks };
    });
    const shas = await Promise.all(files.map((f, i) => writeThread().write(f.path, i % 2 ? 0o755 : 0o644, f.chunks)));
    for (const [i, f] of files.entries()) {
      assert.equal(shas[i], sha(f.body), f.path);
      assert.ok((await readFile(f.path)).equals(f.body), f.path);
      assert.equal((await stat(f.path)).mode & 0o777, i % 2 ? 0o755 : 0o644);
    }
  });

  it("hands back the file system's errors with their codes, and goes on after them", async () => {
    const dir = await tempDir("kiln-wt-");
    await writeFile(join(dir, "planted"), "x");
    // O_CREAT|O_EXCL: never writes over (or through) what is already there.
    await assert.rejects(writeThread().write(join(dir, "planted"), 0o644, [Buffer.from("new")]), (e: NodeJS.ErrnoException) => e.code === "EEXIST" && e.path === join(dir, "planted"));
    assert.equal(await readFile(join(dir, "planted"), "utf8"), "x");
    await assert.rejects(writeThread().write(join(dir, "no", "such", "dir"), 0o644, [Buffer.from("y")]), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
    const ok = await writeThread().write(join(dir, "after"), 0o644, [Buffer.from("z")]);
    assert.equal(ok, sha(Buffer.from("z")));
  });

  it("a thread that ends fails what it held; the next write starts another", async () => {
    const dir = await tempDir("kiln-wt-");
    const pending = Array.from({ length: 12 }, (_, i) => writeThread().write(join(dir, `p${i}`), 0o644, [randomBytes(100_000)]).then(() => "ok", (e: Error) => e.message));
    await writeThread().stop();
    const outcomes = await Promise.all(pending);
    assert.ok(outcomes.every((o) => o === "ok" || /thread/.test(o)), outcomes.join(", "));
    assert.ok(outcomes.some((o) => o !== "ok"), `the thread ended before any of them failed: ${outcomes.join(", ")}`);
    const body = randomBytes(5000);
    assert.equal(await writeThread().write(join(dir, "later"), 0o644, [body]), sha(body));
    assert.ok((await readFile(join(dir, "later"))).equals(body));
  });
});

/** Write `data` to the unpack's sink in pieces of the given sizes (cycled), waiting on backpressure. */
async function feed(unpack: TarUnpack, data: Buffer, sizes: readonly number[]): Promise<void> {
  let i = 0;
  for (let off = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    if (!unpack.sink.write(data.subarray(off, off + n))) await new Promise((r) => unpack.sink.once("drain", r));
    off += n;
  }
  unpack.sink.end();
}

const opts = (dest: string) => ({ dest, label: "test.tar", maxBytes: 1 << 30, maxEntries: 10_000 });

describe("the unpack thread's tar streams", () => {
  it("unpacks tar streams cut into pieces of any size, three at once through its slots, byte for byte", async () => {
    const bodies = [0, 1, 511, 512, 513, 65_536, SLOT_BYTES + 1000, 3 * SLOT_BYTES + 7].map((n) => randomBytes(n));
    const entries: RawTarEntry[] = [
      { path: "pkg/", type: "Directory" },
      ...bodies.map((body, i) => ({ path: `pkg/d${i % 3}/f${i}.bin`, type: "File" as const, body })),
      { path: "pkg/link", type: "SymbolicLink", linkpath: "d0/f0.bin" },
      { path: "pkg/hard", type: "Link", linkpath: "pkg/d1/f4.bin" },
      // The same path twice: the later entry wins, and is listed once.
      { path: "pkg/again.txt", type: "File", body: "first" },
      { path: "pkg/again.txt", type: "File", body: "second, longer" },
    ];
    const archive = rawTar(entries);
    // Pieces well off tar's 512-byte blocks, one bigger than a slot; three streams share the slots.
    const cuts = [[1, 7, 511, 513, 100_003], [SLOT_BYTES + 3, 999, 1], [65_536, 64 * 1024 - 1, 300]];
    const dests = await Promise.all(cuts.map(() => tempDir("kiln-ut-")));
    const unpacks = dests.map((d) => writeThread().tar(opts(d)));
    const [outcomes] = await Promise.all([Promise.all(unpacks.map((u) => u.done)), ...unpacks.map((u, i) => feed(u, archive, cuts[i]!))]);
    for (const [j, dest] of dests.entries()) {
      const out = outcomes[j]!;
      for (const [i, body] of bodies.entries()) {
        const path = `pkg/d${i % 3}/f${i}.bin`;
        assert.ok((await readFile(join(dest, path))).equals(body), `${dest}: ${path}`);
        assert.equal(out.files.find((f) => f.path === path)?.sha256, sha(body), path);
      }
      assert.equal(await readlink(join(dest, "pkg/link")), "d0/f0.bin");
      assert.ok((await readFile(join(dest, "pkg/hard"))).equals(bodies[4]!));
      assert.equal(await readFile(join(dest, "pkg/again.txt"), "utf8"), "second, longer");
      assert.deepEqual(out.files.filter((f) => f.path === "pkg/again.txt").map((f) => f.size), [14]);
      assert.deepEqual(out.tops, ["pkg"]);
      assert.equal(out.bytes, bodies.reduce((n, b) => n + b.length, 0) + bodies[4]!.length + "first".length + 14);
    }
  });

  it("refuses a stream that is gzip again (tar's parser would read the slots after handing them back)", async () => {
    const unpack = writeThread().tar(opts(await tempDir("kiln-ut-")));
    const done = unpack.done.then(() => undefined, (e: unknown) => e);
    unpack.sink.end(gzipSync(rawTar([{ path: "a", type: "File", body: "x" }])));
    const e = await done;
    assert.ok(e instanceof UnsupportedArchiveError, String(e));
    assert.match(e.message, /test\.tar: its content is compressed twice/);
  });

  it("an aborted stream settles with the reason, after which the thread writes nothing more", async () => {
    const dest = await tempDir("kiln-ut-");
    const archive = rawTar(Array.from({ length: 400 }, (_, i) => ({ path: `p/f${i}`, type: "File" as const, body: randomBytes(4096) })));
    const unpack = writeThread().tar(opts(dest));
    unpack.sink.write(archive.subarray(0, archive.length >> 1));
    unpack.abort(new Error("download restarted"));
    // Bytes after the abort are dropped, not written.
    unpack.sink.end(archive.subarray(archive.length >> 1));
    await assert.rejects(unpack.done, /download restarted/);
    const files = (await readdir(join(dest, "p"))).length;
    assert.ok(files < 400, `${files} files: the abort came after everything`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await readdir(join(dest, "p"))).length, files);
    await rm(dest, { recursive: true });
  });

  it("a thread that ends fails its streams; the next stream runs on another", async () => {
    const archive = rawTar(Array.from({ length: 200 }, (_, i) => ({ path: `p/f${i}`, type: "File" as const, body: randomBytes(10_000) })));
    const first = writeThread().tar(opts(await tempDir("kiln-ut-")));
    const failed = first.done.then(() => "ok", (e: Error) => e.message);
    first.sink.write(archive.subarray(0, SLOTS * SLOT_BYTES));
    await writeThread().stop();
    first.sink.end(archive.subarray(SLOTS * SLOT_BYTES));
    assert.match(await failed, /thread/);
    const dest = await tempDir("kiln-ut-");
    const second = writeThread().tar(opts(dest));
    second.sink.end(archive);
    assert.equal((await second.done).files.length, 200);
    assert.equal((await readdir(join(dest, "p"))).length, 200);
  });
});
