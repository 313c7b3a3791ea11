/**
 * Remote builds end to end, with real kiln processes on 127.0.0.1: a
 * `kiln peer serve` (real TLS, its own KILN_HOME) and clients that pair with
 * it and build on it. Compilers are the real host gcc and Debian's avr-gcc;
 * the upload drives the real avrdude to the fake Optiboot on a socat pty.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, cp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { kilnBin, repoRoot, runCli, tempDir, writeTree, type CliResult } from "../helpers/cli.js";
import { spawnKiln, waitUntil, type RunningKiln } from "../helpers/serial-device.js";
import { startPtyExec } from "../helpers/pty.js";
import { alive, requireTool } from "../helpers/tools.js";
import { debianAvrIni } from "../helpers/avr.js";

interface Peer {
  proc: RunningKiln;
  home: string;
  url: string;
  port: number;
  pin: string;
  code: string;
  /** The peer's log lines so far (its `peer-log` events). */
  logs(): string[];
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const sha256 = async (file: string): Promise<string> => createHash("sha256").update(await readFile(file)).digest("hex");

async function startPeer(home: string, args: string[] = [], env: Record<string, string> = {}): Promise<Peer> {
  const proc = spawnKiln(["peer", "serve", "--port", "0", "--json", "--min-free", "0", ...args], { env: { KILN_HOME: home, ...env } });
  await proc.waitForStdout(/"type":"listening"/, 15_000);
  const first = JSON.parse(proc.stdout().split("\n").find((l) => l.includes('"listening"'))!) as { url: string; pin: string; code: string };
  const logs = (): string[] =>
    proc
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"peer-log"'))
      .map((l) => (JSON.parse(l) as { message: string }).message);
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    return proc.exited;
  };
  return { proc, home, url: first.url, port: Number(new URL(first.url).port), pin: first.pin, code: first.code, logs, stop };
}

function kiln(args: string[], home: string, env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { env: { KILN_HOME: home, ...env } });
}

async function pair(client: string, peer: Peer, extra: string[] = []): Promise<CliResult> {
  return kiln(["peer", "pair", peer.url, "--pin", peer.pin, ...extra], client);
}

function errorCode(r: CliResult): unknown {
  return r.events.find((e) => e.type === "error")?.code;
}

/** A C compiler wrapper that is slow for compiles (not for probes) and records its pid. */
async function slowCc(dir: string, seconds: number): Promise<{ env: Record<string, string>; pids: () => Promise<number[]> }> {
  const pidFile = join(dir, "cc-pids");
  const script = `#!/bin/sh\ncase " $* " in *" -c "*) echo $$ >> "${pidFile}"; sleep ${seconds};; esac\nexec gcc "$@"\n`;
  await writeFile(join(dir, "slowcc"), script);
  await chmod(join(dir, "slowcc"), 0o755);
  const pids = async (): Promise<number[]> =>
    (await readFile(pidFile, "utf8").catch(() => ""))
      .split("\n")
      .filter(Boolean)
      .map(Number);
  return { env: { CC: join(dir, "slowcc") }, pids };
}

async function nativeProject(dir: string): Promise<string> {
  const proj = join(dir, "proj");
  await cp(join(repoRoot, "examples", "hello-native"), proj, { recursive: true, filter: (src) => !src.includes(".kiln") });
  return proj;
}

async function cProject(dir: string): Promise<string> {
  const proj = join(dir, "cproj");
  await writeTree(proj, { "platformio.ini": "[env:native]\nplatform = native\n", "src/main.c": "int main(void) { return 0; }\n", "src/two.c": "int two(void) { return 2; }\n" });
  return proj;
}

describe("pairing", () => {
  let dir: string;
  let peer: Peer;
  before(async () => {
    dir = await tempDir("kiln-pair-");
    peer = await startPeer(join(dir, "peer"));
  });
  after(async () => {
    await peer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("pairs with the one-time code, which works only once; the pairing is stored 0600", async () => {
    const a = await pair(join(dir, "a"), peer, ["--code", peer.code, "--name", "lab"]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /Paired with 'lab'/);
    const st = await stat(join(dir, "a", "peers.json"));
    assert.equal(st.mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(join(dir, "a", "peers.json"), "utf8")) as { peers: Array<{ pin: string; label: string }> };
    assert.deepEqual(stored.peers.map((p) => [p.label, p.pin]), [["lab", peer.pin]]);
    const clients = JSON.parse(await readFile(join(peer.home, "peer", "clients.json"), "utf8")) as { clients: Array<{ status: string }> };
    assert.deepEqual(clients.clients.map((c) => c.status), ["approved"]);

    const b = await pair(join(dir, "b"), peer, ["--code", peer.code, "--json"]);
    assert.equal(b.code, 8, b.stderr);
    assert.match(JSON.stringify(b.events), /code is wrong, used or expired/);
  });

  it("a request without a code waits until the operator approves it from another process", async () => {
    const client = spawnKiln(["peer", "pair", peer.url, "--pin", peer.pin], { env: { KILN_HOME: join(dir, "c") } });
    await client.waitForStderr(/kiln peer approve (\S+)'/, 15_000);
    const id = /kiln peer approve (\S+)'/.exec(client.stderr())![1]!;
    const list = await kiln(["peer", "list", "--json"], peer.home);
    assert.equal(list.code, 0, list.stderr);
    const pending = (list.events.find((e) => e.type === "result") as { server: { pending: Array<{ id: string }> } }).server.pending;
    assert.deepEqual(pending.map((p) => p.id), [id]);
    const approve = await kiln(["peer", "approve", id], peer.home);
    assert.equal(approve.code, 0, approve.stderr);
    const done = await client.exited;
    assert.equal(done.code, 0, client.stderr());
    // The client's view: the peer answers, 0 of 1 slots busy.
    const mine = await kiln(["peer", "list", "--json"], join(dir, "c"));
    const peers = (mine.events.find((e) => e.type === "result") as { peers: Array<{ pin: string; health: { ok: boolean; slots: number } }> }).peers;
    assert.equal(peers[0]!.pin, peer.pin);
    assert.deepEqual([peers[0]!.health.ok, peers[0]!.health.slots], [true, 1]);
  });

  it("a denied request ends the client's wait with exit 8; nothing is stored", async () => {
    const client = spawnKiln(["peer", "pair", peer.url, "--pin", peer.pin, "--json"], { env: { KILN_HOME: join(dir, "d") } });
    await client.waitForStdout(/"pairing-pending"/, 15_000);
    const id = (JSON.parse(client.stdout().split("\n").find((l) => l.includes("pairing-pending"))!) as { id: string }).id;
    const deny = await kiln(["peer", "deny", id], peer.home);
    assert.equal(deny.code, 0, deny.stderr);
    assert.equal((await client.exited).code, 8, client.stdout());
    await assert.rejects(stat(join(dir, "d", "peers.json")), { code: "ENOENT" });
  });

  it("a wrong pin is refused before any request reaches the peer", async () => {
    const before = peer.logs().length;
    const r = await kiln(["peer", "pair", peer.url, "--pin", "ab".repeat(32), "--code", peer.code, "--json"], join(dir, "e"));
    assert.equal(r.code, 8, r.stderr);
    assert.equal(errorCode(r), "KILN_PIN_MISMATCH");
    // The preview is a bare handshake: the peer saw no HTTP request at all.
    assert.deepEqual(peer.logs().slice(before).filter((l) => /\/v1\//.test(l)), []);
  });

  it("without --pin and without a terminal, pairing refuses (exit 2) and shows the pin to pass", async () => {
    const r = await kiln(["peer", "pair", peer.url], join(dir, "f"));
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(peer.pin), r.stderr);
  });

  it("kiln peer code issues a fresh one-time code; a second serve on the same port or home exits with the reason", async () => {
    const code = await kiln(["peer", "code", "--json"], peer.home);
    assert.equal(code.code, 0, code.stderr);
    const fresh = (code.events.find((e) => e.type === "result") as { code: string }).code;
    assert.match(fresh, /^[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    const r = await pair(join(dir, "g"), peer, ["--code", fresh]);
    assert.equal(r.code, 0, r.stderr);
    // Same port, other home: the port is taken. Same home: the running server owns it.
    const samePort = await kiln(["peer", "serve", "--port", String(peer.port), "--json"], join(dir, "other-home"));
    assert.equal(samePort.code, 8, samePort.stdout);
    assert.equal(errorCode(samePort), "KILN_PORT_IN_USE");
    await assert.rejects(stat(join(dir, "other-home", "peer", "admin.sock")), { code: "ENOENT" });
    const sameHome = await kiln(["peer", "serve", "--port", "0", "--json"], peer.home);
    assert.equal(sameHome.code, 8);
    assert.equal(errorCode(sameHome), "KILN_PEER_RUNNING");
  });

  it("a KILN_HOME too long for a Unix socket path is refused by name, and no socket is made anywhere", async () => {
    const root = join(dir, "long");
    const home = join(root, "h".repeat(Math.max(1, 100 - root.length)));
    const serve = await kiln(["peer", "serve", "--port", "0", "--json"], home);
    assert.equal(serve.code, 3, serve.stdout + serve.stderr);
    assert.equal(errorCode(serve), "KILN_PEER_SOCKET_PATH");
    const message = String(serve.events.find((e) => e.type === "error")?.message);
    assert.ok(message.includes(join(home, "peer", "admin.sock")), message);
    // Node would have bound the path cut at 107 bytes: somewhere under `root`, not where it was asked.
    for (const f of (await readdir(root, { recursive: true })).map(String)) assert.ok(!(await stat(join(root, f))).isSocket(), `a socket was left at ${f}`);
    const approve = await kiln(["peer", "approve", "abc", "--json"], home);
    assert.equal(approve.code, 3, approve.stdout + approve.stderr);
    assert.equal(errorCode(approve), "KILN_PEER_SOCKET_PATH");
  });

  it("at a terminal without --pin, the pin is shown and pairing goes on only after 'y'", async () => {
    const scriptTool = requireTool("script", "bsdutils");
    const run = (answer: string, home: string, code: string) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const cmd = [process.execPath, kilnBin, "peer", "pair", peer.url, "--code", code].map((a) => `'${a}'`).join(" ");
        const child = spawn(scriptTool, ["-qfec", cmd, "/dev/null"], { env: { ...process.env, KILN_HOME: home, NO_COLOR: "1", CI: "" }, stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
          out += d;
          if (out.includes("[y/N]") && !child.stdin.writableEnded) child.stdin.end(`${answer}\r`);
        });
        child.on("close", (code) => resolve({ code, out }));
      });
    const fresh = (await kiln(["peer", "code", "--json"], peer.home)).events.find((e) => e.type === "result") as { code: string };
    const no = await run("n", join(dir, "tty-no"), fresh.code);
    assert.equal(no.code, 8, no.out);
    // The pin people compare: grouped, plus its words.
    assert.ok(no.out.includes(peer.pin.slice(0, 4) + " " + peer.pin.slice(4, 8)), no.out);
    await assert.rejects(stat(join(dir, "tty-no", "peers.json")), { code: "ENOENT" });
    // Declining sent nothing: the code is still good.
    const yes = await run("y", join(dir, "tty-yes"), fresh.code);
    assert.equal(yes.code, 0, yes.out);
    assert.match(yes.out, /Paired with /);
  });

  it("approve without a running server says so (exit 8)", async () => {
    const r = await kiln(["peer", "approve", "nope", "--json"], join(dir, "not-a-peer"));
    assert.equal(r.code, 8);
    assert.equal(errorCode(r), "KILN_PEER_NOT_RUNNING");
  });
});

describe("remote builds", () => {
  let dir: string;
  let peer: Peer;
  let client: string;
  before(async () => {
    dir = await tempDir("kiln-remote-");
    peer = await startPeer(join(dir, "peer"), ["--pair"]);
    client = join(dir, "client");
    const r = await pair(client, peer);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await peer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("native: byte-identical to a local build; a second build after one edit uploads only that file", async () => {
    const remote = await nativeProject(join(dir, "native"));
    const l = await kiln(["build", "-d", remote, "--remote", "never"], client);
    assert.equal(l.code, 0, l.stderr);
    const localHash = await sha256(join(remote, ".kiln/build/native/program"));
    await rm(join(remote, ".kiln"), { recursive: true });
    const r = await kiln(["build", "-d", remote, "--json"], client);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(join(remote, ".kiln/build/native/program")), localHash);
    // Events came from the peer, marked with its label; the manifest names it.
    assert.ok(r.events.some((e) => e.type === "compile-end" && e.peer !== undefined), JSON.stringify(r.events));
    const manifest = JSON.parse(await readFile(join(remote, ".kiln/build/native/manifest.json"), "utf8")) as { peer: { pin: string } };
    assert.equal(manifest.peer.pin, peer.pin);
    // The program came back runnable.
    const run = await kiln(["run", "-d", remote], client);
    assert.equal(run.code, 0, run.stderr);

    await writeFile(join(remote, "src/stats.c"), `${await readFile(join(remote, "src/stats.c"), "utf8")}\n/* edited */\n`);
    const again = await kiln(["build", "-d", remote], client);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Uploading 1 file \(/);
    assert.match(again.stderr, /compiled 1, reused 2/);
    const unchanged = await kiln(["build", "-d", remote], client);
    assert.equal(unchanged.code, 0, unchanged.stderr);
    assert.doesNotMatch(unchanged.stderr, /Uploading/);
    assert.match(unchanged.stderr, /compiled 0, reused 3/);
  });

  it("a compile error on the peer is the build's result: exit 6, the peer's diagnostics, no local retry", async () => {
    const proj = await cProject(join(dir, "broken"));
    await writeFile(join(proj, "src/two.c"), "int two(void) { return nope; }\n");
    const r = await kiln(["build", "-d", proj], client);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /src\/two\.c:1:\d+: error: .nope. undeclared/);
    assert.doesNotMatch(r.stderr, /Building locally/);
    // The diagnostics name this machine's path, not the peer's workspace.
    assert.ok(!r.stderr.includes(join(peer.home, "peer")), r.stderr);
  });

  it("uno: firmware byte-identical to a local build, then kiln upload flashes it with real avrdude", async (t) => {
    requireTool("avr-gcc", "gcc-avr");
    requireTool("avrdude", "avrdude");
    requireTool("socat", "socat");
    const files = {
      "platformio.ini": debianAvrIni("uno"),
      "src/main.cpp": "#include <Arduino.h>\nvoid setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, !digitalRead(13)); delay(500); }\n",
    };
    const remote = join(dir, "uno");
    await writeTree(remote, files);
    // The flashed images. (The ELF is not reproducible even between two local builds: avr-gcc's LTO
    // stage writes a random temp object name into its debug info.)
    const l = await kiln(["build", "-d", remote, "--remote", "never"], client);
    assert.equal(l.code, 0, l.stderr);
    const localHashes = await Promise.all(["firmware.hex", "firmware.eep"].map((f) => sha256(join(remote, ".kiln/build/uno", f))));
    await rm(join(remote, ".kiln"), { recursive: true });
    const r = await kiln(["build", "-d", remote, "--remote", "always"], client);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /on peer '/);
    const remoteHashes = await Promise.all(["firmware.hex", "firmware.eep"].map((f) => sha256(join(remote, ".kiln/build/uno", f))));
    assert.deepEqual(remoteHashes, localHashes);

    const image = join(dir, "flash.bin");
    const pty = await startPtyExec(dir, [process.execPath, join(repoRoot, "test/helpers/fake-optiboot.mjs"), image]);
    t.after(() => pty.stop());
    const up = await kiln(["upload", "-d", remote, "--remote", "always", "--port", pty.path], client);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, /Uploaded uno to /);
    const manifest = JSON.parse(await readFile(join(remote, ".kiln/build/uno/manifest.json"), "utf8")) as { tools: { avrdude: string }; peer: { pin: string } };
    assert.equal(manifest.peer.pin, peer.pin);
    assert.equal(manifest.tools.avrdude, "/usr/bin/avrdude");
    const hex = await readFile(join(remote, ".kiln/build/uno/firmware.hex"), "utf8");
    const first = hex.split("\n")[0]!.trim();
    const bytes = Buffer.from(first.slice(9, 9 + 2 * parseInt(first.slice(1, 3), 16)), "hex");
    assert.deepEqual((await readFile(image)).subarray(0, bytes.length), bytes);
  });

  it("a disabled peer is skipped (and said so); --offline never uses a peer; the peer records when a client last built", async () => {
    const proj = await cProject(join(dir, "switch"));
    assert.equal((await kiln(["peer", "disable", peer.pin.slice(0, 12)], client)).code, 0);
    const off = await kiln(["build", "-d", proj], client);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stderr, /Building locally: no peer available: 1 disabled/);
    assert.equal((await kiln(["peer", "enable", peer.pin.slice(0, 12)], client)).code, 0);
    const offline = await kiln(["build", "-d", proj, "--offline"], client);
    assert.equal(offline.code, 0, offline.stderr);
    assert.doesNotMatch(offline.stderr, /peer/);
    await rm(join(proj, ".kiln"), { recursive: true });
    const on = await kiln(["build", "-d", proj], client);
    assert.match(on.stderr, /on peer '/);
    const clients = JSON.parse(await readFile(join(peer.home, "peer", "clients.json"), "utf8")) as { clients: Array<{ lastSeen?: string }> };
    assert.ok(clients.clients.some((c) => c.lastSeen && Date.now() - Date.parse(c.lastSeen) < 60_000), JSON.stringify(clients));
  });

  it("a revoked client is refused (exit 8) and the peer does no work", async () => {
    const other = join(dir, "revoked");
    const p = await pair(other, peer);
    assert.equal(p.code, 0, p.stderr);
    const clients = JSON.parse(await readFile(join(peer.home, "peer", "clients.json"), "utf8")) as { clients: Array<{ id: string; pin: string }> };
    const row = clients.clients[clients.clients.length - 1]!;
    const rv = await kiln(["peer", "revoke", row.id], peer.home);
    assert.equal(rv.code, 0, rv.stderr);
    const proj = await cProject(join(dir, "rv"));
    const before = peer.logs().length;
    const r = await kiln(["build", "-d", proj, "--json"], other);
    assert.equal(r.code, 8, r.stderr);
    assert.equal(errorCode(r), "KILN_REMOTE_AUTH");
    const seen = peer.logs().slice(before);
    assert.ok(seen.some((l) => / 403 /.test(l)), seen.join("\n"));
    assert.ok(!seen.some((l) => /^job /.test(l)), seen.join("\n"));
    await assert.rejects(stat(join(proj, ".kiln/build/native/program")), { code: "ENOENT" });
  });
});

describe("when the peer changes or goes away", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir("kiln-remote-fail-");
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("a peer whose key changed is refused (exit 8), never silently replaced by a local build", async () => {
    const home = join(dir, "rekey");
    const first = await startPeer(home, ["--pair"]);
    const client = join(dir, "rekey-client");
    assert.equal((await pair(client, first)).code, 0);
    await first.stop();
    await rm(join(home, "identity"), { recursive: true });
    const second = await startPeer(home, ["--port", String(first.port)]);
    try {
      assert.notEqual(second.pin, first.pin);
      const proj = await cProject(join(dir, "rekey-proj"));
      const r = await kiln(["build", "-d", proj, "--json"], client);
      assert.equal(r.code, 8, r.stdout);
      assert.equal(errorCode(r), "KILN_REMOTE_AUTH");
      assert.match(JSON.stringify(r.events), /not the paired one/);
      await assert.rejects(stat(join(proj, ".kiln/build/native/program")), { code: "ENOENT" });
      // No request reached the impostor.
      assert.deepEqual(second.logs().filter((l) => /\/v1\//.test(l)), []);
    } finally {
      await second.stop();
    }
  });

  it("the peer killed mid-job: auto says so and builds locally", async () => {
    const slow = await slowCc(dir, 20);
    const peer = await startPeer(join(dir, "killed"), ["--pair"], slow.env);
    const client = join(dir, "killed-client");
    assert.equal((await pair(client, peer)).code, 0);
    const proj = await cProject(join(dir, "killed-proj"));
    const build = spawnKiln(["build", "-d", proj], { env: { KILN_HOME: client } });
    const deadline = Date.now() + 20_000;
    while (!(await slow.pids()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok((await slow.pids()).length, build.stderr());
    await peer.stop("SIGKILL");
    const done = await build.exited;
    for (const pid of await slow.pids()) if (alive(pid)) process.kill(pid, "SIGKILL");
    assert.equal(done.code, 0, build.stderr());
    assert.match(build.stderr(), /was lost/);
    assert.match(build.stderr(), /Building locally: /);
    await stat(join(proj, ".kiln/build/native/program"));
  });

  it("Ctrl-C on the client cancels the job on the peer: its compiler is gone", async () => {
    const slow = await slowCc(join(dir), 30);
    const peer = await startPeer(join(dir, "cancel"), ["--pair"], slow.env);
    try {
      const client = join(dir, "cancel-client");
      assert.equal((await pair(client, peer)).code, 0);
      const proj = await cProject(join(dir, "cancel-proj"));
      await rm(join(dir, "cc-pids"), { force: true });
      const build = spawnKiln(["build", "-d", proj], { env: { KILN_HOME: client } });
      const deadline = Date.now() + 20_000;
      while (!(await slow.pids()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const pids = await slow.pids();
      assert.ok(pids.length, build.stderr());
      assert.ok(pids.every(alive));
      build.child.kill("SIGINT");
      const done = await build.exited;
      assert.equal(done.code, 130, build.stderr());
      await waitUntil(() => pids.every((p) => !alive(p)), 5000, () => `compiler still running: ${pids.filter(alive).join(", ")}`);
      await waitUntil(() => peer.logs().some((l) => / cancelled in /.test(l)), 5000, () => peer.logs().join("\n"));
    } finally {
      await peer.stop();
    }
  });

  it("peer busy (queue full): auto builds locally and says why; always fails with exit 8", async () => {
    const slow = await slowCc(join(dir), 30);
    await rm(join(dir, "cc-pids"), { force: true });
    const peer = await startPeer(join(dir, "busy"), ["--pair", "--slots", "1", "--max-queue", "0"], slow.env);
    const client = join(dir, "busy-client");
    try {
      assert.equal((await pair(client, peer)).code, 0);
      const occupy = spawnKiln(["build", "-d", await cProject(join(dir, "busy-1"))], { env: { KILN_HOME: client } });
      const deadline = Date.now() + 20_000;
      while (!(await slow.pids()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok((await slow.pids()).length, occupy.stderr());
      const proj = await cProject(join(dir, "busy-2"));
      const auto = await kiln(["build", "-d", proj], client);
      assert.equal(auto.code, 0, auto.stderr);
      assert.match(auto.stderr, /Building locally: all peers busy/);
      const always = await kiln(["build", "-d", proj, "--remote", "always", "--json"], client);
      assert.equal(always.code, 8, always.stderr);
      assert.equal(errorCode(always), "KILN_NO_COMPATIBLE_PEER");
      occupy.child.kill("SIGINT");
      await occupy.exited;
    } finally {
      // SIGTERM: the peer cancels what runs and exits 0.
      const stopped = await peer.stop("SIGTERM");
      assert.equal(stopped.code, 0, peer.proc.stderr());
    }
  });

  it("no peer answering: auto builds locally with a one-line reason; always exits 8", async () => {
    const peer = await startPeer(join(dir, "gone"), ["--pair"]);
    const client = join(dir, "gone-client");
    assert.equal((await pair(client, peer)).code, 0);
    await peer.stop();
    const proj = await cProject(join(dir, "gone-proj"));
    const auto = await kiln(["build", "-d", proj], client);
    assert.equal(auto.code, 0, auto.stderr);
    assert.match(auto.stderr, /Building locally: no peer available: 1 unreachable/);
    const always = await kiln(["build", "-d", proj, "--remote", "always", "--json"], client);
    assert.equal(always.code, 8);
    assert.equal(errorCode(always), "KILN_NO_COMPATIBLE_PEER");
    const never = await kiln(["build", "-d", proj, "--remote", "never"], client);
    assert.doesNotMatch(never.stderr, /Building locally/);
  });

  it("the connection lost mid-job: one retry on another peer", async () => {
    const slow = await slowCc(join(dir), 20);
    await rm(join(dir, "cc-pids"), { force: true });
    const first = await startPeer(join(dir, "retry-1"), ["--pair"], slow.env);
    const second = await startPeer(join(dir, "retry-2"), ["--pair"]);
    try {
      const client = join(dir, "retry-client");
      // The older pairing is tried first.
      assert.equal((await pair(client, first, ["--name", "first"])).code, 0);
      assert.equal((await pair(client, second, ["--name", "second"])).code, 0);
      const proj = await cProject(join(dir, "retry-proj"));
      const build = spawnKiln(["build", "-d", proj], { env: { KILN_HOME: client } });
      const deadline = Date.now() + 20_000;
      while (!(await slow.pids()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok((await slow.pids()).length, build.stderr());
      await first.stop("SIGKILL");
      for (const pid of await slow.pids()) if (alive(pid)) process.kill(pid, "SIGKILL");
      const done = await build.exited;
      assert.equal(done.code, 0, build.stderr());
      assert.match(build.stderr(), /peer 'first' .*was lost/);
      assert.match(build.stderr(), /Building native on peer 'second'/);
      assert.doesNotMatch(build.stderr(), /Building locally/);
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it("SIGTERM stops the peer gracefully: its running build is cancelled, the client builds locally", async () => {
    const slow = await slowCc(join(dir), 30);
    await rm(join(dir, "cc-pids"), { force: true });
    const peer = await startPeer(join(dir, "term"), ["--pair"], slow.env);
    const client = join(dir, "term-client");
    assert.equal((await pair(client, peer)).code, 0);
    const proj = await cProject(join(dir, "term-proj"));
    const build = spawnKiln(["build", "-d", proj], { env: { KILN_HOME: client } });
    const deadline = Date.now() + 20_000;
    while (!(await slow.pids()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const pids = await slow.pids();
    assert.ok(pids.length, build.stderr());
    const stopped = await peer.stop("SIGTERM");
    assert.equal(stopped.code, 0, peer.proc.stderr());
    assert.ok(pids.every((p) => !alive(p)), "the peer's compiler outlived it");
    assert.ok(peer.logs().some((l) => / cancelled in /.test(l)), peer.logs().join("\n"));
    const done = await build.exited;
    assert.equal(done.code, 0, build.stderr());
    assert.match(build.stderr(), /Building locally: /);
  });

  it("guards on the peer: a build over its time limit is stopped; low disk sends the client elsewhere", async () => {
    const slow = await slowCc(join(dir), 30);
    await rm(join(dir, "cc-pids"), { force: true });
    const peer = await startPeer(join(dir, "limit"), ["--pair", "--time-limit", "1"], slow.env);
    try {
      const client = join(dir, "limit-client");
      assert.equal((await pair(client, peer)).code, 0);
      const proj = await cProject(join(dir, "limit-proj"));
      const r = await kiln(["build", "-d", proj, "--remote", "always", "--json"], client);
      assert.equal(r.code, 8, r.stderr);
      assert.equal(errorCode(r), "KILN_REMOTE_TIME_LIMIT");
      const pids = await slow.pids();
      assert.ok(pids.length);
      await waitUntil(() => pids.every((p) => !alive(p)), 5000, () => "the compiler survived the time limit");
    } finally {
      await peer.stop();
    }
    const full = await startPeer(join(dir, "full"), ["--pair", "--min-free", String(2 ** 40)]);
    try {
      const client = join(dir, "full-client");
      assert.equal((await pair(client, full)).code, 0);
      const proj = await cProject(join(dir, "full-proj"));
      const r = await kiln(["build", "-d", proj], client);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /MiB free, below its/);
      assert.match(r.stderr, /Building locally: /);
      // The settings default: KILN_REMOTE=always makes the same build fail instead.
      const always = await kiln(["build", "-d", proj, "--json"], client, { KILN_REMOTE: "always" });
      assert.equal(always.code, 8);
    } finally {
      await full.stop();
    }
  });
});
