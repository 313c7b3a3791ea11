/**
 * The far side of a pty pair, played by real node-serialport (non-blocking,
 * unlike a plain fs read on a pty), and a spawned kiln whose output can be
 * awaited while it runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { SerialPort } from "serialport";
import { rm } from "node:fs/promises";
import { kilnBin, repoRoot, tempDir } from "./cli.js";
import { startPtyPair, type PtyPair } from "./pty.js";

export interface FakeDevice {
  write(data: string | Buffer): Promise<void>;
  /** Everything the device received so far (latin-1, so bytes survive). */
  received(): string;
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export async function openDevice(path: string): Promise<FakeDevice> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  let got = "";
  port.on("data", (d: Buffer) => (got += d.toString("latin1")));
  port.on("error", () => {});
  return {
    write: (data) => new Promise((res, rej) => port.write(data, (e) => (e ? rej(e) : port.drain((e2) => (e2 ? rej(e2) : res()))))),
    received: () => got,
    waitFor: (re, timeoutMs = 5000) => waitUntil(() => re.test(got), timeoutMs, () => `device to receive ${re}; got ${JSON.stringify(got)}`).then(() => got),
    close: () => new Promise((res) => (port.isOpen ? port.close(() => res()) : res())),
  };
}

export async function waitUntil(ok: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface RunningKiln {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<void>;
  waitForStdout(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `kiln <args>` (CI=1, NO_COLOR=1) and return at once. */
export function spawnKiln(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): RunningKiln {
  return spawnNode([kilnBin, ...args], opts);
}

/** Start `node <argv>` the same way (a script using kiln's library). */
export function spawnNode(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): RunningKiln {
  const child = spawn(process.execPath, argv, { cwd: opts.cwd ?? repoRoot, env: { ...process.env, CI: "1", NO_COLOR: "1", ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on("close", (code, signal) => res({ code, signal })));
  const desc = (): string => `\n--- stdout:\n${out}\n--- stderr:\n${err}`;
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStderr: (re, ms = 10_000) => waitUntil(() => re.test(err), ms, () => `stderr ${re}${desc()}`),
    waitForStdout: (re, ms = 10_000) => waitUntil(() => re.test(out), ms, () => `stdout ${re}${desc()}`),
    exited,
  };
}

export interface PtyRig {
  /** A temp dir, removed after the test. */
  dir: string;
  pair: PtyPair;
  /** The device, on end b; the code under test uses end a. */
  device: FakeDevice;
}

/** A temp dir, a socat pty pair in it and a device on end b, all cleaned up after the test. */
export async function ptyRig(t: { after(fn: () => unknown): void }): Promise<PtyRig> {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pair = await startPtyPair(dir);
  t.after(pair.stop);
  const device = await openDevice(pair.b);
  t.after(device.close);
  return { dir, pair, device };
}
