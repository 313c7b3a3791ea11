import { Command, Option } from "clipanion";
import { ProjectCommand } from "./base.js";
import { UsageError } from "../core/errors.js";

export class RunCommand extends ProjectCommand {
  static override paths = [["run"]];
  static override usage = Command.Usage({
    description: "Build a native environment, then run the program",
    details: `
      Builds the environment (only what changed) and executes \`.kiln/build/<env>/program\` with the
      given arguments, in the project directory, with this terminal. kiln exits with the program's exit code.
    `,
    examples: [
      ["Build and run the native env", "$0 run -e native"],
      ["Pass arguments to the program", "$0 run -e native -- --verbose input.txt"],
    ],
  });

  args = Option.Rest({ name: "program-args" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { openProject } = await import("../build/open.js");
    const { buildProject, throwIfFailed } = await import("../build/index.js");
    const { runTool } = await import("../core/exec.js");
    const { settings, signal } = this.context;
    const project = await openProject({ dir: this.resolvedProjectDir(), settings });
    const envs = project.selectEnvs(this.environments);
    if (envs.length !== 1) {
      throw new UsageError(`'kiln run' needs exactly one environment, got ${envs.length} (${envs.join(", ")})`, { hint: "choose one with -e NAME" });
    }
    const env = project.env(envs[0]!);
    if (env.platform !== "native") {
      throw new UsageError(`env '${env.name}' is for platform '${env.platform}'; 'kiln run' runs native programs only`, {
        hint: "use 'kiln upload' to flash a board",
      });
    }
    const summary = await buildProject({ project, envNames: envs, settings, reporter, signal, jobs: project.kiln.jobs ?? settings.jobs, keepGoing: false });
    throwIfFailed(summary);
    const program = summary.envs[0]!.program;
    const args = this.args[0] === "--" ? this.args.slice(1) : this.args;
    const r = await runTool([program, ...args], { cwd: project.dir, stdio: "inherit", signal, reporter });
    return r.exitCode;
  }
}
