import { resolve } from "node:path";
import { Command, Option } from "clipanion";
import { KilnCommand } from "./base.js";

export class InitCommand extends KilnCommand {
  static override paths = [["init"]];
  static override usage = Command.Usage({
    description: "Create a new project for a board",
    details: `
      Writes \`platformio.ini\` (one env named after the board), \`src/main.cpp\` (setup/loop blinking the
      LED) and a \`.gitignore\` with \`.kiln/\`. Never overwrites: if any of these files exists, nothing is
      written. An unknown board id exits with code 3 and the closest ids.
    `,
    examples: [
      ["A project for an Arduino Uno in the current directory", "$0 init --board uno"],
      ["A Nano project in a new folder", "$0 init blinky --board nanoatmega328new"],
    ],
  });

  dir = Option.String({ required: false, name: "dir" });
  board = Option.String("-b,--board", "uno", { description: "Board id (see 'kiln boards'; default uno)" });

  async execute(): Promise<number> {
    const { findBoard } = await import("../platforms/boards.js");
    const { initProject } = await import("../project/init.js");
    const board = findBoard(this.board);
    const result = await initProject(resolve(this.dir ?? "."), board);
    if (this.json) (await this.reporter()).event({ type: "result", command: "init", ...result });
    else if (!this.quiet) {
      this.context.stdout.write(`Created ${result.files.join(", ")} in ${result.dir} for ${board.name} (env '${result.env}')\n`);
      this.context.stdout.write(`Next: kiln build${this.dir ? ` -d ${this.dir}` : ""}\n`);
    }
    return 0;
  }
}
