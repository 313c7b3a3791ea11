import { Command } from "clipanion";
import { KilnCommand } from "../base.js";
import { ExitCode, KilnError } from "../../core/errors.js";

export class PkgVerifyCommand extends KilnCommand {
  static override paths = [["pkg", "verify"]];
  static override usage = Command.Usage({
    category: "Packages",
    description: "Re-hash every installed package and repair damaged ones",
    details: `
      Checks every file of every package in the store against the sha256 recorded when it was unpacked.
      A damaged package is reported and taken out of the store; the next \`kiln pkg install\` or build
      installs it again from its verified archive. Exits 5 when something was damaged.
    `,
    examples: [
      ["Verify the store", "$0 pkg verify"],
      ["As JSON", "$0 pkg verify --json"],
    ],
  });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { verifyStore } = await import("../../toolchains/store.js");
    const { storePaths } = await import("../../toolchains/paths.js");
    const reports = await verifyStore(storePaths(this.context.settings.cacheDir), {
      onEntry: (r) => {
        if (!r.ok) reporter.warn(`${r.names.join(", ")} (${r.key.slice(0, 12)}) is damaged: ${r.problems.slice(0, 5).join("; ")}${r.problems.length > 5 ? ` and ${r.problems.length - 5} more` : ""}`);
      },
    });
    const bad = reports.filter((r) => !r.ok);
    if (this.json) reporter.event({ type: "result", packages: reports });
    else this.context.stdout.write(`${reports.length - bad.length} of ${reports.length} packages intact\n`);
    if (bad.length) {
      throw new KilnError("KILN_STORE_DAMAGED", ExitCode.integrity, `${bad.length} damaged package${bad.length > 1 ? "s" : ""} removed from the store: ${bad.flatMap((b) => b.names).join(", ")}`, {
        hint: "run 'kiln pkg install' (or build) to install them again from their verified archives",
        data: { damaged: bad.map((b) => b.key) },
      });
    }
    return 0;
  }
}
