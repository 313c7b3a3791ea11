/**
 * The one seam between kiln and node-serialport. Everything that opens a port
 * (monitor, 1200-baud touch) goes through a `PortOpener`, so tests can wrap
 * the real one and record the modem-line calls that a pty cannot perform.
 */
import { ExitCode, KilnError, errnoCode } from "../core/errors.js";

export type Parity = "none" | "even" | "odd" | "mark" | "space";

export interface OpenOptions {
  path: string;
  baudRate: number;
  parity?: Parity | undefined;
  dataBits?: 5 | 6 | 7 | 8 | undefined;
  stopBits?: 1 | 2 | undefined;
  /** Drop DTR on close (default true, the OS default). */
  hupcl?: boolean | undefined;
}

/** The modem lines. DTR and RTS are always written together (flashing.md §7). */
export interface ModemLines {
  dtr: boolean;
  rts: boolean;
  brk?: boolean | undefined;
}

export interface SerialConnection {
  readonly path: string;
  write(data: Uint8Array): Promise<void>;
  /** Set DTR, RTS (and break) in one call. Rejects with ENOTTY-like errors on ptys. */
  setLines(lines: ModemLines): Promise<void>;
  setBaudRate(baudRate: number): Promise<void>;
  /** Close; resolves once the OS handle is released. Idempotent. */
  close(): Promise<void>;
  onData(listener: (chunk: Buffer) => void): void;
  /** Fires once when the port closes: `error` is set when it was lost (device gone). */
  onClose(listener: (error: Error | undefined) => void): void;
}

export type PortOpener = (opts: OpenOptions) => Promise<SerialConnection>;

/** Open a port with node-serialport. Throws the raw error; see `portOpenError`. */
export const openSerialPort: PortOpener = async (opts) => {
  const { SerialPort } = await import("serialport");
  const port = new SerialPort({
    path: opts.path,
    baudRate: opts.baudRate,
    parity: opts.parity ?? "none",
    dataBits: opts.dataBits ?? 8,
    stopBits: opts.stopBits ?? 1,
    hupcl: opts.hupcl ?? true,
    autoOpen: false,
  });
  await new Promise<void>((res, rej) => port.open((err) => (err ? rej(err) : res())));
  let closed = false;
  const closeListeners: Array<(e: Error | undefined) => void> = [];
  port.on("close", (err?: Error | null) => {
    closed = true;
    for (const l of closeListeners) l(err ?? undefined);
  });
  // Errors after open arrive as 'error' then 'close'; the close listener reports them.
  port.on("error", () => {});
  return {
    path: opts.path,
    write: (data) =>
      new Promise((res, rej) => {
        port.write(Buffer.from(data), (err) => {
          if (err) return rej(err);
          port.drain((e) => (e ? rej(e) : res()));
        });
      }),
    setLines: (lines) => new Promise((res, rej) => port.set({ dtr: lines.dtr, rts: lines.rts, brk: lines.brk ?? false }, (err) => (err ? rej(err) : res()))),
    setBaudRate: (baudRate) => new Promise((res, rej) => port.update({ baudRate }, (err) => (err ? rej(err) : res()))),
    close: () =>
      new Promise((res) => {
        if (closed || !port.isOpen) return res();
        port.close(() => res());
      }),
    onData: (listener) => void port.on("data", listener),
    onClose: (listener) => void closeListeners.push(listener),
  };
};

/** Errors that mean "this is a pty or a device without modem lines": harmless for DTR/RTS. */
export function isNoModemLines(e: unknown): boolean {
  const code = errnoCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  return code === "ENOTTY" || code === "EINVAL" || /Inappropriate ioctl|ENOTTY|Invalid argument/i.test(msg);
}

/** A port is held by another process (node-serialport's flock, or EBUSY). */
export function isPortBusy(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return errnoCode(e) === "EBUSY" || /Cannot lock port|Resource temporarily unavailable|EBUSY/i.test(msg);
}

export function isPortMissing(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return errnoCode(e) === "ENOENT" || /No such file or directory|ENOENT|File not found/i.test(msg);
}

export function isPermissionDenied(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return errnoCode(e) === "EACCES" || /Permission denied|EACCES|Access denied/i.test(msg);
}

/** The KilnError for a port that would not open, with the fix for each cause. */
export function portOpenError(path: string, e: unknown, holder?: string): KilnError {
  const msg = e instanceof Error ? e.message : String(e);
  if (isPermissionDenied(e)) {
    return new KilnError("KILN_PORT_PERMISSION", ExitCode.device, `permission denied opening ${path}`, {
      cause: e,
      hint: "add yourself to the port's group ('sudo usermod -aG dialout $USER' on Debian/Ubuntu, 'uucp' on Arch), log in again, or install the board's udev rules; see docs/monitor.md#permissions",
      data: { port: path },
    });
  }
  if (isPortBusy(e)) {
    return new KilnError("KILN_PORT_BUSY", ExitCode.device, `${path} is in use by another program${holder ? ` (${holder})` : ""}`, {
      cause: e,
      hint: "close the other serial monitor or program using the port (a 'kiln upload' stops a kiln monitor by itself); 'fuser' or 'lsof' shows who holds it",
      data: { port: path },
    });
  }
  return new KilnError("KILN_PORT_OPEN_FAILED", ExitCode.device, `cannot open ${path}: ${msg}`, { cause: e, data: { port: path }, hint: "check the cable and that the port is the board's ('kiln devices')" });
}
