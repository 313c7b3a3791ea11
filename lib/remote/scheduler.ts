/**
 * Where a build runs: here, on a paired peer, or nowhere. A pure function of
 * the pairings and their last health probe, so every rule is table-tested and
 * the same inputs give the same answer whatever order the peers come in.
 *
 * Fail-closed: a peer is a candidate only when its status is exactly
 * "approved", it is enabled, it was probed healthy and has not already failed
 * this build. `--remote auto` falls back to a local build with a one-line
 * reason; `--remote always` fails instead of building here.
 */

export type RemoteMode = "auto" | "always" | "never";

export type PeerHealth =
  | { ok: true; slots: number; running: number; queued: number; maxQueue: number; latencyMs: number }
  /** e.g. "unreachable", "timeout", "pin mismatch", "version". */
  | { ok: false; reason: string };

export interface PeerCandidate {
  pin: string;
  label: string;
  /** Only exactly "approved" is eligible; any other or unknown value is not. */
  status: string;
  enabled: boolean;
  /** ISO time; the older pairing wins ties. */
  pairedAt: string;
  /** undefined = not probed, which is ineligible. */
  health: PeerHealth | undefined;
  /** Affinity: this peer built this project last (its caches are warm). */
  builtThisProjectLast?: boolean;
}

export type Decision =
  /** `reason` is undefined only when there is nothing to say (mode never, or no pairings at all). */
  | Readonly<{ kind: "local"; pin: null; reason: string | undefined }>
  | Readonly<{ kind: "remote"; pin: string; label: string; queued: boolean; reason: string }>
  | Readonly<{ kind: "fail"; pin: null; reason: string; breakdown: Readonly<Record<string, number>> }>;

export interface PickInput {
  mode: RemoteMode;
  peers: readonly PeerCandidate[];
  /** Pins that already failed this build. */
  exclude?: readonly string[];
  /** Remote attempts lost mid-job so far. */
  lostConnections?: number;
}

/** A connected, healthy peer with sane numbers. */
interface Ready {
  peer: PeerCandidate;
  slots: number;
  running: number;
  queued: number;
  maxQueue: number;
  pairedMs: number;
}

const MAX_LOST = 2;

function local(reason: string | undefined): Decision {
  return Object.freeze({ kind: "local", pin: null, reason });
}

function fail(reason: string, breakdown: Record<string, number> = {}): Decision {
  return Object.freeze({ kind: "fail", pin: null, reason, breakdown: Object.freeze({ ...breakdown }) });
}

function remote(r: Ready, queued: boolean, reason: string): Decision {
  return Object.freeze({ kind: "remote", pin: r.peer.pin, label: r.peer.label, queued, reason });
}

/** A label or status for a one-line reason: control and bidi characters become '?'. */
function printable(s: unknown): string {
  return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, "?"); // eslint-disable-line no-control-regex
}

function count(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** Why `peer` is not a candidate, or undefined when it is one. */
function ineligibility(peer: PeerCandidate, exclude: ReadonlySet<string>): string | undefined {
  if (peer.status !== "approved") {
    const s = printable(peer.status);
    return `not approved (${/^[\w-]+$/.test(s) ? s : JSON.stringify(s)})`;
  }
  if (peer.enabled !== true) return "disabled";
  if (exclude.has(peer.pin)) return "excluded";
  const h = peer.health;
  if (h === undefined || h === null) return "not probed";
  if (h.ok !== true) return (h as { reason?: unknown }).reason ? printable((h as { reason: unknown }).reason) : "unreachable";
  if (!count(h.slots) || !count(h.running) || !count(h.queued) || !count(h.maxQueue)) return "invalid health";
  return undefined;
}

function parseTime(iso: string): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : Number.POSITIVE_INFINITY;
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Older pairing first, then pin: the stable tie-break of every ordering here. */
function bySeniority(a: Ready, b: Ready): number {
  if (a.pairedMs !== b.pairedMs) return a.pairedMs < b.pairedMs ? -1 : 1;
  return byText(a.peer.pin, b.peer.pin) || byText(a.peer.label, b.peer.label);
}

/** Least loaded (running/slots, compared exactly), then affinity, then seniority. */
function byFreeSlot(a: Ready, b: Ready): number {
  const load = a.running * b.slots - b.running * a.slots;
  if (load !== 0) return load;
  const affinity = Number(b.peer.builtThisProjectLast === true) - Number(a.peer.builtThisProjectLast === true);
  return affinity || bySeniority(a, b);
}

/** Count keys ordered by count (descending) then name, so the text and the object are deterministic. */
function sortedBreakdown(counts: Map<string, number>): Record<string, number> {
  const entries = [...counts].sort((a, b) => b[1] - a[1] || byText(a[0], b[0]));
  return Object.fromEntries(entries);
}

/** Decide where this build runs. Every decision (and its breakdown) is frozen. */
export function pickBuildTarget(input: PickInput): Decision {
  const { mode, peers } = input;
  if (mode === "never") return local(undefined);
  const always = mode === "always";

  const lost = input.lostConnections ?? 0;
  if (lost >= MAX_LOST) {
    const text = `the connection to the build peer was lost ${lost === 2 ? "twice" : `${lost} times`}`;
    return always ? fail(text, { "lost connection": lost }) : local(`${text}; building locally`);
  }

  if (peers.length === 0) {
    return always ? fail("no paired peers; pair one with 'kiln peer pair URL'") : local(undefined);
  }

  const exclude = new Set(input.exclude ?? []);
  const ready: Ready[] = [];
  const reasons = new Map<string, number>();
  for (const peer of peers) {
    const why = ineligibility(peer, exclude);
    if (why !== undefined) {
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
      continue;
    }
    const h = peer.health as Extract<PeerHealth, { ok: true }>;
    ready.push({ peer, slots: h.slots, running: h.running, queued: h.queued, maxQueue: h.maxQueue, pairedMs: parseTime(peer.pairedAt) });
  }

  if (ready.length === 0) {
    const breakdown = sortedBreakdown(reasons);
    const text = `no peer available: ${Object.entries(breakdown).map(([why, n]) => `${n} ${why}`).join(", ")}`;
    return always ? fail(text, breakdown) : local(text);
  }

  const free = ready.filter((r) => r.running < r.slots).sort(byFreeSlot);
  const best = free[0];
  if (best) return remote(best, false, `peer '${printable(best.peer.label)}' (${best.running}/${best.slots} busy)`);

  if (!always) {
    const busy = [...ready].sort(bySeniority).map((r) => `${printable(r.peer.label)} ${r.running}/${r.slots}, queue ${r.queued}`);
    return local(`all peers busy (${busy.join("; ")})`);
  }
  const room = ready.filter((r) => r.queued < r.maxQueue).sort((a, b) => a.queued - b.queued || bySeniority(a, b));
  const q = room[0];
  if (q) return remote(q, true, `peer '${printable(q.peer.label)}' (${q.running}/${q.slots} busy, ${q.queued} queued ahead)`);
  return fail("peers busy and queues full", { "queue full": ready.length });
}
