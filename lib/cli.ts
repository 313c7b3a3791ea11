/**
 * kiln's entry point: builds the clipanion Cli, the context (settings, abort
 * signal) and turns every outcome into an exit code. Command modules are
 * small; the services they call are imported lazily inside execute(), so
 * start-up loads only what the command needs.
 */
import { Builtins, Cli } from "clipanion";
import { loadSettings } from "./core/config.js";
import { ExitCode, isKilnError } from "./core/errors.js";
import { KilnCommand, type KilnContext } from "./commands/base.js";
import { loadCommands } from "./commands/index.js";
import { VERSION } from "./version.js";
import { releaseInterrupts } from "./interrupts.js";

export async function run(rawArgv: string[]): Promise<number> {
  // make-style `-j4` (clipanion wants `-j 4`).
  const argv = rawArgv.flatMap((a) => (/^-j\d+$/.test(a) ? ["-j", a.slice(2)] : [a]));
  const controller = new AbortController();
  const onSignal = (): void => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // From here the CLI answers interrupts: the launcher's stand-in for head starts steps aside.
  releaseInterrupts();

  let settings;
  try {
    settings = loadSettings();
  } catch (e) {
    if (isKilnError(e)) {
      process.stderr.write(`error [${e.code}]: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
      return e.exitCode;
    }
    throw e;
  }
  // Help text is coloured only for a terminal, and never with NO_COLOR.
  const enableColors = settings.color ?? (Boolean(process.stdout.isTTY) && !settings.ci);
  const cli = new Cli<KilnContext>({ binaryLabel: "kiln", binaryName: "kiln", binaryVersion: VERSION, enableCapture: false, enableColors });
  // clipanion compiles one state machine over every registered command, which
  // costs tens of milliseconds per run, and each command module has its own
  // imports. A known first word loads and registers its commands only (a
  // group's known second word, its one command); anything else (help,
  // typos) gets them all, for suggestions.
  // `kiln --version` (or `-v` alone) needs clipanion's built-in command only.
  const versionOnly = argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v");
  if (!versionOnly) for (const c of await loadCommands(argv[0], argv[1])) cli.register(c);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);

  const context: KilnContext = {
    ...Cli.defaultContext,
    settings,
    signal: controller.signal,
    isTTY: Boolean(process.stderr.isTTY),
  };

  let command;
  try {
    command = cli.process(argv.length === 0 ? ["--help"] : argv, context);
  } catch (e) {
    // Unknown command or option: clipanion's message, on stderr, exit 2.
    process.stderr.write(cli.error(e, { colored: enableColors }));
    process.stderr.write("Run 'kiln --help' for the list of commands.\n");
    return ExitCode.usage;
  }
  const code = await cli.run(command, context);
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  if (command instanceof KilnCommand && command.failedWith !== undefined) return command.failedWith;
  return code;
}
