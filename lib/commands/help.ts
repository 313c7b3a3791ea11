import { Command, Option } from "clipanion";
import type { KilnContext } from "./base.js";

/** `kiln help [command…]`: the command list, or one command's full help (same as `--help`). */
export class HelpCommand extends Command<KilnContext> {
  static override paths = [["help"]];
  static override usage = Command.Usage({
    description: "Show the commands, or one command's help",
    examples: [
      ["List every command", "$0 help"],
      ["Help for one command, with examples", "$0 help build"],
    ],
  });

  command = Option.Rest({ name: "command" });

  async execute(): Promise<number> {
    if (this.command.length === 0) {
      this.context.stdout.write(this.cli.usage());
      return 0;
    }
    return this.cli.run([...this.command, "--help"]);
  }
}
