/**
 * kiln's user-facing failures. Every failure a user can cause or fix is a
 * `KilnError` with a stable `code`, a message naming the file/line/value, a
 * `hint` (the next thing to try) and a fixed exit code. Anything else that
 * escapes is a bug and is printed with its stack by lib/cli.ts.
 */

/** Exit codes are public API: never renumber, only add (docs/exit-codes.md). */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  config: 3,
  network: 4,
  integrity: 5,
  build: 6,
  device: 7,
  remote: 8,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface KilnErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Extra machine-readable fields, carried into `--json` error events. */
  data?: Record<string, unknown>;
}

export class KilnError extends Error {
  readonly code: string;
  readonly exitCode: ExitCodeValue;
  readonly hint: string | undefined;
  readonly data: Record<string, unknown>;

  constructor(code: string, exitCode: ExitCodeValue, message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint;
    this.data = options.data ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, exitCode: this.exitCode, ...this.data };
  }
}

/** A bad command line: unknown option value, conflicting flags. */
export class UsageError extends KilnError {
  constructor(message: string, options: KilnErrorOptions = {}) {
    super("KILN_USAGE", ExitCode.usage, message, options);
  }
}

/** Where in a config file something was written. */
export interface SourceLocation {
  file: string;
  line?: number;
}

export function formatLocation(loc: SourceLocation | undefined): string {
  if (!loc) return "";
  return loc.line === undefined ? loc.file : `${loc.file}:${loc.line}`;
}

/** platformio.ini / kiln config problems. The message starts with file:line when known. */
export class ConfigError extends KilnError {
  readonly location: SourceLocation | undefined;
  constructor(code: string, message: string, options: KilnErrorOptions & { location?: SourceLocation } = {}) {
    const where = formatLocation(options.location);
    super(code, ExitCode.config, where ? `${where}: ${message}` : message, {
      ...options,
      data: { ...options.data, ...(options.location ? { file: options.location.file, line: options.location.line } : {}) },
    });
    this.location = options.location;
  }
}

/** Closest candidates to `wanted` by edit distance, for "did you mean" hints. */
export function nearest(wanted: string, candidates: Iterable<string>, max = 3): string[] {
  const w = wanted.toLowerCase();
  const scored: Array<[number, string]> = [];
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    const contains = c.toLowerCase().includes(w) || w.includes(c.toLowerCase());
    scored.push([contains ? Math.min(d, 1) : d, c]);
  }
  scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
  const limit = Math.max(2, Math.ceil(w.length / 2));
  return scored.filter(([d]) => d <= limit).slice(0, max).map(([, c]) => c);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

export class UnknownBoardError extends KilnError {
  constructor(readonly boardId: string, readonly suggestions: string[], location?: SourceLocation) {
    const where = formatLocation(location);
    super("KILN_UNKNOWN_BOARD", ExitCode.config, `${where ? `${where}: ` : ""}unknown board '${boardId}'`, {
      hint: suggestions.length ? `did you mean ${suggestions.map((s) => `'${s}'`).join(", ")}? See 'kiln boards'.` : "run 'kiln boards' to list the known boards",
      data: { board: boardId, suggestions },
    });
  }
}

/** A compiler or linker failed. Diagnostics have already been shown. */
export class BuildFailedError extends KilnError {
  constructor(message: string, options: KilnErrorOptions = {}) {
    super("KILN_BUILD_FAILED", ExitCode.build, message, options);
  }
}

export class FirmwareTooLargeError extends KilnError {
  constructor(readonly region: "flash" | "ram", readonly usedBytes: number, readonly maxBytes: number, board: string) {
    super(
      "KILN_FIRMWARE_TOO_LARGE",
      ExitCode.build,
      `firmware ${region} use is ${usedBytes} bytes, over the ${maxBytes}-byte maximum of board '${board}' (${usedBytes - maxBytes} bytes too many)`,
      {
        hint: region === "flash" ? "remove code or libraries, or build with a smaller build_type; see docs/avr.md#size" : "reduce global variables or move constant data to PROGMEM (F(\"...\"))",
        data: { region, used: usedBytes, max: maxBytes, board },
      },
    );
  }
}

/** An external tool (avrdude, objcopy…) exited non-zero or could not start. */
export class ToolFailedError extends KilnError {
  constructor(
    readonly command: string,
    readonly toolExitCode: number | undefined,
    readonly stderrTail: string,
    exitCode: ExitCodeValue = ExitCode.build,
    options: KilnErrorOptions = {},
  ) {
    const status = toolExitCode === undefined ? "could not be run" : `exited with code ${toolExitCode}`;
    super("KILN_TOOL_FAILED", exitCode, `${command}\n  ${status}${stderrTail ? `\n${stderrTail}` : ""}`, {
      ...options,
      data: { command, toolExitCode, ...options.data },
    });
  }
}

/** Cancelled by the user (Ctrl-C). */
export class CancelledError extends KilnError {
  constructor() {
    super("KILN_CANCELLED", ExitCode.internal, "cancelled");
  }
}

export function isKilnError(e: unknown): e is KilnError {
  return e instanceof KilnError;
}

/** Node system errors carry a string `code` (ENOENT, EEXIST…). */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof (e as { code: unknown }).code === "string"
    ? (e as { code: string }).code
    : undefined;
}
