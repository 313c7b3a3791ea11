import { Command } from "clipanion";
import { ProjectCommand } from "./base.js";

export class CompiledbCommand extends ProjectCommand {
  static override paths = [["compiledb"]];
  static override usage = Command.Usage({
    description: "Write compile_commands.json without compiling",
    details: `
      Works out every compile command of the selected environment (libraries found from #include
      included) and writes \`compile_commands.json\` at the project root, for clangd and other tools.
      \`kiln build\` writes the same file on every build.
    `,
    examples: [
      ["For the default environment", "$0 compiledb"],
      ["For one environment", "$0 compiledb -e native"],
    ],
  });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { openProject } = await import("../build/open.js");
    const { writeCompileDb } = await import("../build/index.js");
    const { settings, signal } = this.context;
    const project = await openProject({ dir: this.resolvedProjectDir(), settings });
    const env = project.selectEnvs(this.environments)[0]!;
    const file = await writeCompileDb({ project, envName: env, settings, reporter, signal });
    reporter.info(`wrote ${file}`);
    return 0;
  }
}
