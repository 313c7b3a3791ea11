/**
 * Monitor filters with PlatformIO's names and behaviour (which are pyserial
 * miniterm's transformations plus PlatformIO's own). A filter sees text:
 * `rx` what the device sent, `tx` what the user typed before it is sent, and
 * `echo` the local echo of typed text.
 *
 * Order is miniterm's: typed text passes the EOL translation, then the
 * filters in the order listed; received text passes the filters from last to
 * first, then the EOL translation.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, KilnError, ExitCode, nearest, type SourceLocation } from "../core/errors.js";
import type { Reporter } from "../core/report.js";
import { createExceptionDecoder, type DecoderConfig } from "./decoder.js";

export interface MonitorFilter {
  readonly name: string;
  rx?(text: string): string | Promise<string>;
  tx?(text: string): string;
  echo?(text: string): string;
  close?(): Promise<void>;
}

export type Eol = "CR" | "LF" | "CRLF";

export const FILTER_NAMES = [
  "default",
  "direct",
  "printable",
  "nocontrol",
  "colorize",
  "time",
  "send_on_enter",
  "hexlify",
  "log2file",
  "esp32_exception_decoder",
] as const;

export interface FilterContext {
  eol: Eol;
  reporter: Reporter;
  /** Clock for `time` and the log file name (tests fix it). */
  now?: (() => Date) | undefined;
  /** Where `log2file` writes (the project directory, else the working directory). */
  logDir: string;
  /** The env's platform: the exception decoder only works for `espressif32`. */
  platform?: string | undefined;
  /** addr2line and firmware.elf for `esp32_exception_decoder`. */
  decoder?: DecoderConfig | undefined;
  signal?: AbortSignal | undefined;
}

const CONTROL_PICTURE = (code: number): string => String.fromCharCode(0x2400 + code);

/** `default`: control codes other than CR, LF, BS and TAB shown as ␛-style pictures. */
function noTerminal(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (c < 32 && !"\r\n\b\t".includes(ch)) out += CONTROL_PICTURE(c);
    else if (c === 0x7f) out += "\u2421";
    else out += ch;
  }
  return out;
}

/** `nocontrol`: every control code, CR and LF included, and the space, as pictures. */
function noControls(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (c < 32) out += CONTROL_PICTURE(c);
    else if (c === 0x20) out += "\u2423";
    else if (c === 0x7f) out += "\u2421";
    else out += ch;
  }
  return out;
}

const SUBSCRIPT_DIGITS = "₀₁₂₃₄₅₆₇₈₉";

/** `printable`: control codes as pictures, non-ASCII as its decimal code in subscript digits. */
function printable(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if ((c >= 32 && c < 0x7f) || "\r\n\b\t".includes(ch)) out += ch;
    else if (c < 32) out += CONTROL_PICTURE(c);
    else out += `${[...String(c)].map((d) => SUBSCRIPT_DIGITS[Number(d)]).join("")} `;
  }
  return out;
}

function twoDigits(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** `HH:MM:SS.mmm`, local time, as PlatformIO's `time` filter prints it. */
export function timestamp(d: Date): string {
  return `${twoDigits(d.getHours())}:${twoDigits(d.getMinutes())}:${twoDigits(d.getSeconds())}.${twoDigits(d.getMilliseconds(), 3)}`;
}

/** `time`: `HH:MM:SS.mmm > ` before every line. */
class TimeFilter implements MonitorFilter {
  readonly name = "time";
  private lineStarted = false;
  constructor(private readonly now: () => Date) {}
  rx(text: string): string {
    if (text === "") return text;
    const stamp = `${timestamp(this.now())} > `;
    let out = "";
    for (const ch of text) {
      if (!this.lineStarted) {
        out += stamp;
        this.lineStarted = true;
      }
      out += ch;
      if (ch === "\n") this.lineStarted = false;
    }
    return out;
  }
}

/** `send_on_enter`: keep typed text until the end-of-line, then send the line. */
class SendOnEnter implements MonitorFilter {
  readonly name = "send_on_enter";
  private buffer = "";
  private readonly eol: string;
  constructor(eol: Eol) {
    this.eol = eol === "CR" ? "\r" : eol === "LF" ? "\n" : "\r\n";
  }
  tx(text: string): string {
    this.buffer += text;
    if (!this.buffer.endsWith(this.eol)) return "";
    const line = this.buffer;
    this.buffer = "";
    return line;
  }
}

/** `hexlify`: received bytes as hex, 16 a row, each row prefixed with its offset. */
class Hexlify implements MonitorFilter {
  readonly name = "hexlify";
  private counter = 0;
  rx(text: string): string {
    let out = "";
    for (const ch of text) {
      if (this.counter % 16 === 0) out += `\n${this.counter.toString(16).toUpperCase().padStart(4, "0")} | `;
      const c = ch.charCodeAt(0);
      out += c <= 255 ? `${c.toString(16).toUpperCase().padStart(2, "0")} ` : "?? ";
      this.counter++;
    }
    return out;
  }
}

/** `log2file`: everything received, as it reaches this filter, into `kiln-monitor-YYMMDD-HHMMSS.log`. */
class LogToFile implements MonitorFilter {
  readonly name = "log2file";
  private stream: WriteStream | undefined;
  private failed: Error | undefined;
  readonly file: string;
  constructor(dir: string, now: Date) {
    const d = now;
    const stamp = `${twoDigits(d.getFullYear() % 100)}${twoDigits(d.getMonth() + 1)}${twoDigits(d.getDate())}-${twoDigits(d.getHours())}${twoDigits(d.getMinutes())}${twoDigits(d.getSeconds())}`;
    this.file = join(dir, `kiln-monitor-${stamp}.log`);
  }
  async open(): Promise<void> {
    await mkdir(join(this.file, ".."), { recursive: true });
    this.stream = createWriteStream(this.file, { flags: "a" });
    this.stream.on("error", (e) => (this.failed = e));
    await new Promise<void>((res, rej) => {
      this.stream!.once("open", () => res());
      this.stream!.once("error", rej);
    });
  }
  rx(text: string): string {
    if (this.failed) {
      const e = this.failed;
      this.failed = undefined;
      throw new KilnError("KILN_MONITOR_LOG_FAILED", ExitCode.device, `cannot write the monitor log ${this.file}: ${e.message}`, { cause: e });
    }
    this.stream?.write(text);
    return text;
  }
  async close(): Promise<void> {
    const s = this.stream;
    this.stream = undefined;
    if (s) await new Promise<void>((res) => s.end(() => res()));
  }
}

/** Unknown monitor_filters names are a configuration error, as in PlatformIO. */
export class UnknownFilterError extends ConfigError {
  constructor(name: string, location?: SourceLocation) {
    const near = nearest(name, FILTER_NAMES);
    super("KILN_MONITOR_FILTER_UNKNOWN", `unknown monitor filter '${name}'`, {
      location,
      hint: `${near.length ? `did you mean ${near.map((n) => `'${n}'`).join(", ")}? ` : ""}known filters: ${FILTER_NAMES.join(", ")}`,
      data: { filter: name },
    });
  }
}

/** Check filter names without building anything (for early errors). */
export function validateFilters(names: readonly string[], location?: SourceLocation): void {
  for (const n of names) if (!(FILTER_NAMES as readonly string[]).includes(n)) throw new UnknownFilterError(n, location);
}

export interface FilterChain {
  filters: MonitorFilter[];
  /** Bytes → text: hexlify needs every byte as one character (latin-1). */
  needsLatin1: boolean;
  /** The log file, when log2file is on. */
  logFile?: string | undefined;
  rx(text: string): Promise<string>;
  tx(text: string): string;
  echo(text: string): string;
  close(): Promise<void>;
}

function eolRx(eol: Eol): (t: string) => string {
  if (eol === "CRLF") return (t) => t.replace(/\r\n/g, "\n");
  if (eol === "CR") return (t) => t.replace(/\r/g, "\n");
  return (t) => t;
}

function eolTx(eol: Eol): (t: string) => string {
  if (eol === "CRLF") return (t) => t.replace(/\n/g, "\r\n");
  if (eol === "CR") return (t) => t.replace(/\n/g, "\r");
  return (t) => t;
}

/**
 * Build the chain for `names` (empty = `default`, as in miniterm). Throws
 * UnknownFilterError for a name kiln does not know.
 */
export async function createFilterChain(names: readonly string[], ctx: FilterContext): Promise<FilterChain> {
  validateFilters(names);
  const now = ctx.now ?? (() => new Date());
  const list = names.length ? names : ["default"];
  const filters: MonitorFilter[] = [];
  let logFile: string | undefined;
  for (const name of list) {
    switch (name) {
      case "default":
        filters.push({ name, rx: noTerminal, echo: noTerminal });
        break;
      case "direct":
        filters.push({ name });
        break;
      case "nocontrol":
        filters.push({ name, rx: noControls, echo: noControls });
        break;
      case "printable":
        filters.push({ name, rx: printable, echo: printable });
        break;
      case "colorize":
        filters.push({ name, rx: (t) => `\x1b[37m${t}`, echo: (t) => `\x1b[31m${t}` });
        break;
      case "time":
        filters.push(new TimeFilter(now));
        break;
      case "send_on_enter":
        filters.push(new SendOnEnter(ctx.eol));
        break;
      case "hexlify":
        filters.push(new Hexlify());
        break;
      case "log2file": {
        const f = new LogToFile(ctx.logDir, now());
        await f.open();
        logFile = f.file;
        ctx.reporter.info(`--- logging received data to ${f.file}`);
        filters.push(f);
        break;
      }
      case "esp32_exception_decoder": {
        const d = createExceptionDecoder(ctx);
        if (d) filters.push(d);
        break;
      }
    }
  }
  const toRx = [...filters].reverse();
  const rxEol = eolRx(ctx.eol);
  const txEol = eolTx(ctx.eol);
  return {
    filters,
    needsLatin1: list.includes("hexlify"),
    logFile,
    async rx(text) {
      let t = text;
      for (const f of toRx) if (f.rx) t = await f.rx(t);
      return rxEol(t);
    },
    tx(text) {
      let t = txEol(text);
      for (const f of filters) if (f.tx) t = f.tx(t);
      return t;
    },
    echo(text) {
      let t = text;
      for (const f of filters) if (f.echo) t = f.echo(t);
      return t;
    },
    async close() {
      for (const f of filters) await f.close?.();
    },
  };
}
