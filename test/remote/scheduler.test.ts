import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pickBuildTarget, type Decision, type PeerCandidate, type PeerHealth, type PickInput } from "../../lib/remote/scheduler.js";

const healthy = (running: number, slots = 4, queued = 0, maxQueue = 4): PeerHealth => ({ ok: true, slots, running, queued, maxQueue, latencyMs: 5 });

/** An approved, enabled, probed peer; `pin` defaults to `pin-<label>`. */
function peer(label: string, over: Partial<PeerCandidate> = {}): PeerCandidate {
  return { pin: `pin-${label}`, label, status: "approved", enabled: true, pairedAt: "2024-01-01T00:00:00.000Z", health: healthy(0), ...over };
}

type Expect = Partial<{ kind: Decision["kind"]; pin: string | null; label: string; queued: boolean; reason: string | RegExp | undefined; breakdown: Record<string, number> }>;

function check(d: Decision, expect: Expect): void {
  const { reason, ...rest } = expect;
  for (const [k, v] of Object.entries(rest)) assert.deepEqual((d as Record<string, unknown>)[k], v, `${k} of ${JSON.stringify(d)}`);
  if ("reason" in expect) {
    if (reason instanceof RegExp) assert.match(d.reason ?? "", reason);
    else assert.equal(d.reason, reason);
  }
}

const cases: Array<{ name: string; input: PickInput; expect: Expect }> = [
  // 1. never
  { name: "never builds locally without a reason", input: { mode: "never", peers: [peer("lab")] }, expect: { kind: "local", pin: null, reason: undefined } },
  { name: "never ignores lost connections", input: { mode: "never", peers: [], lostConnections: 5 }, expect: { kind: "local", reason: undefined } },
  // 2. lost twice
  { name: "auto: lost twice → local", input: { mode: "auto", peers: [peer("lab")], lostConnections: 2 }, expect: { kind: "local", pin: null, reason: /lost twice; building locally$/ } },
  { name: "always: lost twice → fail", input: { mode: "always", peers: [peer("lab")], lostConnections: 2 }, expect: { kind: "fail", pin: null, reason: /lost twice/, breakdown: { "lost connection": 2 } } },
  { name: "auto: lost three times → local", input: { mode: "auto", peers: [peer("lab")], lostConnections: 3 }, expect: { kind: "local", reason: /lost 3 times; building locally/ } },
  { name: "lost once → still remote", input: { mode: "auto", peers: [peer("lab")], lostConnections: 1 }, expect: { kind: "remote", pin: "pin-lab" } },
  // 3. no pairings
  { name: "auto: no pairings → local, nothing to say", input: { mode: "auto", peers: [] }, expect: { kind: "local", pin: null, reason: undefined } },
  { name: "always: no pairings → fail with the pairing hint", input: { mode: "always", peers: [] }, expect: { kind: "fail", pin: null, reason: /no paired peers.*kiln peer pair URL/, breakdown: {} } },
  // 4. free slot
  { name: "one idle peer", input: { mode: "auto", peers: [peer("lab", { health: healthy(1) })] }, expect: { kind: "remote", pin: "pin-lab", label: "lab", queued: false, reason: "peer 'lab' (1/4 busy)" } },
  { name: "always with a free slot is the same", input: { mode: "always", peers: [peer("lab")] }, expect: { kind: "remote", pin: "pin-lab", queued: false, reason: "peer 'lab' (0/4 busy)" } },
  {
    name: "least loaded by ratio, not by count",
    input: { mode: "auto", peers: [peer("small", { health: healthy(1, 2) }), peer("big", { health: healthy(3, 8) })] },
    expect: { kind: "remote", pin: "pin-big", reason: "peer 'big' (3/8 busy)" },
  },
  {
    name: "equal load: affinity wins",
    input: { mode: "auto", peers: [peer("a", { pairedAt: "2020-01-01T00:00:00Z" }), peer("b", { builtThisProjectLast: true })] },
    expect: { kind: "remote", pin: "pin-b" },
  },
  {
    name: "load beats affinity",
    input: { mode: "auto", peers: [peer("a", { health: healthy(0) }), peer("b", { health: healthy(1), builtThisProjectLast: true })] },
    expect: { kind: "remote", pin: "pin-a" },
  },
  {
    name: "equal load and affinity: oldest pairing wins",
    input: { mode: "auto", peers: [peer("new", { pairedAt: "2024-05-01T00:00:00Z" }), peer("old", { pairedAt: "2023-05-01T00:00:00Z" })] },
    expect: { kind: "remote", pin: "pin-old" },
  },
  {
    name: "pairedAt compares as time, not text",
    input: { mode: "auto", peers: [peer("utc", { pairedAt: "2024-01-01T01:00:00Z" }), peer("offset", { pairedAt: "2024-01-01T01:30:00+01:00" })] },
    expect: { kind: "remote", pin: "pin-offset" },
  },
  {
    name: "an unparsable pairedAt loses to a real one",
    input: { mode: "auto", peers: [peer("junk", { pairedAt: "yesterday" }), peer("real", { pairedAt: "2030-01-01T00:00:00Z" })] },
    expect: { kind: "remote", pin: "pin-real" },
  },
  {
    name: "all equal: lowest pin wins",
    input: { mode: "auto", peers: [peer("x", { pin: "bbb" }), peer("y", { pin: "aaa" }), peer("z", { pin: "ccc" })] },
    expect: { kind: "remote", pin: "aaa", label: "y" },
  },
  {
    name: "a full peer is skipped for a free one",
    input: { mode: "always", peers: [peer("full", { health: healthy(4, 4), pairedAt: "2000-01-01T00:00:00Z" }), peer("free", { health: healthy(3, 4) })] },
    expect: { kind: "remote", pin: "pin-free", queued: false },
  },
  // 5. all busy
  { name: "auto: all busy → local with loads", input: { mode: "auto", peers: [peer("lab", { health: healthy(4, 4, 2) })] }, expect: { kind: "local", pin: null, reason: "all peers busy (lab 4/4, queue 2)" } },
  {
    name: "auto: all busy lists every peer, oldest first",
    input: { mode: "auto", peers: [peer("b", { health: healthy(2, 2, 1), pairedAt: "2024-02-01T00:00:00Z" }), peer("a", { health: healthy(4, 4, 0), pairedAt: "2024-01-01T00:00:00Z" })] },
    expect: { kind: "local", reason: "all peers busy (a 4/4, queue 0; b 2/2, queue 1)" },
  },
  {
    name: "always: all busy → shortest queue",
    input: { mode: "always", peers: [peer("long", { health: healthy(4, 4, 3), pairedAt: "2000-01-01T00:00:00Z" }), peer("short", { health: healthy(4, 4, 1) })] },
    expect: { kind: "remote", pin: "pin-short", label: "short", queued: true, reason: "peer 'short' (4/4 busy, 1 queued ahead)" },
  },
  {
    name: "always: all busy, equal queues → oldest",
    input: { mode: "always", peers: [peer("new", { health: healthy(4, 4, 1), pairedAt: "2024-06-01T00:00:00Z" }), peer("old", { health: healthy(4, 4, 1), pairedAt: "2024-01-01T00:00:00Z" })] },
    expect: { kind: "remote", pin: "pin-old", queued: true },
  },
  {
    name: "always: all busy, equal queues and age → lowest pin",
    input: { mode: "always", peers: [peer("p", { pin: "zz", health: healthy(1, 1, 0) }), peer("q", { pin: "aa", health: healthy(1, 1, 0) })] },
    expect: { kind: "remote", pin: "aa", queued: true },
  },
  {
    name: "always: a full queue is skipped even if shorter elsewhere is not",
    input: { mode: "always", peers: [peer("fullq", { health: healthy(4, 4, 2, 2) }), peer("room", { health: healthy(4, 4, 3, 8) })] },
    expect: { kind: "remote", pin: "pin-room", queued: true },
  },
  {
    name: "always: busy and every queue full → fail",
    input: { mode: "always", peers: [peer("a", { health: healthy(4, 4, 4, 4) }), peer("b", { health: healthy(1, 1, 0, 0) })] },
    expect: { kind: "fail", pin: null, reason: "peers busy and queues full", breakdown: { "queue full": 2 } },
  },
  { name: "zero slots counts as busy", input: { mode: "auto", peers: [peer("zero", { health: healthy(0, 0, 0) })] }, expect: { kind: "local", reason: "all peers busy (zero 0/0, queue 0)" } },
  // 6. nothing eligible
  {
    name: "auto: nothing eligible → local with a breakdown",
    input: {
      mode: "auto",
      peers: [peer("u", { health: { ok: false, reason: "unreachable" } }), peer("p", { status: "pending" }), peer("d", { enabled: false })],
    },
    expect: { kind: "local", pin: null, reason: "no peer available: 1 disabled, 1 not approved (pending), 1 unreachable" },
  },
  {
    name: "always: nothing eligible → fail with the breakdown object",
    input: {
      mode: "always",
      peers: [
        peer("u1", { health: { ok: false, reason: "unreachable" } }),
        peer("u2", { health: { ok: false, reason: "unreachable" } }),
        peer("t", { health: { ok: false, reason: "timeout" } }),
        peer("m", { health: { ok: false, reason: "pin mismatch" } }),
        peer("n", { health: undefined }),
        peer("r", { status: "revoked" }),
        peer("x", {}),
      ],
      exclude: ["pin-x"],
    },
    expect: {
      kind: "fail",
      pin: null,
      reason: "no peer available: 2 unreachable, 1 excluded, 1 not approved (revoked), 1 not probed, 1 pin mismatch, 1 timeout",
      breakdown: { unreachable: 2, excluded: 1, "not approved (revoked)": 1, "not probed": 1, "pin mismatch": 1, timeout: 1 },
    },
  },
  {
    name: "the first problem of a peer is the one counted",
    input: { mode: "always", peers: [peer("a", { status: "pending", enabled: false, health: undefined }), peer("b", { enabled: false, health: { ok: false, reason: "timeout" } })] },
    expect: { kind: "fail", breakdown: { "disabled": 1, "not approved (pending)": 1 } },
  },
  {
    name: "a health report with nonsense numbers is not trusted",
    input: { mode: "always", peers: [peer("neg", { health: healthy(-5, 4) }), peer("nan", { health: healthy(0, Number.NaN) }), peer("frac", { health: { ok: true, slots: 1.5, running: 0, queued: 0, maxQueue: 0, latencyMs: 1 } })] },
    expect: { kind: "fail", breakdown: { "invalid health": 3 } },
  },
  // exclude
  {
    name: "exclude skips a peer that already failed this build",
    input: { mode: "auto", peers: [peer("first", { pairedAt: "2000-01-01T00:00:00Z" }), peer("second")], exclude: ["pin-first"] },
    expect: { kind: "remote", pin: "pin-second" },
  },
  { name: "exclude all → auto local with reason", input: { mode: "auto", peers: [peer("a")], exclude: ["pin-a"] }, expect: { kind: "local", reason: "no peer available: 1 excluded" } },
  { name: "exclude of unknown pins is harmless", input: { mode: "auto", peers: [peer("a")], exclude: ["nope", ""] }, expect: { kind: "remote", pin: "pin-a" } },
];

describe("pickBuildTarget", () => {
  for (const c of cases) {
    it(c.name, () => check(pickBuildTarget(c.input), c.expect));
  }

  for (const status of ["pending", "revoked", "denied", "APPROVED", "approved ", " approved", "", "unknown"]) {
    it(`status ${JSON.stringify(status)} is not eligible`, () => {
      const peers = [peer("lab", { status })];
      check(pickBuildTarget({ mode: "auto", peers }), { kind: "local", pin: null, reason: /^no peer available: 1 not approved \(/ });
      const d = pickBuildTarget({ mode: "always", peers });
      assert.equal(d.kind, "fail");
      assert.deepEqual(Object.keys(d.kind === "fail" ? d.breakdown : {}), [`not approved (${/^[\w-]+$/.test(status) ? status : JSON.stringify(status)})`]);
    });
  }

  it("fails closed on values outside the types (runtime JSON)", () => {
    const odd = [
      peer("s", { status: undefined as unknown as string }),
      peer("e", { enabled: "true" as unknown as boolean }),
      peer("h", { health: null as unknown as undefined }),
      peer("k", { health: { ok: "yes", slots: 4, running: 0, queued: 0, maxQueue: 1, latencyMs: 1 } as unknown as PeerHealth }),
    ];
    const d = pickBuildTarget({ mode: "always", peers: odd });
    assert.equal(d.kind, "fail");
    assert.deepEqual(d.kind === "fail" && d.breakdown, { disabled: 1, "not approved (undefined)": 1, "not probed": 1, unreachable: 1 });
  });

  it("keeps control characters out of reasons", () => {
    const d = pickBuildTarget({ mode: "auto", peers: [peer("evil\u001b[2J\u202e", { health: healthy(1) })] });
    assert.equal(d.reason, "peer 'evil?[2J?' (1/4 busy)");
    assert.equal(d.kind === "remote" && d.label, "evil\u001b[2J\u202e");
  });

  it("does not depend on the order of the peers", () => {
    const peers = [
      peer("a", { health: healthy(1, 4), pairedAt: "2024-03-01T00:00:00Z" }),
      peer("b", { health: healthy(1, 4), pairedAt: "2024-01-01T00:00:00Z" }),
      peer("c", { health: healthy(1, 4), pairedAt: "2024-01-01T00:00:00Z", pin: "pin-0" }),
      peer("d", { health: healthy(2, 8), pairedAt: "2024-01-01T00:00:00Z", builtThisProjectLast: true }),
      peer("e", { health: healthy(0, 0, 0) }),
      peer("f", { status: "pending" }),
      peer("g", { health: { ok: false, reason: "timeout" } }),
      peer("h", { enabled: false }),
    ];
    const busy = peers.map((p) => (p.health?.ok ? { ...p, health: { ...p.health, running: p.health.slots, queued: p.label.charCodeAt(0) % 3 } } : p));
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const shuffles = (list: PeerCandidate[]) => [list, [...list].reverse(), ...Array.from({ length: 8 }, () => [...list].sort(() => rand() - 0.5))];
    for (const mode of ["auto", "always"] as const) {
      for (const list of [peers, busy]) {
        const first = pickBuildTarget({ mode, peers: list });
        for (const order of shuffles(list)) assert.deepEqual(pickBuildTarget({ mode, peers: order }), first, `${mode}: ${order.map((p) => p.label).join("")}`);
      }
    }
    assert.equal(pickBuildTarget({ mode: "auto", peers }).pin, "pin-d");
    assert.equal(pickBuildTarget({ mode: "always", peers: busy }).pin, "pin-0");
  });

  it("freezes every decision and its breakdown", () => {
    const decisions = [
      pickBuildTarget({ mode: "never", peers: [] }),
      pickBuildTarget({ mode: "auto", peers: [] }),
      pickBuildTarget({ mode: "auto", peers: [peer("a")] }),
      pickBuildTarget({ mode: "always", peers: [peer("a", { health: healthy(1, 1, 0) })] }),
      pickBuildTarget({ mode: "always", peers: [] }),
      pickBuildTarget({ mode: "always", peers: [peer("a", { enabled: false })] }),
      pickBuildTarget({ mode: "always", peers: [peer("a")], lostConnections: 2 }),
    ];
    assert.deepEqual(decisions.map((d) => d.kind), ["local", "local", "remote", "remote", "fail", "fail", "fail"]);
    for (const d of decisions) {
      assert.ok(Object.isFrozen(d), JSON.stringify(d));
      assert.throws(() => {
        (d as { reason: unknown }).reason = "changed";
      }, TypeError);
      if (d.kind === "fail") {
        assert.ok(Object.isFrozen(d.breakdown));
        assert.throws(() => {
          (d.breakdown as Record<string, number>).x = 1;
        }, TypeError);
      }
      if (d.kind !== "remote") assert.equal(d.pin, null);
    }
  });
});
