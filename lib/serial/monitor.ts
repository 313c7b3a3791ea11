/**
 * The serial monitor: one port, filters, keyboard passthrough, reconnects,
 * the upload hand-off, and CI stop conditions (`--until`, `--fail-on`,
 * `--timeout`). Received data goes to `stdout`; status lines go to the
 * reporter (stderr), so `kiln monitor > log` captures only the device.
 */
import { realpath } from "node:fs/promises";
import type { Readable, Writable } from "node:stream";
import { TextDecoder } from "node:util";
import { ExitCode, KilnError, UsageError } from "../core/errors.js";
import type { Reporter } from "../core/report.js";
import type { ResolvedEnv } from "../project/types.js";
import { isNoModemLines, isPermissionDenied, isPortBusy, isPortMissing, openSerialPort, portOpenError, type ModemLines, type Parity, type PortOpener, type SerialConnection } from "./connection.js";
import type { DecoderConfig } from "./decoder.js";
import { exists as pathExists, PortNotFoundError } from "./detect.js";
import { createFilterChain, type Eol, type FilterChain } from "./filters.js";
import { MonitorPortLock } from "./lock.js";
import { listPorts } from "./ports.js";

/** The monitor_* settings of an env (`ResolvedEnv["monitor"]` without the port). */
export interface MonitorSettings {
  speed: number;
  parity: "N" | "E" | "O" | "S" | "M";
  filters: string[];
  rts?: 0 | 1 | undefined;
  dtr?: 0 | 1 | undefined;
  eol: Eol;
  raw: boolean;
  echo: boolean;
  encoding: string;
}

export const DEFAULT_MONITOR_SETTINGS: MonitorSettings = { speed: 9600, parity: "N", filters: [], eol: "CRLF", raw: false, echo: false, encoding: "UTF-8" };

export interface RunMonitorOptions {
  /** The port path, already chosen (findPort). */
  port: string;
  /** monitor_* settings; missing fields take PlatformIO's defaults. */
  monitor?: Partial<MonitorSettings> | undefined;
  /** The env, for its platform (exception decoder) when `platform` is not given. */
  env?: Pick<ResolvedEnv, "name" | "platform"> | undefined;
  platform?: string | undefined;
  reporter: Reporter;
  stdout: Writable;
  /** Keyboard or piped input (default: none). */
  stdin?: Readable | undefined;
  /** Keyboard mode: quit keys and the Ctrl-T menu (default: stdin is a TTY). Raw mode is set only on a real TTY. */
  interactive?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** Stop with success when a received line matches. */
  until?: RegExp | string | undefined;
  /** Stop with exit code 1 when a received line matches (checked before `until`). */
  failOn?: RegExp | string | undefined;
  /** Stop after this long: success, unless `until` was given and not seen (exit 1). */
  timeoutMs?: number | undefined;
  /** Wait for a lost port to come back (default true); false: a lost port is an error (exit 7). */
  reconnect?: boolean | undefined;
  reconnectPollMs?: number | undefined;
  /** Where log2file writes (default: the working directory). */
  logDir?: string | undefined;
  decoder?: DecoderConfig | undefined;
  lockDir?: string | undefined;
  /** The seam to node-serialport (tests record DTR/RTS through it). */
  opener?: PortOpener | undefined;
  now?: (() => Date) | undefined;
}

export interface MonitorResult {
  port: string;
  /** Why it stopped: `until` matched, `timeout`, a quit key, stdin/abort. */
  reason: "until" | "timeout" | "quit" | "aborted";
  /** The line that matched `until`. */
  match?: string | undefined;
  bytesReceived: number;
  bytesSent: number;
  reconnects: number;
  /** Uploads from other kiln processes that borrowed the port. */
  handoffs: number;
  logFile?: string | undefined;
}

/** `--fail-on` matched, or `--timeout` passed before `--until` matched. Exit code 1, so CI marks the job failed. */
export class MonitorCheckFailedError extends KilnError {
  constructor(code: "KILN_MONITOR_FAIL_MATCH" | "KILN_MONITOR_TIMEOUT", message: string, data: Record<string, unknown>) {
    super(code, ExitCode.internal, message, {
      hint: code === "KILN_MONITOR_FAIL_MATCH" ? "the device printed the failure pattern; see its output above" : "the device never printed the success pattern; raise --timeout or check the firmware's output above",
      data,
    });
  }
}

const PARITY: Record<MonitorSettings["parity"], Parity> = { N: "none", E: "even", O: "odd", S: "space", M: "mark" };
const CTRL_C = 0x03;
const CTRL_RBRACKET = 0x1d;
const CTRL_T = 0x14;
const HELP = [
  "--- kiln monitor keys:",
  "---   Ctrl-C or Ctrl-]   quit",
  "---   Ctrl-T d           toggle DTR",
  "---   Ctrl-T r           toggle RTS",
  "---   Ctrl-T b           send a break",
  "---   Ctrl-T e           toggle local echo",
  "---   Ctrl-T i           show port settings",
  "---   Ctrl-T Ctrl-T      send Ctrl-T itself",
  "---   Ctrl-T h           this help",
].join("\n");

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function toRegExp(p: RegExp | string | undefined, flag: string): RegExp | undefined {
  if (p === undefined || p instanceof RegExp) return p;
  try {
    return new RegExp(p);
  } catch (e) {
    throw new UsageError(`${flag}: not a valid regular expression: ${(e as Error).message}`, { hint: "quote the pattern for your shell, e.g. --until 'TEST (PASS|OK)'" });
  }
}

function bufferEncoding(encoding: string): BufferEncoding {
  const e = encoding.toLowerCase().replace(/[_ ]/g, "-");
  if (e === "utf-8" || e === "utf8") return "utf8";
  if (["latin-1", "latin1", "iso-8859-1", "iso8859-1", "l1"].includes(e)) return "latin1";
  if (e === "ascii" || e === "us-ascii") return "ascii";
  if (e === "utf-16le" || e === "utf16le") return "utf16le";
  return "utf8";
}

/** Bytes → text in the monitor's encoding, streaming (a character split across reads is kept whole). */
function makeDecoder(encoding: string, latin1: boolean): (b: Buffer) => string {
  if (latin1 || bufferEncoding(encoding) === "latin1") return (b) => b.toString("latin1");
  let td: InstanceType<typeof TextDecoder>;
  try {
    td = new TextDecoder(encoding);
  } catch {
    throw new KilnError("KILN_MONITOR_ENCODING", ExitCode.config, `unknown monitor_encoding '${encoding}'`, { hint: "use an encoding name such as UTF-8, latin-1, cp1251 or shift_jis" });
  }
  return (b) => td.decode(b, { stream: true });
}

/**
 * Run the monitor until a stop condition. Resolves with what happened;
 * throws MonitorCheckFailedError (exit 1) for `failOn` or an unmet `until`,
 * and KilnError exit 7 when the port cannot be opened (missing, busy,
 * permission) or is lost with `reconnect: false`.
 */
export async function runMonitor(opts: RunMonitorOptions): Promise<MonitorResult> {
  const session = new MonitorSession(opts);
  return session.run();
}

class MonitorSession {
  private readonly settings: MonitorSettings;
  private readonly opener: PortOpener;
  private readonly until: RegExp | undefined;
  private readonly failOn: RegExp | undefined;
  private conn: SerialConnection | undefined;
  private lines: ModemLines;
  private echo: boolean;
  private chain!: FilterChain;
  private decode!: (b: Buffer) => string;
  private matchDecode!: (b: Buffer) => string;
  private lock: MonitorPortLock | undefined;
  private finished = false;
  private suspended = false;
  private handingOff = false;
  private reconnecting = false;
  private reconnectSay = "reconnected to";
  private menuPending = false;
  private warnedLines = false;
  private warnedDropped = false;
  private rxQueue: Promise<void> = Promise.resolve();
  private lineBuffer = "";
  private partialTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private watching = false;
  /** What the port path resolved to when it was opened (a re-created pty or device gets a new node). */
  private openedReal: string | undefined;
  private resolveDone!: (r: MonitorResult) => void;
  private rejectDone!: (e: unknown) => void;
  private readonly stats = { bytesReceived: 0, bytesSent: 0, reconnects: 0, handoffs: 0 };
  private readonly stdinDecoder = new TextDecoder("utf-8");
  private rawModeSet = false;

  constructor(private readonly opts: RunMonitorOptions) {
    this.settings = { ...DEFAULT_MONITOR_SETTINGS, ...definedOnly(opts.monitor ?? {}) };
    this.opener = opts.opener ?? openSerialPort;
    this.until = toRegExp(opts.until, "--until");
    this.failOn = toRegExp(opts.failOn, "--fail-on");
    // Unset lines stay asserted, as the OS leaves them on open (set() always writes both: flashing.md §7).
    this.lines = { dtr: this.settings.dtr !== 0, rts: this.settings.rts !== 0 };
    this.echo = this.settings.echo;
  }

  private get r(): Reporter {
    return this.opts.reporter;
  }

  private status(text: string): void {
    this.r.info(`--- ${text}`);
  }

  async run(): Promise<MonitorResult> {
    const { opts, settings } = this;
    const path = opts.port;
    if (!path) throw new PortNotFoundError("no port to monitor", await listPorts(), "give one with --port, or set monitor_port (or upload_port) in platformio.ini");
    if (settings.raw && settings.filters.length) this.r.warn("monitor_raw is set: monitor_filters are ignored");
    this.chain = await createFilterChain(settings.raw ? ["direct"] : settings.filters, {
      eol: settings.eol,
      reporter: this.r,
      now: opts.now,
      logDir: opts.logDir ?? process.cwd(),
      platform: opts.platform ?? opts.env?.platform,
      decoder: opts.decoder,
      signal: opts.signal,
    });
    const done = new Promise<MonitorResult>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    try {
      this.decode = makeDecoder(settings.encoding, this.chain.needsLatin1);
      this.matchDecode = this.chain.needsLatin1 ? makeDecoder(settings.encoding, false) : this.decode;
      if (!(await pathExists(path)) && !/^(\\\\\.\\)?COM\d+$/i.test(path)) {
        throw new PortNotFoundError(`port ${path} does not exist`, await listPorts().catch(() => []), "check the cable, then pick one of the ports above with --port or monitor_port");
      }
      this.lock = await MonitorPortLock.acquire(path, { lockDir: opts.lockDir, onRequest: () => void this.checkHandoff() });
      await this.waitForUploadInProgress();
      try {
        await this.open();
      } catch (e) {
        throw portOpenError(path, e);
      }
      this.status(`${path} | ${settings.speed} 8-${settings.parity}-1 | ${opts.interactive ?? (opts.stdin as { isTTY?: boolean } | undefined)?.isTTY ? "quit: Ctrl-C or Ctrl-], menu: Ctrl-T h" : "press Ctrl-C to quit"}`);
    } catch (e) {
      await this.cleanup();
      throw e;
    }
    this.attachInput();
    if (this.openedReal !== undefined) {
      this.watchTimer = setInterval(() => void this.watchPort(), 500);
      this.watchTimer.unref();
    }
    if (opts.timeoutMs !== undefined) {
      this.timeoutTimer = setTimeout(() => {
        if (this.until) {
          const secs = (opts.timeoutMs ?? 0) / 1000;
          this.fail(new MonitorCheckFailedError("KILN_MONITOR_TIMEOUT", `--until /${this.until.source}/ was not seen within ${secs} s`, { port: path, timeoutMs: opts.timeoutMs }));
        } else this.finish("timeout");
      }, opts.timeoutMs);
    }
    const onAbort = (): void => this.finish("aborted");
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await done;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      await this.cleanup();
    }
  }

  // ---- port ----------------------------------------------------------------

  private async open(): Promise<void> {
    const conn = await this.opener({ path: this.opts.port, baudRate: this.settings.speed, parity: PARITY[this.settings.parity] });
    if (this.finished || this.suspended) {
      await conn.close();
      return;
    }
    this.conn = conn;
    this.openedReal = await realpath(this.opts.port).catch(() => undefined);
    conn.onData((chunk) => {
      if (this.conn !== conn) return;
      this.rxQueue = this.rxQueue.then(() => this.receive(chunk)).catch((e: unknown) => this.fail(e));
    });
    conn.onClose((err) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      if (this.finished || this.suspended) return;
      this.lost(err);
    });
    if (this.settings.dtr !== undefined || this.settings.rts !== undefined) await this.applyLines();
  }

  private async applyLines(extra: { brk?: boolean } = {}): Promise<boolean> {
    const conn = this.conn;
    if (!conn) return false;
    try {
      await conn.setLines({ ...this.lines, ...extra });
      return true;
    } catch (e) {
      if (!isNoModemLines(e)) throw e;
      if (!this.warnedLines) this.r.warn(`cannot set DTR/RTS/break on ${this.opts.port}: the device has no modem lines (${(e as Error).message})`);
      this.warnedLines = true;
      return false;
    }
  }

  private lost(err: Error | undefined): void {
    if (this.opts.reconnect === false) {
      this.fail(new KilnError("KILN_PORT_LOST", ExitCode.device, `${this.opts.port} disappeared${err ? ` (${err.message})` : ""}`, { hint: "check the cable; without --no-reconnect the monitor waits for the port to come back" }));
      return;
    }
    this.status(`${this.opts.port} disconnected; waiting for it to come back (Ctrl-C to quit)`);
    void this.reconnect("reconnected to");
  }

  /**
   * A device node can vanish without the open port reporting it (some USB
   * drivers; a pty whose master went away between reads): when the path is
   * gone or now names another node, the port is lost.
   */
  private async watchPort(): Promise<void> {
    const conn = this.conn;
    if (!conn || this.suspended || this.finished || this.watching) return;
    this.watching = true;
    try {
      const now = await realpath(this.opts.port).catch(() => undefined);
      if (this.conn !== conn || this.suspended || this.finished) return;
      if (now !== undefined && now === this.openedReal) return;
      this.conn = undefined;
      await conn.close();
      if (!this.finished && !this.suspended) this.lost(undefined);
    } finally {
      this.watching = false;
    }
  }

  /** Reopen the port when it exists again; retries quietly while it is missing, busy or not yet permitted. */
  private async reconnect(say: string): Promise<void> {
    // A loop already running (the port was lost, then an upload borrowed it) says the latest reason.
    this.reconnectSay = say;
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.warnedDropped = false;
    try {
      while (!this.finished && !this.suspended && !this.conn) {
        if (await pathExists(this.opts.port)) {
          try {
            await this.open();
            if (this.conn) {
              await this.lock?.refresh();
              this.stats.reconnects++;
              this.status(`${this.reconnectSay} ${this.opts.port}`);
              return;
            }
          } catch (e) {
            if (!(isPortMissing(e) || isPortBusy(e) || isPermissionDenied(e) || isNoModemLines(e) || /EIO|Input\/output/i.test(String(e)))) {
              this.fail(portOpenError(this.opts.port, e));
              return;
            }
          }
        }
        await sleep(this.opts.reconnectPollMs ?? 200);
      }
    } finally {
      this.reconnecting = false;
    }
  }

  // ---- the upload hand-off ------------------------------------------------

  private async waitForUploadInProgress(): Promise<void> {
    let said = false;
    for (;;) {
      const up = await this.lock!.pendingUpload();
      if (!up || this.opts.signal?.aborted) return;
      if (!said) this.status(`waiting for the upload (pid ${up.pid}) on ${this.opts.port} to finish`);
      said = true;
      await sleep(100);
    }
  }

  private async checkHandoff(): Promise<void> {
    if (this.handingOff || this.finished || !this.lock) return;
    this.handingOff = true;
    try {
      const up = await this.lock.pendingUpload();
      if (!up || this.finished) return;
      this.suspended = true;
      await this.rxQueue;
      const conn = this.conn;
      this.conn = undefined;
      await conn?.close();
      await this.lock.markReleased(up.pid);
      this.stats.handoffs++;
      this.status(`${this.opts.port} released for an upload (pid ${up.pid})`);
      while (!this.finished && (await this.lock.pendingUpload())) await sleep(100);
      if (this.finished) return;
      await this.lock.markHolding();
      this.suspended = false;
      await this.reconnect("upload finished; monitor reattached to");
    } catch (e) {
      this.fail(e);
    } finally {
      this.handingOff = false;
      this.suspended = false;
    }
  }

  // ---- received data --------------------------------------------------------

  private async receive(chunk: Buffer): Promise<void> {
    if (this.finished) return;
    this.stats.bytesReceived += chunk.length;
    const text = this.settings.raw ? undefined : this.decode(chunk);
    if (this.settings.raw) this.output(chunk);
    else {
      const out = await this.chain.rx(text!);
      if (out) this.output(out);
    }
    if (this.until || this.failOn) this.match(this.chain.needsLatin1 || this.settings.raw ? this.matchDecode(chunk) : text!);
  }

  private output(data: string | Buffer): void {
    if (this.r.isJson) this.r.event({ type: "monitor-data", port: this.opts.port, text: typeof data === "string" ? data : data.toString("latin1") });
    else this.opts.stdout.write(data);
  }

  private match(text: string): void {
    this.lineBuffer += text;
    const parts = this.lineBuffer.split(/\r\n|\n|\r/);
    this.lineBuffer = parts.pop() ?? "";
    for (const line of parts) if (this.testLine(line)) return;
    if (this.lineBuffer.length > 65536) this.lineBuffer = this.lineBuffer.slice(-4096);
    // A prompt without a newline ("PASS" then silence) still counts, once the device goes quiet.
    clearTimeout(this.partialTimer);
    if (this.lineBuffer) this.partialTimer = setTimeout(() => void this.testLine(this.lineBuffer), 100);
  }

  private testLine(line: string): boolean {
    if (this.finished) return true;
    if (this.failOn?.test(line)) {
      this.fail(new MonitorCheckFailedError("KILN_MONITOR_FAIL_MATCH", `--fail-on /${this.failOn.source}/ matched: ${line.trim()}`, { port: this.opts.port, line }));
      return true;
    }
    if (this.until?.test(line)) {
      this.finish("until", line);
      return true;
    }
    return false;
  }

  // ---- keyboard and piped input --------------------------------------------

  private attachInput(): void {
    const input = this.opts.stdin;
    if (!input) return;
    const interactive = this.opts.interactive ?? Boolean((input as { isTTY?: boolean }).isTTY);
    const tty = input as Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => void };
    if (interactive && tty.isTTY && typeof tty.setRawMode === "function") {
      tty.setRawMode(true);
      this.rawModeSet = true;
    }
    input.on("data", this.onInput);
    input.resume();
    this.interactive = interactive;
  }

  private interactive = false;

  private readonly onInput = (data: Buffer | string): void => {
    if (this.finished) return;
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    if (!this.interactive) {
      void this.send(this.settings.raw ? bytes : this.stdinDecoder.decode(bytes, { stream: true }));
      return;
    }
    let pending: number[] = [];
    const flush = (): void => {
      if (pending.length === 0) return;
      const b = Buffer.from(pending);
      pending = [];
      // In raw keyboard mode Enter is CR; the EOL setting decides what the device gets.
      void this.send(this.settings.raw ? b : b.toString("utf8").replace(/\r/g, "\n"));
    };
    for (const byte of bytes) {
      if (this.menuPending) {
        this.menuPending = false;
        flush();
        this.menu(byte);
      } else if (byte === CTRL_C || byte === CTRL_RBRACKET) {
        flush();
        this.finish("quit");
        return;
      } else if (byte === CTRL_T) {
        flush();
        this.menuPending = true;
      } else pending.push(byte);
    }
    flush();
  };

  private async send(data: string | Buffer): Promise<void> {
    let bytes: Buffer;
    if (typeof data === "string") {
      if (this.echo) this.output(this.chain.echo(data));
      const tx = this.chain.tx(data);
      if (!tx) return;
      bytes = Buffer.from(tx, bufferEncoding(this.settings.encoding));
    } else bytes = data;
    const conn = this.conn;
    if (!conn) {
      if (!this.warnedDropped) this.r.warn(`${this.opts.port} is not connected: input dropped`);
      this.warnedDropped = true;
      return;
    }
    try {
      await conn.write(bytes);
      this.stats.bytesSent += bytes.length;
    } catch (e) {
      this.r.warn(`write to ${this.opts.port} failed: ${(e as Error).message}`);
    }
  }

  /** Ctrl-T then `key`. */
  private menu(key: number): void {
    const ch = String.fromCharCode(key).toLowerCase();
    if (key === CTRL_T || key === CTRL_RBRACKET) void this.send(Buffer.from([key]));
    else if (ch === "d" || key === 0x04) void this.toggle("dtr");
    else if (ch === "r" || key === 0x12) void this.toggle("rts");
    else if (ch === "b" || key === 0x02) void this.sendBreak();
    else if (ch === "e" || key === 0x05) {
      this.echo = !this.echo;
      this.status(`local echo ${this.echo ? "on" : "off"}`);
    } else if (ch === "i" || key === 0x09) this.status(this.describe());
    else if (ch === "h" || ch === "?" || key === 0x08) this.r.info(HELP);
    else this.status(`unknown menu key; Ctrl-T h shows the keys`);
  }

  private describe(): string {
    const s = this.settings;
    return `${this.opts.port} ${s.speed} 8-${s.parity}-1 | DTR ${this.lines.dtr ? "on" : "off"} RTS ${this.lines.rts ? "on" : "off"} | eol ${s.eol} | filters ${(s.filters.length ? s.filters : ["default"]).join(", ")} | ${this.conn ? "connected" : "disconnected"}`;
  }

  private async toggle(line: "dtr" | "rts"): Promise<void> {
    this.lines = { ...this.lines, [line]: !this.lines[line] };
    try {
      if (await this.applyLines()) this.status(`${line.toUpperCase()} ${this.lines[line] ? "active" : "inactive"}`);
    } catch (e) {
      this.r.warn(`cannot set ${line.toUpperCase()}: ${(e as Error).message}`);
    }
  }

  private async sendBreak(): Promise<void> {
    try {
      if (!(await this.applyLines({ brk: true }))) return;
      await sleep(250);
      await this.applyLines({ brk: false });
      this.status("BREAK sent");
    } catch (e) {
      this.r.warn(`cannot send a break: ${(e as Error).message}`);
    }
  }

  // ---- ending -------------------------------------------------------------

  private finish(reason: MonitorResult["reason"], match?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.resolveDone({ port: this.opts.port, reason, match, ...this.stats, logFile: this.chain?.logFile });
  }

  private fail(e: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.rejectDone(e);
  }

  private async cleanup(): Promise<void> {
    this.finished = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.partialTimer);
    clearInterval(this.watchTimer);
    const input = this.opts.stdin;
    if (input) {
      input.off("data", this.onInput);
      if (this.rawModeSet) (input as Readable & { setRawMode(raw: boolean): void }).setRawMode(false);
      input.pause();
    }
    await this.rxQueue.catch(() => {});
    const conn = this.conn;
    this.conn = undefined;
    await conn?.close();
    await this.chain?.close();
    await this.lock?.dispose();
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
