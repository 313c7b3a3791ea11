import { Command } from "clipanion";
import { KilnCommand } from "../base.js";

export class PkgListCommand extends KilnCommand {
  static override paths = [["pkg", "list"]];
  static override usage = Command.Usage({
    category: "Packages",
    description: "List the packages in kiln's store",
    details: `
      One line per stored archive: the names and versions it was installed under, its unpacked size, and
      when a build last used it. The store is shared by every project of this user.
    `,
    examples: [
      ["List installed packages", "$0 pkg list"],
      ["As JSON, for scripts", "$0 pkg list --json"],
    ],
  });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { listEntries } = await import("../../toolchains/store.js");
    const { storePaths } = await import("../../toolchains/paths.js");
    const { formatBytes } = await import("../../toolchains/install.js");
    const entries = await listEntries(storePaths(this.context.settings.cacheDir));
    if (this.json) {
      reporter.event({ type: "result", packages: entries.map(({ key, refs, size, unpackedBytes, url, installedAt, lastUsed, dir }) => ({ key, names: refs, archiveBytes: size, unpackedBytes, url, installedAt, lastUsed, dir })) });
      return 0;
    }
    if (!entries.length) {
      this.context.stdout.write("no packages installed (kiln pkg install installs a project's packages)\n");
      return 0;
    }
    for (const e of entries) {
      const names = [...new Set(e.refs.map((r) => `${r.name}@${r.version}`))].join(", ");
      this.context.stdout.write(`${names}  ${formatBytes(e.unpackedBytes)}  last used ${e.lastUsed.slice(0, 10)}  ${e.key.slice(0, 12)}\n`);
    }
    return 0;
  }
}
