#!/usr/bin/env node
// Remote builds over loopback: `kiln build --remote always` on a paired `kiln peer serve` against
// `kiln build --remote never` on the same machine, AVR Blink with Debian's gcc-avr and core.
//
//   npm run build && node scripts/bench/remote.mjs [--runs 10] [--warmup 2]
//
// Peer and client are two KILN_HOMEs on this machine, so the difference between the two is what
// the remote path adds (probe, file manifest, upload, event stream, artifact download and checks),
// not a faster or slower compiler. Scenarios, one hyperfine -N run each:
//   cold  the client's .kiln removed before each run (the core stays in each side's user cache):
//         local; remote with the peer's workspace warm (the peer has nothing to compile); remote with
//         the peer's workspace removed (the peer compiles what local compiles); remote with the
//         peer's workspaces and blobs removed (the files are uploaded again too).
//   noop  nothing changed: local no-op against remote no-op.
// Targets (issue 6): a remote build adds ≤ 0.3 s to the local one; an unchanged remote rebuild
// takes ≤ 0.2 s more than a local no-op. Needs hyperfine, gcc-avr, arduino-core-avr.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hyperfine, median, printTable, requireTools } from "./lib.mjs";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = opt("runs", 10);
const WARMUP = opt("warmup", 2);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const kiln = join(repo, "bin", "kiln.js");
const CORE = "/usr/share/arduino/hardware/arduino/avr";
const BLINK = "/usr/share/doc/arduino/examples/01.Basics/Blink/Blink.ino";
const TARGET_ADDED_S = 0.3;
const TARGET_NOOP_ADDED_S = 0.2;

requireTools(["hyperfine", "avr-gcc"]);
for (const p of [CORE, BLINK]) if (!existsSync(p)) throw new Error(`benchmark needs ${p} (apt-get install arduino-core-avr arduino)`);

const root = mkdtempSync(join(tmpdir(), "kiln-bench-remote-"));
const peerHome = join(root, "peer-home");
const clientHome = join(root, "client-home");
const peerLog = join(root, "peer.ndjson");
let peer;

// The peer is stopped however this script ends (a thrown error, Ctrl-C, a normal exit).
process.on("exit", () => {
  if (peer && peer.exitCode === null) peer.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    void stopPeer().finally(() => {
      rmSync(root, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

try {
  await main();
} finally {
  await stopPeer();
  rmSync(root, { recursive: true, force: true });
}

async function main() {
  // Two identical copies of Blink: one built locally, one on the peer (they share no build dir).
  const ini = `[env:uno]\nplatform = atmelavr\nboard = uno\nframework = arduino\nplatform_packages =\n  toolchain-atmelavr @ symlink:///usr\n  framework-arduino-avr @ symlink://${CORE}\n  tool-avrdude @ symlink:///usr\n`;
  const local = join(root, "local");
  const remote = join(root, "remote");
  for (const dir of [local, remote]) {
    mkdirSync(join(dir, "src"), { recursive: true });
    writeFileSync(join(dir, "platformio.ini"), ini);
    cpSync(BLINK, join(dir, "src", "Blink.ino"));
  }
  mkdirSync(peerHome);
  mkdirSync(clientHome);

  const listening = await startPeer();
  const env = { ...process.env, KILN_HOME: clientHome, CI: "1", NO_COLOR: "1" };
  delete env.KILN_REMOTE;
  delete env.KILN_CACHE_DIR;
  execFileSync(process.execPath, [kiln, "peer", "pair", listening.url, "--pin", listening.pin, "--code", listening.code], { env, stdio: ["ignore", "ignore", "inherit"] });
  // Fill each side's core cache first: "cold" below means a cold project, not a cold core.
  execFileSync(process.execPath, [kiln, "build", "-d", local, "--remote", "never", "-q"], { env, stdio: "inherit" });
  execFileSync(process.execPath, [kiln, "build", "-d", remote, "--remote", "always", "-q"], { env, stdio: "inherit" });

  const build = (dir, mode) => `${process.execPath} ${kiln} build -d ${dir} --remote ${mode} -q`;
  const workspaces = join(peerHome, "peer", "workspaces");
  const blobs = join(peerHome, "peer", "blobs");
  const results = [];
  process.stderr.write("cold…\n");
  results.push(
    ...hyperfine(
      "cold",
      [
        { name: "local", cmd: build(local, "never"), prepare: `rm -rf ${join(local, ".kiln")}` },
        { name: "remote, peer warm", cmd: build(remote, "always"), prepare: `rm -rf ${join(remote, ".kiln")}` },
        { name: "remote, peer workspace cold", cmd: build(remote, "always"), prepare: `rm -rf ${join(remote, ".kiln")} ${workspaces}` },
        { name: "remote, peer workspace + blobs cold", cmd: build(remote, "always"), prepare: `rm -rf ${join(remote, ".kiln")} ${workspaces} ${blobs}` },
      ],
      { runs: RUNS, warmup: WARMUP, env },
    ),
  );
  process.stderr.write("noop…\n");
  results.push(
    ...hyperfine(
      "noop",
      [
        { name: "local", cmd: build(local, "never") },
        { name: "remote", cmd: build(remote, "always") },
      ],
      { runs: RUNS, warmup: WARMUP, env },
    ),
  );

  printTable(`remote builds over loopback, AVR Blink (uno), ${cpus().length} CPUs, Node ${process.version}`, results, {
    ratios: [
      ["cold", "remote, peer warm", "local"],
      ["cold", "remote, peer workspace cold", "local"],
      ["cold", "remote, peer workspace + blobs cold", "local"],
      ["noop", "remote", "local"],
    ],
  });
  const get = (scenario, name) => median(results.find((r) => r.scenario === scenario && r.name === name));
  const added = (scenario, name, base) => (get(scenario, name) - get(scenario, base)) / 1000;
  const verdict = (s, max) => `${s >= 0 ? "+" : ""}${s.toFixed(3)} s (target ≤ ${max} s: ${s <= max ? "met" : "NOT met"})`;
  console.log("\n| Added (median remote − median local) | Seconds |\n|---|---:|");
  for (const name of ["remote, peer warm", "remote, peer workspace cold", "remote, peer workspace + blobs cold"]) {
    console.log(`| cold: ${name} | ${verdict(added("cold", name, "local"), TARGET_ADDED_S)} |`);
  }
  console.log(`| noop: remote | ${verdict(added("noop", "remote", "local"), TARGET_NOOP_ADDED_S)} |`);
  console.log(`\nLoad average (1 min) at the end: ${loadavg()[0].toFixed(2)}; ${RUNS} runs, ${WARMUP} warm-ups, hyperfine -N.`);
}

/** `kiln peer serve --port 0 --json` with its output in a file (a pipe nobody reads while hyperfine runs would fill up). */
async function startPeer() {
  const fd = openSync(peerLog, "w");
  const env = { ...process.env, KILN_HOME: peerHome, CI: "1", NO_COLOR: "1" };
  delete env.KILN_CACHE_DIR;
  peer = spawn(process.execPath, [kiln, "peer", "serve", "--port", "0", "--json"], { env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const first = readFileSync(peerLog, "utf8").split("\n")[0];
    if (first && readFileSync(peerLog, "utf8").includes("\n")) {
      const event = JSON.parse(first);
      if (event.type !== "listening") throw new Error(`kiln peer serve did not start: ${first}`);
      return event;
    }
    if (peer.exitCode !== null) throw new Error(`kiln peer serve exited with ${peer.exitCode}: ${readFileSync(peerLog, "utf8")}`);
    if (Date.now() > deadline) throw new Error(`kiln peer serve printed nothing in 20 s: ${readFileSync(peerLog, "utf8")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGINT (the peer cancels its builds and removes its admin socket), SIGKILL after 10 s. */
async function stopPeer() {
  if (!peer || peer.exitCode !== null || peer.signalCode !== null) return;
  const exited = new Promise((r) => peer.once("exit", r));
  peer.kill("SIGINT");
  const timer = setTimeout(() => peer.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}
