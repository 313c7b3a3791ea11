/**
 * The thread that hashes and writes small unpacked files
 * (lib/toolchains/write-thread.ts), used directly: more files than slots,
 * the file-system errors it must hand back, and a thread that ends
 * mid-way.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { SLOT_BYTES, writeThread } from "../../lib/toolchains/write-thread.js";
import { tempDir } from "../helpers/cli.js";

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
