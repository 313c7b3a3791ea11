/**
 * The interactive side: quit keys, the Ctrl-T menu, and the DTR/RTS/break
 * logic. A pty has no modem lines, so the line changes are checked through a
 * recording seam wrapped around the real node-serialport connection.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { openSerialPort, runMonitor, type ModemLines, type PortOpener } from "../../lib/serial/index.js";
import { MemoryReporter } from "../../lib/core/report.js";
import { tempDir } from "../helpers/cli.js";
import { startPtyPair } from "../helpers/pty.js";
import { ptyRig, waitUntil } from "../helpers/serial-device.js";
import { spawn } from "node:child_process";
import { kilnBin, requireTool } from "../helpers/cli.js";
import { shellQuote } from "../../lib/core/report.js";

const CTRL_T = "\x14";

describe("interactive monitor", () => {
  it("applies monitor_dtr/monitor_rts on open, toggles them and sends a break from the Ctrl-T menu, quits on Ctrl-]", async (t) => {
    const { dir, pair, device } = await ptyRig(t);
    const recorded: ModemLines[] = [];
    const opener: PortOpener = async (o) => {
      const real = await openSerialPort(o);
      return { ...real, setLines: async (l) => void recorded.push({ ...l }) };
    };
    const reporter = new MemoryReporter();
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const done = runMonitor({ port: pair.a, monitor: { speed: 115200, dtr: 0, rts: 1 }, reporter, stdout, stdin, interactive: true, opener, lockDir: join(dir, "locks") });
    await waitUntil(() => reporter.lines.some((l) => l.includes("menu: Ctrl-T h")), 5000, () => reporter.lines.join("\n"));
    assert.deepEqual(recorded, [{ dtr: false, rts: true }]);

    stdin.write(`${CTRL_T}d`);
    await waitUntil(() => recorded.length === 2, 2000, () => JSON.stringify(recorded));
    assert.deepEqual(recorded[1], { dtr: true, rts: true }, "DTR toggled; RTS written with it, unchanged");
    stdin.write(`${CTRL_T}r`);
    await waitUntil(() => recorded.length === 3, 2000, () => JSON.stringify(recorded));
    assert.deepEqual(recorded[2], { dtr: true, rts: false });
    stdin.write(`${CTRL_T}b`);
    await waitUntil(() => recorded.length === 5, 2000, () => JSON.stringify(recorded));
    assert.deepEqual(recorded.slice(3), [
      { dtr: true, rts: false, brk: true },
      { dtr: true, rts: false, brk: false },
    ]);
    stdin.write(`${CTRL_T}h`);
    await waitUntil(() => reporter.lines.some((l) => l.includes("Ctrl-T d")), 2000, () => reporter.lines.join("\n"));
    assert.ok(reporter.lines.some((l) => l === "--- DTR active"));
    assert.ok(reporter.lines.some((l) => l === "--- RTS inactive"));
    assert.ok(reporter.lines.some((l) => l === "--- BREAK sent"));

    // Typing: Enter (CR in raw mode) goes out as the EOL (CRLF); Ctrl-T Ctrl-T sends Ctrl-T itself.
    stdin.write("hi\r");
    stdin.write(`${CTRL_T}${CTRL_T}`);
    await device.waitFor(/hi\r\n\x14$/);
    stdin.write("\x1d");
    const result = await done;
    assert.equal(result.reason, "quit");
    assert.equal(result.bytesSent, 5);
  });

  it("Ctrl-C quits too; on a real pty DTR/RTS cannot be set, which is a warning, once", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir);
    t.after(pair.stop);
    const reporter = new MemoryReporter();
    const stdin = new PassThrough();
    const done = runMonitor({ port: pair.a, monitor: { speed: 9600, rts: 0 }, reporter, stdout: new PassThrough(), stdin, interactive: true, lockDir: join(dir, "locks") });
    await waitUntil(() => reporter.lines.some((l) => l.includes("8-N-1")), 5000, () => reporter.lines.join("\n"));
    stdin.write(`${CTRL_T}d`);
    await new Promise((r) => setTimeout(r, 200));
    stdin.write("\x03");
    assert.equal((await done).reason, "quit");
    const warnings = reporter.lines.filter((l) => /cannot set DTR\/RTS\/break .* no modem lines/.test(l));
    assert.equal(warnings.length, 1, reporter.lines.join("\n"));
  });

  it("stops on the abort signal (Ctrl-C outside raw mode, SIGTERM)", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir);
    t.after(pair.stop);
    const reporter = new MemoryReporter();
    const ac = new AbortController();
    const done = runMonitor({ port: pair.a, reporter, stdout: new PassThrough(), signal: ac.signal, lockDir: join(dir, "locks") });
    await waitUntil(() => reporter.lines.some((l) => l.includes("8-N-1")), 5000, () => reporter.lines.join("\n"));
    ac.abort();
    assert.equal((await done).reason, "aborted");
  });

  it("kiln monitor on a real terminal: raw keyboard to the device, Ctrl-T h help, Ctrl-] quits with exit 0", async (t) => {
    const scriptTool = requireTool("script", "bsdutils");
    const { dir, pair, device } = await ptyRig(t);
    // script(1) runs kiln on a new pty, so stdin is a TTY; keys written to script's stdin reach it raw.
    const cmd = shellQuote([process.execPath, kilnBin, "monitor", "--port", pair.a, "-b", "115200"]);
    const child = spawn(scriptTool, ["-qfec", cmd, "/dev/null"], { env: { ...process.env, TMPDIR: dir, NO_COLOR: "1" }, stdio: ["pipe", "pipe", "pipe"] });
    t.after(() => child.kill("SIGKILL"));
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((res) => child.on("close", (c) => res(c)));
    await waitUntil(() => out.includes("menu: Ctrl-T h"), 10_000, () => out);
    await device.write("hello from device\r\n");
    await waitUntil(() => out.includes("hello from device"), 5000, () => out);
    child.stdin.write("\x14h");
    await waitUntil(() => out.includes("Ctrl-T d"), 5000, () => out);
    child.stdin.write("abc\r");
    await device.waitFor(/abc\r\n$/);
    child.stdin.write("\x1d");
    assert.equal(await exited, 0, out);
  });
});
