/**
 * Pairing, the client's side: preview the peer's key (TLS handshake only),
 * have it confirmed (`--pin`, or a person comparing on a terminal), then
 * send the pairing request over a NEW connection that trusts only that
 * key — so a different key answering the second time is refused before any
 * byte of the request leaves (the TOCTOU defence). Approved → stored 0600.
 */
import { hostname } from "node:os";
import { ExitCode, KilnError, UsageError } from "../core/errors.js";
import { VERSION } from "../version.js";
import { PeerClient } from "./client.js";
import { formatPin, loadOrCreateIdentity, normalizePin, pinsEqual } from "./identity.js";
import { identityDir, readPeers, writePeers, type PeerRecord } from "./store.js";
import { previewPeer } from "./tls.js";
import { DEFAULT_PORT, NAME_PATTERN, type PairAnswer } from "./wire.js";

export interface PairOptions {
  url: string;
  configDir: string;
  /** `--pin`: the pin the peer printed; required when nobody can confirm on a terminal. */
  pin?: string | undefined;
  code?: string | undefined;
  /** How this machine names the peer (default: the peer's own label). */
  name?: string | undefined;
  /** Asked with the previewed pin when no `--pin` was given; undefined = not a terminal. */
  confirm?: ((pin: string) => Promise<boolean>) | undefined;
  /** Told the request id while it waits for the operator. */
  onPending?: ((id: string, myPin: string) => void) | undefined;
  waitMs: number;
  signal?: AbortSignal | undefined;
}

/** `https://host[:port]` → normalised URL, host and port; a bare host gets https and the default port. */
export function parsePeerUrl(input: string): { url: string; host: string; port: number } {
  let u: URL;
  try {
    u = new URL(/^[a-z]+:\/\//i.test(input) ? input : `https://${input}`);
  } catch {
    throw new UsageError(`'${input}' is not a peer address`, { hint: "e.g. https://buildbox.local:7420" });
  }
  if (u.protocol !== "https:") throw new UsageError(`a peer is reached over https, not ${u.protocol.replace(":", "")}`, { hint: `use https://${u.host}` });
  const port = Number(u.port || DEFAULT_PORT);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return { url: `https://${u.hostname}:${port}`, host, port };
}

export async function pairWithPeer(o: PairOptions): Promise<{ peer: PeerRecord; answer: PairAnswer }> {
  const { url, host, port } = parsePeerUrl(o.url);
  const wanted = o.pin === undefined ? undefined : normalizePin(o.pin);
  if (o.pin !== undefined && !wanted) throw new UsageError(`--pin '${o.pin}' is not a pin (64 hex characters, spaces and colons allowed)`);
  if (o.name !== undefined && !NAME_PATTERN.test(o.name)) throw new UsageError(`--name '${o.name}' may use letters, digits, '.', '_', '-', '@', '+' and spaces (64 at most)`);

  const seen = await previewPeer(host, port, { signal: o.signal });
  if (wanted) {
    if (!pinsEqual(wanted, seen.pin)) {
      throw new KilnError("KILN_PIN_MISMATCH", ExitCode.remote, `the peer at ${url} presented pin ${formatPin(seen.pin)}, not the one given (${formatPin(wanted)})`, {
        hint: "check the address and the pin 'kiln peer serve' printed there; a different pin may mean someone else is answering",
      });
    }
  } else {
    if (!o.confirm) throw new UsageError("no --pin given and no terminal to confirm the peer's pin on", { hint: `pass --pin with the pin 'kiln peer serve' printed (this peer shows ${seen.pin})` });
    if (!(await o.confirm(seen.pin))) throw new KilnError("KILN_PAIRING_DECLINED", ExitCode.remote, "pairing cancelled: the pin was not confirmed");
  }

  const { identity } = await loadOrCreateIdentity(identityDir(o.configDir));
  const provisional: PeerRecord = { label: o.name ?? host, url, pin: seen.pin, certPem: seen.certPem, pairedAt: new Date().toISOString(), enabled: true };
  // A fresh connection that trusts only the previewed key.
  const client = new PeerClient(provisional, identity);
  try {
    const label = (hostname() || "kiln-client").replace(/[^A-Za-z0-9._@+ -]/g, "-").slice(0, 64);
    let answer = await client.json<PairAnswer>("POST", "/v1/pair", { label, version: VERSION, code: o.code }, { timeoutMs: 15_000, signal: o.signal });
    const deadline = Date.now() + o.waitMs;
    if (answer.status === "pending" && answer.id) o.onPending?.(answer.id, identity.pin);
    while (answer.status === "pending" && answer.id) {
      if (Date.now() > deadline) throw new KilnError("KILN_PAIRING_TIMEOUT", ExitCode.remote, `the peer's operator did not approve request ${answer.id} in time`, { hint: "run 'kiln peer pair' again and approve it on the peer with 'kiln peer approve ID'" });
      try {
        answer = await client.json<PairAnswer>("GET", `/v1/pair/status?id=${encodeURIComponent(answer.id)}`, undefined, { timeoutMs: 35_000, signal: o.signal });
      } catch (e) {
        if (e instanceof KilnError && e.code === "KILN_REMOTE_UNREACHABLE" && !o.signal?.aborted) {
          await new Promise((r) => setTimeout(r, 2000));
          continue;
        }
        throw e;
      }
    }
    if (answer.status !== "approved") {
      const why: Record<string, string> = {
        denied: "the peer's operator denied the request",
        rejected: answer.message ?? "the peer rejected the request",
        expired: "the request expired on the peer",
        busy: answer.message ?? "the peer has too many waiting requests",
      };
      const hint: Record<string, string> = {
        denied: "ask the peer's operator, then run 'kiln peer pair' again",
        rejected: "ask for a fresh code ('kiln peer code' on the peer), or pair without --code and have it approved",
        expired: "run 'kiln peer pair' again and have it approved within ten minutes",
        busy: "try again later, or ask the peer's operator to approve or deny the waiting requests",
      };
      throw new KilnError("KILN_PAIRING_REFUSED", ExitCode.remote, `peer at ${url}: ${why[answer.status] ?? `pairing ended with '${answer.status}'`}`, { hint: hint[answer.status], data: { status: answer.status } });
    }
    const peer: PeerRecord = { ...provisional, label: o.name ?? (NAME_PATTERN.test(answer.label) ? answer.label : host) };
    const rows = (await readPeers(o.configDir)).filter((r) => r.pin !== peer.pin && r.label !== peer.label);
    rows.push(peer);
    await writePeers(o.configDir, rows);
    return { peer, answer };
  } finally {
    client.close();
  }
}
