import { Command } from "clipanion";
import { ProjectCommand } from "./base.js";

export class CleanCommand extends ProjectCommand {
  static override paths = [["clean"]];
  static override usage = Command.Usage({
    description: "Delete build outputs",
    details: `
      Removes \`.kiln/build/<env>/\` for the selected environments, or the whole build directory when no
      \`-e\` is given. Installed packages and the shared core cache are kept (see \`kiln pkg gc\`).
    `,
    examples: [
      ["Remove every env's build outputs", "$0 clean"],
      ["Remove one env's outputs", "$0 clean -e uno"],
    ],
  });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { loadProject } = await import("../project/index.js");
    const { cleanBuild } = await import("../build/clean.js");
    const project = await loadProject(this.resolvedProjectDir(), { settings: this.context.settings });
    const removed = await cleanBuild(project, this.environments.length ? project.selectEnvs(this.environments) : undefined);
    for (const dir of removed) reporter.info(`removed ${dir}`);
    if (removed.length === 0) reporter.info("nothing to clean");
    return 0;
  }
}
