/**
 * The peer's bookkeeping on disk: the retention sweep removes workspaces and
 * blobs unused for a day and never one a job is using; the blob store keeps
 * only content that hashes to its name.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { BlobStore, sweep } from "../../lib/remote/jobs.js";
import { tempDir } from "../helpers/cli.js";

const DAY = 24 * 3600_000;

describe("peer retention sweep", () => {
  it("removes workspaces and blobs unused for a day, keeps fresh ones and the ones in use", async () => {
    const root = await tempDir("kiln-sweep-");
    const ws = (client: string, project: string, env: string): string => join(root, "workspaces", client, project, env);
    const old = new Date(Date.now() - 2 * DAY);
    for (const p of [ws("c1", "p1", "uno"), ws("c1", "p1", "native"), ws("c2", "p9", "uno")]) await mkdir(join(p, "project"), { recursive: true });
    await utimes(ws("c1", "p1", "uno"), old, old);
    await utimes(ws("c2", "p9", "uno"), old, old);
    const blobs = new BlobStore(join(root, "blobs"));
    const put = async (text: string): Promise<string> => {
      const sha = createHash("sha256").update(text).digest("hex");
      await blobs.put(sha, Buffer.byteLength(text), Readable.from([Buffer.from(text)]));
      return sha;
    };
    const stale = await put("stale");
    const fresh = await put("fresh");
    await utimes(blobs.path(stale), old, old);

    const removed = await sweep(root, DAY, new Set([ws("c2", "p9", "uno")]));
    assert.equal(removed, 2);
    assert.deepEqual((await readdir(join(root, "workspaces", "c1", "p1"))).sort(), ["native"]);
    assert.deepEqual(await readdir(join(root, "workspaces", "c2", "p9")), ["uno"], "a workspace in use stays");
    assert.equal(await blobs.has(stale), false);
    assert.equal(await blobs.has(fresh), true);
  });

  it("the blob store refuses content that does not hash to its name, or is longer than declared", async () => {
    const root = await tempDir("kiln-blobs-");
    const blobs = new BlobStore(root);
    const sha = createHash("sha256").update("right").digest("hex");
    await assert.rejects(blobs.put(sha, 5, Readable.from([Buffer.from("wrong")])), /hashes to/);
    await assert.rejects(blobs.put(sha, 3, Readable.from([Buffer.from("right")])), /larger than its declared/);
    assert.equal(await blobs.has(sha), false);
    assert.deepEqual((await readdir(root, { recursive: true })).filter((n) => n.includes(".tmp")), [], "no temp file left");
  });
});
