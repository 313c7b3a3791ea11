import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";

export class PeerListCommand extends KilnCommand {
  static override paths = [["peer", "list"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "List paired peers, paired clients and waiting requests",
    details: `
      Peers are the machines this one builds on (each asked for its load unless \`--offline\`); clients
      are the machines this one's \`kiln peer serve\` builds for; pending requests are shown while the
      server runs.
    `,
    examples: [
      ["Everything, with each peer's load", "$0 peer list"],
      ["As JSON", "$0 peer list --json"],
    ],
  });

  offline = Option.Boolean("--offline", false, { description: "Do not contact the peers" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { pairingStatus } = await import("../../remote/status.js");
    const s = await pairingStatus(this.context.settings.configDir, { probe: !this.offline, signal: this.context.signal });
    if (this.json) {
      reporter.event({ type: "result", command: "peer list", ...s });
      return 0;
    }
    const out = this.context.stdout;
    const short = (pin: string): string => `${pin.slice(0, 16)}…`;
    out.write(s.peers.length ? "Peers (this machine builds on them):\n" : "No peers: pair one with 'kiln peer pair URL'.\n");
    for (const p of s.peers) {
      const h = p.health;
      const load = !p.enabled ? "disabled" : !h ? "not asked" : h.ok ? `${h.running}/${h.slots} building, ${h.queued} queued` : h.reason;
      out.write(`  ${p.label}  ${p.url}  pin ${short(p.pin)}  ${load}  last used ${p.lastSeen?.slice(0, 16) ?? "never"}\n`);
    }
    if (s.clients.length) out.write("Clients (this machine's peer server builds for them):\n");
    for (const c of s.clients) out.write(`  ${c.id}  ${c.label}  pin ${short(c.pin)}  ${c.status}  last seen ${c.lastSeen?.slice(0, 16) ?? "never"}\n`);
    if (s.server) {
      out.write(`Peer server running at ${s.server.url}: ${s.server.running} building, ${s.server.queued} queued\n`);
      for (const p of s.server.pending) out.write(`  pending ${p.id}  ${p.label}  from ${p.address}  pin ${p.pin}\n    approve: kiln peer approve ${p.id}   deny: kiln peer deny ${p.id}\n`);
    }
    return 0;
  }
}
