import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/core/errors.js";
import { loadProject } from "../../lib/project/index.js";
import { settingsWith, tempProject } from "./helpers.js";

const asJson = {
  defaultEnvs: ["uno"],
  jobs: 3,
  cacheDir: "cache",
  platformio: { src_dir: "firmware" },
  common: { framework: "arduino", monitor_speed: 115200 },
  sections: { shared: { flags: ["-DSHARED"] } },
  env: {
    uno: { platform: "atmelavr", board: "uno", build_flags: ["${shared.flags}", "-DUNO"], lib_archive: false },
    nano: { platform: "atmelavr", board: "nanoatmega328", extends: "env:uno", upload_speed: 57600 },
  },
};

const asYaml = `
defaultEnvs: uno
jobs: 3
cacheDir: cache
platformio:
  src_dir: firmware
common:
  framework: arduino
  monitor_speed: 115200
sections:
  shared:
    flags: [-DSHARED]
env:
  uno:
    platform: atmelavr
    board: uno
    build_flags:
      - \${shared.flags}
      - -DUNO
    lib_archive: false
  nano:
    platform: atmelavr
    board: nanoatmega328
    extends: env:uno
    upload_speed: 57600
`;

async function check(t: import("node:test").TestContext, files: Record<string, string>, configName: string): Promise<void> {
  const dir = await tempProject(t, files);
  const p = await loadProject(dir, { settings: settingsWith(dir) });
  assert.equal(p.configKind, "kiln");
  assert.equal(p.configFile, join(dir, configName));
  assert.deepEqual(p.envNames, ["uno", "nano"]);
  assert.deepEqual(p.selectEnvs([]), ["uno"]);
  assert.deepEqual(p.kiln, { jobs: 3, cacheDir: join(dir, "cache") });
  assert.equal(p.dirs.src, join(dir, "firmware"));
  assert.equal(p.dirs.build, join(dir, ".kiln", "build"));
  const uno = p.env("uno");
  assert.deepEqual(uno.buildFlags, ["-DSHARED", "-DUNO"]);
  assert.deepEqual(uno.framework, ["arduino"]);
  assert.equal(uno.monitor.speed, 115200);
  assert.equal(uno.libArchive, false);
  const nano = p.env("nano");
  assert.equal(nano.board, "nanoatmega328");
  assert.equal(nano.upload.speed, 57600);
  assert.deepEqual(nano.buildFlags, ["-DSHARED", "-DUNO"]);
  assert.deepEqual(p.warnings, []);
}

describe("kiln's own config (cosmiconfig)", () => {
  it("reads kiln.config.json", (t) => check(t, { "kiln.config.json": JSON.stringify(asJson) }, "kiln.config.json"));
  it("reads kiln.config.yaml", (t) => check(t, { "kiln.config.yaml": asYaml }, "kiln.config.yaml"));
  it("reads .kilnrc (YAML)", (t) => check(t, { ".kilnrc": asYaml }, ".kilnrc"));
  it("reads the kiln key of package.json", (t) => check(t, { "package.json": JSON.stringify({ name: "fw", kiln: asJson }) }, "package.json"));
  it("reads kiln.config.mjs", (t) => check(t, { "kiln.config.mjs": `export default ${JSON.stringify(asJson)};\n` }, "kiln.config.mjs"));

  it("prefers platformio.ini over a kiln config", async (t) => {
    const dir = await tempProject(t, { "platformio.ini": "[env:pio]\nboard = uno\n", "kiln.config.json": JSON.stringify(asJson) });
    const p = await loadProject(dir, { settings: settingsWith(dir) });
    assert.equal(p.configKind, "platformio");
    assert.deepEqual(p.envNames, ["pio"]);
  });

  it("does not look in parent directories", async (t) => {
    const dir = await tempProject(t, { "kiln.config.json": JSON.stringify(asJson), "sub/.keep": "" });
    await assert.rejects(loadProject(join(dir, "sub"), { settings: settingsWith(dir) }), (e: unknown) => e instanceof ConfigError && e.code === "KILN_NO_CONFIG");
  });

  it("warns about unknown keys and options", async (t) => {
    const dir = await tempProject(t, { "kiln.config.json": JSON.stringify({ envs: {}, env: { a: { board: "uno", bogus: 1 } } }) });
    const p = await loadProject(dir, { settings: settingsWith(dir) });
    assert.ok(p.warnings.some((w) => /unknown key `envs`.*did you mean .*`env`/.test(w)), p.warnings.join("\n"));
    assert.ok(p.warnings.some((w) => w.endsWith("Ignore unknown configuration option `bogus` in section [env:a]")), p.warnings.join("\n"));
  });

  it("rejects a wrong shape with the file and the path", async (t) => {
    const bad = async (data: unknown, re: RegExp) => {
      const dir = await tempProject(t, { "kiln.config.json": JSON.stringify(data) });
      await assert.rejects(loadProject(dir, { settings: settingsWith(dir) }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.code, "KILN_CONFIG_INVALID");
        assert.equal(e.exitCode, 3);
        assert.match(e.message, /kiln\.config\.json: /);
        assert.match(e.message, re);
        return true;
      });
    };
    await bad({ env: { a: { build_flags: [{ x: 1 }] } } }, /env\.a\.build_flags\[0\]: list items must be strings/);
    await bad({ env: [] }, /env: must be an object/);
    await bad({ jobs: 0, env: {} }, /jobs: must be a positive integer/);
    await bad([1], /the config must be an object/);
  });

  it("reports a YAML syntax error as a ConfigError", async (t) => {
    const dir = await tempProject(t, { "kiln.config.yaml": "env:\n  a: [unclosed\n" });
    await assert.rejects(loadProject(dir, { settings: settingsWith(dir) }), (e: unknown) => e instanceof ConfigError && e.code === "KILN_CONFIG_SYNTAX" && e.exitCode === 3);
  });

  it("checks option types in a kiln config too", async (t) => {
    const dir = await tempProject(t, { "kiln.config.json": JSON.stringify({ env: { a: { board: "uno", upload_speed: "fast" } } }) });
    const p = await loadProject(dir, { settings: settingsWith(dir) });
    assert.throws(() => p.env("a"), (e: unknown) => e instanceof ConfigError && e.code === "KILN_CONFIG_VALUE" && /kiln\.config\.json: 'fast' is not a valid integer/.test(e.message));
  });
});

describe("no config and synthetic projects", () => {
  it("no config: ConfigError with a kiln init hint", async (t) => {
    const dir = await tempProject(t, { "src/main.cpp": "" });
    await assert.rejects(loadProject(dir, { settings: settingsWith(dir) }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.code, "KILN_NO_CONFIG");
      assert.equal(e.exitCode, 3);
      assert.match(e.message, /no platformio\.ini or kiln config in /);
      assert.match(e.hint!, /kiln init/);
      return true;
    });
    await assert.rejects(loadProject(join(dir, "missing"), { settings: settingsWith(dir) }), /project directory .*missing does not exist/);
    await assert.rejects(loadProject(join(dir, "src", "main.cpp"), { settings: settingsWith(dir) }), /main\.cpp is not a directory/);
  });

  it("builds a one-env project from options, srcDir as src_dir", async (t) => {
    const dir = await tempProject(t, { "Blink/Blink.ino": "", "platformio.ini": "[env:ignored]\nboard = x\n" });
    const p = await loadProject(dir, {
      settings: settingsWith(dir, { PLATFORMIO_BUILD_FLAGS: "-DFROM_ENV" }),
      synthetic: { envName: "uno", options: { board: "uno", platform: "atmelavr", framework: "arduino", build_flags: "-DA\n-DB" }, srcDir: "Blink" },
    });
    assert.equal(p.configKind, "synthetic");
    assert.equal(p.configFile, "");
    assert.deepEqual(p.files, []);
    assert.deepEqual(p.envNames, ["uno"]);
    assert.deepEqual(p.selectEnvs([]), ["uno"]);
    assert.equal(p.dirs.src, join(dir, "Blink"));
    assert.equal(p.dirs.build, join(dir, ".kiln", "build"));
    const env = p.env("uno");
    assert.equal(env.board, "uno");
    assert.equal(env.platform, "atmelavr");
    assert.deepEqual(env.buildFlags, ["-DA", "-DB", "-DFROM_ENV"]);
    assert.deepEqual(p.warnings, []);
  });

  it("a synthetic value with a bad type names the command line", async (t) => {
    const dir = await tempProject(t, {});
    const p = await loadProject(dir, { settings: settingsWith(dir), synthetic: { envName: "uno", options: { board: "uno", upload_speed: "x" } } });
    assert.throws(() => p.env("uno"), /ConfigError: \(command line\): 'x' is not a valid integer/);
  });
});
