/**
 * Head starts (lib/build/headstart.ts) with real processes: what is started,
 * what the runner may claim, and that whatever nobody claims is killed with
 * its whole process group and leaves no file behind.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { abandonHeadStarts, claimHeadStart, pendingHeadStarts, startHeadStarts, unitTemplate, type StampedUnits } from "../../lib/build/headstart.js";
import { tempDir, writeTree } from "../helpers/cli.js";
import { alive } from "../helpers/tools.js";

/** A "compiler" that records its pid, starts a grandchild, sleeps, then writes its -o file. */
async function slowCompiler(dir: string, seconds: number): Promise<string> {
  const cc = join(dir, "slowcc");
  await writeFile(
    cc,
    `#!/bin/sh
out=; prev=
for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
echo $$ >> "${join(dir, "pids")}"
sleep ${seconds} &
echo $! >> "${join(dir, "pids")}"
wait
echo object > "$out"
echo "warning: slow" >&2
`,
  );
  await chmod(cc, 0o755);
  return cc;
}

async function pids(dir: string, count = 2): Promise<number[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = await readFile(join(dir, "pids"), "utf8").catch(() => "");
    const list = text.split("\n").filter(Boolean).map(Number);
    if (list.length >= count || Date.now() > deadline) return list;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function fixture(seconds: number): Promise<{ dir: string; units: StampedUnits }> {
  const dir = await tempDir("kiln-headstart-");
  await writeTree(dir, { "src/a.c": "int a;\n", "src/b.c": "int b;\n", "out/.keep": "" });
  const cc = await slowCompiler(dir, seconds);
  const units: StampedUnits = {
    prefixes: [[cc, "-O1"]],
    list: [
      [join(dir, "src/a.c"), join(dir, "out/a.o"), 0],
      [join(dir, "src/b.c"), join(dir, "out/b.o"), 0],
    ],
  };
  return { dir, units };
}

describe("head starts", () => {
  it("starts only changed sources of known units, and only up to the job count", async () => {
    const { dir, units } = await fixture(0);
    assert.equal(startHeadStarts(units, [join(dir, "src/a.c"), join(dir, "include/x.h")], dir, 4), 0, "a changed header is not a unit's source");
    assert.equal(startHeadStarts(units, [join(dir, "src/a.c"), join(dir, "src/b.c")], dir, 1), 0, "more than -j");
    assert.equal(pendingHeadStarts(), 0);
    assert.equal(startHeadStarts(units, [join(dir, "src/a.c")], dir, 1), 1);
    const h = claimHeadStart(join(dir, "out/a.o"), unitTemplate(units, 0));
    assert.ok(h, "the same command is claimed");
    const r = await h.done;
    assert.equal(r.exitCode, 0);
    assert.match(r.stderr, /warning: slow/);
    assert.equal(await readFile(h.tmp, "utf8"), "object\n");
    assert.match(h.tmp, /a\.o\.tmp-\d+-early0$/);
  });

  it("a claim with another command kills the whole process group and removes its files", async () => {
    const { dir, units } = await fixture(30);
    assert.equal(startHeadStarts(units, [join(dir, "src/b.c")], dir, 2), 1);
    const [sh, sleeper] = await pids(dir);
    assert.ok(sh && sleeper && alive(sh) && alive(sleeper));
    const other = [...unitTemplate(units, 1)];
    other.splice(1, 0, "-DCHANGED");
    assert.equal(claimHeadStart(join(dir, "out/b.o"), other), undefined);
    const deadline = Date.now() + 5000;
    while ((alive(sh) || alive(sleeper)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(sh), false, "the compiler was killed");
    assert.equal(alive(sleeper), false, "its child (cc1, as…) was killed with it");
    assert.deepEqual((await readdir(join(dir, "out"))).filter((f) => f.includes(".tmp-")), []);
    assert.equal(claimHeadStart(join(dir, "out/b.o"), unitTemplate(units, 1)), undefined, "claimed once only");
  });

  it("what nobody claims is abandoned at the end of the build", async () => {
    const { dir, units } = await fixture(30);
    assert.equal(startHeadStarts(units, [join(dir, "src/a.c"), join(dir, "src/b.c")], dir, 2), 2);
    const list = await pids(dir, 4);
    assert.equal(list.length, 4, "two compilers and their children");
    abandonHeadStarts();
    assert.equal(pendingHeadStarts(), 0);
    const deadline = Date.now() + 5000;
    while (list.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(list.filter(alive), []);
    await assert.rejects(stat(join(dir, "out/a.o")), { code: "ENOENT" }, "no object was published");
  });
});
