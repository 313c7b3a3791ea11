/**
 * `kiln config`: show each environment as kiln resolved it (extends, [env]
 * defaults, PLATFORMIO_* overrides and ${…} already applied), so a user can
 * see what a build will get without building.
 */
import { Command } from "clipanion";
import { ProjectCommand } from "./base.js";

export class ConfigCommand extends ProjectCommand {
  static override paths = [["config"]];

  static override usage = Command.Usage({
    description: "Print the resolved configuration of each environment",
    details: `
      Reads platformio.ini (with its extra_configs) or the kiln config of the project, resolves every
      option of the selected environments exactly as a build would (extends, [env] defaults, PLATFORMIO_*
      environment variables, \${…} interpolation), and prints one \`[env:NAME]\` block per environment.
      Warnings about unknown or deprecated options are printed on stderr with their file and line.

      Environments: \`-e\` (repeatable), else \`default_envs\`, else all. With \`--json\` the result is one
      NDJSON \`result\` event whose \`envs\` array holds one object per environment.
    `,
    examples: [
      ["Show every default environment", "$0 config"],
      ["Show one environment of another project", "$0 config -d ~/projects/blink -e uno"],
      ["Read the resolved build flags with jq", "$0 config -e esp32 --json | jq '.envs[0].buildFlags'"],
    ],
  });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { loadProject } = await import("../project/index.js");
    const project = await loadProject(this.resolvedProjectDir(), { settings: this.context.settings });
    for (const w of project.warnings) reporter.warn(w);
    const envs = project.selectEnvs(this.environments).map((n) => project.env(n));

    if (this.json) {
      reporter.event({
        type: "result",
        command: "config",
        project: { dir: project.dir, configFile: project.configFile, configKind: project.configKind, files: project.files, defaultEnvs: project.defaultEnvs, dirs: project.dirs },
        envs: envs.map((e) => ({ ...e, options: Object.fromEntries(Object.entries(e.options).map(([k, v]) => [k, v.value])) })),
      });
      return 0;
    }
    const out: string[] = [];
    for (const env of envs) {
      if (out.length) out.push("");
      out.push(`[env:${env.name}]`);
      for (const [option, { value }] of Object.entries(env.options)) {
        const lines = value.split("\n");
        if (lines.length === 1) out.push(`${option} = ${value}`);
        else out.push(`${option} =${lines[0] ? ` ${lines[0]}` : ""}`, ...lines.slice(1).filter((l) => l !== "").map((l) => `    ${l}`));
      }
    }
    this.context.stdout.write(`${out.join("\n")}\n`);
    return 0;
  }
}
