/**
 * `kiln peer list`: both sides of this machine's pairings. As a client: the
 * peers it builds on, each asked for its load right now. As a peer: the
 * clients it accepts (approved, revoked) and — when `kiln peer serve` runs —
 * the requests waiting in its memory.
 */
import { PeerClient, probePeer } from "./client.js";
import { loadOrCreateIdentity } from "./identity.js";
import type { PeerHealth } from "./scheduler.js";
import { adminRequest } from "./server.js";
import { identityDir, readClients, readPeers, type ClientRecord, type PeerRecord } from "./store.js";

export interface PairingStatus {
  peers: Array<Omit<PeerRecord, "certPem" | "recentProjects"> & { health: PeerHealth | undefined }>;
  clients: Array<Omit<ClientRecord, "certPem">>;
  /** undefined: no server running for this config dir. */
  server?: { url: string; pending: Array<{ id: string; label: string; pin: string; address: string; since: string }>; running: number; queued: number } | undefined;
}

export async function pairingStatus(configDir: string, opts: { probe: boolean; signal?: AbortSignal }): Promise<PairingStatus> {
  const peers = await readPeers(configDir);
  let health: Array<PeerHealth | undefined> = peers.map(() => undefined);
  if (opts.probe && peers.length) {
    const { identity } = await loadOrCreateIdentity(identityDir(configDir));
    health = await Promise.all(
      peers.map(async (p) => {
        const c = new PeerClient(p, identity);
        try {
          return (await probePeer(c, 2000, opts.signal)).health;
        } finally {
          c.close();
        }
      }),
    );
  }
  const clients = await readClients(configDir);
  let server: PairingStatus["server"];
  try {
    const a = await adminRequest(configDir, { op: "list" });
    const info = a.info as { running: number; queued: number };
    server = { url: String(a.url), pending: a.pending as NonNullable<PairingStatus["server"]>["pending"], running: info.running, queued: info.queued };
  } catch {
    server = undefined;
  }
  return {
    peers: peers.map(({ certPem: _c, recentProjects: _r, ...p }, i) => ({ ...p, health: health[i] })),
    clients: clients.map(({ certPem: _c, ...c }) => c),
    server,
  };
}
