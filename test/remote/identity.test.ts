/**
 * Peer identity and pinned TLS, with real things only: certificates built by
 * lib/remote/identity.ts are read back by Node and by the openssl program, and
 * every TLS test is a real handshake on 127.0.0.1.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey, randomBytes } from "node:crypto";
import { chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import tls, { type PeerCertificate, type TLSSocket } from "node:tls";
import { join } from "node:path";
import { KilnError } from "../../lib/core/errors.js";
import {
  PEER_SERVERNAME,
  derForTests,
  formatPin,
  generateIdentity,
  isPin,
  loadOrCreateIdentity,
  normalizePin,
  pinWordListForTests,
  pinWords,
  pinsEqual,
  spkiPin,
  type Identity,
} from "../../lib/remote/identity.js";
import { clientPinOf, pinnedAgent, previewPeer, serverTlsOptions } from "../../lib/remote/tls.js";
import { repoRoot, tempDir } from "../helpers/cli.js";
import { requireTool } from "../helpers/tools.js";

// ---------------------------------------------------------------------------
// Helpers

interface Seen {
  /** HTTP requests that reached the handler. */
  requests: Array<{ url: string; clientPin: string | undefined; authorized: boolean; resumed: boolean }>;
  /** TCP connections accepted. */
  connections: number;
}

interface TestServer {
  server: https.Server;
  port: number;
  seen: Seen;
  close(): Promise<void>;
}

/** An https server with `options`, answering "hello" and recording what reached it. */
async function startServer(options: https.ServerOptions, port = 0): Promise<TestServer> {
  const seen: Seen = { requests: [], connections: 0 };
  const server = https.createServer(options, (req, res) => {
    const socket = req.socket as TLSSocket;
    seen.requests.push({ url: req.url ?? "", clientPin: clientPinOf(socket), authorized: socket.authorized, resumed: socket.isSessionReused() });
    res.end("hello");
  });
  server.on("connection", () => seen.connections++);
  // TLS failures are the client's business in these tests.
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** One GET; resolves with the body or rejects with the request's error. */
function get(port: number, options: https.RequestOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port, path: "/ping", method: "GET", ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function peerOf(id: Identity): { pin: string; certPem: string } {
  return { pin: id.pin, certPem: id.certPem };
}

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { encoding: "utf8", input });
}

async function waitFor(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function isKiln(code: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected KilnError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

// ---------------------------------------------------------------------------

describe("OpenSSL accepts a self-signed certificate as its own trust anchor", () => {
  // The question that decides CA:FALSE vs CA:TRUE (lib/remote/identity.ts):
  // the server trusts exactly the client's certificate and vice versa, as
  // pinned peers do; no hostname check, only OpenSSL's chain verification.
  async function mutual(ca: boolean): Promise<{ body: string; authorized: boolean }> {
    const serverId = generateIdentity({ ca });
    const clientId = generateIdentity({ ca });
    const srv = await startServer({ key: serverId.keyPem, cert: serverId.certPem, requestCert: true, ca: [clientId.certPem], rejectUnauthorized: false });
    try {
      const body = await get(srv.port, {
        agent: false,
        ca: [serverId.certPem],
        cert: clientId.certPem,
        key: clientId.keyPem,
        servername: PEER_SERVERNAME,
        checkServerIdentity: () => undefined,
      });
      return { body, authorized: srv.seen.requests[0]!.authorized };
    } finally {
      await srv.close();
    }
  }

  it("with CA:FALSE, for the server certificate and the mTLS client certificate (kept)", async () => {
    const x = new X509Certificate(generateIdentity().certDer);
    assert.equal(x.ca, false, "the default identity is CA:FALSE");
    assert.deepEqual(await mutual(false), { body: "hello", authorized: true });
  });

  it("with CA:TRUE + keyCertSign (the fallback, not needed)", async (t) => {
    const r = await mutual(true).catch((e: Error) => e);
    t.diagnostic(`CA:TRUE: ${r instanceof Error ? `fails: ${r.message}` : `works, authorized=${r.authorized}`}`);
  });
});

describe("generated certificate", () => {
  before(() => requireTool("openssl", "openssl"));

  it("parses with X509Certificate: subject, SAN, validity, self-signature", () => {
    const now = new Date(Date.UTC(2030, 5, 15, 12, 0, 0));
    const id = generateIdentity({ now });
    const x = new X509Certificate(id.certPem);
    assert.ok(x.raw.equals(id.certDer));
    assert.equal(x.subject, "CN=kiln-peer");
    assert.equal(x.issuer, "CN=kiln-peer");
    assert.equal(x.subjectAltName, "DNS:kiln-peer");
    assert.equal(x.validFrom, "Jun 14 12:00:00 2030 GMT");
    assert.equal(x.validTo, "Jun 15 12:00:00 2040 GMT");
    assert.deepEqual(x.keyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]); // extKeyUsage: serverAuth, clientAuth
    assert.match(x.serialNumber, /^[4-7][0-9A-F]{31}$/, "16-byte positive serial");
    assert.equal(x.publicKey.asymmetricKeyType, "ec");
    assert.ok(x.verify(x.publicKey), "signed by its own key");
    assert.equal(x.checkPrivateKey(createPrivateKey(id.keyPem)), true);
    // CA:FALSE: OpenSSL's X509_check_issued wants keyCertSign on the issuer,
    // so it does not call the certificate self-issued. The CA:TRUE variant is.
    assert.equal(x.checkIssued(x), false);
    const caX = new X509Certificate(generateIdentity({ ca: true }).certDer);
    assert.equal(caX.checkIssued(caX), true);
  });

  it("takes a commonName and random serials", () => {
    const a = new X509Certificate(generateIdentity({ commonName: "bench-1" }).certDer);
    const b = new X509Certificate(generateIdentity().certDer);
    assert.equal(a.subject, "CN=bench-1");
    assert.equal(a.issuer, "CN=bench-1");
    assert.equal(a.subjectAltName, "DNS:kiln-peer");
    assert.notEqual(a.serialNumber, b.serialNumber);
  });

  it("uses UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280)", () => {
    const tag = (d: Date): string => derForTests.time(d).toString("latin1");
    assert.equal(tag(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))), "\x17\x0d491231235959Z");
    assert.equal(tag(new Date(Date.UTC(2050, 0, 1, 0, 0, 0))), "\x18\x0f20500101000000Z");
    const x = new X509Certificate(generateIdentity({ now: new Date(Date.UTC(2045, 0, 2)) }).certDer);
    assert.equal(x.validFrom, "Jan  1 00:00:00 2045 GMT");
    assert.equal(x.validTo, "Jan  2 00:00:00 2055 GMT");
    assert.match(openssl(["x509", "-noout", "-enddate"], x.toString()), /notAfter=Jan {2}2 00:00:00 2055 GMT/);
  });

  it("DER encoder: known encodings", () => {
    const hex = (b: Buffer): string => b.toString("hex");
    assert.equal(hex(derForTests.oid("1.2.840.10045.4.3.2")), "06082a8648ce3d040302");
    assert.equal(hex(derForTests.oid("2.5.29.19")), "0603551d13");
    assert.equal(hex(derForTests.integer(0)), "020100");
    assert.equal(hex(derForTests.integer(2)), "020102");
    assert.equal(hex(derForTests.integer(128)), "02020080");
    assert.equal(hex(derForTests.unsignedInteger(Buffer.from("0000ff", "hex"))), "020200ff");
    assert.equal(hex(derForTests.boolean(true)), "0101ff");
    assert.equal(hex(derForTests.printableString("AB")), "13024142");
    assert.equal(hex(derForTests.utf8String("é")), "0c02c3a9");
    assert.equal(hex(derForTests.bitString(Buffer.from([0x80]), 7)), "03020780");
    assert.equal(hex(derForTests.explicit(3, derForTests.sequence())), "a3023000");
    assert.equal(hex(derForTests.octetString(Buffer.alloc(200))).slice(0, 6), "0481c8");
    assert.equal(hex(derForTests.octetString(Buffer.alloc(300))).slice(0, 8), "0482012c");
  });

  it("openssl x509 -text reads every field", () => {
    const text = openssl(["x509", "-noout", "-text"], generateIdentity().certPem);
    assert.match(text, /Version: 3 \(0x2\)/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /Issuer: CN ?= ?kiln-peer/);
    assert.match(text, /Subject: CN ?= ?kiln-peer/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /X509v3 Extended Key Usage: ?\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text, /X509v3 Subject Alternative Name: ?\s+DNS:kiln-peer/);
    assert.match(text, /X509v3 Subject Key Identifier: ?\s+([0-9A-F]{2}:){19}[0-9A-F]{2}/);
    const ca = openssl(["x509", "-noout", "-text"], generateIdentity({ ca: true }).certPem);
    assert.match(ca, /CA:TRUE/);
    assert.match(ca, /Digital Signature, Certificate Sign/);
  });

  it("openssl verify accepts it as its own CA file (CA:FALSE works here too)", async () => {
    const dir = await tempDir("kiln-id-");
    const file = join(dir, "cert.pem");
    await writeFile(file, generateIdentity().certPem);
    assert.match(openssl(["verify", "-CAfile", file, file]), /: OK/);
    await rm(dir, { recursive: true, force: true });
  });

  it("spkiPin equals openssl's SHA-256 of the public key DER, for DER, PEM and X509Certificate", () => {
    const id = generateIdentity();
    const out = execFileSync("sh", ["-c", "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum"], { input: id.certPem, encoding: "utf8" });
    const expected = out.split(" ")[0]!;
    assert.ok(isPin(expected), out);
    assert.equal(id.pin, expected);
    assert.equal(spkiPin(id.certDer), expected);
    assert.equal(spkiPin(id.certPem), expected);
    assert.equal(spkiPin(new X509Certificate(id.certDer)), expected);
  });
});

describe("pins", () => {
  const pin = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

  it("isPin: exactly 64 lower-case hex", () => {
    assert.equal(isPin(pin), true);
    assert.equal(isPin(pin.toUpperCase()), false);
    assert.equal(isPin(pin.slice(1)), false);
    assert.equal(isPin(`${pin}0`), false);
    assert.equal(isPin(pin.replace("0", "g")), false);
    assert.equal(isPin(42), false);
    assert.equal(isPin(undefined), false);
  });

  it("normalizePin accepts what people paste", () => {
    assert.equal(normalizePin(pin), pin);
    assert.equal(normalizePin(pin.toUpperCase()), pin);
    assert.equal(normalizePin(formatPin(pin)), pin);
    assert.equal(normalizePin(`  ${pin.match(/../g)!.join(":").toUpperCase()}\n`), pin);
    assert.equal(normalizePin(pin.match(/.{8}/g)!.join("-")), pin);
    assert.equal(normalizePin(pin.slice(2)), undefined);
    assert.equal(normalizePin(`${pin}00`), undefined);
    assert.equal(normalizePin("kiln"), undefined);
    assert.equal(normalizePin(""), undefined);
  });

  it("formatPin: 16 groups of 4", () => {
    assert.equal(formatPin(pin), "0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef");
  });

  it("pinsEqual: equal only for two identical valid pins", () => {
    const other = `${pin.slice(0, 63)}0`;
    assert.equal(pinsEqual(pin, pin), true);
    assert.equal(pinsEqual(pin, other), false);
    assert.equal(pinsEqual(pin, pin.toUpperCase()), false);
    assert.equal(pinsEqual("", ""), false);
    assert.equal(pinsEqual("zz", "zz"), false);
  });

  it("pinWords: six distinct-list words from the first six bytes", () => {
    const words = pinWordListForTests;
    assert.equal(words.length, 256);
    assert.equal(new Set(words).size, 256);
    assert.ok(words.every((w) => /^[a-z]{3,7}$/.test(w)), "short lower-case words");
    assert.equal(pinWords(pin), [0x01, 0x23, 0x45, 0x67, 0x89, 0xab].map((b) => words[b]).join(" "));
    assert.equal(pinWords(`ff${pin.slice(2)}`).split(" ")[0], words[255]);
    const id = generateIdentity();
    assert.equal(pinWords(id.pin).split(" ").length, 6);
    assert.throws(() => pinWords("nope"));
  });
});

describe("pinned TLS", () => {
  const serverId = generateIdentity();
  const clientId = generateIdentity();

  it("mutual TLS through pinnedAgent: both sides see the pinned peer", async () => {
    const srv = await startServer(serverTlsOptions(serverId, [clientId.certPem]));
    const agent = pinnedAgent(peerOf(serverId), clientId);
    try {
      assert.equal(await get(srv.port, { agent }), "hello");
      assert.equal(await get(srv.port, { agent }), "hello");
      assert.equal(srv.seen.requests.length, 2);
      assert.deepEqual(srv.seen.requests[0], { url: "/ping", clientPin: clientId.pin, authorized: true, resumed: false });
      assert.equal(srv.seen.connections, 1, "keep-alive reuses the verified connection");
    } finally {
      agent.destroy();
      await srv.close();
    }
  });

  it("the server lets unapproved and certificate-less clients in, unauthorized, with their pin (or none)", async () => {
    const stranger = generateIdentity();
    const srv = await startServer(serverTlsOptions(serverId, []));
    const agent = pinnedAgent(peerOf(serverId), stranger);
    try {
      assert.equal(await get(srv.port, { agent }), "hello");
      assert.deepEqual(srv.seen.requests[0], { url: "/ping", clientPin: stranger.pin, authorized: false, resumed: false });
      // No client certificate at all (the ca pins the server, so this client is still safe).
      assert.equal(await get(srv.port, { agent: false, ca: [serverId.certPem], servername: PEER_SERVERNAME, checkServerIdentity: () => undefined }), "hello");
      assert.deepEqual(srv.seen.requests[1], { url: "/ping", clientPin: undefined, authorized: false, resumed: false });
    } finally {
      agent.destroy();
      await srv.close();
    }
  });

  it("a server with another identity: KILN_PIN_MISMATCH, and no request reaches it", async () => {
    const impostor = generateIdentity();
    const srv = await startServer(serverTlsOptions(impostor, [clientId.certPem]));
    const agent = pinnedAgent(peerOf(serverId), clientId);
    try {
      const err = await get(srv.port, { agent }).then(
        () => assert.fail("the request succeeded"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof KilnError, String(err));
      assert.equal(err.code, "KILN_PIN_MISMATCH");
      assert.equal(err.exitCode, 8);
      assert.equal(err.data.expected, serverId.pin);
      assert.equal(err.data.got, impostor.pin);
      assert.ok(err.message.includes(formatPin(impostor.pin)) && err.message.includes(formatPin(serverId.pin)), err.message);
      assert.ok(err.message.includes(`127.0.0.1:${srv.port}`), err.message);
      assert.equal(srv.seen.connections, 1, "the handshake happened");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(srv.seen.requests.length, 0, "the impostor's handler ran");
    } finally {
      agent.destroy();
      await srv.close();
    }
  });

  it("checkServerIdentity compares pins and ignores the hostname", () => {
    const agent = pinnedAgent(peerOf(serverId), clientId);
    const check = agent.options.checkServerIdentity!;
    const asPeer = (id: Identity): PeerCertificate => ({ raw: id.certDer }) as PeerCertificate;
    assert.equal(check("some.other.host", asPeer(serverId)), undefined);
    const other = generateIdentity();
    const e = check(PEER_SERVERNAME, asPeer(other));
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, "KILN_PIN_MISMATCH");
    assert.equal(e.data.got, other.pin);
    assert.equal((check(PEER_SERVERNAME, {} as PeerCertificate) as KilnError).code, "KILN_PIN_MISMATCH");
    // Only TLS 1.3, only the pinned certificate, no TLS session cache.
    assert.equal(agent.options.minVersion, "TLSv1.3");
    assert.deepEqual(agent.options.ca, [serverId.certPem]);
    assert.equal(agent.options.maxCachedSessions, 0);
    assert.equal(agent.options.servername, PEER_SERVERNAME);
    agent.destroy();
  });

  it("pinnedAgent refuses a pin that does not describe the pinned certificate", () => {
    assert.throws(() => pinnedAgent({ pin: clientId.pin, certPem: serverId.certPem }, clientId), /is not the pin/);
    assert.throws(() => pinnedAgent({ pin: "nope", certPem: serverId.certPem }, clientId), /not a pin/);
  });

  /** A plain https.Agent like pinnedAgent's, but with Node's default TLS session cache: the control. */
  function cachingAgent(server: Identity, me: Identity): https.Agent {
    return new https.Agent({ ca: [server.certPem], cert: me.certPem, key: me.keyPem, servername: PEER_SERVERNAME, minVersion: "TLSv1.3", checkServerIdentity: () => undefined, keepAlive: true });
  }

  /** Close the agent's idle kept-alive sockets so its next request needs a new connection. */
  async function dropIdle(agent: https.Agent): Promise<void> {
    for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) s.destroy();
    await waitFor(() => Object.keys(agent.freeSockets).length === 0, "the agent to drop its idle sockets");
  }

  it("never resumes a TLS session: every new connection shows the pinned key", async () => {
    const srv = await startServer(serverTlsOptions(serverId, [clientId.certPem]));
    const agent = pinnedAgent(peerOf(serverId), clientId);
    const control = cachingAgent(serverId, clientId);
    try {
      for (const a of [agent, control]) {
        assert.equal(await get(srv.port, { agent: a }), "hello");
        await new Promise((r) => setTimeout(r, 50)); // TLS 1.3 session tickets arrive after the handshake
        await dropIdle(a);
        assert.equal(await get(srv.port, { agent: a }), "hello");
      }
      assert.deepEqual(
        srv.seen.requests.map((r) => r.resumed),
        [false, false, false, true],
        "pinnedAgent resumed a session (or the control did not, so this test proves nothing)",
      );
    } finally {
      agent.destroy();
      control.destroy();
      await srv.close();
    }
  });

  it("after the peer's identity changes on the same port, the next request fails too", async (t) => {
    // Both servers share session ticket keys, so the new one could resume a
    // session of the old one: a client that resumed would never see its key.
    const ticketKeys = randomBytes(48);
    let srv = await startServer({ ...serverTlsOptions(serverId, [clientId.certPem]), ticketKeys });
    const port = srv.port;
    const agent = pinnedAgent(peerOf(serverId), clientId);
    const control = cachingAgent(serverId, clientId);
    try {
      assert.equal(await get(port, { agent }), "hello");
      assert.equal(await get(port, { agent: control }), "hello");
      await new Promise((r) => setTimeout(r, 50));
      await srv.close();
      // The kept-alive sockets must be gone, so the next requests make new connections.
      await dropIdle(agent);
      await dropIdle(control);
      srv = await startServer({ ...serverTlsOptions(generateIdentity(), [clientId.certPem]), ticketKeys }, port);
      await assert.rejects(get(port, { agent }), isKiln("KILN_PIN_MISMATCH"));
      assert.equal(srv.seen.requests.length, 0);
      const c = await get(port, { agent: control }).then(
        () => `reached the new server (resumed=${srv.seen.requests[0]?.resumed})`,
        (e: Error) => `failed: ${e.message}`,
      );
      t.diagnostic(`control agent with Node's session cache: ${c}`);
    } finally {
      agent.destroy();
      control.destroy();
      await srv.close();
    }
  });

  it("a TLS 1.2 client is refused by the server; a TLS 1.2 server is refused by pinnedAgent", async () => {
    const srv = await startServer(serverTlsOptions(serverId, [clientId.certPem]));
    try {
      const old = tls.connect({ host: "127.0.0.1", port: srv.port, maxVersion: "TLSv1.2", ca: [serverId.certPem], cert: clientId.certPem, key: clientId.keyPem, servername: PEER_SERVERNAME });
      const err = await new Promise<Error>((resolve) => {
        old.once("error", resolve);
        old.once("secureConnect", () => resolve(new Error("connected")));
      });
      old.destroy();
      assert.match(`${(err as NodeJS.ErrnoException).code} ${err.message}`, /protocol version|PROTOCOL_VERSION|ECONNRESET/i);
      assert.equal(srv.seen.requests.length, 0);
    } finally {
      await srv.close();
    }
    const old = await startServer({ ...serverTlsOptions(serverId, [clientId.certPem]), minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
    const agent = pinnedAgent(peerOf(serverId), clientId);
    try {
      await assert.rejects(get(old.port, { agent }), (e: Error & { code?: string }) => {
        assert.match(`${e.code} ${e.message}`, /protocol version|PROTOCOL_VERSION/i);
        return true;
      });
      assert.equal(old.seen.requests.length, 0);
    } finally {
      agent.destroy();
      await old.close();
    }
  });
});

describe("previewPeer", () => {
  const serverId = generateIdentity();

  it("learns the server's certificate and pin, and sends no HTTP request", async () => {
    const srv = await startServer(serverTlsOptions(serverId, []));
    try {
      const got = await previewPeer("127.0.0.1", srv.port);
      assert.equal(got.pin, serverId.pin);
      assert.ok(new X509Certificate(got.certPem).raw.equals(serverId.certDer));
      assert.equal(srv.seen.connections, 1, "the preview connected");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(srv.seen.requests.length, 0, "the preview sent an HTTP request");
      // What it learned is enough to pin the peer.
      const agent = pinnedAgent(got, generateIdentity());
      assert.equal(await get(srv.port, { agent }), "hello");
      agent.destroy();
    } finally {
      await srv.close();
    }
  });

  it("a closed port: KILN_REMOTE_UNREACHABLE naming host:port", async () => {
    const port = await closedPort();
    await assert.rejects(previewPeer("127.0.0.1", port), (e: unknown) => {
      isKiln("KILN_REMOTE_UNREACHABLE")(e);
      const k = e as KilnError;
      assert.equal(k.exitCode, 8);
      assert.ok(k.message.includes(`127.0.0.1:${port}`), k.message);
      assert.match(k.message, /ECONNREFUSED/);
      assert.match(k.hint ?? "", /kiln peer serve/);
      return true;
    });
  });

  it("a server that never answers the handshake: KILN_REMOTE_UNREACHABLE after the timeout", async () => {
    const silent = net.createServer(() => {});
    const held: net.Socket[] = [];
    silent.on("connection", (s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const { port } = silent.address() as AddressInfo;
    try {
      const t0 = Date.now();
      await assert.rejects(previewPeer("127.0.0.1", port, { timeoutMs: 300 }), (e: unknown) => {
        isKiln("KILN_REMOTE_UNREACHABLE")(e);
        assert.match((e as Error).message, /no TLS handshake within 0\.3 s/);
        return true;
      });
      assert.ok(Date.now() - t0 < 3000);
      // An AbortSignal ends it early, as a cancellation.
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      await assert.rejects(previewPeer("127.0.0.1", port, { signal: ac.signal }), isKiln("KILN_CANCELLED"));
      await assert.rejects(previewPeer("127.0.0.1", port, { signal: AbortSignal.abort() }), isKiln("KILN_CANCELLED"));
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it("a server that is not TLS 1.3: KILN_REMOTE_UNREACHABLE", async () => {
    const srv = await startServer({ ...serverTlsOptions(serverId, []), minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
    try {
      await assert.rejects(previewPeer("127.0.0.1", srv.port), isKiln("KILN_REMOTE_UNREACHABLE"));
    } finally {
      await srv.close();
    }
  });
});

describe("loadOrCreateIdentity", () => {
  it("creates key.pem and cert.pem (0600) in a 0700 dir, then loads the same identity", async () => {
    const root = await tempDir("kiln-id-");
    const dir = join(root, "nested", "identity");
    const first = await loadOrCreateIdentity(dir);
    assert.equal(first.created, true);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, "key.pem"))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, "cert.pem"))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(dir, "cert.pem"), "utf8"), first.identity.certPem);
    assert.equal(first.identity.pin, spkiPin(first.identity.certDer));
    const second = await loadOrCreateIdentity(dir);
    assert.equal(second.created, false);
    assert.equal(second.identity.pin, first.identity.pin);
    assert.equal(second.identity.keyPem, first.identity.keyPem);
    assert.ok(second.identity.certDer.equals(first.identity.certDer));
    await rm(root, { recursive: true, force: true });
  });

  it("two at once make one identity", async () => {
    const dir = join(await tempDir("kiln-id-"), "id");
    const [a, b] = await Promise.all([loadOrCreateIdentity(dir), loadOrCreateIdentity(dir)]);
    assert.equal(a.identity.pin, b.identity.pin);
    assert.deepEqual([a.created, b.created].sort(), [false, true]);
    assert.equal((await loadOrCreateIdentity(dir)).identity.pin, a.identity.pin);
  });

  it("a key without its cert (a crash between the renames) is replaced by a new identity", async () => {
    const dir = join(await tempDir("kiln-id-"), "id");
    const first = await loadOrCreateIdentity(dir);
    await rm(join(dir, "cert.pem"));
    await writeFile(join(dir, "key.pem.tmp-1-abcd"), "half");
    const again = await loadOrCreateIdentity(dir);
    assert.equal(again.created, true);
    assert.notEqual(again.identity.pin, first.identity.pin);
    assert.equal((await loadOrCreateIdentity(dir)).identity.pin, again.identity.pin);
    await assert.rejects(stat(join(dir, "key.pem.tmp-1-abcd")), { code: "ENOENT" });
    // And a cert without its key.
    await rm(join(dir, "key.pem"));
    const third = await loadOrCreateIdentity(dir);
    assert.equal(third.created, true);
    assert.notEqual(third.identity.pin, again.identity.pin);
  });

  it("does not police permissions of existing files", async () => {
    const dir = join(await tempDir("kiln-id-"), "id");
    const first = await loadOrCreateIdentity(dir);
    await chmod(join(dir, "key.pem"), 0o644);
    assert.equal((await loadOrCreateIdentity(dir)).identity.pin, first.identity.pin);
  });

  it("a corrupt key file, a corrupt cert file, or a pair that does not match: KILN_IDENTITY_INVALID naming the file", async () => {
    const dir = join(await tempDir("kiln-id-"), "id");
    await loadOrCreateIdentity(dir);
    const keyFile = join(dir, "key.pem");
    const certFile = join(dir, "cert.pem");
    const goodKey = await readFile(keyFile, "utf8");
    const goodCert = await readFile(certFile, "utf8");
    const expectInvalid = (file: string) => (e: unknown) => {
      isKiln("KILN_IDENTITY_INVALID")(e);
      const k = e as KilnError;
      assert.equal(k.exitCode, 3);
      assert.ok(k.message.includes(file), k.message);
      assert.match(k.hint ?? "", /delete it to make a new identity; paired peers must pair again/);
      return true;
    };

    await writeFile(keyFile, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n");
    await assert.rejects(loadOrCreateIdentity(dir), expectInvalid(keyFile));
    await writeFile(keyFile, goodKey);

    await writeFile(certFile, "not a certificate");
    await assert.rejects(loadOrCreateIdentity(dir), expectInvalid(certFile));

    await writeFile(certFile, generateIdentity().certPem);
    await assert.rejects(loadOrCreateIdentity(dir), expectInvalid(certFile));

    await writeFile(certFile, goodCert);
    assert.equal((await loadOrCreateIdentity(dir)).created, false);
  });
});

describe("lib/remote/tls.ts never turns off client-side verification", () => {
  it("'rejectUnauthorized: false' appears once, inside serverTlsOptions", async () => {
    const src = await readFile(join(repoRoot, "lib", "remote", "tls.ts"), "utf8");
    const hits = [...src.matchAll(/rejectUnauthorized\s*:\s*false/g)];
    assert.equal(hits.length, 1, "exactly one occurrence");
    const start = src.indexOf("export function serverTlsOptions(");
    const end = src.indexOf("\n}\n", start);
    assert.ok(start > 0 && end > start);
    assert.ok(hits[0]!.index > start && hits[0]!.index < end, "the occurrence is outside serverTlsOptions");
    // Nothing else may weaken verification either.
    assert.doesNotMatch(src, /NODE_TLS_REJECT_UNAUTHORIZED|checkServerIdentity\s*:\s*\(\)\s*=>\s*undefined/);
  });
});
