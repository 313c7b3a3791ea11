import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/core/errors.js";
import { emptyIni, parseIni, parseMultiValues } from "../../lib/project/index.js";
import { loadIni } from "./helpers.js";

function parse(text: string) {
  const ini = emptyIni();
  parseIni(text, "/p/platformio.ini", ini);
  return ini;
}

function throwsAt(fn: () => unknown, line: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.exitCode, 3);
    assert.equal(e.location?.line, line, e.message);
    assert.match(e.message, re);
    assert.match(e.message, new RegExp(`^/p/platformio\\.ini:${line}: `));
    return true;
  });
}

describe("INI syntax (platformio-ini.md §1)", () => {
  const example = [
    "[env:a]",
    "board: uno                 ; → board = \"uno\"",
    "z = keep;this ; comment",
    "pct = 100%%",
    "build_flags =",
    "    -DA=1",
    "",
    "    -DB=2",
    "    ; dropped comment",
    "    -DC=3 ; trailing comment",
    "",
  ].join("\n");

  it("reads the §1 example like configparser", async (t) => {
    const p = await loadIni(t, example);
    const env = p.env("a");
    assert.equal(env.board, "uno");
    assert.equal(env.options.z!.value, "keep;this");
    assert.equal(env.options.pct!.value, "100%");
    assert.deepEqual(env.buildFlags, ["-DA=1", "-DB=2", "-DC=3"]);
    assert.equal(env.options.build_flags!.location?.line, 5);
  });

  it("rejects a lone % with its line", () => {
    throwsAt(() => parse("[env:a]\nok = 1\nbad = 100%\n"), 3, /'%' must be followed by '%' or '\('/);
  });

  it("rejects a bad %( reference", () => {
    throwsAt(() => parse("[env:a]\nbad = %(x\n"), 2, /bad interpolation variable reference/);
  });

  it("expands %(name)s from the same section and [DEFAULT]", async (t) => {
    const p = await loadIni(t, "[DEFAULT]\nroot = /opt\n[env:a]\nboard = uno\nname = x\ncustom_p = %(root)s/%(name)s/100%%\n");
    assert.equal(p.env("a").options.custom_p!.value, "/opt/x/100%");
    // [DEFAULT] options show up in every section
    assert.equal(p.env("a").options.root!.value, "/opt");
  });

  it("reports a missing %(name)s", async (t) => {
    const p = await loadIni(t, "[env:a]\ncustom_p = %(nope)s\n");
    assert.throws(() => p.env("a"), /%\(nope\)s, which is not an option/);
  });

  it("section names are case-sensitive, option names are lower-cased", async (t) => {
    const p = await loadIni(t, "[env:Uno]\nBoard = a\n[env:uno]\nBOARD = b\n");
    assert.deepEqual(p.envNames, ["Uno", "uno"]);
    assert.equal(p.env("Uno").board, "a");
    assert.equal(p.env("uno").board, "b");
  });

  it("rejects a duplicate option in one section with its line", () => {
    throwsAt(() => parse("[env:a]\nboard = uno\n\nboard = nano\n"), 4, /option `board` in section \[env:a\] already exists/);
  });

  it("rejects a duplicate section in one file with its line", () => {
    throwsAt(() => parse("[env:a]\nboard = uno\n[common]\n[env:a]\n"), 4, /section \[env:a\] already exists/);
  });

  it("rejects an option before any section", () => {
    throwsAt(() => parse("; header\nboard = uno\n"), 2, /no section headers/);
  });

  it("rejects a line that is not an option", () => {
    throwsAt(() => parse("[env:a]\nboard = uno\njust words\n"), 3, /cannot parse line/);
  });

  it("keeps an inline comment character without whitespace before it", () => {
    const ini = parse("[x]\na = http://h/#frag # c\nb = x#y\n#c = 1\n");
    assert.equal(ini.sections.get("x")!.options.get("a")!.raw, "http://h/#frag");
    assert.equal(ini.sections.get("x")!.options.get("b")!.raw, "x#y");
    assert.equal(ini.sections.get("x")!.options.has("c"), false);
  });

  it("the file read last wins (extra_configs), duplicates across files are fine", async (t) => {
    const p = await loadIni(
      t,
      "[platformio]\nextra_configs = extra.ini\n[env:a]\nboard = uno\nupload_speed = 1\n",
      {},
      { "extra.ini": "[env:a]\nupload_speed = 2\n[env:b]\nboard = nano\n" },
    );
    assert.equal(p.env("a").upload.speed, 2);
    assert.equal(p.env("a").board, "uno");
    assert.deepEqual(p.envNames, ["a", "b"]);
    assert.equal(p.files.length, 2);
    assert.match(p.env("a").options.upload_speed!.location!.file, /extra\.ini$/);
  });

  it("extra_configs accepts wildcards and reports a syntax error in the extra file with its line", async (t) => {
    const p = await loadIni(t, "[platformio]\nextra_configs = conf/*.ini\n[env:a]\nboard = uno\n", {}, {
      "conf/1.ini": "[env:a]\ncustom_x = one\n",
      "conf/2.ini": "[env:a]\ncustom_x = two\n",
    });
    assert.equal(p.env("a").options.custom_x!.value, "two");
    await assert.rejects(
      loadIni(t, "[platformio]\nextra_configs = bad.ini\n[env:a]\nboard = uno\n", {}, { "bad.ini": "[env:a]\nx = 5%\n" }),
      (e: ConfigError) => /bad\.ini:2: /.test(e.message) && e.exitCode === 3,
    );
  });
});

describe("multi-value splitting", () => {
  it("splits on newline, else on comma + space", () => {
    assert.deepEqual(parseMultiValues("-DA=1, -DB=2"), ["-DA=1", "-DB=2"]);
    assert.deepEqual(parseMultiValues("-DA=1,-DB=2"), ["-DA=1,-DB=2"]);
    assert.deepEqual(parseMultiValues("\n-DA=1\n\n; c\n# c\n-DB=2 ; tail\n"), ["-DA=1", "-DB=2"]);
  });

  it("never splits single-value options", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\ncustom_x = a, b\nframework = arduino, espidf\n");
    assert.equal(p.env("a").options.custom_x!.value, "a, b");
    assert.deepEqual(p.env("a").framework, ["arduino", "espidf"]);
  });
});
