import { Command } from "clipanion";
import { ProjectCommand, loadInstaller } from "../base.js";

export class PkgUpdateCommand extends ProjectCommand {
  static override paths = [["pkg", "update"]];
  static override usage = Command.Usage({
    category: "Packages",
    description: "Re-resolve every package of the project and rewrite kiln.lock",
    details: `
      Resolves each selected environment's packages again from kiln's catalog, \`platform_packages\`
      and the configured package indexes (refreshed), rewrites \`kiln.lock\`, and installs what changed.
      Commit the new \`kiln.lock\`.
    `,
    examples: [
      ["Refresh the lock for every environment", "$0 pkg update"],
      ["Refresh one environment", "$0 pkg update -e uno"],
    ],
  });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { settings, signal } = this.context;
    const { services, installProject } = await loadInstaller();
    const result = await installProject(services, { dir: this.resolvedProjectDir(), environments: this.environments, settings, reporter, signal, update: true });
    if (this.json) reporter.event({ type: "result", envs: result });
    else this.context.stdout.write(`kiln.lock updated for ${result.map((r) => r.env).join(", ")}\n`);
    return 0;
  }
}
