import assert from "node:assert/strict";
import { symlink } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/core/errors.js";
import { SKETCH_EXTENSIONS, SOURCE_EXTENSIONS, selectSources } from "../../lib/project/index.js";
import { tempProject } from "./helpers.js";

const tree = ["main.cpp", "util.c", "asm.S", "notes.md", ".dot.cpp", ".hidden/h.cpp", "old/legacy.cpp", "drivers/i2c.cpp", "drivers/i2c.h", "drivers/spi/spi.cpp"];

describe("build_src_filter (platformio-ini.md §12)", () => {
  const cases: Array<[string[], string]> = [
    [[], "asm.S drivers/i2c.cpp drivers/spi/spi.cpp main.cpp old/legacy.cpp util.c"],
    [["+<*> -<.git/> -<.svn/>"], "asm.S drivers/i2c.cpp drivers/spi/spi.cpp main.cpp old/legacy.cpp util.c"],
    [["+<*> -<old/>"], "asm.S drivers/i2c.cpp drivers/spi/spi.cpp main.cpp util.c"],
    [["-<*> +<main.cpp> +<drivers/>"], "drivers/i2c.cpp drivers/spi/spi.cpp main.cpp"],
    [["+<**/*.cpp> -<drivers/spi/>"], "drivers/i2c.cpp main.cpp old/legacy.cpp"],
    [["+<*.cpp>"], "main.cpp"],
    [["+<drivers/*>"], "drivers/i2c.cpp drivers/spi/spi.cpp"],
    [["+<*>", "-<old/>", "junk outside"], "asm.S drivers/i2c.cpp drivers/spi/spi.cpp main.cpp util.c"],
    [["+<.*>"], ".dot.cpp .hidden/h.cpp"],
    [["+<.hidden/>"], ".hidden/h.cpp"],
    [["+<m?in.[cx]pp>"], "main.cpp"],
    [["+<[!m]*.c>"], "util.c"],
    [["+<[^u]*.c>"], "util.c"],
    [["+<old/>"], "old/legacy.cpp"],
    [["+<main.cpp/>"], ""],
  ];
  for (const [filter, expected] of cases) {
    it(`${JSON.stringify(filter)} → ${expected || "(nothing)"}`, async (t) => {
      const dir = await tempProject(t, Object.fromEntries(tree.map((f) => [`src/${f}`, "x"])));
      assert.deepEqual(await selectSources(join(dir, "src"), filter), expected ? expected.split(" ") : []);
    });
  }

  it("adds .ino/.pde when asked", async (t) => {
    const dir = await tempProject(t, { "Blink/Blink.ino": "", "Blink/x.pde": "", "Blink/y.cpp": "", "Blink/z.h": "" });
    assert.deepEqual(await selectSources(join(dir, "Blink"), []), ["y.cpp"]);
    assert.deepEqual(await selectSources(join(dir, "Blink"), [], new Set([...SOURCE_EXTENSIONS, ...SKETCH_EXTENSIONS])), ["Blink.ino", "x.pde", "y.cpp"]);
  });

  it("follows symbolic links to directories and skips dangling ones", async (t) => {
    const dir = await tempProject(t, { "src/main.cpp": "", "shared/s.cpp": "" });
    await symlink(join(dir, "shared"), join(dir, "src", "linked"));
    await symlink(join(dir, "nowhere.cpp"), join(dir, "src", "dangling.cpp"));
    assert.deepEqual(await selectSources(join(dir, "src"), []), ["linked/s.cpp", "main.cpp"]);
  });

  it("a missing src dir is a ConfigError", async (t) => {
    const dir = await tempProject(t, {});
    await assert.rejects(selectSources(join(dir, "src"), []), (e: unknown) => e instanceof ConfigError && e.code === "KILN_SRC_DIR_MISSING" && e.exitCode === 3);
  });

  it("handles a 300-file tree quickly", async (t) => {
    const files: Record<string, string> = {};
    for (let d = 0; d < 15; d++) for (let f = 0; f < 20; f++) files[`src/d${d}/sub/f${f}.cpp`] = "";
    const dir = await tempProject(t, files);
    const start = performance.now();
    const got = await selectSources(join(dir, "src"), ["+<*> -<d3/> +<d3/sub/f1.cpp>"]);
    const ms = performance.now() - start;
    assert.equal(got.length, 281);
    assert.ok(ms < 500, `took ${ms} ms`);
  });
});
