import { Command, Option } from "clipanion";
import * as t from "typanion";
import { ProjectCommand, buildMaybeRemote, parseRemote } from "./base.js";

export class UploadCommand extends ProjectCommand {
  static override paths = [["upload"]];
  static override usage = Command.Usage({
    description: "Build if needed, then flash the firmware to the board",
    details: `
      Builds each selected environment (only what changed), then flashes \`.kiln/build/<env>/\` using
      only its firmware manifest. The port is \`--port\`, else \`upload_port\`, else the one whose USB id
      matches the board (several or none: exit 7 with the list). Leonardo and Micro get the 1200-baud
      reset and kiln waits for the bootloader's port. \`upload_protocol\` (or \`--protocol\`) may name an
      avrdude programmer: usbasp, usbtiny, avrispmkII, stk500v1 / arduinoasisp (an Arduino as ISP)…
    `,
    examples: [
      ["Build and flash the default environment", "$0 upload"],
      ["Flash an Uno on a given port", "$0 upload -e uno --port /dev/ttyACM0"],
      ["Show the avrdude command without running it", "$0 upload -e uno --dry-run"],
      ["Flash through a USBasp programmer", "$0 upload -e uno --protocol usbasp"],
      ["Flash a sketch folder and open the monitor", "$0 upload path/to/Blink --board uno --monitor"],
    ],
  });

  target = Option.String({ required: false, name: "project-or-sketch-dir" });
  board = Option.String("-b,--board", { description: "Board id for a folder without platformio.ini (see 'kiln boards')" });
  port = Option.String("-p,--port,--upload-port", { description: "Serial port (overrides upload_port and detection)" });
  protocol = Option.String("--protocol", { description: "Uploader protocol or avrdude programmer (overrides upload_protocol)" });
  speed = Option.String("--speed", { description: "Upload speed in baud (overrides upload_speed)", validator: t.cascade(t.isNumber(), t.isInteger(), t.isAtLeast(1)) });
  dryRun = Option.Boolean("-n,--dry-run", false, { description: "Print the uploader command instead of running it" });
  verify = Option.Boolean("--verify", true, { description: "Read the flash back and compare (--no-verify skips it)" });
  eeprom = Option.Boolean("--eeprom", false, { description: "Also write the EEPROM image (.eep)" });
  monitor = Option.Boolean("-m,--monitor", false, { description: "Open the serial monitor after flashing" });
  jobs = Option.String("-j,--jobs", { description: "Parallel compiles (default: number of CPUs)", validator: t.cascade(t.isNumber(), t.isInteger(), t.isAtLeast(1)) });
  remote = Option.String("--remote", { description: "Build on a paired peer: auto (when one is free; the default), always, never" });
  offline = Option.Boolean("--offline", false, { description: "Never use the network; fail if a package is missing" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { openProject } = await import("../build/open.js");
    const { throwIfFailed } = await import("../build/index.js");
    const { uploadFirmware } = await import("../flash/index.js");
    const { shellQuote } = await import("../core/report.js");
    const { settings, signal } = this.context;
    const project = await openProject({ dir: this.projectDirOr(this.target), settings, board: this.board });
    for (const w of project.warnings) reporter.warn(w);
    const envNames = project.selectEnvs(this.environments);
    const options = {
      project,
      envNames,
      settings,
      reporter,
      signal,
      jobs: this.jobs ?? project.kiln.jobs ?? settings.jobs,
      keepGoing: false,
      offline: this.offline || undefined,
      includeUpload: true,
    };
    const summary = await buildMaybeRemote(options, { mode: parseRemote(this.remote, settings), board: this.board });
    throwIfFailed(summary);
    let lastPort: string | undefined;
    for (const built of summary.envs) {
      const result = await uploadFirmware(built.manifestPath, {
        reporter,
        signal,
        port: this.port,
        protocol: this.protocol,
        speedBps: this.speed,
        verify: this.verify,
        eeprom: this.eeprom,
        dryRun: this.dryRun,
        verbose: this.verbose,
      });
      lastPort = result.port;
      if (this.json) reporter.event({ type: "result", command: "upload", ...result });
      else if (this.dryRun) {
        if (result.touched) this.context.stdout.write(`# ${result.port ?? "the port"} would first get the 1200-baud reset; avrdude then runs on the bootloader's port\n`);
        this.context.stdout.write(`${shellQuote(result.argv)}\n`);
      } else if (!this.quiet) this.context.stderr.write(`Uploaded ${built.env}${result.port ? ` to ${result.port}` : ""} in ${Math.round(result.durationMs)} ms\n`);
    }
    if (this.monitor && !this.dryRun) {
      const env = project.env(envNames[envNames.length - 1]!);
      const serial = await import("../serial/index.js");
      const port = await serial.findPort({ explicit: env.monitor.port ?? lastPort ?? env.upload.port, usbIds: [], boardName: env.board });
      await serial.runMonitor({ port, env, monitor: env.monitor, reporter, signal, stdin: this.context.stdin, stdout: this.context.stdout, logDir: project.dir });
    }
    return 0;
  }
}
