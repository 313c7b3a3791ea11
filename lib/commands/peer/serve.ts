import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { Command, Option } from "clipanion";
import { KilnCommand, parseJobs } from "../base.js";
import { UsageError } from "../../core/errors.js";

export class PeerServeCommand extends KilnCommand {
  static override paths = [["peer", "serve"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Run this machine as a build peer (HTTPS, foreground)",
    details: `
      Builds projects sent by paired clients with this machine's toolchains, incrementally, and hands back
      the firmware; the client flashes it. On first start kiln makes this machine's identity (an ECDSA
      P-256 key and certificate in the config dir, 0600) and prints its pin and a one-time pairing code.

      **A paired client can run code on this machine** (compiler flags, libraries): pair only machines you
      trust. \`--pair\` approves every pairing request for 5 minutes; otherwise requests wait for
      \`kiln peer approve ID\`. Ctrl-C stops the server and cancels running builds.
    `,
    examples: [
      ["Serve on the LAN on the default port", "$0 peer serve --host 0.0.0.0"],
      ["Accept pairing requests for 5 minutes", "$0 peer serve --pair"],
      ["Two builds at once, 8 compiles each, queue up to 4", "$0 peer serve --slots 2 -j 8 --max-queue 4"],
    ],
  });

  host = Option.String("--host", "127.0.0.1", { description: "Address to listen on (0.0.0.0 for every interface)" });
  port = Option.String("--port", "7420", { description: "TCP port (0 picks a free one)" });
  jobs = Option.String("-j,--jobs", { description: "Parallel compiles per build (default: number of CPUs)" });
  slots = Option.String("--slots", "1", { description: "Builds run at once; more wait in the queue" });
  maxQueue = Option.String("--max-queue", "8", { description: "Builds that may wait; beyond that clients get 503 and build elsewhere" });
  pair = Option.Boolean("--pair", false, { description: "Approve pairing requests at once for 5 minutes" });
  name = Option.String("--name", { description: "This peer's label (default: the host name)" });
  timeLimit = Option.String("--time-limit", "1800", { description: "Seconds a build may take before it is stopped" });
  minFree = Option.String("--min-free", "512", { description: "Refuse builds when fewer MiB are free in the cache dir" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { settings, signal } = this.context;
    const num = (flag: string, v: string, min: number): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer of at least ${min}, got '${v}'`);
      return n;
    };
    const port = num("--port", this.port, 0);
    if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
    const { loadOrCreateIdentity, formatPin, pinWords } = await import("../../remote/identity.js");
    const { identityDir } = await import("../../remote/store.js");
    const { PeerServer } = await import("../../remote/server.js");
    const { identity, created } = await loadOrCreateIdentity(identityDir(settings.configDir));
    const label = (this.name ?? hostname()) || "kiln-peer";
    const log = (line: string): void => {
      if (this.json) reporter.event({ type: "peer-log", time: new Date().toISOString(), message: line });
      else if (!this.quiet) this.context.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
    };
    const server = new PeerServer({
      host: this.host,
      port,
      jobs: parseJobs(this.jobs) ?? settings.jobs,
      slots: num("--slots", this.slots, 1),
      maxQueue: num("--max-queue", this.maxQueue, 0),
      label,
      identity,
      configDir: settings.configDir,
      stateDir: join(settings.cacheDir, "peer"),
      settings,
      pairWindowMs: this.pair ? 300_000 : 0,
      timeLimitMs: num("--time-limit", this.timeLimit, 1) * 1000,
      minFreeBytes: num("--min-free", this.minFree, 0) * 2 ** 20,
      log,
    });
    await server.start();
    const code = server.newCode();
    if (this.json) {
      reporter.event({ type: "listening", url: server.url, label, pin: identity.pin, words: pinWords(identity.pin), code, pairWindow: this.pair, identityCreated: created });
    } else {
      const out = this.context.stdout;
      out.write(`Build peer '${label}' listening on ${server.url}${created ? " (new identity)" : ""}\n`);
      out.write(`  pin    ${formatPin(identity.pin)}\n  words  ${pinWords(identity.pin)}\n  code   ${code} (one-time, 10 minutes)\n`);
      // Listening on every interface: show addresses another machine can use.
      const urls = this.host === "0.0.0.0" || this.host === "::" ? lanUrls(new URL(server.url).port) : [server.url];
      out.write(`Pair a machine with:\n${(urls.length ? urls : [server.url]).map((u) => `  kiln peer pair ${u} --pin ${identity.pin} --code ${code}\n`).join("")}`);
      out.write(this.pair ? "Pairing window open for 5 minutes: requests are approved at once.\n" : "Other pairing requests wait for 'kiln peer approve ID' (see 'kiln peer list').\n");
      out.write("A paired client can run code on this machine (compiler flags, libraries): pair only machines you trust.\n");
    }
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
    log("stopping: cancelling running builds");
    await server.stop();
    log("stopped");
    return 0;
  }
}

/** https URLs of this machine's non-loopback addresses. */
function lanUrls(port: string): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal)
    .map((a) => (a!.family === "IPv6" ? `https://[${a!.address}]:${port}` : `https://${a!.address}:${port}`))
    .filter((u) => !u.includes("[fe80"));
}
