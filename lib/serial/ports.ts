/**
 * Serial port listing (flashing.md §6.1). node-serialport's `list()` on Linux
 * spawns `udevadm`, which containers and minimal CI images do not have; there
 * kiln reads `/sys/class/tty` and walks up to the USB device's attributes
 * instead, as pyserial's list_ports_linux does.
 */
import { readdir, readFile, realpath } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { platform as hostPlatform } from "node:os";
import { errnoCode } from "../core/errors.js";

export interface PortInfo {
  /** Device path (`/dev/ttyACM0`, `COM3`). */
  path: string;
  /** USB vendor id, 4 lower-case hex digits. */
  vid?: string | undefined;
  /** USB product id, 4 lower-case hex digits. */
  pid?: string | undefined;
  serialNumber?: string | undefined;
  manufacturer?: string | undefined;
  /** The USB product string (`Arduino Uno`, `CP2102 USB to UART Bridge Controller`). */
  product?: string | undefined;
  /** A one-line human description: the USB interface name, else product, else driver. */
  description?: string | undefined;
}

export interface ListPortsOptions {
  /**
   * Read this directory as `/sys` (tests give a fake tree). Setting it skips
   * udev: the listing comes from the tree alone.
   */
  sysRoot?: string;
  /** Where device nodes live (default `/dev`); the listed paths are `<devDir>/<name>`. */
  devDir?: string;
  /** Ask node-serialport (udev on Linux) first (default true unless sysRoot is set). */
  useUdev?: boolean;
}

/** `0x2A03`, `2a03`, `0X303A` → `2a03`; undefined for anything that is not 1–4 hex digits. */
export function normalizeUsbId(id: string | number | undefined | null): string | undefined {
  if (id === undefined || id === null) return undefined;
  const text = typeof id === "number" ? id.toString(16) : id.trim().replace(/^0x/i, "");
  if (!/^[0-9a-fA-F]{1,4}$/.test(text)) return undefined;
  return text.toLowerCase().padStart(4, "0");
}

/** `vvvv:pppp` for a port with USB ids, else undefined. */
export function usbIdOf(port: PortInfo): string | undefined {
  return port.vid && port.pid ? `${port.vid}:${port.pid}` : undefined;
}

/**
 * Every serial port on this machine, sorted by path. On Linux: node-serialport
 * (udev) unless `useUdev` is false or a `sysRoot` is given; if that fails or
 * finds nothing, `/sys/class/tty`. Elsewhere: node-serialport. Never throws for
 * a missing udev; a failing sysfs read of one port skips that port.
 */
export async function listPorts(opts: ListPortsOptions = {}): Promise<PortInfo[]> {
  const linux = hostPlatform() === "linux" || opts.sysRoot !== undefined;
  const useUdev = opts.useUdev ?? opts.sysRoot === undefined;
  let ports: PortInfo[] = [];
  let udevFailed: unknown;
  if (useUdev) {
    try {
      ports = await listWithSerialport();
    } catch (e) {
      udevFailed = e;
    }
  }
  if (linux) {
    const sys = await listFromSysfs(opts.sysRoot ?? "/sys", opts.devDir ?? "/dev");
    if (ports.length === 0) ports = sys;
    else {
      // udev knows the ids; sysfs adds the product and interface names udev's list leaves out.
      const byPath = new Map(sys.map((p) => [p.path, p]));
      ports = ports.map((p): PortInfo => ({ ...byPath.get(p.path), ...definedOnly(p), path: p.path }));
    }
  } else if (udevFailed !== undefined) {
    throw udevFailed;
  }
  return ports.sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== "")) as Partial<T>;
}

async function listWithSerialport(): Promise<PortInfo[]> {
  const { SerialPort } = await import("serialport");
  const raw = await SerialPort.list();
  return raw.map((p) => {
    const info: PortInfo = { path: p.path };
    const vid = normalizeUsbId(p.vendorId);
    const pid = normalizeUsbId(p.productId);
    if (vid) info.vid = vid;
    if (pid) info.pid = pid;
    if (p.serialNumber) info.serialNumber = p.serialNumber;
    if (p.manufacturer) info.manufacturer = p.manufacturer;
    const friendly = (p as { friendlyName?: string }).friendlyName;
    if (friendly) info.description = friendly;
    return info;
  });
}

async function readAttr(dir: string, name: string): Promise<string | undefined> {
  try {
    const v = (await readFile(join(dir, name), "utf8")).trim();
    return v === "" ? undefined : v;
  } catch (e) {
    const code = errnoCode(e);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES" || code === "EINVAL" || code === "EIO") return undefined;
    throw e;
  }
}

async function realpathOrUndefined(p: string): Promise<string | undefined> {
  try {
    return await realpath(p);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR" || errnoCode(e) === "ELOOP") return undefined;
    throw e;
  }
}

/**
 * The sysfs listing: every `<sysRoot>/class/tty/NAME` with a `device` link,
 * except ports of the `platform` subsystem (the 8250 placeholders ttyS0–31
 * every PC kernel creates, which pyserial hides too). USB attributes come from
 * the nearest ancestor of the device directory holding `idVendor`.
 */
export async function listFromSysfs(sysRoot: string, devDir = "/dev"): Promise<PortInfo[]> {
  const classDir = join(sysRoot, "class", "tty");
  let names: string[];
  try {
    names = await readdir(classDir);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR" || errnoCode(e) === "EACCES") return [];
    throw e;
  }
  const stopAt = resolve(sysRoot);
  const out: PortInfo[] = [];
  for (const name of names) {
    const device = await realpathOrUndefined(join(classDir, name, "device"));
    if (!device) continue;
    const subsystemDir = await realpathOrUndefined(join(device, "subsystem"));
    const subsystem = subsystemDir ? basename(subsystemDir) : undefined;
    if (subsystem === "platform") continue;
    // 8250 placeholders on kernels with the serial-base bus: a UART type of 0 is "no UART here".
    if ((await readAttr(join(classDir, name), "type")) === "0") continue;
    const info: PortInfo = { path: join(devDir, name) };
    const usb = await findUsbDevice(device, stopAt);
    if (usb) {
      info.vid = normalizeUsbId(await readAttr(usb, "idVendor"));
      info.pid = normalizeUsbId(await readAttr(usb, "idProduct"));
      info.serialNumber = await readAttr(usb, "serial");
      info.manufacturer = await readAttr(usb, "manufacturer");
      info.product = await readAttr(usb, "product");
      // ttyACM: the device dir is the USB interface; ttyUSB: its parent is.
      const iface = (await readAttr(device, "interface")) ?? (await readAttr(dirname(device), "interface"));
      info.description = iface ?? info.product;
    } else {
      const driver = await realpathOrUndefined(join(device, "driver"));
      const driverName = driver ? basename(driver) : undefined;
      info.description = /^ttyS\d+$/.test(name) || driverName === "port" ? "built-in serial port" : (driverName ?? subsystem);
    }
    out.push(definedOnly(info) as PortInfo);
  }
  return out;
}

async function findUsbDevice(start: string, stopAt: string): Promise<string | undefined> {
  let dir = start;
  for (let i = 0; i < 8; i++) {
    if ((await readAttr(dir, "idVendor")) !== undefined) return dir;
    const up = dirname(dir);
    if (up === dir || !up.startsWith(stopAt)) return undefined;
    dir = up;
  }
  return undefined;
}

/** USB-serial bridge chips (flashing.md §6): a board behind one of these is a guess, not a match. */
export const KNOWN_BRIDGES: Readonly<Record<string, string>> = {
  "10c4:ea60": "Silicon Labs CP210x",
  "1a86:7523": "WCH CH340/CH341",
  "1a86:55d4": "WCH CH9102",
  "0403:6001": "FTDI FT232R",
  "0403:6010": "FTDI FT2232",
  "0403:6014": "FTDI FT232H",
  "0403:6015": "FTDI FT-X",
  "303a:1001": "Espressif USB-Serial/JTAG",
};

/** What `kiln devices` and error messages need to know about boards: id, name and USB ids. */
export interface BoardUsbIds {
  id: string;
  name: string;
  usbIds: readonly string[];
}

export interface PortGuess {
  /** Boards whose USB ids match the port (several boards share ids, e.g. Uno clones). */
  boards: Array<{ id: string; name: string }>;
  /** The USB-serial bridge chip, when the ids are a known bridge's. */
  bridge?: string | undefined;
}

/** Which boards (and which bridge chip) a port's VID:PID points to. */
export function guessBoards(port: PortInfo, boards: readonly BoardUsbIds[]): PortGuess {
  const id = usbIdOf(port);
  if (!id) return { boards: [] };
  const matched = boards.filter((b) => b.usbIds.some((u) => u.toLowerCase() === id)).map((b) => ({ id: b.id, name: b.name }));
  return { boards: matched, bridge: KNOWN_BRIDGES[id] };
}

/** One line per port for messages: `/dev/ttyACM0  2341:0043  Arduino Uno (SN 8573…)`. */
export function describePort(port: PortInfo): string {
  const parts = [port.path];
  const id = usbIdOf(port);
  if (id) parts.push(id);
  const what = port.description ?? port.product ?? port.manufacturer;
  if (what) parts.push(what);
  if (port.serialNumber) parts.push(`(serial ${port.serialNumber})`);
  return parts.join("  ");
}
