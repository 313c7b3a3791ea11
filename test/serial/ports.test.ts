import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join, relative, dirname } from "node:path";
import { listPorts, findPort, waitForNewPort, touch1200, normalizeUsbId, guessBoards, type PortInfo, type PortOpener, type ModemLines } from "../../lib/serial/index.js";
import { isKilnError } from "../../lib/core/errors.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { startPtyPair } from "../helpers/pty.js";

async function link(target: string, at: string): Promise<void> {
  await mkdir(dirname(at), { recursive: true });
  await symlink(relative(dirname(at), target), at);
}

async function attrs(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [k, v] of Object.entries(files)) await writeFile(join(dir, k), `${v}\n`);
}

/**
 * A /sys tree as a Linux kernel lays it out: an Uno (ttyACM, CDC interface),
 * a CH340 (ttyUSB, usb-serial driver), an 8250 placeholder of the platform
 * bus, one with UART type 0, a virtual console (no device link).
 */
async function fakeSys(root: string): Promise<void> {
  const usb1 = join(root, "devices/pci0000:00/0000:00:14.0/usb1");
  const uno = join(usb1, "1-1");
  await attrs(uno, { idVendor: "2341", idProduct: "0043", serial: "85736323838351F0E1A1", manufacturer: "Arduino (www.arduino.cc)", product: "Arduino Uno" });
  const unoIf = join(uno, "1-1:1.0");
  await attrs(unoIf, { interface: "CDC Abstract Control Model (ACM)" });
  await mkdir(join(root, "bus/usb"), { recursive: true });
  await link(join(root, "bus/usb"), join(unoIf, "subsystem"));
  await mkdir(join(unoIf, "tty/ttyACM0"), { recursive: true });
  await link(unoIf, join(unoIf, "tty/ttyACM0/device"));
  await link(join(unoIf, "tty/ttyACM0"), join(root, "class/tty/ttyACM0"));

  const ch = join(usb1, "1-2");
  await attrs(ch, { idVendor: "1A86", idProduct: "7523", product: "USB Serial" });
  const chIf = join(ch, "1-2:1.0");
  await mkdir(chIf, { recursive: true });
  const chPort = join(chIf, "ttyUSB0");
  await mkdir(join(root, "bus/usb-serial"), { recursive: true });
  await mkdir(join(chPort, "tty/ttyUSB0"), { recursive: true });
  await link(join(root, "bus/usb-serial"), join(chPort, "subsystem"));
  await link(chPort, join(chPort, "tty/ttyUSB0/device"));
  await link(join(chPort, "tty/ttyUSB0"), join(root, "class/tty/ttyUSB0"));

  const serial8250 = join(root, "devices/platform/serial8250");
  await mkdir(join(serial8250, "tty/ttyS3"), { recursive: true });
  await mkdir(join(root, "bus/platform"), { recursive: true });
  await link(join(root, "bus/platform"), join(serial8250, "subsystem"));
  await link(serial8250, join(serial8250, "tty/ttyS3/device"));
  await link(join(serial8250, "tty/ttyS3"), join(root, "class/tty/ttyS3"));

  const pnp = join(root, "devices/pnp0/00:00/00:00:0/00:00:0.0");
  for (const [n, type] of [["ttyS0", "4"], ["ttyS1", "0"]] as const) {
    await attrs(join(pnp, "tty", n), { type });
    await link(pnp, join(pnp, "tty", n, "device"));
    await link(join(pnp, "tty", n), join(root, "class/tty", n));
  }
  await mkdir(join(root, "devices/virtual/tty/tty0"), { recursive: true });
  await link(join(root, "devices/virtual/tty/tty0"), join(root, "class/tty/tty0"));
}

describe("listPorts without udev (sysfs)", () => {
  it("reads ids, serial, manufacturer and product from the USB device above each tty", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    await fakeSys(join(dir, "sys"));
    const ports = await listPorts({ sysRoot: join(dir, "sys") });
    assert.deepEqual(ports, [
      { path: "/dev/ttyACM0", vid: "2341", pid: "0043", serialNumber: "85736323838351F0E1A1", manufacturer: "Arduino (www.arduino.cc)", product: "Arduino Uno", description: "CDC Abstract Control Model (ACM)" },
      { path: "/dev/ttyS0", description: "built-in serial port" },
      { path: "/dev/ttyUSB0", vid: "1a86", pid: "7523", product: "USB Serial", description: "USB Serial" },
    ]);
  });

  it("returns nothing for a missing /sys", async () => {
    assert.deepEqual(await listPorts({ sysRoot: "/nonexistent-sys" }), []);
  });

  it("works here, where udevadm is missing (falls back instead of failing)", async () => {
    const ports = await listPorts();
    assert.ok(Array.isArray(ports));
  });

  it("kiln devices --json guesses the board from the board data's USB ids", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    await fakeSys(join(dir, "sys"));
    const r = await runCli(["devices", "--json", "--sys-root", join(dir, "sys")]);
    assert.equal(r.code, 0, r.stderr);
    const result = r.events.find((e) => e.type === "result") as { ports: Array<PortInfo & { boards: Array<{ id: string }>; bridge?: string }> };
    const uno = result.ports.find((p) => p.path === "/dev/ttyACM0")!;
    assert.ok(uno.boards.some((b) => b.id === "uno"), JSON.stringify(uno));
    const ch = result.ports.find((p) => p.path === "/dev/ttyUSB0")!;
    assert.equal(ch.bridge, "WCH CH340/CH341");
    const text = await runCli(["devices", "--sys-root", join(dir, "sys")]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^PORT\s+VID:PID\s+SERIAL\s+MANUFACTURER\s+DESCRIPTION\s+BOARD$/m);
    assert.match(text.stdout, /\/dev\/ttyACM0\s+2341:0043\s+85736323838351F0E1A1\s+Arduino \(www\.arduino\.cc\)\s+CDC .*\buno\b/);
    assert.match(text.stdout, /\/dev\/ttyUSB0\s+1a86:7523.*\(WCH CH340\/CH341 adapter\)/);
  });
});

const uno: PortInfo = { path: "/dev/ttyACM0", vid: "2341", pid: "0043", product: "Arduino Uno" };
const ch340: PortInfo = { path: "/dev/ttyUSB0", vid: "1a86", pid: "7523" };
const ftdi: PortInfo = { path: "/dev/ttyUSB1", vid: "0403", pid: "6001" };
const other: PortInfo = { path: "/dev/ttyACM1", vid: "1234", pid: "5678" };
const builtin: PortInfo = { path: "/dev/ttyS0" };
const unoIds = ["2341:0043", "2a03:0043"];

async function rejectsWith(p: Promise<unknown>, code: string, exitCode: number, text?: RegExp): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(isKilnError(e), String(e));
    assert.equal(e.code, code);
    assert.equal(e.exitCode, exitCode);
    if (text) assert.match(`${e.message}\n${e.hint ?? ""}`, text);
    return e.message;
  }
  assert.fail(`expected ${code}`);
}

describe("findPort", () => {
  it("normalises ids", () => {
    assert.equal(normalizeUsbId("0x2A03"), "2a03");
    assert.equal(normalizeUsbId("0X303A"), "303a");
    assert.equal(normalizeUsbId("43"), "0043");
    assert.equal(normalizeUsbId("xyz"), undefined);
    assert.deepEqual(guessBoards(uno, [{ id: "uno", name: "Arduino Uno", usbIds: unoIds }]).boards, [{ id: "uno", name: "Arduino Uno" }]);
  });

  it("prefers the board's ids, then a bridge, then any USB port; never a built-in port", async () => {
    assert.equal(await findPort({ usbIds: unoIds, ports: [builtin, ch340, uno] }), "/dev/ttyACM0");
    assert.equal(await findPort({ usbIds: unoIds, ports: [builtin, ch340, other] }), "/dev/ttyUSB0");
    assert.equal(await findPort({ usbIds: unoIds, ports: [builtin, other] }), "/dev/ttyACM1");
    await rejectsWith(findPort({ usbIds: unoIds, boardName: "Arduino Uno", ports: [builtin] }), "KILN_PORT_NOT_FOUND", 7, /no serial port found for Arduino Uno[\s\S]*\/dev\/ttyS0[\s\S]*--port/);
    await rejectsWith(findPort({ usbIds: unoIds, ports: [] }), "KILN_PORT_NOT_FOUND", 7, /no serial ports found/);
  });

  it("fails with the candidates when several ports match", async () => {
    const msg = await rejectsWith(findPort({ usbIds: [], ports: [ch340, ftdi, uno] }), "KILN_PORT_AMBIGUOUS", 7, /upload_port/);
    assert.match(msg, /\/dev\/ttyUSB0[\s\S]*\/dev\/ttyUSB1/);
    await rejectsWith(findPort({ usbIds: unoIds, ports: [uno, { ...uno, path: "/dev/ttyACM7" }] }), "KILN_PORT_AMBIGUOUS", 7);
  });

  it("takes an explicit path that exists even if unlisted (ptys), and rejects one that does not, listing the ports", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir);
    t.after(pair.stop);
    assert.equal(await findPort({ explicit: pair.a, usbIds: unoIds, ports: [uno] }), pair.a);
    await rejectsWith(findPort({ explicit: join(dir, "nope"), usbIds: unoIds, ports: [uno, ch340] }), "KILN_PORT_NOT_FOUND", 7, /nope does not exist[\s\S]*\/dev\/ttyACM0 {2}2341:0043 {2}Arduino Uno[\s\S]*\/dev\/ttyUSB0/);
  });

  it("matches a glob against the listing and the filesystem", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir, { names: ["ttyFAKE0", "other"] });
    t.after(pair.stop);
    assert.equal(await findPort({ explicit: join(dir, "ttyFAKE*"), usbIds: [], ports: [uno] }), pair.a);
    assert.equal(await findPort({ explicit: "/dev/ttyACM*", usbIds: [], ports: [uno, ch340] }), "/dev/ttyACM0");
    await rejectsWith(findPort({ explicit: "/dev/ttyUSB*", usbIds: [], ports: [ch340, ftdi] }), "KILN_PORT_AMBIGUOUS", 7);
    await rejectsWith(findPort({ explicit: join(dir, "nomatch*"), usbIds: [], ports: [uno] }), "KILN_PORT_NOT_FOUND", 7);
  });
});

describe("1200-baud touch and the bootloader's new port", () => {
  it("touch1200 opens at 1200 baud, drops DTR and closes (recorded; a pty has no DTR)", async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir);
    t.after(pair.stop);
    const calls: string[] = [];
    const { openSerialPort } = await import("../../lib/serial/index.js");
    const recording: PortOpener = async (o) => {
      calls.push(`open ${o.baudRate}`);
      const real = await openSerialPort(o);
      return {
        ...real,
        setLines: async (l: ModemLines) => {
          calls.push(`dtr=${Number(l.dtr)} rts=${Number(l.rts)}`);
          return real.setLines(l);
        },
        close: async () => {
          calls.push("close");
          return real.close();
        },
      };
    };
    await touch1200(pair.a, { opener: recording });
    assert.deepEqual(calls, ["open 1200", "dtr=0 rts=1", "close"]);
    await touch1200(pair.a); // the real thing on a pty: the DTR error is ignored
  });

  it("waitForNewPort returns the first new path, else the original, else undefined / exit 7", async () => {
    let n = 0;
    const list = async (): Promise<PortInfo[]> => (++n >= 3 ? [uno, { path: "/dev/ttyACM1" }] : [uno]);
    assert.equal(await waitForNewPort([uno], 2000, { list, pollMs: 10 }), "/dev/ttyACM1");
    const still = async (): Promise<PortInfo[]> => [uno];
    assert.equal(await waitForNewPort([uno], 50, { list: still, pollMs: 10, originalPath: uno.path }), uno.path);
    assert.equal(await waitForNewPort(["/dev/ttyACM0"], 50, { list: still, pollMs: 10 }), undefined);
    await rejectsWith(waitForNewPort([uno], 50, { list: async () => [], pollMs: 10, originalPath: uno.path }), "KILN_PORT_NOT_FOUND", 7, /double-tap/);
  });
});
