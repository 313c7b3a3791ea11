/**
 * The launcher's no-op answer (lib/fastpath.ts, lib/build/noop.ts): an exact
 * repeat of a no-op build is answered before the CLI loads — and every kind
 * of change sends the build back through the normal path. Observed with a
 * module-resolution hook (what loaded) and a logging compiler (what ran).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli, tempDir, writeTree } from "../helpers/cli.js";
import { project, readdirRecursive, settle, traced } from "../helpers/fastpath.js";
import { parseFastArgs } from "../../lib/fastpath.js";
import { readStamp, writeStamp } from "../../lib/build/noop.js";
import { requireTool } from "../helpers/tools.js";
import { debianAvrIni } from "../helpers/avr.js";

describe("the no-op fast path", () => {
  it("answers an unchanged build without loading the CLI, printing what the normal path prints", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    const normal = await runCli([...args, "--remote", "never"], { env: p.env });
    const fast = await traced(args, p.env, p.dir);
    const strip = (s: string): string => s.replace(/in \d+\.\d\ds/, "in Xs");
    assert.equal(strip(fast.stderr), strip(normal.stderr));
    assert.match(fast.stderr, /native: built in \d\.\d\ds \(compiled 0, reused 2\)/);
    assert.deepEqual(await p.compiles(), []);
  });

  const changes: Array<[string, (dir: string) => Promise<void>, string[] | undefined]> = [
    ["a header", async (d) => writeFile(join(d, "include/util.h"), "int util(void);\n/* x */\n"), ["main.c", "util.c"]],
    ["a new source file", async (d) => writeFile(join(d, "src/extra.c"), "int extra(void) { return 1; }\n"), ["extra.c"]],
    ["a new folder of sources", async (d) => writeTree(join(d, "src/sub"), { "deep.c": "int deep(void) { return 2; }\n" }), ["deep.c"]],
    ["the config", async (d) => writeFile(join(d, "platformio.ini"), "[env:native]\nplatform = native\nbuild_flags = -DX=1\n"), ["main.c", "util.c"]],
    ["a deleted program", async (d) => rm(join(d, ".kiln/build/native/program")), []],
    ["a new project library", async (d) => writeTree(join(d, "lib/extra"), { "extra.h": "int e(void);\n" }), []],
    ["a paired peer", async (d) => writeTree(join(d, "home"), { "peers.json": '{"peers":[]}' }), []],
  ];
  for (const [what, change, expected] of changes) {
    it(`takes the normal path after a change to ${what}`, async () => {
      const p = await project();
      const args = ["build", "-d", p.dir];
      await settle(p, args);
      await change(p.dir);
      const r = await traced(args, p.env, p.dir);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.fullPath, true, `the fast path answered after a change to ${what}`);
      if (expected) assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()).sort(), expected.sort());
    });
  }

  it("a sketch: editing or touching the .ino (compiled through a generated .cpp) takes the normal path", async () => {
    requireTool("avr-gcc", "gcc-avr");
    const dir = await tempDir("kiln-noop-ino-");
    await writeTree(dir, {
      "platformio.ini": debianAvrIni("uno"),
      "src/Blink.ino": "void setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, HIGH); }\n",
      "lib/util/library.properties": "name=util\nversion=1.0\n",
      "lib/util/src/util.h": "int util(void);\n",
    });
    const p = { dir, env: { KILN_HOME: join(dir, "home"), KILN_TRACE_IMPORTS: join(dir, "imports.txt") }, compiles: async () => [] };
    const args = ["build", "-d", dir, "-q"];
    await settle(p, args);
    // An AVR build makes images and measures its size after the link: the launcher never finishes one (lib/build/finish.ts).
    assert.equal(readStamp(dir)?.finish, undefined);
    await writeFile(join(dir, "src/Blink.ino"), "void setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, LOW); }\n");
    const edited = await traced(args, p.env, dir);
    assert.equal(edited.code, 0, edited.stderr);
    assert.equal(edited.fullPath, true, "the fast path answered after the .ino changed");
    // That build regenerated the sketch's .cpp (kiln's own file) and still left a stamp: the next one is answered.
    await new Promise((r) => setTimeout(r, 20));
    assert.equal((await traced(args, p.env, dir)).fullPath, false, "no stamp after a build that converted the sketch");
    await settle(p, args);
    // Touched, same text: kiln converts a sketch only when its text changes, so this is a no-op and the
    // launcher answers it (comparing the sketch's text, not its time) — again and again.
    await utimes(join(dir, "src/Blink.ino"), new Date(), new Date());
    for (let i = 0; i < 2; i++) {
      const touched = await traced([...args.filter((a) => a !== "-q")], p.env, dir);
      assert.equal(touched.code, 0, touched.stderr);
      assert.equal(touched.fullPath, false, "a touched sketch went the normal way");
      assert.match(touched.stderr, /uno: built in \d\.\d\ds \(compiled 0, reused \d+, flash /);
    }
    // Touched and edited back to the same text by an editor that renames: the folder changed, the normal path looks.
    await writeFile(join(dir, "src/Blink.ino.tmp"), await readFile(join(dir, "src/Blink.ino"), "utf8"));
    await rename(join(dir, "src/Blink.ino.tmp"), join(dir, "src/Blink.ino"));
    assert.equal((await traced(args, p.env, dir)).fullPath, true, "a folder listing change was not noticed");
    await settle(p, args);
    await writeFile(join(dir, "lib/util/library.properties"), "name=util\nversion=1.1\n");
    assert.equal((await traced(args, p.env, dir)).fullPath, true, "the fast path answered after library.properties changed");
    // The generated .ino.cpp is kiln's: changed behind its back, it is generated again (not trusted
    // because the sketch itself did not change).
    const generated = join(dir, ".kiln/build/uno/sketch/Blink.ino.cpp");
    const good = await readFile(generated, "utf8");
    await writeFile(generated, "this is not C++\n");
    const again = await traced(args, p.env, dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await readFile(generated, "utf8"), good);
  });

  it("a changed source is compiled from the launcher (a head start) and the build adopts that compile instead of running another", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    const earlyBefore = await p.early();
    await utimes(join(p.dir, "src/util.c"), new Date(), new Date());
    const r = await traced(args, p.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /compiled 1, reused 1, linked/);
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c"], "compiled once: the head start was adopted");
    assert.equal((await p.early()) - earlyBefore, 1, "the one compile was the head start's");
    // Nothing left behind, and the result is the normal one: the next build is a no-op again.
    const leftovers = (await readdirRecursive(join(p.dir, ".kiln"))).filter((f) => f.includes(".tmp-"));
    assert.deepEqual(leftovers, []);
    await new Promise((res) => setTimeout(res, 20));
    const again = await traced(args, p.env, p.dir);
    assert.equal(again.fullPath, false, "the build after the head start was not answered as a no-op");
  });

  it("a source edited while the program links is compiled by the next build (the stamp's look during the link does not hide the edit)", async () => {
    const p = await project();
    const marker = join(p.dir, "edit-during-link");
    await writeTree(p.dir, {
      // g++, except that a link (no -c) with the marker present edits util.c first, while kiln waits for the link.
      cxx: `#!/bin/sh\ncase " $* " in *" -c "*) ;; *) if [ -f "${marker}" ]; then rm -f "${marker}"; sleep 0.2; echo "/* edited */" >> "${join(p.dir, "src/util.c")}"; fi;; esac\nexec g++ "$@"\n`,
    });
    await chmod(join(p.dir, "cxx"), 0o755);
    const q = { ...p, env: { ...p.env, CXX: join(p.dir, "cxx") } };
    const args = ["build", "-d", p.dir];
    await settle(q, args);
    await writeFile(marker, "");
    await utimes(join(p.dir, "src/main.c"), new Date(), new Date());
    const r = await traced(args, q.env, p.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /compiled 1, reused 1, linked/);
    assert.match(await readFile(join(p.dir, "src/util.c"), "utf8"), /edited/, "the link did not edit util.c");
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["main.c"]);
    const next = await traced(args, q.env, p.dir);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, /compiled 1, reused 1, linked/, "the edit made during the link was not seen");
    assert.deepEqual((await p.compiles()).map((f) => f.split("/").pop()), ["util.c"]);
  });

  it("no head start when more sources changed than -j allows (given, or the last build's), or a header changed", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir, "-j", "1"];
    await settle(p, args);
    const outs = async (): Promise<string[]> => (await p.compiles()).map((f) => f.split("/").pop()!).sort();
    const early = await p.early();
    for (const f of ["src/util.c", "src/main.c"]) await utimes(join(p.dir, f), new Date(), new Date());
    assert.equal((await traced(args, p.env, p.dir)).code, 0);
    assert.deepEqual(await outs(), ["main.c", "util.c"]);
    await settle(p, args);
    // Without -j the last build's (1) is the bound.
    for (const f of ["src/util.c", "src/main.c"]) await utimes(join(p.dir, f), new Date(), new Date());
    assert.equal((await traced(["build", "-d", p.dir], p.env, p.dir)).code, 0);
    assert.deepEqual(await outs(), ["main.c", "util.c"]);
    await settle(p, args);
    await utimes(join(p.dir, "include/util.h"), new Date(), new Date());
    assert.equal((await traced(args, p.env, p.dir)).code, 0);
    assert.deepEqual(await outs(), ["main.c", "util.c"], "each compiled once");
    assert.equal(await p.early(), early, "no head start at all");
  });

  it("takes the normal path for another env selection, another environment, or other flags", async () => {
    const p = await project();
    await settle(p, ["build", "-d", p.dir]);
    for (const [args, env] of [
      [["build", "-d", p.dir, "-e", "native"], p.env],
      [["build", "-d", p.dir], { ...p.env, EXTRA_VAR: "1" }],
      [["build", "-d", p.dir, "--json"], p.env],
      [["build", "-d", p.dir, "-v"], p.env],
    ] as Array<[string[], Record<string, string>]>) {
      const r = await traced(args, env, p.dir);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.fullPath, true, `fast path for ${args.join(" ")}`);
    }
  });

  it("a failed build leaves no stamp", async () => {
    const p = await project();
    const args = ["build", "-d", p.dir];
    await settle(p, args);
    await writeFile(join(p.dir, "src/util.c"), "int util(void) { return nope; }\n");
    assert.equal((await runCli(args, { env: p.env })).code, 6);
    await assert.rejects(readFile(join(p.dir, ".kiln/noop.json")), { code: "ENOENT" });
  });

  it("a project folder where the stamp cannot be written still builds (the stamp is only a shortcut)", async () => {
    const dir = await tempDir("kiln-noop-ro-");
    await writeTree(dir, {
      "proj/platformio.ini": `[platformio]\nbuild_dir = ${join(dir, "out")}\n\n[env:native]\nplatform = native\n`,
      "proj/src/main.c": "int main(void) { return 0; }\n",
      // A file where the stamp's folder would go (root ignores permissions, a file in the way does not).
      "proj/.kiln": "not a folder\n",
    });
    const env = { KILN_HOME: join(dir, "home") };
    for (let i = 0; i < 3; i++) {
      const r = await runCli(["build", "-d", join(dir, "proj")], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(await readFile(join(dir, "proj/.kiln"), "utf8"), "not a folder\n");
  });

  it("no stamp when an output of the build is gone by the time it is written (deleted while the build ran)", async () => {
    const dir = await tempDir("kiln-noop-made-");
    await writeTree(dir, { "src/a.c": "int a;\n", "out/a.o": "object\n" });
    const before = Date.now() + 1000;
    const stamp = { key: "k", envHash: "h", envs: [] };
    const files = [join(dir, "src/a.c"), join(dir, "out/a.o")];
    assert.equal(writeStamp(dir, stamp, files, [], before, new Set([join(dir, "out/a.o")]), [join(dir, "out/a.o"), join(dir, "out/program")]), false);
    assert.equal(readStamp(dir), undefined);
    assert.equal(writeStamp(dir, stamp, files, [], before, new Set([join(dir, "out/a.o")]), [join(dir, "out/a.o")]), true);
    assert.deepEqual(readStamp(dir)?.files.map(([p, m]) => [p, m > 0]), files.map((p) => [p, true]));
  });

  it("records a time looked at during the build as it was then, and refuses one that is not older than the build", async () => {
    const dir = await tempDir("kiln-noop-known-");
    await writeTree(dir, { "src/a.c": "int a;\n", "src/b.c": "int b;\n" });
    const stamp = { key: "k", envHash: "h", envs: [] };
    const files = [join(dir, "src/a.c"), join(dir, "src/b.c")];
    const start = Date.now() + 60_000;
    // a.c was looked at earlier (it has changed since: the next build must see a difference); b.c is looked at now.
    assert.equal(writeStamp(dir, stamp, files, [], start, new Set(), [], new Map([[files[0]!, 1234]])), true);
    const recorded = new Map(readStamp(dir)?.files);
    assert.equal(recorded.get(files[0]!), 1234);
    assert.ok(recorded.get(files[1]!)! > 1234);
    // A time at or after the build's start, looked at earlier or not, means "changed while kiln looked": no stamp.
    assert.equal(writeStamp(dir, stamp, files, [], start, new Set(), [], new Map([[files[0]!, start]])), false);
    assert.equal(readStamp(dir), undefined);
  });

  it("parses only the plain build arguments", () => {
    const cwd = "/p";
    assert.deepEqual(parseFastArgs(["build"], cwd), { projectDir: "/p", envs: [], quiet: false, jobs: undefined });
    assert.deepEqual(parseFastArgs(["build", "-d", "x", "-e", "a", "--environment=b", "-j4", "--jobs", "2", "-q"], cwd), { projectDir: "/p/x", envs: ["a", "b"], quiet: true, jobs: 2 });
    assert.equal(parseFastArgs(["build", "-j3"], cwd)?.jobs, 3);
    for (const bad of [["upload"], ["build", "-d"], ["build", "-e"], ["build", "-j", "0"], ["build", "--json"], ["build", "-v"], ["build", "sketch"], ["build", "--board", "uno"], ["build", "-k"]]) {
      assert.equal(parseFastArgs(bad, cwd), undefined, bad.join(" "));
    }
  });
});

