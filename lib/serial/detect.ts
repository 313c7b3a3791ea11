/**
 * Choosing the port for an upload or a monitor (flashing.md §6.2–6.5), the
 * 1200-baud touch and the wait for a bootloader's new port.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { ExitCode, KilnError, errnoCode } from "../core/errors.js";
import { fnmatchSource, isGlob } from "../core/glob.js";
import { openSerialPort, isNoModemLines, type PortOpener } from "./connection.js";
import { describePort, KNOWN_BRIDGES, listPorts, usbIdOf, type ListPortsOptions, type PortInfo } from "./ports.js";

const CHOOSE_HINT = "choose one with --port PATH, or set upload_port (monitor_port for the monitor) in platformio.ini";

function portList(ports: readonly PortInfo[]): string {
  return ports.length ? ports.map((p) => `  ${describePort(p)}`).join("\n") : "  (no serial ports found)";
}

/** No port could be chosen (or an explicit one does not exist). Exit code 7. */
export class PortNotFoundError extends KilnError {
  constructor(message: string, readonly ports: readonly PortInfo[], hint = CHOOSE_HINT) {
    super("KILN_PORT_NOT_FOUND", ExitCode.device, `${message}\nserial ports:\n${portList(ports)}`, { hint, data: { ports } });
  }
}

/** Several ports match and nothing says which. Exit code 7. */
export class PortAmbiguousError extends KilnError {
  constructor(message: string, readonly candidates: readonly PortInfo[], readonly ports: readonly PortInfo[]) {
    super("KILN_PORT_AMBIGUOUS", ExitCode.device, `${message}:\n${portList(candidates)}`, { hint: CHOOSE_HINT, data: { candidates, ports } });
  }
}

export interface FindPortOptions {
  /** `--port` / `upload_port` / `monitor_port`: a path, or a glob (`/dev/ttyUSB*`). */
  explicit?: string | undefined;
  /** The board's USB ids, `vvvv:pppp`. */
  usbIds: readonly string[];
  /** For messages ("no port for Arduino Uno"). */
  boardName?: string | undefined;
  /** The port listing to choose from (default: listPorts()). */
  ports?: readonly PortInfo[] | undefined;
  listOptions?: ListPortsOptions | undefined;
}

function globRegExp(glob: string): RegExp {
  return new RegExp(`^${fnmatchSource(glob)}$`);
}

/** Paths in the glob's directory that match it (ptys and by-id links are not in the listing). */
async function globFiles(glob: string): Promise<string[]> {
  const dir = dirname(glob);
  if (isGlob(dir)) return [];
  const re = globRegExp(basename(glob));
  try {
    return (await readdir(dir)).filter((n) => re.test(n)).map((n) => join(dir, n));
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR" || errnoCode(e) === "EACCES") return [];
    throw e;
  }
}

/** Whether a path exists (ENOENT/ENOTDIR: no; anything else is thrown). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return false;
    throw e;
  }
}

/** Windows port names (`COM3`) are not files. */
const isWindowsPortName = (s: string): boolean => /^(\\\\\.\\)?COM\d+$/i.test(s);

/**
 * The port to use. In order: the explicit path (must exist) or glob; else the
 * one port whose VID:PID is the board's; else the one known USB-serial bridge;
 * else the one USB port. Non-USB ports (`ttyS*`) are never chosen by
 * themselves. Throws PortNotFoundError or PortAmbiguousError (exit 7), both
 * listing the ports and how to choose.
 */
export async function findPort(opts: FindPortOptions): Promise<string> {
  const ports = opts.ports ? [...opts.ports] : await listPorts(opts.listOptions);
  const ids = new Set(opts.usbIds.map((u) => u.toLowerCase()));
  const matchesBoard = (p: PortInfo): boolean => ids.has(usbIdOf(p) ?? "");
  const explicit = opts.explicit?.trim();

  if (explicit) {
    if (!isGlob(explicit)) {
      if (isWindowsPortName(explicit) || ports.some((p) => p.path === explicit) || (await exists(explicit))) return explicit;
      throw new PortNotFoundError(`port ${explicit} does not exist`, ports, `check the cable, then pick one of the ports above with --port or upload_port`);
    }
    const re = globRegExp(isAbsolute(explicit) ? explicit : resolve(explicit));
    const fromList = ports.filter((p) => re.test(p.path) || globRegExp(explicit).test(p.path));
    const seen = new Set(fromList.map((p) => p.path));
    const fromFiles = (await globFiles(explicit)).filter((f) => !seen.has(f)).map((path): PortInfo => ({ path }));
    const all = [...fromList, ...fromFiles].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
    if (all.length === 1) return all[0]!.path;
    if (all.length === 0) throw new PortNotFoundError(`no port matches '${explicit}'`, ports);
    const board = all.filter(matchesBoard);
    if (board.length === 1) return board[0]!.path;
    throw new PortAmbiguousError(`${all.length} ports match '${explicit}'`, all, ports);
  }

  const forWhat = opts.boardName ? ` for ${opts.boardName}` : "";
  const stages: Array<[string, (p: PortInfo) => boolean]> = [
    [`ports match the USB ids${forWhat} (${[...ids].join(", ")})`, matchesBoard],
    ["USB-serial adapters are connected", (p) => (usbIdOf(p) ?? "") in KNOWN_BRIDGES],
    ["USB serial ports are connected", (p) => p.vid !== undefined],
  ];
  for (const [what, test] of stages) {
    const hits = ports.filter(test);
    if (hits.length === 1) return hits[0]!.path;
    if (hits.length > 1) throw new PortAmbiguousError(`${hits.length} ${what}`, hits, ports);
  }
  throw new PortNotFoundError(`no serial port found${forWhat}`, ports, `plug the board in (a data cable, not a charge-only one), check 'kiln devices', or ${CHOOSE_HINT}`);
}

export interface TouchOptions {
  opener?: PortOpener | undefined;
}

/**
 * The 1200-baud touch that makes Leonardo/Micro-style (Caterina) and SAMD
 * bootloaders start: open at 1200 baud, drop DTR, close. A port without modem
 * lines (a pty in tests) is fine: the DTR error is ignored.
 */
export async function touch1200(path: string, opts: TouchOptions = {}): Promise<void> {
  const open = opts.opener ?? openSerialPort;
  const conn = await open({ path, baudRate: 1200, hupcl: true });
  try {
    await conn.setLines({ dtr: false, rts: true }).catch((e: unknown) => {
      if (!isNoModemLines(e)) throw e;
    });
  } finally {
    await conn.close();
  }
}

export interface WaitForPortOptions {
  /** The port that was touched: returned when no new port appears but it still exists. */
  originalPath?: string | undefined;
  pollMs?: number | undefined;
  listOptions?: ListPortsOptions | undefined;
  /** The listing to poll (default listPorts(listOptions)). */
  list?: (() => Promise<PortInfo[]>) | undefined;
  signal?: AbortSignal | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * After a touch, the bootloader's port: the first path not in `before`, polled
 * every 250 ms for up to `timeoutMs` (8000 in PlatformIO). When none appears:
 * undefined if no `originalPath` was given (the caller keeps its port), else
 * `originalPath` if it still exists, else PortNotFoundError (exit 7).
 */
export async function waitForNewPort(before: ReadonlyArray<PortInfo | string>, timeoutMs: number, opts: WaitForPortOptions = {}): Promise<string | undefined> {
  const known = new Set(before.map((p) => (typeof p === "string" ? p : p.path)));
  const list = opts.list ?? (() => listPorts(opts.listOptions));
  const deadline = Date.now() + timeoutMs;
  let last: PortInfo[] = [];
  for (;;) {
    if (opts.signal?.aborted) break;
    last = await list();
    const fresh = last.find((p) => !known.has(p.path));
    if (fresh) return fresh.path;
    if (Date.now() >= deadline) break;
    await sleep(Math.min(opts.pollMs ?? 250, Math.max(0, deadline - Date.now())));
  }
  if (!opts.originalPath) return undefined;
  if ((last.some((p) => p.path === opts.originalPath) || (await exists(opts.originalPath)))) return opts.originalPath;
  throw new PortNotFoundError(`no bootloader port appeared within ${Math.round(timeoutMs / 1000)} s`, last, "press the board's reset button twice quickly (double-tap) and run the upload again, or hold BOOTSEL (RP2040) while plugging it in");
}
