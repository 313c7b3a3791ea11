import { Command, Option } from "clipanion";
import { KilnCommand } from "./base.js";

export class DevicesCommand extends KilnCommand {
  static override paths = [["devices"]];
  static override usage = Command.Usage({
    description: "List serial ports and the boards they probably are",
    details: `
      Prints every serial port with its USB VID:PID, serial number, manufacturer and description, and
      the boards whose USB ids match (several boards share ids; a USB-serial adapter is named as such).
      Works without udev (containers, CI): the ports are then read from /sys/class/tty.
    `,
    examples: [
      ["List the ports", "$0 devices"],
      ["As JSON, for scripts", "$0 devices --json"],
    ],
  });

  sysRoot = Option.String("--sys-root", { hidden: true, description: "Read this directory as /sys (tests)" });

  async execute(): Promise<number> {
    const { listPorts, guessBoards, usbIdOf } = await import("../serial/index.js");
    const { allBoards } = await import("../platforms/boards.js");
    const ports = await listPorts(this.sysRoot ? { sysRoot: this.sysRoot } : {});
    const boards = allBoards();
    const rows = ports.map((p) => ({ ...p, ...guessBoards(p, boards) }));
    if (this.json) {
      (await this.reporter()).event({ type: "result", command: "devices", ports: rows });
      return 0;
    }
    if (rows.length === 0) {
      this.context.stderr.write("no serial ports found; plug the board in with a data cable (see docs/monitor.md#troubleshooting)\n");
      return 0;
    }
    const header = ["PORT", "VID:PID", "SERIAL", "MANUFACTURER", "DESCRIPTION", "BOARD"];
    const cells = rows.map((r) => [
      r.path,
      usbIdOf(r) ?? "-",
      r.serialNumber ?? "-",
      r.manufacturer ?? "-",
      r.description ?? r.product ?? "-",
      r.boards.length ? r.boards.map((b) => b.id).slice(0, 3).join(", ") + (r.boards.length > 3 ? ` (+${r.boards.length - 3})` : "") : r.bridge ? `(${r.bridge} adapter)` : "-",
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: string[]): string => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join("  ");
    this.context.stdout.write(`${[line(header), ...cells.map(line)].join("\n")}\n`);
    return 0;
  }
}
