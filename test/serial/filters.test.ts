/**
 * Every monitor filter, through the real monitor on a socat pty pair with
 * node-serialport on both ends.
 */
import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { runMonitor, type MonitorSettings, type RunMonitorOptions } from "../../lib/serial/index.js";
import { MemoryReporter } from "../../lib/core/report.js";
import { ptyRig, waitUntil, type FakeDevice } from "../helpers/serial-device.js";

class Sink extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

interface Setup {
  dir: string;
  device: FakeDevice;
  out: Sink;
  reporter: MemoryReporter;
  stdin: PassThrough;
  /** Resolves once the port is open; `done` is the monitor's end. */
  start(monitor: Partial<MonitorSettings>, extra?: Partial<RunMonitorOptions>): Promise<{ done: ReturnType<typeof runMonitor> }>;
}

async function setup(t: TestContext): Promise<Setup> {
  const { dir, pair, device } = await ptyRig(t);
  const out = new Sink();
  const reporter = new MemoryReporter();
  const stdin = new PassThrough();
  const lockDir = join(dir, "locks");
  return {
    dir,
    device,
    out,
    reporter,
    stdin,
    async start(monitor, extra = {}) {
      const p = runMonitor({ port: pair.a, monitor: { speed: 115200, ...monitor }, reporter, stdout: out, stdin, interactive: false, lockDir, until: /^END$/, timeoutMs: 8000, logDir: dir, ...extra });
      let failed = false;
      p.catch(() => (failed = true));
      await waitUntil(() => failed || reporter.lines.some((l) => l.includes("8-N-1")), 5000, () => `monitor start: ${reporter.lines.join("\n")}`);
      return { done: p };
    },
  };
}

const FIXED = new Date(2026, 0, 2, 12, 34, 56, 789);

describe("monitor filters on a pty", () => {
  it("default: control codes shown as symbols, CRLF becomes LF", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({});
    await s.device.write("a\x01b\x1b[0m\x7f\tc\r\nEND\r\n");
    assert.equal((await run).reason, "until");
    assert.equal(s.out.text(), "a\u2401b\u241b[0m\u2421\tc\nEND\n");
  });

  it("direct: bytes unchanged apart from the EOL translation", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["direct"], eol: "LF" });
    await s.device.write("a\x01b\r\nEND\n");
    await run;
    assert.equal(s.out.text(), "a\x01b\r\nEND\n");
  });

  it("printable: non-ASCII as decimal codes, controls as symbols", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["printable"] });
    await s.device.write(Buffer.from("é\x02x\r\nEND\r\n", "utf8"));
    await run;
    assert.equal(s.out.text(), "\u2082\u2083\u2083 \u2402x\nEND\n");
  });

  it("nocontrol: every control code and the space as symbols", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["nocontrol"] });
    await s.device.write("a b\r\nEND\r\n");
    await run;
    assert.equal(s.out.text(), "a\u2423b\u240d\u240aEND\u240d\u240a");
  });

  it("colorize: received text white, local echo red", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["colorize"], echo: true });
    s.stdin.write("hi\n");
    await s.device.waitFor(/hi\r\n/);
    await s.device.write("yo\r\nEND\r\n");
    await run;
    assert.match(s.out.text(), /^\x1b\[31mhi\n/);
    assert.match(s.out.text(), /\x1b\[37myo\nEND\n$/);
  });

  it("time: a timestamp before every line", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["time"] }, { now: () => FIXED });
    await s.device.write("one\r\ntw");
    await new Promise((r) => setTimeout(r, 100));
    await s.device.write("o\r\nEND\r\n");
    await run;
    assert.equal(s.out.text(), "12:34:56.789 > one\n12:34:56.789 > two\n12:34:56.789 > END\n");
  });

  it("hexlify: every byte in hex, 16 to a row with the offset", async (t) => {
    const s = await setup(t);
    const bytes = Buffer.from([0x00, 0xff, 0x41, 0x80, ...Buffer.from("0123456789ab\r\nEND\r\n")]);
    const { done: run } = await s.start({ filters: ["hexlify"] });
    await s.device.write(bytes);
    await run;
    assert.equal(s.out.text(), "\n0000 | 00 FF 41 80 30 31 32 33 34 35 36 37 38 39 61 62 \n0010 | 0D 0A 45 4E 44 0D 0A ");
  });

  it("log2file: what is received goes to kiln-monitor-<date>.log as well as to the screen", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["log2file", "time"] }, { now: () => FIXED });
    await s.device.write("temp=21.5\r\nEND\r\n");
    const result = await run;
    assert.equal(result.logFile, join(s.dir, "kiln-monitor-260102-123456.log"));
    assert.ok((await readdir(s.dir)).includes("kiln-monitor-260102-123456.log"));
    // log2file is listed first, so (miniterm order) it sees the text after `time`.
    assert.equal(await readFile(result.logFile!, "utf8"), "12:34:56.789 > temp=21.5\r\n12:34:56.789 > END\r\n");
    assert.equal(s.out.text(), "12:34:56.789 > temp=21.5\n12:34:56.789 > END\n");
  });

  it("send_on_enter: typed text is held until Enter, then sent with the EOL", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ filters: ["send_on_enter"], eol: "CR" });
    s.stdin.write("AT+GMR");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(s.device.received(), "");
    s.stdin.write("\n");
    await s.device.waitFor(/AT\+GMR\r$/);
    assert.equal(s.device.received(), "AT+GMR\r");
    await s.device.write("OK\rEND\r");
    await run;
    assert.equal(s.out.text(), "OK\nEND\n");
  });

  it("typed text is sent at once with the EOL translation (CRLF by default)", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({});
    s.stdin.write("ping\n");
    await s.device.waitFor(/ping\r\n/);
    await s.device.write("END\r\n");
    const r = await run;
    assert.equal(r.bytesSent, 6);
  });

  it("monitor_raw: bytes both ways untouched, filters ignored with a warning", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ raw: true, filters: ["time"] });
    s.stdin.write("x\n");
    await s.device.waitFor(/^x\n$/);
    await s.device.write(Buffer.from([0x01, 0x0d, 0x0a, ...Buffer.from("END\r\n")]));
    await run;
    assert.deepEqual(Buffer.concat(s.out.chunks), Buffer.from([0x01, 0x0d, 0x0a, ...Buffer.from("END\r\n")]));
    assert.ok(s.reporter.lines.some((l) => /monitor_raw is set: monitor_filters are ignored/.test(l)));
  });

  it("monitor_encoding: latin-1 bytes become text", async (t) => {
    const s = await setup(t);
    const { done: run } = await s.start({ encoding: "latin-1" });
    await s.device.write(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a, ...Buffer.from("END\r\n")]));
    await run;
    assert.equal(s.out.text(), "café\nEND\n");
  });
});
