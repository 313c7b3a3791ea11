/**
 * Who is paired with whom, on disk (mode 0600, written atomically).
 *
 *  - `<configDir>/peers.json`: the peers this machine builds on (client side):
 *    URL, the peer's pinned certificate and pin, label, when paired, last use.
 *  - `<configDir>/peer/clients.json`: the clients a `kiln peer serve` on this
 *    machine accepts (peer side): APPROVED or REVOKED rows only. Pending
 *    requests live in the server's memory and never reach this file, so a
 *    LAN scanner cannot fill it.
 *
 * Both files are small and read whole. A torn or foreign file is a
 * configuration error naming the file, never silently an empty list (that
 * would forget trust decisions).
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError, ExitCode, KilnError, errnoCode } from "../core/errors.js";
import { tempPathFor } from "../core/fs.js";
import { isPin } from "./identity.js";

export interface PeerRecord {
  /** How this machine names the peer (`kiln peer pair --name`, else the peer's own label). */
  label: string;
  /** `https://host:port`. */
  url: string;
  pin: string;
  /** The peer's self-signed certificate: the only trust anchor for it. */
  certPem: string;
  pairedAt: string;
  /** false = `kiln peer disable`: never scheduled. */
  enabled: boolean;
  lastSeen?: string | undefined;
  /** Project keys this peer built last (affinity), most recent first. */
  recentProjects?: string[] | undefined;
}

export interface ClientRecord {
  /** Short id shown to the operator (`kiln peer approve ID`). */
  id: string;
  label: string;
  pin: string;
  /** The client's certificate, trusted as a CA for its own mutual-TLS handshakes. */
  certPem: string;
  status: "approved" | "revoked";
  pairedAt: string;
  lastSeen?: string | undefined;
  address?: string | undefined;
}

export function peersFile(configDir: string): string {
  return join(configDir, "peers.json");
}

export function clientsFile(configDir: string): string {
  return join(configDir, "peer", "clients.json");
}

/** The machine's identity (key + certificate), shared by its client and peer roles. */
export function identityDir(configDir: string): string {
  return join(configDir, "identity");
}

export async function readPeers(configDir: string): Promise<PeerRecord[]> {
  return readRows(peersFile(configDir), "peers", (r) => isPin(r.pin) && typeof r.url === "string" && typeof r.certPem === "string" && typeof r.label === "string") as Promise<PeerRecord[]>;
}

export async function writePeers(configDir: string, peers: PeerRecord[]): Promise<void> {
  await writePrivate(peersFile(configDir), { peers });
}

export async function readClients(configDir: string): Promise<ClientRecord[]> {
  return readRows(clientsFile(configDir), "clients", (r) => isPin(r.pin) && typeof r.certPem === "string" && (r.status === "approved" || r.status === "revoked")) as Promise<ClientRecord[]>;
}

export async function writeClients(configDir: string, clients: ClientRecord[]): Promise<void> {
  await writePrivate(clientsFile(configDir), { clients });
}

/**
 * Find a row by label, id, or pin (a prefix of at least 8 hex characters
 * must be unique). Returns undefined when nothing matches; throws when the
 * prefix is ambiguous.
 */
export function findRow<T extends { label: string; pin: string; id?: string }>(rows: T[], key: string, file: string): T | undefined {
  const exact = rows.filter((r) => r.label === key || r.id === key || r.pin === key.toLowerCase());
  if (exact.length === 1) return exact[0];
  if (exact.length > 1) throw new ConfigError("KILN_PEER_AMBIGUOUS", `'${key}' matches ${exact.length} entries in ${file}`, { hint: "use the pin instead" });
  const k = key.toLowerCase().replace(/[\s:]/g, "");
  if (k.length < 8 || !/^[0-9a-f]+$/.test(k)) return undefined;
  const hits = rows.filter((r) => r.pin.startsWith(k));
  if (hits.length > 1) throw new ConfigError("KILN_PEER_AMBIGUOUS", `pin prefix '${key}' matches ${hits.length} entries in ${file}`, { hint: "give more of the pin" });
  return hits[0];
}

/** Change one peer (found by label or pin prefix) and save the list `edit` returns. */
export async function updatePeer(configDir: string, key: string, edit: (rows: PeerRecord[], row: PeerRecord) => PeerRecord[]): Promise<PeerRecord> {
  return updateRow(await readPeers(configDir), key, peersFile(configDir), "KILN_NO_SUCH_PEER", `no paired peer '${key}'`, "see 'kiln peer list'", edit, (rows) => writePeers(configDir, rows));
}

/** Change one client of this machine's peer server (by id, label or pin prefix) and save. */
export async function updateClient(configDir: string, key: string, edit: (rows: ClientRecord[], row: ClientRecord) => ClientRecord[]): Promise<ClientRecord> {
  return updateRow(await readClients(configDir), key, clientsFile(configDir), "KILN_NO_SUCH_CLIENT", `no paired client '${key}'`, "see 'kiln peer list'; a waiting request is refused with 'kiln peer deny ID'", edit, (rows) => writeClients(configDir, rows));
}

async function updateRow<T extends { label: string; pin: string; id?: string }>(
  rows: T[],
  key: string,
  file: string,
  code: string,
  message: string,
  hint: string,
  edit: (rows: T[], row: T) => T[],
  save: (rows: T[]) => Promise<void>,
): Promise<T> {
  const row = findRow(rows, key, file);
  if (!row) throw new KilnError(code, ExitCode.usage, message, { hint });
  await save(edit(rows, row));
  return row;
}

async function readRows(file: string, key: string, valid: (r: Record<string, unknown>) => boolean): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return [];
    throw e;
  }
  let rows: unknown;
  try {
    rows = (JSON.parse(text) as Record<string, unknown>)[key];
  } catch (e) {
    throw new ConfigError("KILN_PAIRINGS_INVALID", `not valid JSON: ${(e as Error).message}`, { location: { file }, hint: "restore it from a backup, or delete it and pair again" });
  }
  if (!Array.isArray(rows) || !rows.every((r) => typeof r === "object" && r !== null && valid(r as Record<string, unknown>))) {
    throw new ConfigError("KILN_PAIRINGS_INVALID", `'${key}' must be a list of pairings`, { location: { file }, hint: "restore it from a backup, or delete it and pair again" });
  }
  return rows;
}

/** Temp file created 0600 in a 0700 directory, then renamed: never readable by others, never torn. */
async function writePrivate(file: string, value: unknown): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = tempPathFor(file);
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
