/**
 * The one output channel of domain code. Services never print: they call the
 * Reporter they are given. Three faces:
 *  - TTY: an ora spinner per step and kleur colours, on stderr;
 *  - plain: one line per step start/end and per compile, no ANSI, on stderr;
 *  - JSON: NDJSON on stdout, one object per event, nothing else on stdout.
 * Results (what a command answers) go to stdout in every mode.
 */
import type { Writable } from "node:stream";
import type { KilnError } from "./errors.js";

/** Structured events; `--json` prints them as they are (docs/json-events.md). */
export type KilnEvent =
  | { type: "env-start"; env: string; platform: string; board?: string | undefined }
  | {
      type: "env-end";
      env: string;
      status: "ok" | "failed" | "cancelled";
      ms: number;
      compiled: number;
      reused: number;
      linked: boolean;
      size?: SizeInfo | undefined;
    }
  | { type: "compile-start"; env: string; file: string; object: string }
  | { type: "compile-end"; env: string; file: string; object: string; ms: number; status: "ok" | "failed" }
  | {
      type: "diagnostic";
      env: string;
      file: string;
      line?: number | undefined;
      column?: number | undefined;
      severity: "error" | "warning" | "note";
      message: string;
    }
  | { type: "archive"; env: string; output: string; ms: number }
  | { type: "link"; env: string; output: string; ms: number }
  | { type: "image"; env: string; output: string; ms: number }
  | ({ type: "size"; env: string } & SizeInfo)
  | {
      type: "summary";
      status: "ok" | "failed" | "cancelled";
      ms: number;
      envs: Array<{ env: string; status: string; ms: number }>;
    }
  | { type: string; [key: string]: unknown };

export interface SizeInfo {
  flashBytes: number;
  ramBytes: number;
  flashMaxBytes?: number | undefined;
  ramMaxBytes?: number | undefined;
}

export interface StepHandle {
  /** Replace the step's running text (`[3/27] src/main.cpp`). */
  update(text: string): void;
  succeed(text?: string): void;
  fail(text?: string): void;
}

export interface Reporter {
  readonly verbose: boolean;
  readonly isJson: boolean;
  event(e: KilnEvent): void;
  step(label: string): StepHandle;
  info(message: string): void;
  warn(message: string, data?: Record<string, unknown>): void;
  /** An external command about to run; shown with --verbose. */
  command(argv: readonly string[], cwd?: string): void;
  /** Output of a tool (compiler diagnostics), shown verbatim. */
  toolOutput(text: string): void;
  /** A failure, printed once by the command layer. */
  error(e: KilnError): void;
}

/** Quote an argv the way a POSIX shell user would retype it. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

export interface ReporterOptions {
  mode: "tty" | "plain" | "json";
  verbose: boolean;
  quiet: boolean;
  color: boolean;
  stdout: Writable;
  stderr: Writable;
}

export class JsonReporter implements Reporter {
  readonly isJson = true;
  constructor(
    private readonly out: Writable,
    readonly verbose: boolean,
  ) {}
  private write(obj: object): void {
    this.out.write(`${JSON.stringify(obj)}\n`);
  }
  event(e: KilnEvent): void {
    this.write(e);
  }
  step(label: string): StepHandle {
    this.write({ type: "step", status: "start", label });
    return {
      update: () => {},
      succeed: (text) => this.write({ type: "step", status: "ok", label, text }),
      fail: (text) => this.write({ type: "step", status: "failed", label, text }),
    };
  }
  info(message: string): void {
    this.write({ type: "info", message });
  }
  warn(message: string, data?: Record<string, unknown>): void {
    this.write({ type: "warning", message, ...data });
  }
  command(argv: readonly string[], cwd?: string): void {
    if (this.verbose) this.write({ type: "command", argv, cwd });
  }
  toolOutput(text: string): void {
    this.write({ type: "tool-output", text });
  }
  error(e: KilnError): void {
    this.write({ type: "error", ...e.toJSON() });
  }
}

interface Paint {
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
  cyan(s: string): string;
}
const noPaint: Paint = { red: (s) => s, yellow: (s) => s, green: (s) => s, dim: (s) => s, bold: (s) => s, cyan: (s) => s };

/** Line-oriented human output (CI logs, pipes). Also the base of the TTY face. */
export class PlainReporter implements Reporter {
  readonly isJson = false;
  constructor(
    protected readonly err: Writable,
    readonly verbose: boolean,
    protected readonly quiet: boolean,
    protected readonly paint: Paint = noPaint,
  ) {}
  protected line(text: string): void {
    this.err.write(`${text}\n`);
  }
  event(e: KilnEvent): void {
    if (this.quiet) return;
    if (e.type === "compile-start" && !this.verbose) this.line(`  compile ${String(e.file)}`);
    else if (e.type === "link") this.line(`  link    ${String(e.output)}`);
    else if (e.type === "archive" && this.verbose) this.line(`  archive ${String(e.output)}`);
  }
  step(label: string): StepHandle {
    if (!this.quiet) this.line(label);
    return {
      update: () => {},
      succeed: (text) => {
        if (!this.quiet) this.line(text ?? `${label}: done`);
      },
      fail: (text) => this.line(this.paint.red(text ?? `${label}: failed`)),
    };
  }
  info(message: string): void {
    if (!this.quiet) this.line(message);
  }
  warn(message: string): void {
    this.line(this.paint.yellow(`warning: ${message}`));
  }
  command(argv: readonly string[], cwd?: string): void {
    if (this.verbose) this.line(this.paint.dim(`${cwd ? `(cd ${shellQuote([cwd])}) ` : ""}${shellQuote(argv)}`));
  }
  toolOutput(text: string): void {
    this.err.write(text.endsWith("\n") ? text : `${text}\n`);
  }
  error(e: KilnError): void {
    this.line(`${this.paint.red(this.paint.bold("error"))}${this.paint.dim(` [${e.code}]`)}: ${e.message}`);
    if (e.hint) this.line(`${this.paint.cyan("hint")}: ${e.hint}`);
  }
}

interface OraLike {
  text: string;
  start(): OraLike;
  stop(): OraLike;
  succeed(text?: string): OraLike;
  fail(text?: string): OraLike;
  clear(): OraLike;
  isSpinning: boolean;
}
type OraFactory = (opts: { text: string; stream: Writable; discardStdin: boolean }) => OraLike;

/** Spinners and colours, for a human at a terminal. */
export class TtyReporter extends PlainReporter {
  private spinner: OraLike | undefined;
  constructor(
    err: Writable,
    verbose: boolean,
    quiet: boolean,
    paint: Paint,
    private readonly ora: OraFactory,
  ) {
    super(err, verbose, quiet, paint);
  }
  /** Print a line without tearing the spinner. */
  protected override line(text: string): void {
    const spinning = this.spinner?.isSpinning;
    if (spinning) this.spinner!.clear();
    this.err.write(`${text}\n`);
    if (spinning) this.spinner!.start();
  }
  override event(e: KilnEvent): void {
    if (this.verbose) super.event(e);
  }
  override step(label: string): StepHandle {
    if (this.quiet) return super.step(label);
    const spinner = this.ora({ text: label, stream: this.err, discardStdin: false }).start();
    this.spinner = spinner;
    const done = (): void => {
      if (this.spinner === spinner) this.spinner = undefined;
    };
    return {
      update: (text) => {
        spinner.text = `${label} ${this.paint.dim(text)}`;
      },
      succeed: (text) => {
        spinner.succeed(text ?? label);
        done();
      },
      fail: (text) => {
        spinner.fail(this.paint.red(text ?? label));
        done();
      },
    };
  }
}

/**
 * Pick and build the reporter. ora and kleur are imported only for a TTY, so a
 * CI or JSON run never loads them.
 */
export async function createReporter(opts: ReporterOptions): Promise<Reporter> {
  if (opts.mode === "json") return new JsonReporter(opts.stdout, opts.verbose);
  let paint = noPaint;
  if (opts.color) {
    const kleur = (await import("kleur")).default;
    kleur.enabled = true;
    paint = kleur;
  }
  // A terminal that reports no width (a pty nobody sized: `script` in CI, some containers) cannot have
  // a line redrawn in place: ora would count the spinner's line as Infinity rows to clear, forever.
  if (opts.mode === "plain" || !(opts.stderr as Writable & { columns?: number }).columns) return new PlainReporter(opts.stderr, opts.verbose, opts.quiet, paint);
  const ora = (await import("ora")).default as unknown as OraFactory;
  return new TtyReporter(opts.stderr, opts.verbose, opts.quiet, paint, ora);
}

/** A reporter that records everything, for tests and for services run headless. */
export class MemoryReporter implements Reporter {
  readonly isJson = false;
  readonly events: KilnEvent[] = [];
  readonly lines: string[] = [];
  constructor(readonly verbose = false) {}
  event(e: KilnEvent): void {
    this.events.push(e);
  }
  step(label: string): StepHandle {
    this.lines.push(label);
    return {
      update: () => {},
      succeed: (t) => this.lines.push(t ?? `${label}: done`),
      fail: (t) => this.lines.push(t ?? `${label}: failed`),
    };
  }
  info(message: string): void {
    this.lines.push(message);
  }
  warn(message: string): void {
    this.lines.push(`warning: ${message}`);
  }
  command(argv: readonly string[]): void {
    this.lines.push(`$ ${shellQuote(argv)}`);
  }
  toolOutput(text: string): void {
    this.lines.push(text);
  }
  error(e: KilnError): void {
    this.lines.push(`error: ${e.message}`);
  }
}
