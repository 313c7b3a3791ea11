/**
 * `kiln monitor` as CI runs it: real kiln processes on socat ptys, exit codes
 * for --until / --fail-on / --timeout, a bad port, reconnecting when the
 * device goes away and comes back, and the upload hand-off between two kiln
 * processes.
 */
import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCli, tempDir, repoRoot } from "../helpers/cli.js";
import { startPtyExec, startPtyPair, type PtyPair } from "../helpers/pty.js";
import { requireTool } from "../helpers/tools.js";
import type { FirmwareManifest } from "../../lib/core/manifest.js";
import { avrBoard, avrUploadSettings } from "../../lib/platforms/atmelavr.js";
import type { ResolvedEnv } from "../../lib/project/types.js";
import { openDevice, ptyRig, spawnKiln, spawnNode, type FakeDevice } from "../helpers/serial-device.js";

interface Rig {
  dir: string;
  pair: PtyPair;
  device: FakeDevice;
  env: Record<string, string>;
}

/** A pty pair with the device on end b, and a private TMPDIR (so the port lock files are the test's own). */
async function rig(t: TestContext): Promise<Rig> {
  const { dir, pair, device } = await ptyRig(t);
  return { dir, pair, device, env: { TMPDIR: dir, KILN_HOME: join(dir, "home") } };
}

const STARTED = /8-N-1/;

describe("kiln monitor in a pipe (CI)", () => {
  it("--until: exit 0 once the line arrives; the device's output is on stdout", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "-b", "115200", "--until", "^PASS", "--fail-on", "FAIL", "--timeout", "20"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(STARTED);
    await r.device.write("booting\r\ntest 1 ok\r\nPASS 3/3\r\nafter\r\n");
    const { code } = await k.exited;
    assert.equal(code, 0, k.stderr());
    assert.match(k.stdout(), /booting\ntest 1 ok\nPASS 3\/3\n/);
  });

  it("--fail-on: exit 1 with the matching line", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "--until", "PASS", "--fail-on", "FAIL", "--timeout", "20"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(STARTED);
    await r.device.write("test 2 FAIL: expected 4\r\n");
    const { code } = await k.exited;
    assert.equal(code, 1);
    assert.match(k.stderr(), /KILN_MONITOR_FAIL_MATCH.*--fail-on \/FAIL\/ matched: test 2 FAIL: expected 4/);
  });

  it("--timeout: exit 1 when --until was not seen, exit 0 without --until; a prompt without newline still matches", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "--until", "PASS", "--timeout", "1"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(STARTED);
    await r.device.write("still waiting\r\n");
    assert.equal((await k.exited).code, 1);
    assert.match(k.stderr(), /KILN_MONITOR_TIMEOUT.*not seen within 1 s/);
    assert.match(k.stdout(), /still waiting/);

    const k2 = spawnKiln(["monitor", "--port", r.pair.a, "--timeout", "1"], { cwd: r.dir, env: r.env });
    await k2.waitForStderr(STARTED);
    await r.device.write("tick\r\n");
    assert.equal((await k2.exited).code, 0, k2.stderr());
    assert.equal(k2.stdout(), "tick\n");

    const k3 = spawnKiln(["monitor", "--port", r.pair.a, "--until", "login:", "--timeout", "10"], { cwd: r.dir, env: r.env });
    await k3.waitForStderr(STARTED);
    await r.device.write("login: ");
    assert.equal((await k3.exited).code, 0, k3.stderr());
  });

  it("--json: received data and the result as NDJSON events", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--json", "--port", r.pair.a, "--until", "OK", "--timeout", "20"], { cwd: r.dir, env: r.env });
    await k.waitForStdout(STARTED);
    await r.device.write("hi\r\nOK\r\n");
    assert.equal((await k.exited).code, 0, k.stderr());
    const events = k.stdout().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events.filter((e) => e.type === "monitor-data").map((e) => e.text).join(""), "hi\nOK\n");
    assert.deepEqual(events.at(-1), { type: "result", command: "monitor", port: r.pair.a, reason: "until", match: "OK", bytesReceived: 8, bytesSent: 0, reconnects: 0, handoffs: 0 });
  });

  it("sends piped stdin to the device", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "--eol", "LF", "--until", "^pong", "--timeout", "20"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(STARTED);
    k.child.stdin!.write("ping\n");
    await r.device.waitFor(/ping\n/);
    await r.device.write("pong\n");
    assert.equal((await k.exited).code, 0, k.stderr());
  });

  it("log2file (from -f) writes the received text into the working directory", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "-f", "log2file", "--until", "DONE", "--timeout", "20"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(STARTED);
    await r.device.write("line one\r\nDONE\r\n");
    assert.equal((await k.exited).code, 0, k.stderr());
    const logs = (await readdir(r.dir)).filter((f) => /^kiln-monitor-\d{6}-\d{6}\.log$/.test(f));
    assert.equal(logs.length, 1);
    assert.equal(await readFile(join(r.dir, logs[0]!), "utf8"), "line one\r\nDONE\r\n");
    assert.match(k.stderr(), /logging received data to .*kiln-monitor-/);
  });

  it("a bad port path exits 7 and lists the ports", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const r = await runCli(["monitor", "--port", join(dir, "ttyNOPE")], { cwd: dir, env: { TMPDIR: dir } });
    assert.equal(r.code, 7);
    assert.match(r.stderr, /KILN_PORT_NOT_FOUND.*ttyNOPE does not exist\nserial ports:\n/);
    assert.match(r.stderr, /hint: .*--port/);
    const j = await runCli(["monitor", "--json", "--port", join(dir, "ttyNOPE")], { cwd: dir, env: { TMPDIR: dir } });
    assert.equal(j.code, 7);
    const err = j.events.find((e) => e.type === "error")!;
    assert.equal(err.code, "KILN_PORT_NOT_FOUND");
    assert.ok(Array.isArray(err.ports));
  });

  it("an unknown filter is a configuration error naming the known ones", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const r = await runCli(["monitor", "--port", "/dev/null", "-f", "tme"], { cwd: dir });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /KILN_MONITOR_FILTER_UNKNOWN.*'tme'[\s\S]*did you mean 'time'/);
  });

  it("takes port, speed and filters from platformio.ini", async (t) => {
    const r = await rig(t);
    await writeFile(join(r.dir, "platformio.ini"), `[env:uno]\nplatform = atmelavr\nboard = uno\nframework = arduino\nmonitor_port = ${r.pair.a}\nmonitor_speed = 115200\nmonitor_filters = time\n`);
    const k = spawnKiln(["monitor", "--until", "OK", "--timeout", "20"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(/115200 8-N-1/);
    await r.device.write("OK\r\n");
    assert.equal((await k.exited).code, 0, k.stderr());
    assert.match(k.stdout(), /^\d\d:\d\d:\d\d\.\d{3} > OK\n$/);
  });
});

describe("kiln monitor survives the device going away", () => {
  it("reconnects when the pty disappears and comes back, saying so, without exiting", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "--until", "AGAIN", "--timeout", "30"], { cwd: r.dir, env: r.env });
    t.after(() => k.child.kill("SIGKILL"));
    await k.waitForStderr(STARTED);
    await r.device.write("first\r\n");
    await k.waitForStdout(/first/);
    await r.device.close();
    await r.pair.stop();
    await k.waitForStderr(/disconnected; waiting for it to come back/);
    assert.equal(k.child.exitCode, null, "still running");
    const again = await startPtyPair(r.dir);
    t.after(again.stop);
    await k.waitForStderr(/reconnected to /);
    const dev = await openDevice(again.b);
    t.after(dev.close);
    await dev.write("AGAIN\r\n");
    assert.equal((await k.exited).code, 0, k.stderr());
    assert.match(k.stdout(), /first\n[\s\S]*AGAIN\n/);
    assert.equal(k.stderr().match(/disconnected/g)?.length, 1, "one line when lost");
    assert.equal(k.stderr().match(/reconnected/g)?.length, 1, "one line when back");
  });

  it("--no-reconnect: a lost port is exit 7", async (t) => {
    const r = await rig(t);
    const k = spawnKiln(["monitor", "--port", r.pair.a, "--no-reconnect", "--timeout", "30"], { cwd: r.dir, env: r.env });
    await k.waitForStderr(STARTED);
    await r.device.close();
    await r.pair.stop();
    assert.equal((await k.exited).code, 7, k.stderr());
    assert.match(k.stderr(), /KILN_PORT_LOST/);
  });
});

describe("upload hand-off between two kiln processes", () => {
  /** What an uploader does: take the port from the monitor, use it, give it back. */
  const UPLOADER = `
    const [lib, port] = process.argv.slice(2);
    const { acquirePortForUpload, openSerialPort } = await import(lib);
    const release = await acquirePortForUpload(port, { timeoutMs: 5000 });
    const conn = await openSerialPort({ path: port, baudRate: 115200 });
    await conn.write(Buffer.from("FLASHED\\n"));
    await conn.close();
    await release();
    console.log("uploaded");
  `;

  it("the monitor releases the port when asked, the upload uses it, the monitor reattaches with a marker line", async (t) => {
    const r = await rig(t);
    const script = join(r.dir, "uploader.mjs");
    await writeFile(script, UPLOADER);
    const mon = spawnKiln(["monitor", "--port", r.pair.a, "--until", "DONE", "--timeout", "30"], { cwd: r.dir, env: r.env });
    t.after(() => mon.child.kill("SIGKILL"));
    await mon.waitForStderr(STARTED);
    await r.device.write("before\r\n");
    await mon.waitForStdout(/before/);

    const up = spawnNode([script, join(repoRoot, "dist/serial/index.js"), r.pair.a], { cwd: r.dir, env: r.env });
    const { code } = await up.exited;
    assert.equal(code, 0, `uploader failed:\n${up.stderr()}\nmonitor:\n${mon.stderr()}`);
    assert.match(up.stdout(), /uploaded/);
    await r.device.waitFor(/FLASHED\n/);
    await mon.waitForStderr(/upload finished; monitor reattached to /);
    await r.device.write("DONE\r\n");
    assert.equal((await mon.exited).code, 0, mon.stderr());
    assert.match(mon.stderr(), new RegExp(`released for an upload \\(pid ${up.child.pid}\\)`));
    assert.match(mon.stdout(), /before\n[\s\S]*DONE\n/);
  });

  it("a real avrdude upload (kiln's uploader, default port services) borrows the port from a running kiln monitor", async (t) => {
    const avrdude = requireTool("avrdude", "avrdude");
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const env = { TMPDIR: dir, KILN_HOME: join(dir, "home") };
    // 512 bytes of firmware as Intel HEX, every byte value.
    const data = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 13) % 256));
    const hex: string[] = [];
    for (let a = 0; a < data.length; a += 16) {
      const rec = Buffer.concat([Buffer.from([16, a >> 8, a & 0xff, 0]), data.subarray(a, a + 16)]);
      const sum = (0x100 - (rec.reduce((x, y) => x + y, 0) & 0xff)) & 0xff;
      hex.push(`:${Buffer.concat([rec, Buffer.from([sum])]).toString("hex").toUpperCase()}`);
    }
    hex.push(":00000001FF");
    await writeFile(join(dir, "firmware.hex"), `${hex.join("\n")}\n`);
    const board = avrBoard("uno");
    const manifest: FirmwareManifest = {
      schema: 1,
      env: "uno",
      platform: "atmelavr",
      board: { id: board.id, name: board.name, mcu: board.mcu, fCpu: board.fCpu, usbIds: board.usbIds },
      images: [{ path: "firmware.hex", sha256: "", sizeBytes: 0, format: "hex", role: "flash" }],
      upload: avrUploadSettings({ name: "uno", upload: { flags: [] } } as unknown as ResolvedEnv, board),
      tools: { avrdude, "avrdude.conf": "/etc/avrdude.conf" },
      toolchain: "avr-gcc",
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(dir, "manifest.json"), JSON.stringify(manifest));
    const image = join(dir, "flash.bin");
    const pty = await startPtyExec(dir, [process.execPath, join(repoRoot, "test/helpers/fake-optiboot.mjs"), image]);
    t.after(pty.stop);

    const mon = spawnKiln(["monitor", "--port", pty.path, "-b", "115200", "--timeout", "60"], { cwd: dir, env });
    t.after(() => mon.child.kill("SIGKILL"));
    await mon.waitForStderr(STARTED);
    const script = join(dir, "upload.mjs");
    await writeFile(
      script,
      `const { uploadFirmware } = await import(${JSON.stringify(join(repoRoot, "dist/flash/index.js"))});
       const { MemoryReporter } = await import(${JSON.stringify(join(repoRoot, "dist/core/report.js"))});
       const reporter = new MemoryReporter();
       const r = await uploadFirmware(process.argv[2], { reporter, port: process.argv[3], signal: AbortSignal.timeout(60000) });
       console.log(reporter.lines.join("\\n"));
       console.log("uploaded to", r.port);`,
    );
    const up = spawnNode([script, join(dir, "manifest.json"), pty.path], { cwd: dir, env });
    const { code } = await up.exited;
    assert.equal(code, 0, `upload failed:\n${up.stdout()}\n${up.stderr()}\nmonitor:\n${mon.stderr()}`);
    assert.match(mon.stderr(), new RegExp(`released for an upload \\(pid ${up.child.pid}\\)`));
    assert.deepEqual((await readFile(image)).subarray(0, data.length), data);
    await mon.waitForStderr(/upload finished; monitor reattached to /);
    assert.equal(mon.child.exitCode, null, "the monitor is still running");
    mon.child.kill("SIGTERM");
    await mon.exited;
  });

  it("a stale lock (dead pid) is ignored", async (t) => {
    const r = await rig(t);
    const dead = spawnNode(["-e", ""]);
    await dead.exited;
    const { defaultLockDir, acquirePortForUpload, MonitorPortLock } = await import("../../lib/serial/index.js");
    const lockDir = join(r.dir, "locks");
    // Write a monitor lock as a dead monitor would have left it.
    const lock = await MonitorPortLock.acquire(r.pair.a, { lockDir, onRequest: () => {} });
    await lock.dispose();
    const files = await import("node:fs/promises");
    const { portLockKeys } = await import("../../lib/serial/lock.js");
    for (const key of await portLockKeys(r.pair.a)) {
      await files.mkdir(lockDir, { recursive: true });
      await files.writeFile(join(lockDir, `${key}.monitor.json`), JSON.stringify({ pid: dead.child.pid, port: r.pair.a, state: "holding" }));
    }
    const started = Date.now();
    const release = await acquirePortForUpload(r.pair.a, { lockDir, timeoutMs: 3000 });
    assert.ok(Date.now() - started < 1000, "did not wait for the dead monitor");
    await release();
    assert.deepEqual((await files.readdir(lockDir)).filter((f) => f.endsWith(".monitor.json")), []);
    assert.ok(defaultLockDir().includes("kiln-"));
  });

  it("a holder that never lets go makes the upload fail with exit 7 (KILN_PORT_BUSY) after the timeout", async (t) => {
    const r = await rig(t);
    const stubborn = spawnNode(["-e", "process.on('SIGUSR2', () => {}); setInterval(() => {}, 1000); console.log('ready')"]);
    t.after(() => stubborn.child.kill("SIGKILL"));
    await stubborn.waitForStdout(/ready/);
    const { acquirePortForUpload } = await import("../../lib/serial/index.js");
    const { portLockKeys } = await import("../../lib/serial/lock.js");
    const { mkdir } = await import("node:fs/promises");
    const lockDir = join(r.dir, "locks");
    await mkdir(lockDir, { recursive: true });
    for (const key of await portLockKeys(r.pair.a)) await writeFile(join(lockDir, `${key}.monitor.json`), JSON.stringify({ pid: stubborn.child.pid, port: r.pair.a, state: "holding" }));
    await assert.rejects(acquirePortForUpload(r.pair.a, { lockDir, timeoutMs: 500 }), (e: { code: string; exitCode: number; message: string }) => {
      assert.equal(e.code, "KILN_PORT_BUSY");
      assert.equal(e.exitCode, 7);
      assert.match(e.message, new RegExp(`pid ${stubborn.child.pid}`));
      return true;
    });
    assert.deepEqual((await readdir(lockDir)).filter((f) => f.endsWith(".upload.json")), [], "the request is withdrawn");
  });
});
