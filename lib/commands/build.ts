import { Command, Option } from "clipanion";
import { ProjectCommand, buildMaybeRemote, parseJobs, parseRemote } from "./base.js";

export class BuildCommand extends ProjectCommand {
  static override paths = [["build"]];
  static override usage = Command.Usage({
    description: "Compile and link the project's environments",
    details: `
      Builds each selected environment (\`-e\`, else \`default_envs\`, else all) into \`.kiln/build/<env>/\`,
      installing missing toolchains first. Only what changed is rebuilt: a source, a header it includes,
      or its exact command line. Also writes \`compile_commands.json\` for clangd.

      A folder without a config can be built as an Arduino sketch with \`--board\`.
    `,
    examples: [
      ["Build the default environments", "$0 build"],
      ["Build one environment with 4 jobs", "$0 build -e uno -j 4"],
      ["Build a sketch folder for an Uno (no platformio.ini)", "$0 build path/to/Blink --board uno"],
      ["Machine-readable events for CI", "$0 build --json"],
    ],
  });

  target = Option.String({ required: false, name: "project-or-sketch-dir" });
  board = Option.String("-b,--board", { description: "Board id for a folder without platformio.ini (see 'kiln boards')" });
  jobs = Option.String("-j,--jobs", { description: "Parallel compiles (default: number of CPUs)" });
  keepGoing = Option.Boolean("-k,--keep-going", false, { description: "Keep compiling other files and envs after an error" });
  remote = Option.String("--remote", { description: "Build on a paired peer: auto (when one is free; the default), always, never" });
  offline = Option.Boolean("--offline", false, { description: "Never use the network; fail if a package is missing" });
  frozenLockfile = Option.Boolean("--frozen-lockfile", false, { description: "Fail if kiln.lock would change" });

  /** The launcher answers an exact repeat of a no-op build (lib/fastpath.ts) for these plain arguments only. */
  private async noopKey(): Promise<string | undefined> {
    const plain = !this.json && !this.verbose && this.target === undefined && this.board === undefined && !this.keepGoing && !this.offline && !this.frozenLockfile && this.color === undefined && this.remote === undefined;
    if (!plain) return undefined;
    const { noopKey, kilnStamp } = await import("../build/noop.js");
    return noopKey(this.resolvedProjectDir(), this.environments, kilnStamp());
  }

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const jobs = parseJobs(this.jobs);
    const { openProject } = await import("../build/open.js");
    const { throwIfFailed } = await import("../build/index.js");
    const { settings, signal } = this.context;
    const project = await openProject({ dir: this.projectDirOr(this.target), settings, board: this.board });
    for (const w of project.warnings) reporter.warn(w);
    const options = {
      project,
      envNames: project.selectEnvs(this.environments),
      settings,
      reporter,
      signal,
      jobs: jobs ?? project.kiln.jobs ?? settings.jobs,
      keepGoing: this.keepGoing,
      offline: this.offline || undefined,
      frozenLockfile: this.frozenLockfile,
      colorDiagnostics: this.useColor(),
      noopKey: await this.noopKey(),
    };
    const summary = await buildMaybeRemote(options, { mode: parseRemote(this.remote, settings), board: this.board });
    // With --keep-going several envs can fail: show each, then exit with the summary.
    if (summary.errors.length > 1) for (const e of summary.errors) reporter.error(e.error);
    throwIfFailed(summary);
    return 0;
  }
}
