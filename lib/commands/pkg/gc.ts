import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";
import { UsageError } from "../../core/errors.js";

export class PkgGcCommand extends KilnCommand {
  static override paths = [["pkg", "gc"]];
  static override usage = Command.Usage({
    category: "Packages",
    description: "Free disk space: remove unused packages and leftovers",
    details: `
      Removes what interrupted installs left in the cache's tmp/ directory, store entries no name refers
      to, and with \`--older-than\` every package no build has used for that long (\`30d\`, \`12h\`, \`2w\`).
    `,
    examples: [
      ["Remove leftovers only", "$0 pkg gc"],
      ["Also remove packages unused for 30 days", "$0 pkg gc --older-than 30d"],
    ],
  });

  olderThan = Option.String("--older-than", { description: "Also remove packages unused for this long (30d, 12h, 2w)" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { parseDuration } = await import("../../toolchains/envs.js");
    const ms = this.olderThan === undefined ? undefined : parseDuration(this.olderThan);
    if (this.olderThan !== undefined && ms === undefined) throw new UsageError(`--older-than must be a duration like 30d, 12h or 2w, got '${this.olderThan}'`);
    const { gcStore } = await import("../../toolchains/store.js");
    const { storePaths } = await import("../../toolchains/paths.js");
    const { formatBytes } = await import("../../toolchains/install.js");
    const r = await gcStore(storePaths(this.context.settings.cacheDir), ms);
    if (this.json) reporter.event({ type: "result", removed: r.removed.map((e) => ({ key: e.key, names: e.refs })), freedBytes: r.freedBytes, tmpRemoved: r.tmpRemoved });
    else this.context.stdout.write(`removed ${r.removed.length} packages (${formatBytes(r.freedBytes)}) and ${r.tmpRemoved} leftovers\n`);
    return 0;
  }
}
