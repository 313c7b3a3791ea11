import { Command, Option } from "clipanion";
import { KilnCommand } from "./base.js";

export class BoardsCommand extends KilnCommand {
  static override paths = [["boards"]];
  static override usage = Command.Usage({
    description: "List the boards kiln knows",
    details: `
      Prints each board's id (what \`board =\` takes in platformio.ini), name, platform, MCU, clock, and
      the flash and RAM available to programs. Words given as a filter must all appear in the id, name,
      platform, vendor or MCU.
    `,
    examples: [
      ["All boards", "$0 boards"],
      ["Boards with an ATmega328P", "$0 boards atmega328p"],
      ["Arduino Nano variants as JSON", "$0 boards nano --json"],
    ],
  });

  filter = Option.Rest({ name: "filter" });

  async execute(): Promise<number> {
    const { filterBoards, formatBytes, formatClock } = await import("../platforms/boards.js");
    const boards = filterBoards(this.filter.join(" ")).sort((a, b) => a.platform.localeCompare(b.platform) || a.id.localeCompare(b.id));
    if (this.json) {
      const rows = boards.map((b) => ({ id: b.id, name: b.name, platform: b.platform, mcu: b.mcu, fCpu: b.fCpu, flashBytes: b.flashBytes, ramBytes: b.ramBytes, frameworks: b.frameworks, usbIds: b.usbIds }));
      (await this.reporter()).event({ type: "result", command: "boards", boards: rows });
      return 0;
    }
    if (boards.length === 0) {
      this.context.stderr.write(`no board matches '${this.filter.join(" ")}'; run 'kiln boards' for the full list\n`);
      return 0;
    }
    const header = ["ID", "NAME", "PLATFORM", "MCU", "CLOCK", "FLASH", "RAM"];
    const rows = boards.map((b) => [b.id, b.name, b.platform, b.mcu, formatClock(b.fCpu), formatBytes(b.flashBytes), formatBytes(b.ramBytes)]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
    this.context.stdout.write(`${[line(header), ...rows.map(line)].join("\n")}\n`);
    return 0;
  }
}
