import { Command, Option } from "clipanion";
import * as t from "typanion";
import { ProjectCommand } from "./base.js";

const isBit = t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 1));

export class MonitorCommand extends ProjectCommand {
  static override paths = [["monitor"], ["device", "monitor"]];
  static override usage = Command.Usage({
    description: "Open a serial monitor on the board's port",
    details: `
      Shows what the board prints and sends what you type. Settings come from the env's monitor_*
      options (monitor_speed, monitor_filters, monitor_eol…) and the flags below override them. The
      port is \`--port\`, else monitor_port, else upload_port, else the one matching the board's USB ids.
      On a terminal: Ctrl-C or Ctrl-] quits, Ctrl-T h lists the menu keys. In a pipe or CI: bytes in and
      out; \`--until\`, \`--fail-on\` and \`--timeout\` end it with exit 0 or 1. A lost port is waited for,
      and a \`kiln upload\` from another shell borrows the port and gives it back.
    `,
    examples: [
      ["Monitor the default env's board", "$0 monitor"],
      ["A given port and speed, with timestamps", "$0 monitor --port /dev/ttyUSB0 -b 115200 -f time"],
      ["Hardware test in CI", "$0 upload && $0 monitor --until PASS --fail-on FAIL --timeout 30"],
    ],
  });

  port = Option.String("-p,--port", { description: "Serial port path or glob (overrides monitor_port/upload_port)" });
  baud = Option.String("-b,--baud", { description: "Speed in baud (overrides monitor_speed; default 9600)", validator: t.cascade(t.isNumber(), t.isInteger(), t.isAtLeast(1)) });
  parity = Option.String("--parity", { description: "Parity: N, E, O, S or M", validator: t.isEnum(["N", "E", "O", "S", "M"] as const) });
  rts = Option.String("--rts", { description: "RTS line state on open: 0 or 1", validator: isBit });
  dtr = Option.String("--dtr", { description: "DTR line state on open: 0 or 1", validator: isBit });
  eol = Option.String("--eol", { description: "End of line sent for Enter: CR, LF or CRLF", validator: t.isEnum(["CR", "LF", "CRLF"] as const) });
  echo = Option.Boolean("--echo", { description: "Echo what you type locally" });
  raw = Option.Boolean("--raw", { description: "No filters, no encoding, no EOL translation" });
  encoding = Option.String("--encoding", { description: "Text encoding of the device (default UTF-8)" });
  filters = Option.Array("-f,--filter", { description: "A monitor filter (repeatable; replaces monitor_filters)" });
  until = Option.String("--until", { description: "Stop with exit 0 when a received line matches this regex" });
  failOn = Option.String("--fail-on", { description: "Stop with exit 1 when a received line matches this regex" });
  timeout = Option.String("--timeout", { description: "Stop after SEC seconds (exit 1 if --until was not seen)", validator: t.cascade(t.isNumber(), t.isPositive()) });
  reconnect = Option.Boolean("--reconnect", true, { description: "Wait for a lost port to come back (--no-reconnect: exit 7)" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const serial = await import("../serial/index.js");
    const { settings, signal } = this.context;
    const dir = this.resolvedProjectDir();
    const ctx = await (await import("./monitor-context.js")).monitorContext(dir, this.environments, settings);
    for (const w of ctx?.warnings ?? []) reporter.warn(w);
    const m = ctx?.monitor;
    const filters = this.filters ?? m?.filters ?? [];
    serial.validateFilters(filters);
    const port = await serial.findPort({
      explicit: this.port ?? m?.port ?? ctx?.uploadPort,
      usbIds: ctx?.usbIds ?? [],
      boardName: ctx?.boardName,
    });
    const result = await serial.runMonitor({
      port,
      monitor: { ...m, speed: this.baud ?? m?.speed, parity: this.parity ?? m?.parity, rts: (this.rts ?? m?.rts) as 0 | 1 | undefined, dtr: (this.dtr ?? m?.dtr) as 0 | 1 | undefined, eol: this.eol ?? m?.eol, echo: this.echo ?? m?.echo, raw: this.raw ?? m?.raw, encoding: this.encoding ?? m?.encoding, filters },
      platform: ctx?.platform,
      decoder: filters.includes("esp32_exception_decoder") ? await ctx?.decoder() : undefined,
      reporter,
      stdout: this.context.stdout,
      stdin: this.context.stdin,
      signal,
      until: this.until,
      failOn: this.failOn,
      timeoutMs: this.timeout === undefined ? undefined : this.timeout * 1000,
      reconnect: this.reconnect,
      logDir: ctx?.projectDir ?? process.cwd(),
    });
    if (this.json) reporter.event({ type: "result", command: "monitor", ...result });
    return result.reason === "aborted" && (this.until || this.failOn) ? 130 : 0;
  }
}
