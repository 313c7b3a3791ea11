import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../helpers/cli.js";
import { tempProject } from "./helpers.js";

const ini = `[platformio]
default_envs = uno

[env]
build_flags = -DCOMMON

[env:uno]
platform = atmelavr
board = uno
build_flags =
    \${env.build_flags}
    -DUNO
bogus = 1

[env:nano]
platform = atmelavr
board = nanoatmega328
upload_speed = 57600
`;

describe("kiln config", () => {
  it("--json prints one result with one object per env, and warnings", async (t) => {
    const dir = await tempProject(t, { "platformio.ini": ini });
    const r = await runCli(["config", "-d", dir, "-e", "uno", "-e", "nano", "--json"], { env: { KILN_HOME: join(dir, ".home") } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const result = r.events.at(-1)!;
    assert.equal(result.type, "result");
    const envs = result.envs as Array<Record<string, unknown>>;
    assert.deepEqual(envs.map((e) => e.name), ["uno", "nano"]);
    assert.deepEqual(envs[0]!.buildFlags, ["-DCOMMON", "-DUNO"]);
    assert.equal((envs[1]!.upload as Record<string, unknown>).speed, 57600);
    assert.equal((envs[0]!.options as Record<string, string>).board, "uno");
    assert.equal((result.project as Record<string, unknown>).configFile, join(dir, "platformio.ini"));
    const warning = r.events.find((e) => e.type === "warning");
    assert.match(String(warning?.message), /platformio\.ini:13: Ignore unknown configuration option `bogus` in section \[env:uno\]/);
  });

  it("prints [env:NAME] blocks of option = value for default_envs", async (t) => {
    const dir = await tempProject(t, { "platformio.ini": ini });
    const r = await runCli(["config", "-d", dir], { env: { KILN_HOME: join(dir, ".home") } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "[env:uno]\nplatform = atmelavr\nboard = uno\nbuild_flags =\n    -DCOMMON\n    -DUNO\nbogus = 1\n");
    assert.match(r.stderr, /warning: .*bogus/);
  });

  it("an unknown env exits 3 and lists the valid ones", async (t) => {
    const dir = await tempProject(t, { "platformio.ini": ini });
    const r = await runCli(["config", "-d", dir, "-e", "mega", "--json"], { env: { KILN_HOME: join(dir, ".home") } });
    assert.equal(r.code, 3, r.stderr + r.stdout);
    const err = r.events.find((e) => e.type === "error")!;
    assert.equal(err.code, "KILN_UNKNOWN_ENV");
    assert.match(String(err.message), /valid environments: uno, nano/);
  });

  it("a syntax error exits 3 naming file:line", async (t) => {
    const dir = await tempProject(t, { "platformio.ini": "[env:a]\nboard = uno\nboard = nano\n" });
    const r = await runCli(["config", "-d", dir], { env: { KILN_HOME: join(dir, ".home") } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /error \[KILN_CONFIG_SYNTAX\]: .*platformio\.ini:3: option `board` in section \[env:a\] already exists/);
    assert.match(r.stderr, /hint: /);
  });
});
