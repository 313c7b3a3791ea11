import { Command, Option } from "clipanion";
import { ProjectCommand, loadInstaller } from "../base.js";

export class PkgInstallCommand extends ProjectCommand {
  static override paths = [["pkg", "install"]];
  static override usage = Command.Usage({
    category: "Packages",
    description: "Install every package the project's environments need, without building",
    details: `
      Resolves the toolchains, frameworks and uploaders of each selected environment (\`-e\`, else
      \`default_envs\`, else all), writes \`kiln.lock\` on first resolution, and installs what the store
      lacks: download, verify sha256 and size, unpack, once per archive for all projects.
    `,
    examples: [
      ["Install for the default environments", "$0 pkg install"],
      ["Install for one environment, failing if kiln.lock would change (CI)", "$0 pkg install -e uno --frozen-lockfile"],
      ["Check the store satisfies the lock, never touching the network", "$0 pkg install --offline"],
    ],
  });

  offline = Option.Boolean("--offline", false, { description: "Never use the network; fail naming what the store lacks" });
  frozenLockfile = Option.Boolean("--frozen-lockfile", false, { description: "Fail if kiln.lock would change" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { settings, signal } = this.context;
    const { services, installProject } = await loadInstaller();
    const result = await installProject(services, { dir: this.resolvedProjectDir(), environments: this.environments, settings, reporter, signal, offline: this.offline || settings.offline, frozenLockfile: this.frozenLockfile });
    if (this.json) reporter.event({ type: "result", envs: result });
    else for (const r of result) this.context.stdout.write(`${r.env}: ${Object.keys(r.packages).length} packages ready\n`);
    return 0;
  }
}
