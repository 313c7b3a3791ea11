import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/core/errors.js";
import { loadIni } from "./helpers.js";

const worked = `
[platformio]
default_envs = uno, esp

[env]
framework = arduino
monitor_speed = 115200
build_flags = -DFROM_ENV
build_src_flags = -DTARGET_\${this.__env__}

[base]
x = from-base
build_flags = -DBASE

[a]
extends = base
x = from-a
upload_speed = 57600

[b]
x = from-b
y = from-b

[c]
x = from-c

[env:uno]
platform = atmelavr
board = uno
extends = a, b, c
build_flags =
    \${env.build_flags}
    -DUNO_ONLY
custom_note = \${this.board}-\${platformio.default_envs}

[env:esp]
platform = espressif32
board = esp32dev
extends = a, b
`;

function configError(code: string, re: RegExp, line?: number) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, 3);
    assert.match(e.message, re);
    if (line !== undefined) assert.equal(e.location?.line, line, e.message);
    return true;
  };
}

describe("lookup and extends (platformio-ini.md §3)", () => {
  it("gives every result of the worked example", async (t) => {
    const p = await loadIni(t, worked);
    const uno = p.env("uno");
    const esp = p.env("esp");
    assert.equal(uno.options.x!.value, "from-c");
    assert.equal(uno.options.y!.value, "from-b");
    assert.equal(uno.upload.speed, 57600);
    assert.deepEqual(uno.buildFlags, ["-DFROM_ENV", "-DUNO_ONLY"]);
    assert.equal(uno.options.custom_note!.value, "uno-uno\nesp");
    assert.deepEqual(uno.buildSrcFlags, ["-DTARGET_uno"]);
    assert.equal(esp.options.x!.value, "from-b");
    assert.deepEqual(esp.buildFlags, ["-DBASE"]);
    assert.equal(esp.monitor.speed, 115200);
    assert.deepEqual(esp.buildSrcFlags, ["-DTARGET_esp"]);
    assert.deepEqual(p.selectEnvs([]), ["uno", "esp"]);
    assert.deepEqual(p.defaultEnvs, ["uno", "esp"]);
    assert.deepEqual(uno.framework, ["arduino"]);
    assert.equal(uno.platform, "atmelavr");
  });

  it("lists options in visit order, env:uno, c, b, a, base, env", async (t) => {
    const p = await loadIni(t, worked);
    assert.deepEqual(Object.keys(p.env("uno").options), [
      "platform", "board", "extends", "build_flags", "custom_note", "x", "y", "upload_speed", "framework", "monitor_speed", "build_src_flags",
    ]);
  });

  it("records where each value was written", async (t) => {
    const p = await loadIni(t, worked);
    const loc = p.env("esp").options.build_flags!.location!;
    assert.equal(basename(loc.file), "platformio.ini");
    assert.equal(loc.line, 13);
    assert.equal(p.env("esp").location?.line, 36);
  });

  it("applies defaults from the option table", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\n");
    const a = p.env("a");
    assert.equal(a.buildType, "release");
    assert.deepEqual(a.buildSrcFilter, ["+<*> -<.git/> -<.svn/>"]);
    assert.equal(a.monitor.speed, 9600);
    assert.equal(a.monitor.parity, "N");
    assert.equal(a.monitor.eol, "CRLF");
    assert.equal(a.monitor.raw, false);
    assert.equal(a.monitor.encoding, "UTF-8");
    assert.equal(a.libLdfMode, "chain");
    assert.equal(a.libCompatMode, "soft");
    assert.equal(a.libArchive, true);
    assert.equal(a.platform, "");
    assert.equal(a.upload.speed, undefined);
  });

  it("defaults [platformio] name to the project directory's name", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\ncustom_n = ${platformio.name}\n");
    assert.equal(p.env("a").options.custom_n!.value, basename(p.dir));
  });

  it("collects env warnings at load time, while a broken env fails only when used", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\nextends = nope\n[env:bad]\nupload_speed = fast\n");
    assert.ok(p.warnings.some((w) => w.includes("names [nope]")), p.warnings.join("\n"));
    assert.equal(p.env("a").board, "uno");
    assert.throws(() => p.env("bad"), /'fast' is not a valid integer/);
  });

  it("warns that extra_scripts are not run", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\nextra_scripts = pre:gen.py\n");
    assert.deepEqual(p.env("a").options.extra_scripts!.value, "pre:gen.py");
    assert.ok(p.warnings.some((w) => /platformio\.ini:3: `extra_scripts` in \[env:a\] is ignored/.test(w)), p.warnings.join("\n"));
  });

  it("moves a [platformio] lib_extra_dirs to [env] with PlatformIO's warning", async (t) => {
    const p = await loadIni(t, "[platformio]\nlib_extra_dirs = ~/libs, extra\n[env:a]\nboard = uno\n");
    assert.deepEqual(p.env("a").libExtraDirs, [join(p.dir, "libs"), join(p.dir, "extra")]);
    assert.ok(p.warnings.some((w) => w.endsWith(":2: `lib_extra_dirs` configuration option is deprecated in section [platformio]! Please move it to global `env` section")));
    assert.ok(!p.warnings.some((w) => w.includes("Ignore unknown")), p.warnings.join("\n"));
  });

  it("warns when extends names a section that does not exist", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\nextends = nope\n");
    assert.equal(p.env("a").board, "uno");
    assert.ok(p.warnings.some((w) => /platformio\.ini:3: `extends` in section \[env:a\] names \[nope\], which does not exist/.test(w)), p.warnings.join("\n"));
  });

  it("reports an extends cycle naming the sections", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\nextends = x\n[x]\nextends = y\n[y]\nextends = x\n");
    assert.throws(() => p.env("a"), configError("KILN_CONFIG_EXTENDS_CYCLE", /\[x\] → \[y\] → \[x\]/, 7));
  });

  it("follows env:base's own extends and [env] for ${env:base.x}", async (t) => {
    const p = await loadIni(t, "[env]\nz = from-env\n[common]\nq = from-common\n[env:base]\nextends = common\n[env:a]\nboard = uno\ncustom_q = ${env:base.q}\ncustom_z = ${env:base.z}\n");
    assert.equal(p.env("a").options.custom_q!.value, "from-common");
    assert.equal(p.env("a").options.custom_z!.value, "from-env");
  });

  it("matches legacy names during the walk, with the exact warning", async (t) => {
    const p = await loadIni(t, "[common]\nsrc_filter = +<main.cpp>\n[env:esp]\nboard = x\nextends = common\nsrc_build_flags = -DX\nmonitor_baud = 57600\n");
    const esp = p.env("esp");
    assert.deepEqual(esp.buildSrcFilter, ["+<main.cpp>"]);
    assert.deepEqual(esp.buildSrcFlags, ["-DX"]);
    assert.equal(esp.monitor.speed, 57600);
    assert.ok("build_src_flags" in esp.options);
    assert.ok(
      p.warnings.some((w) =>
        w.endsWith(":6: `src_build_flags` configuration option in section [env:esp] is deprecated and will be removed in the next release! Please use `build_src_flags` instead"),
      ),
      p.warnings.join("\n"),
    );
  });

  it("warns about unknown options with file:line, but not custom_*, board_* or free sections", async (t) => {
    const p = await loadIni(t, "[platformio]\nfoo = 1\n[common]\nanything = 1\n[env:y]\nboard = uno\nx = 1\ncustom_a = 1\nboard_build.f_cpu = 1\n");
    const unknown = p.warnings.filter((w) => w.includes("Ignore unknown"));
    assert.equal(unknown.length, 2, unknown.join("\n"));
    assert.match(unknown[0]!, /platformio\.ini:2: Ignore unknown configuration option `foo` in section \[platformio\]$/);
    assert.match(unknown[1]!, /platformio\.ini:7: Ignore unknown configuration option `x` in section \[env:y\]$/);
    // still readable
    assert.equal(p.env("y").options.x!.value, "1");
  });

  it("moves board_* options into boardOverrides as raw strings (§9)", async (t) => {
    const p = await loadIni(t, "[env:uno_slow]\nplatform = atmelavr\nboard = uno\nboard_build.f_cpu = 8000000L\nboard_upload.maximum_size = 30720\nboard_upload.require_upload_port = no\nboard_mcu = atmega168\n");
    assert.deepEqual(p.env("uno_slow").boardOverrides, {
      "build.f_cpu": "8000000L",
      "upload.maximum_size": "30720",
      "upload.require_upload_port": "no",
      "build.mcu": "atmega168",
    });
  });
});

describe("interpolation (platformio-ini.md §4)", () => {
  it("rejects ${this.__env__} outside an env", async (t) => {
    const p = await loadIni(t, "[common]\nname = ${this.__env__}\n[env:x]\nboard = uno\nbuild_flags = -DN=${common.name}\n");
    assert.throws(
      () => p.env("x"),
      configError("KILN_CONFIG_THIS_ENV", /`\$\{this.__env__\}` is called from the `common` section that is not valid PlatformIO environment/, 2),
    );
  });

  it("detects infinite recursion", async (t) => {
    const p = await loadIni(t, "[loop]\na = ${loop.b}\nb = ${loop.a}\n[env:x]\nboard = uno\ncustom_a = ${loop.a}\n");
    assert.throws(() => p.env("x"), configError("KILN_CONFIG_RECURSION", /Infinite recursion has been detected for `a` option in the `loop` section/, 3));
  });

  it("detects self-reference through ${this.…}", async (t) => {
    const p = await loadIni(t, "[env]\nbuild_flags = ${this.build_flags} -DX\n[env:x]\nboard = uno\n");
    assert.throws(() => p.env("x"), configError("KILN_CONFIG_RECURSION", /`build_flags` option in the `env:x` section/, 2));
  });

  it("leaves ${FOO} alone and turns an unset ${sysenv.X} into empty", async (t) => {
    const p = await loadIni(t, "[env:x]\nboard = uno\ncustom_w = ${FOO} and ${sysenv.UNSET_VAR}\ncustom_h = ${sysenv.MYVAR}\n", { MYVAR: "set" });
    assert.equal(p.env("x").options.custom_w!.value, "${FOO} and ");
    assert.equal(p.env("x").options.custom_h!.value, "set");
  });

  it("names an undefined reference and where it is written", async (t) => {
    const p = await loadIni(t, "[common]\nx = 1\n[env:x]\nboard = uno\nbuild_flags =\n  -DA\n  ${common.nope}\n");
    assert.throws(
      () => p.env("x"),
      configError("KILN_CONFIG_UNDEFINED", /`\$\{common\.nope\}` in option `build_flags` of section \[env:x\]: there is no option `nope` in section \[common\]/, 5),
    );
    const q = await loadIni(t, "[env:x]\nboard = uno\ncustom = ${nosuch.opt}\n");
    assert.throws(() => q.env("x"), configError("KILN_CONFIG_UNDEFINED", /there is no section \[nosuch\]/, 3));
  });

  it("${this.x} binds to the section being read", async (t) => {
    const p = await loadIni(t, "[env]\nbuild_flags = -DN=${this.board}\n[env:a]\nboard = uno\n[env:b]\nboard = nano\n");
    assert.deepEqual(p.env("a").buildFlags, ["-DN=uno"]);
    assert.deepEqual(p.env("b").buildFlags, ["-DN=nano"]);
  });

  it("expands PROJECT_DIR, PROJECT_HASH (also legacy $PROJECT_HASH) and UNIX_TIME", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\ncustom_d = ${PROJECT_DIR}/x\ncustom_h = ${PROJECT_HASH}\ncustom_l = $PROJECT_HASH\ncustom_t = ${UNIX_TIME}\n");
    const a = p.env("a");
    const hash = `${basename(p.dir)}-${createHash("sha1").update(p.dir).digest("hex").slice(0, 10)}`;
    assert.equal(a.options.custom_d!.value, `${p.dir}/x`);
    assert.equal(a.options.custom_h!.value, hash);
    assert.equal(a.options.custom_l!.value, hash);
    assert.ok(p.warnings.includes("Invalid variable declaration. Please use `${PROJECT_HASH}` instead of `$PROJECT_HASH`"));
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(Number(a.options.custom_t!.value) - now) < 5);
  });

  it("interpolates [platformio] directory defaults; workspace_dir moves build_dir", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\ncustom_b = ${platformio.build_dir}\ncustom_p = ${platformio.packages_dir}\n");
    assert.equal(p.env("a").options.custom_b!.value, `${p.dir}/.kiln/build`);
    assert.equal(p.dirs.build, join(p.dir, ".kiln", "build"));
    assert.equal(p.dirs.src, join(p.dir, "src"));
    assert.equal(p.env("a").options.custom_p!.value, "~/.platformio/packages");
    const q = await loadIni(t, "[platformio]\nworkspace_dir = ws\nsrc_dir = firmware\n[env:a]\nboard = uno\n");
    assert.equal(q.dirs.build, join(q.dir, "ws", "build"));
    assert.equal(q.dirs.libdeps, join(q.dir, "ws", "libdeps"));
    assert.equal(q.dirs.src, join(q.dir, "firmware"));
    const r = await loadIni(t, "[platformio]\nbuild_dir = /tmp/kiln-out\n[env:a]\nboard = uno\n");
    assert.equal(r.dirs.build, "/tmp/kiln-out");
  });
});

describe("environment variable overrides (platformio-ini.md §5)", () => {
  const ini = "[env]\nbuild_flags = -DCOMMON\nupload_port = /dev/ttyACM0\n[common]\nextends = base\n[base]\nflags = -DFROM_BASE\n[env:Dev_1]\nBoard = uno\nBUILD_FLAGS = ${common.flags} ${sysenv.UNSET_VAR}\n";
  const vars = {
    PLATFORMIO_BUILD_FLAGS: "-DFROM_ENVVAR -DTWO",
    PLATFORMIO_UPLOAD_PORT: "/dev/ttyUSB9",
    PLATFORMIO_LIB_EXTRA_DIRS: "/opt/libs",
    PLATFORMIO_SRC_FILTER: "+<main.cpp>",
  };

  it("appends for lists, replaces single values, uses legacy variable names", async (t) => {
    const p = await loadIni(t, ini, vars);
    const env = p.env("Dev_1");
    assert.equal(env.board, "uno");
    assert.deepEqual(env.buildFlags, ["-DFROM_BASE", "-DFROM_ENVVAR -DTWO"]);
    assert.equal(env.upload.port, "/dev/ttyUSB9");
    assert.deepEqual(env.libExtraDirs, ["/opt/libs"]);
    assert.deepEqual(env.buildSrcFilter, ["+<main.cpp>"]);
    assert.ok("lib_extra_dirs" in env.options);
    assert.equal(env.options.upload_port!.location?.file, "$PLATFORMIO_UPLOAD_PORT");
  });

  it("the new variable wins over the legacy one, and overrides [platformio] too", async (t) => {
    const p = await loadIni(t, "[platformio]\ndefault_envs = a\n[env:a]\nboard = uno\n[env:b]\nboard = uno\n", {
      PLATFORMIO_BUILD_SRC_FILTER: "+<new.cpp>",
      PLATFORMIO_SRC_FILTER: "+<old.cpp>",
      PLATFORMIO_DEFAULT_ENVS: "b",
    });
    assert.deepEqual(p.env("a").buildSrcFilter, ["+<new.cpp>"]);
    assert.deepEqual(p.selectEnvs([]), ["a", "b"]);
  });

  it("honours the legacy variable names", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\n[env:b]\nboard = uno\n", {
      PLATFORMIO_ENV_DEFAULT: "b",
      PLATFORMIO_SRC_BUILD_FLAGS: "-DSRC",
      PLATFORMIO_EXTRA_SCRIPT: "pre:x.py",
      PLATFORMIO_HOME_DIR: "/core",
    });
    assert.deepEqual(p.selectEnvs([]), ["b"]);
    assert.deepEqual(p.env("a").buildSrcFlags, ["-DSRC"]);
    assert.equal(p.env("a").options.extra_scripts!.value, "pre:x.py");
    assert.equal(p.dirs.libdeps, join(p.dir, ".kiln", "libdeps"));
    const q = await loadIni(t, "[env:a]\nboard = uno\ncustom_g = ${platformio.globallib_dir}\n", { PLATFORMIO_HOME_DIR: "/core" });
    assert.equal(q.env("a").options.custom_g!.value, "/core/lib");
  });

  it("PLATFORMIO_BUILD_DIR moves the build directory", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\n", { PLATFORMIO_BUILD_DIR: "/x" });
    assert.equal(p.dirs.build, "/x");
  });
});

describe("types and environment selection (platformio-ini.md §6, §8)", () => {
  it("rejects a bad int, bool and choice with file:line", async (t) => {
    const bad = async (opt: string, re: RegExp) => {
      const p = await loadIni(t, `[env]\n${opt}\n[env:a]\nboard = uno\n`);
      assert.throws(() => p.env("a"), configError("KILN_CONFIG_VALUE", re, 2));
    };
    await bad("upload_speed = fast", /'fast' is not a valid integer for `upload_speed` option in the `env:a` section \(Upload speed\)/);
    await bad("monitor_raw = maybe", /'maybe' is not a valid boolean.*`monitor_raw`/);
    await bad("build_type = fastest", /'fastest' is not one of 'release', 'test', 'debug' for `build_type`.*\(Build configuration\)/);
    await bad("monitor_dtr = 2", /2 is not in the range 0\.\.1/);
  });

  it("converts bools and upper-cases parity/eol", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\nmonitor_echo = yes\nlib_archive = false\nmonitor_parity = e\nmonitor_eol = lf\nmonitor_rts = 0\n");
    const a = p.env("a");
    assert.equal(a.monitor.echo, true);
    assert.equal(a.libArchive, false);
    assert.equal(a.monitor.parity, "E");
    assert.equal(a.monitor.eol, "LF");
    assert.equal(a.monitor.rts, 0);
  });

  it("monitor_raw disables monitor_filters with a warning", async (t) => {
    const p = await loadIni(t, "[env:a]\nboard = uno\nmonitor_raw = yes\nmonitor_filters = time\n");
    assert.deepEqual(p.env("a").monitor.filters, []);
    assert.ok(p.warnings.some((w) => w.includes("`monitor_raw` and `monitor_filters` options cannot be used simultaneously for the `a` environment")));
  });

  it("selects -e envs, else default_envs, else all in file order", async (t) => {
    const p = await loadIni(t, "[env:b]\nboard = uno\n[env:a]\nboard = uno\n");
    assert.deepEqual(p.selectEnvs([]), ["b", "a"]);
    assert.deepEqual(p.selectEnvs(["a", "a"]), ["a"]);
  });

  it("rejects an unknown env, listing the valid ones", async (t) => {
    const p = await loadIni(t, "[env:uno]\nboard = uno\n[env:esp]\nboard = x\n");
    assert.throws(() => p.selectEnvs(["unoo"]), (e: unknown) => {
      configError("KILN_UNKNOWN_ENV", /unknown environment 'unoo' in -e; valid environments: uno, esp/)(e);
      assert.match((e as ConfigError).hint!, /did you mean 'uno'/);
      return true;
    });
    assert.throws(() => p.env("nope"), configError("KILN_UNKNOWN_ENV", /valid environments: uno, esp/));
    const q = await loadIni(t, "[platformio]\ndefault_envs = uno, zero\n[env:uno]\nboard = uno\n");
    assert.throws(() => q.selectEnvs([]), configError("KILN_UNKNOWN_ENV", /'zero' in `default_envs`/, 2));
  });

  it("rejects a project without environments", async (t) => {
    const p = await loadIni(t, "[platformio]\nname = x\n");
    assert.throws(() => p.selectEnvs([]), configError("KILN_NO_ENVS", /no environments/));
  });

  it("rejects an invalid env name with its line", async (t) => {
    await assert.rejects(loadIni(t, "[env:ok-1]\nboard = a\n\n[env:a.b]\nboard = b\n"), configError("KILN_CONFIG_ENV_NAME", /invalid environment name 'a\.b'/, 4));
  });
});
