import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";
import { UsageError } from "../../core/errors.js";

export class PkgRemoveCommand extends KilnCommand {
  static override paths = [["pkg", "remove"]];
  static override usage = Command.Usage({
    category: "Packages",
    description: "Remove a package from kiln's store",
    details: `
      Removes every installed version of NAME, or only NAME@VERSION. An archive also installed under
      another name stays until that name is removed too. A build that needs it installs it again.
    `,
    examples: [
      ["Remove every version of the AVR toolchain", "$0 pkg remove toolchain-atmelavr"],
      ["Remove one version", "$0 pkg remove tool-avrdude@8.0.0-arduino1"],
    ],
  });

  spec = Option.String({ name: "NAME[@VERSION]" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const at = this.spec.indexOf("@");
    const name = at < 0 ? this.spec : this.spec.slice(0, at);
    const version = at < 0 ? undefined : this.spec.slice(at + 1);
    if (!name || version === "") throw new UsageError(`'${this.spec}' is not NAME or NAME@VERSION`, { hint: "see 'kiln pkg list'" });
    const { removePackage } = await import("../../toolchains/store.js");
    const { storePaths } = await import("../../toolchains/paths.js");
    const removed = await removePackage(storePaths(this.context.settings.cacheDir), name, version);
    if (this.json) reporter.event({ type: "result", removed: removed.map((e) => ({ key: e.key, names: e.refs })) });
    else this.context.stdout.write(removed.length ? `removed ${removed.length} package${removed.length > 1 ? "s" : ""}\n` : `nothing installed matches '${this.spec}'\n`);
    return 0;
  }
}
