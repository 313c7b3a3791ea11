/**
 * Flash a built firmware: reads only the firmware manifest, finds the port,
 * does the board's reset dance and runs the uploader. AVR (avrdude) today;
 * other uploaders plug in by `manifest.upload.tool`.
 */
import { dirname } from "node:path";
import { runToolChecked } from "../core/exec.js";
import { ExitCode, UsageError } from "../core/errors.js";
import { readManifest, type FirmwareManifest } from "../core/manifest.js";
import type { Reporter } from "../core/report.js";
import { avrdudeArgv, avrdudeTarget, type AvrdudeTarget } from "./avrdude.js";

/** The port services of lib/serial that uploads use; injectable so tests can drive them. */
export interface PortServices {
  listPorts(): Promise<ReadonlyArray<{ path: string }>>;
  findPort(opts: { explicit?: string | undefined; usbIds: readonly string[]; boardName?: string | undefined }): Promise<string>;
  touch1200(path: string): Promise<void>;
  waitForNewPort(before: ReadonlyArray<{ path: string } | string>, timeoutMs: number): Promise<string | undefined>;
  /** Borrow the port from a running `kiln monitor`; the returned function gives it back. */
  acquirePortForUpload?(path: string): Promise<() => Promise<void>>;
}

export interface UploadOptions {
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  /** `--port`; else the manifest's upload_port; else detected by USB id. */
  port?: string | undefined;
  /** `--protocol` / programmer id, overriding upload_protocol. */
  protocol?: string | undefined;
  speedBps?: number | undefined;
  /** Extra uploader flags, after the manifest's upload_flags. */
  extraFlags?: string[] | undefined;
  /** Verify after write (default true). */
  verify?: boolean | undefined;
  /** Also write the EEPROM image. */
  eeprom?: boolean | undefined;
  /** Print the command and stop. */
  dryRun?: boolean | undefined;
  verbose?: boolean | undefined;
  /** How long to wait for a Leonardo-style bootloader port (default 8000 ms). */
  newPortTimeoutMs?: number | undefined;
  ports?: PortServices | undefined;
}

export interface UploadResult {
  env: string;
  tool: string;
  argv: string[];
  port?: string | undefined;
  protocol: string;
  dryRun: boolean;
  /** The 1200-baud touch was done (or, in a dry run, would be). */
  touched: boolean;
  durationMs: number;
}

async function defaultPorts(opts: UploadOptions): Promise<PortServices> {
  const serial = await import("../serial/index.js");
  return {
    listPorts: () => serial.listPorts(),
    findPort: (o) => serial.findPort(o),
    touch1200: (p) => serial.touch1200(p),
    waitForNewPort: (before, ms) => serial.waitForNewPort(before as ReadonlyArray<string>, ms),
    // The reporter tells the user when a running kiln monitor is asked to let go of the port.
    acquirePortForUpload: (p) => serial.acquirePortForUpload(p, { reporter: opts.reporter, signal: opts.signal }),
  };
}

async function resolvePort(manifest: FirmwareManifest, target: AvrdudeTarget, opts: UploadOptions, ports: () => Promise<PortServices>): Promise<string | undefined> {
  const explicit = opts.port ?? (typeof manifest.upload.port === "string" ? manifest.upload.port : undefined);
  if (!target.needsPort) return explicit;
  const svc = await ports();
  return svc.findPort({ explicit, usbIds: manifest.board?.usbIds ?? [], boardName: manifest.board?.name });
}

/**
 * Upload the firmware described by `manifestPath`. Throws KilnError with exit
 * code 7 when the port cannot be chosen or the uploader fails.
 */
export async function uploadFirmware(manifestPath: string, opts: UploadOptions): Promise<UploadResult> {
  const manifest = await readManifest(manifestPath);
  const tool = typeof manifest.upload.tool === "string" ? manifest.upload.tool : "avrdude";
  if (tool !== "avrdude") throw new UsageError(`kiln cannot flash with '${tool}' yet`, { hint: "see docs/avr.md for supported uploaders" });
  let services: PortServices | undefined = opts.ports;
  const ports = async () => (services ??= await defaultPorts(opts));
  const target = avrdudeTarget(manifest, { protocol: opts.protocol, speedBps: opts.speedBps });
  const manifestDir = dirname(manifestPath);
  const flags = [...(Array.isArray(manifest.upload.flags) ? (manifest.upload.flags as string[]) : []), ...(opts.extraFlags ?? [])];
  const started = performance.now();

  let port = await resolvePort(manifest, target, opts, ports);
  const argvFor = (p: string | undefined) => avrdudeArgv(manifest, { manifestDir, target, port: p, extraFlags: flags, verify: opts.verify, verbose: opts.verbose, eeprom: opts.eeprom });
  const result = (argv: string[], touched: boolean): UploadResult => ({ env: manifest.env, tool, argv, port, protocol: target.protocol, dryRun: opts.dryRun === true, touched, durationMs: performance.now() - started });

  if (opts.dryRun) return result(argvFor(port), target.touch1200);

  let release: (() => Promise<void>) | undefined;
  if (port && target.needsPort) {
    const svc = await ports();
    release = await svc.acquirePortForUpload?.(port);
  }
  try {
    if (port && target.touch1200) {
      const svc = await ports();
      const before = await svc.listPorts();
      opts.reporter.info(`Resetting ${port} into the bootloader (1200-baud touch)`);
      await svc.touch1200(port);
      if (target.waitForNewPort) {
        const next = await svc.waitForNewPort(before, opts.newPortTimeoutMs ?? 8000);
        if (next && next !== port) opts.reporter.info(`Bootloader port: ${next}`);
        port = next ?? port;
      }
    }
    const argv = argvFor(port);
    const step = opts.reporter.step(`Uploading ${manifest.env} with avrdude (${target.protocol}${port ? ` on ${port}` : ""})`);
    try {
      const r = await runToolChecked(argv, {
        reporter: opts.reporter,
        signal: opts.signal,
        failureExitCode: ExitCode.device,
        hint: uploadHint(target),
      });
      if (opts.verbose && r.stderr) opts.reporter.toolOutput(r.stderr);
      step.succeed();
    } catch (e) {
      step.fail();
      throw e;
    }
    return result(argv, target.touch1200);
  } finally {
    await release?.();
  }
}

function uploadHint(target: AvrdudeTarget): string {
  if (target.touch1200) return "no bootloader answered: press the board's reset button twice quickly and run the upload again within 8 s";
  if (target.kind === "usb-programmer") return "check the programmer's cable and USB permissions (udev rules), and the target's power";
  if (target.kind === "serial-programmer") return "check the programmer's wiring (Arduino as ISP: reset on pin 10, 10 µF on the programmer's RESET) and upload_speed";
  return "check the port and upload_speed (old Nano bootloaders need 57600: board = nanoatmega328), or close programs using the port";
}
