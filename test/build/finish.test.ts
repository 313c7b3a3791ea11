/**
 * The launcher finishing a head-started build itself (lib/build/finish.ts):
 * when only sources the link takes directly changed, it compiles and links
 * without loading the CLI, and leaves what the normal path would have left;
 * anything the normal path must say or decide goes to the normal path.
 * Real gcc, real processes, observed through the import tracer and a
 * logging compiler (test/helpers/fastpath.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli, writeTree } from "../helpers/cli.js";
import { alive } from "../helpers/tools.js";
import { project, readdirRecursive, settle, spawnTraced, traced } from "../helpers/fastpath.js";
import { canFinish, type NoopStamp } from "../../lib/build/noop.js";

const strip = (s: string): string => s.replace(/in \d+\.\d\ds/, "in Xs");
const program = (dir: string): string => join(dir, ".kiln/build/native/program");
const leftovers = async (dir: string): Promise<string[]> => (await readdirRecursive(join(dir, ".kiln"))).filter((f) => f.includes(".tmp-"));

async function edit(dir: string, file: string, text: string): Promise<void> {
  await writeFile(join(dir, file), text);
}

describe("the launcher's finish of a head-started build", () => {
  it("compiles and links a changed source without the CLI, prints what the normal path prints, and leaves the normal path's state", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    const earlyBefore = await p.early();
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return 3; }\n');
    const r = await traced(args, p.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.fullPath, false, "the CLI was loaded");
    assert.equal(strip(r.stderr), "Building native\n  compile src/util.c\n  link    .kiln/build/native/program\nnative: built in Xs (compiled 1, reused 1, linked)\n");
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c"]);
    assert.equal((await p.early()) - earlyBefore, 1, "the compile was the head start's");
    assert.equal(spawnSync(program(p.dir)).status, 3, "the program was not relinked with the new code");
    const manifest = JSON.parse(await readFile(join(p.dir, ".kiln/build/native/manifest.json"), "utf8")) as { images: Array<{ sha256: string; sizeBytes: number }> };
    const bytes = await readFile(program(p.dir));
    assert.equal(manifest.images[0]!.sha256, createHash("sha256").update(bytes).digest("hex"));
    assert.equal(manifest.images[0]!.sizeBytes, bytes.length);
    assert.deepEqual(await leftovers(p.dir), []);

    // Its stamp: the next build is answered by the launcher as a no-op.
    await new Promise((res) => setTimeout(res, 20));
    const noop = await traced(args, p.env, p.dir);
    assert.equal(noop.fullPath, false, "no stamp after the launcher's build");
    assert.match(noop.stderr, /compiled 0, reused 2\)/);
    // Its state: the normal path (other arguments) finds everything up to date, and links nothing.
    const normal = await runCli([...args, "--remote", "never"], { env: p.env });
    assert.equal(normal.code, 0, normal.stderr);
    assert.match(normal.stderr, /compiled 0, reused 2\)\n$/);
    assert.deepEqual(await p.compiles(), []);

    // And the normal path prints, for the same kind of change, what the launcher printed.
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return 4; }\n');
    const same = await runCli([...args, "--remote", "never"], { env: p.env });
    assert.equal(strip(same.stderr), strip(r.stderr));
    assert.equal(spawnSync(program(p.dir)).status, 4);
  });

  it("a changed #include line goes the normal path: the libraries used may change", async () => {
    const p = await project();
    await writeTree(p.dir, { "lib/extra/extra.h": "int extra(void);\n", "lib/extra/extra.c": '#include "extra.h"\nint extra(void) { return 5; }\n' });
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    await edit(p.dir, "src/util.c", '#include "util.h"\n#include "extra.h"\nint util(void) { return extra(); }\n');
    const r = await traced(args, p.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.fullPath, true);
    // The new library's folder is on every project compile's -I list: main.c too, and util.c again (its head start had the old command).
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()).sort(), ["extra.c", "main.c", "util.c", "util.c"]);
    assert.equal(spawnSync(program(p.dir)).status, 5);

    // A library's source goes into the library's archive: a change to it is not only a link away.
    await settle(p, args);
    await edit(p.dir, "lib/extra/extra.c", '#include "extra.h"\nint extra(void) { return 6; }\n');
    const lib = await traced(args, p.env, p.dir);
    assert.equal(lib.code, 0, lib.stderr);
    assert.equal(lib.fullPath, true);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["extra.c"]);
    assert.equal(spawnSync(program(p.dir)).status, 6);
  });

  it("a header the compile now reads (same #include lines, another #if branch) is in the stamp it leaves", async () => {
    const p = await project();
    await writeTree(p.dir, {
      "include/extra2.h": "#define EXTRA 20\n",
      "src/util.c": '#include "util.h"\n#ifdef USE_EXTRA\n#include "extra2.h"\n#endif\nint util(void) { return 0; }\n',
    });
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    await edit(p.dir, "src/util.c", '#define USE_EXTRA\n#include "util.h"\n#ifdef USE_EXTRA\n#include "extra2.h"\n#endif\nint util(void) { return EXTRA; }\n');
    const r = await traced(args, p.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.fullPath, false);
    assert.equal(spawnSync(program(p.dir)).status, 20);
    await new Promise((res) => setTimeout(res, 20));
    await edit(p.dir, "include/extra2.h", "#define EXTRA 21\n");
    const next = await traced(args, p.env, p.dir);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, /compiled 1, reused 1, linked/, "the header's edit was taken for a no-op");
    assert.equal(spawnSync(program(p.dir)).status, 21);
  });

  it("several changed sources (up to -j) are compiled side by side, then linked once", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir, "-j", "2"];
    await settle(p, args);
    await edit(p.dir, "src/main.c", '#include "util.h"\nint main(void) { return util() + 1; }\n');
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return 10; }\n');
    const r = await traced(args, p.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.fullPath, false);
    assert.match(strip(r.stderr), /^Building native\n {2}compile src\/(main|util)\.c\n {2}compile src\/(main|util)\.c\n {2}link {4}\.kiln\/build\/native\/program\nnative: built in Xs \(compiled 2, reused 0, linked\)\n$/);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()).sort(), ["main.c", "util.c"]);
    assert.equal(spawnSync(program(p.dir)).status, 11);
  });

  it("a compile that fails or warns is reported by the normal path, which adopts it", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return }\n');
    const failed = await traced(args, p.env, p.dir);
    assert.equal(failed.code, 6, failed.stderr);
    assert.equal(failed.fullPath, true);
    assert.match(failed.stderr, /src\/util\.c:2:\d+: error:/);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c"], "compiled once: the head start was adopted");

    await edit(p.dir, "src/util.c", '#include "util.h"\n#warning "look here"\nint util(void) { return 7; }\n');
    const warned = await traced(args, p.env, p.dir);
    assert.equal(warned.code, 0, warned.stderr);
    assert.equal(warned.fullPath, true);
    assert.match(warned.stderr, /warning: #warning "look here"/);
    assert.match(warned.stderr, /compiled 1, reused 1, linked/);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c"]);
    assert.equal(spawnSync(program(p.dir)).status, 7);
  });

  it("a link that fails is reported by the normal path, and the object the launcher made is kept", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util2(void) { return 1; }\n');
    const r = await traced(args, p.env, p.dir);
    assert.equal(r.code, 6, r.stderr);
    assert.equal(r.fullPath, true);
    assert.match(r.stderr, /undefined reference to `util'/);
    assert.match(r.stderr, /link failed for program/);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c"], "the normal path compiled the launcher's object again");
    assert.deepEqual(await leftovers(p.dir), []);
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return 2; }\n');
    const fixed = await traced(args, p.env, p.dir);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(spawnSync(program(p.dir)).status, 2);
  });

  it("a source edited while it compiles goes the normal path, which compiles it again", async () => {
    const p = await project();
    const marker = join(p.dir, "edit-during-compile");
    await writeTree(p.dir, {
      // The logging compiler, except that with the marker present it edits util.c while it compiles it.
      cc2: `#!/bin/sh\nif [ -f "${marker}" ]; then rm -f "${marker}"; sleep 0.2; echo "int late(void) { return 9; }" >> "${join(p.dir, "src/util.c")}"; fi\nexec "${join(p.dir, "cc")}" "$@"\n`,
    });
    await chmod(join(p.dir, "cc2"), 0o755);
    const q = { ...p, env: { ...p.env, CC: join(p.dir, "cc2") } };
    const args = ["build", "-d", p.dir];
    await settle(q, args);
    await writeFile(marker, "");
    await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return 1; }\n');
    const r = await traced(args, q.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.fullPath, true);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c", "util.c"]);
    assert.match(await readFile(join(p.dir, "src/util.c"), "utf8"), /late/);
    const nm = spawnSync("nm", [program(p.dir)], { encoding: "utf8" });
    assert.match(nm.stdout, / T late\n/, "the program is not made from the source as it is now");
    await new Promise((res) => setTimeout(res, 20));
    const next = await traced(args, q.env, p.dir);
    assert.match(next.stderr, /compiled 0, reused 2\)/);
    assert.deepEqual(await p.compiles(), []);
  });

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`${signal} while the launcher waits for its compile: exit 130, no process or temp file left, and the next build is whole`, async () => {
      const p = await project();
      const marker = join(p.dir, "slow");
      const pids = join(p.dir, "pids");
      await writeTree(p.dir, {
        // The logging compiler; with the marker present, first a sleep in a grandchild (the process group must go).
        cc3: `#!/bin/sh\nif [ -f "${marker}" ]; then sleep 30 & echo $! >> "${pids}"; wait; fi\nexec "${join(p.dir, "cc")}" "$@"\n`,
      });
      await chmod(join(p.dir, "cc3"), 0o755);
      const q = { ...p, env: { ...p.env, CC: join(p.dir, "cc3") } };
      const args = ["build", "-d", p.dir];
      await settle(q, args);
      await writeFile(marker, "");
      await edit(p.dir, "src/util.c", '#include "util.h"\nint util(void) { return 8; }\n');
      const run = await spawnTraced(args, q.env, p.dir);
      const deadline = Date.now() + 10_000;
      while (!(await readFile(pids, "utf8").catch(() => "")).trim() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      run.child.kill(signal);
      const r = await run.closed;
      assert.equal(r.fullPath, false, "the CLI, not the launcher, was building");
      assert.equal(r.code, 130, r.stderr);
      const sleeper = Number((await readFile(pids, "utf8")).trim());
      // Killed with its process group (a killed orphan is reaped by init in its own time).
      const gone = Date.now() + 5000;
      while (alive(sleeper) && Date.now() < gone) await new Promise((res) => setTimeout(res, 20));
      assert.equal(alive(sleeper), false, "the compile's process group was left running");
      assert.deepEqual(await leftovers(p.dir), []);
      await rm(marker);
      const next = await traced(args, q.env, p.dir);
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, /compiled 1, reused 1, linked/);
      assert.equal(spawnSync(program(p.dir)).status, 8);
    });
  }

  it("only a build of one env whose changed sources the link takes directly", () => {
    const stamp = (over: Partial<NoopStamp>): NoopStamp => ({
      v: 1,
      key: "",
      envHash: "",
      files: [],
      dirs: [],
      envs: [{ env: "native", reused: 2, sizeText: "" }],
      units: {
        prefixes: [["gcc"]],
        list: [
          ["/p/src/a.c", "/p/b/a.o", 0],
          ["/p/lib/x/x.c", "/p/b/x.o", 0],
        ],
      },
      finish: { env: "native", buildDir: "/p/b", link: { output: "/p/b/program", template: ["gcc", "-o", "\0tmp", "/p/b/a.o", "/p/b/libx.a"] }, manifest: "/p/b/manifest.json", images: [] },
      ...over,
    });
    assert.equal(canFinish(stamp({}), ["/p/src/a.c"]), true);
    assert.equal(canFinish(stamp({}), ["/p/lib/x/x.c"]), false, "an object that goes into an archive");
    assert.equal(canFinish(stamp({ finish: undefined }), ["/p/src/a.c"]), false, "no recipe (images, size, an archive)");
    assert.equal(canFinish(stamp({ envs: [...stamp({}).envs, { env: "other", reused: 1, sizeText: "" }] }), ["/p/src/a.c"]), false, "two envs");
  });
});
