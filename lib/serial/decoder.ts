/**
 * `esp32_exception_decoder`: after a line ending in code addresses (an ESP32
 * `Backtrace: 0x400d1234:0x3ffb1f20 …`), print each address that addr2line
 * can place as `#N 0x… in function at file:line`, as PlatformIO does. For
 * platforms other than espressif32 the filter does nothing.
 */
import { access, constants } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative } from "node:path";
import { runTool } from "../core/exec.js";
import { errnoCode } from "../core/errors.js";
import type { FirmwareManifest } from "../core/manifest.js";
import type { Reporter } from "../core/report.js";
import type { MonitorFilter } from "./filters.js";

export interface DecoderConfig {
  /** The env's addr2line (`xtensa-esp32-elf-addr2line`). */
  addr2line: string;
  /** The firmware ELF the device runs. */
  elf: string;
  /** Paths under this directory are printed relative to it. */
  projectDir?: string | undefined;
}

interface DecoderContext {
  reporter: Reporter;
  platform?: string | undefined;
  decoder?: DecoderConfig | undefined;
  signal?: AbortSignal | undefined;
}

const ADDR_RE = /((?:0x[0-9a-fA-F]{8}[: ]?)+)\s?$/;
const DECODER_PLATFORMS = new Set(["espressif32"]);

/**
 * The addr2line and ELF for a build, from its firmware manifest: `tools.addr2line`,
 * else derived from another tool of the same prefix (`…-gcc`, `…-objcopy`);
 * the ELF is the manifest's `elf` image, else `firmware.elf` beside it.
 */
export function decoderFromManifest(manifest: FirmwareManifest, manifestDir: string, projectDir?: string): DecoderConfig | undefined {
  let addr2line = manifest.tools.addr2line;
  if (!addr2line) {
    for (const tool of Object.values(manifest.tools)) {
      const m = /^(.*?)(gcc|g\+\+|objcopy|objdump|size|nm|ar)(\.exe)?$/.exec(tool);
      if (m && /[-/\\]$/.test(m[1]!)) {
        addr2line = `${m[1]}addr2line${m[3] ?? ""}`;
        break;
      }
    }
  }
  if (!addr2line) return undefined;
  const image = manifest.images.find((i) => i.format === "elf");
  const elf = image ? (isAbsolute(image.path) ? image.path : join(manifestDir, image.path)) : join(manifestDir, "firmware.elf");
  return { addr2line, elf, projectDir };
}

/** The filter, or undefined (with a one-line notice) when it cannot or need not work. */
export function createExceptionDecoder(ctx: DecoderContext): MonitorFilter | undefined {
  if (ctx.platform !== undefined && !DECODER_PLATFORMS.has(ctx.platform)) return undefined;
  if (!ctx.decoder) {
    ctx.reporter.warn("esp32_exception_decoder: no firmware to decode against (build the env first); addresses are shown undecoded");
    return undefined;
  }
  return new ExceptionDecoder(ctx.decoder, ctx.reporter, ctx.signal);
}

export class ExceptionDecoder implements MonitorFilter {
  readonly name = "esp32_exception_decoder";
  private buffer = "";
  private checked: Promise<boolean> | undefined;

  constructor(
    private readonly config: DecoderConfig,
    private readonly reporter: Reporter,
    private readonly signal?: AbortSignal,
  ) {}

  private usable(): Promise<boolean> {
    this.checked ??= access(this.config.elf, constants.R_OK).then(
      () => true,
      (e: unknown) => {
        this.reporter.warn(`esp32_exception_decoder: cannot read ${this.config.elf} (${errnoCode(e) ?? String(e)}); build the env first`);
        return false;
      },
    );
    return this.checked;
  }

  async rx(text: string): Promise<string> {
    let out = "";
    let last = 0;
    for (;;) {
      const idx = text.indexOf("\n", last);
      if (idx === -1) {
        if (this.buffer.length < 4096) this.buffer += text.slice(last);
        out += text.slice(last);
        return out;
      }
      const line = (this.buffer + text.slice(last, idx)).replace(/\r$/, "");
      this.buffer = "";
      out += text.slice(last, idx + 1);
      last = idx + 1;
      const m = ADDR_RE.exec(line);
      if (m && (await this.usable())) out += await this.trace(line, m[1]!);
    }
  }

  /** The decoded lines for one backtrace line ("" when nothing resolves). */
  async trace(line: string, addressText: string): Promise<string> {
    const addresses = addressText.split(/[ :]/).filter((a) => /^0x[0-9a-fA-F]{8}$/.test(a));
    if (addresses.length === 0) return "";
    const prefix = /^ */.exec(line)?.[0] ?? "";
    const r = await runTool([this.config.addr2line, "-fipCa", "-e", this.config.elf, ...addresses], { reporter: this.reporter, signal: this.signal });
    if (r.exitCode !== 0) {
      this.reporter.warn(`esp32_exception_decoder: ${r.command} failed: ${r.stderr.trim().split("\n").pop() ?? ""}`);
      return "";
    }
    const entries = parseAddr2line(r.stdout);
    let trace = "";
    let i = 0;
    for (const addr of addresses) {
      const where = entries.get(Number.parseInt(addr, 16));
      if (!where || /\?\? \?\?:0|\?\?:\?|^\?\? /.test(where)) continue;
      trace += `${prefix}  #${String(i).padEnd(2)} ${addr} in ${this.relativize(where).replace(/\n/g, `\n${prefix}     `)}\n`;
      i++;
    }
    return trace ? `${trace}\n` : "";
  }

  private relativize(text: string): string {
    const root = this.config.projectDir;
    if (!root) return text;
    return text.replace(/ at (\S+?):(\d+|\?)/g, (all, file: string, line: string) => {
      if (!isAbsolute(file)) return all;
      const rel = relative(root, file);
      return rel.startsWith("..") ? all : ` at ${rel}:${line}`;
    });
  }
}

/** `0x…: func at file:line` entries (with ` (inlined by) …` continuation lines) by address. */
export function parseAddr2line(stdout: string): Map<number, string> {
  const map = new Map<number, string>();
  let current: number | undefined;
  for (const raw of stdout.split("\n")) {
    const line = raw.trimEnd();
    const m = /^0x([0-9a-fA-F]+): (.*)$/.exec(line);
    if (m) {
      current = Number.parseInt(m[1]!, 16);
      map.set(current, m[2]!);
    } else if (current !== undefined && line.trim() !== "") {
      map.set(current, `${map.get(current)!}\n${line.trim()}`);
    }
  }
  return map;
}

/** For messages: the ELF's name relative to its build directory. */
export function describeDecoder(c: DecoderConfig): string {
  return `${basename(c.addr2line)} on ${join(basename(dirname(c.elf)), basename(c.elf))}`;
}
