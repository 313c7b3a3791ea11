/**
 * Pinned TLS between kiln peers, both directions.
 *
 * There is no certificate authority: each side trusts exactly the one
 * certificate it paired with, and checks that the presented key's pin (the
 * SHA-256 of its SubjectPublicKeyInfo, lib/remote/identity.ts) is the pinned
 * one. Hostnames mean nothing here (peers move between addresses), so the
 * server name is always PEER_SERVERNAME and is never checked.
 *
 * - Client → server: `pinnedAgent` trusts only the peer's certificate (`ca`)
 *   and compares pins; it presents our own certificate for mutual TLS.
 * - Server: `serverTlsOptions` asks every client for a certificate but lets
 *   the handshake finish without one that verifies, so an unpaired client can
 *   still reach the pairing routes; routes decide with `clientPinOf` and
 *   `socket.authorized`.
 * - `previewPeer` learns a server's pin before pairing (trust on first use,
 *   confirmed by a person comparing pins) without sending it any data.
 *
 * TLS 1.3 only, and no TLS session resumption on the client: Node skips
 * checkServerIdentity on a resumed session, and every connection must show
 * the pinned key.
 */
import { X509Certificate } from "node:crypto";
import https from "node:https";
import tls, { type PeerCertificate, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import { CancelledError, ExitCode, KilnError, isKilnError } from "../core/errors.js";
import { PEER_SERVERNAME, formatPin, isPin, pinsEqual, spkiPin, type Identity } from "./identity.js";

export interface PinnedPeer {
  pin: string;
  certPem: string;
}

const MIN_VERSION = "TLSv1.3" as const;

function hostPort(host: string, port: number | string | undefined): string {
  const h = host.includes(":") ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

function pinMismatch(expected: string, got: string, where: string | undefined, cause?: unknown): KilnError {
  return new KilnError(
    "KILN_PIN_MISMATCH",
    ExitCode.remote,
    `the peer${where ? ` at ${where}` : ""} presented a different identity: pin ${formatPin(got)}, but the paired pin is ${formatPin(expected)}`,
    {
      hint: "the peer made a new identity, or something is in between; if the peer's owner confirms the new pin, pair again",
      cause,
      data: { expected, got, ...(where ? { peer: where } : {}) },
    },
  );
}

/** The pin of a certificate as Node hands it over, or undefined when there is none (or it will not parse). */
function pinOfPeerCertificate(cert: PeerCertificate | undefined): string | undefined {
  if (!cert?.raw?.length) return undefined;
  try {
    return spkiPin(cert.raw);
  } catch {
    return undefined;
  }
}

/** checkServerIdentity for a pinned peer: compares SPKI pins, ignores the hostname. */
function pinCheck(expected: string): (hostname: string, cert: PeerCertificate) => Error | undefined {
  return (_hostname, cert) => {
    const got = pinOfPeerCertificate(cert);
    if (got === undefined) return new KilnError("KILN_PIN_MISMATCH", ExitCode.remote, "the peer presented no readable certificate", { data: { expected } });
    return pinsEqual(got, expected) ? undefined : pinMismatch(expected, got, undefined);
  };
}

/**
 * An https.Agent that pins one peer. OpenSSL checks the chain first (`ca` is
 * the pinned certificate alone), so a peer with another identity fails there
 * with "self-signed certificate" before checkServerIdentity runs. Each socket
 * therefore notes the presented pin when the handshake completes (a `secure`
 * listener placed ahead of Node's own) and turns that verification failure
 * into KILN_PIN_MISMATCH naming both pins.
 */
class PinnedAgent extends https.Agent {
  constructor(private readonly expectedPin: string, options: https.AgentOptions) {
    super(options);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const socket = super.createConnection(options, callback) as TLSSocket | null | undefined;
    if (socket) reportPinMismatch(socket, this.expectedPin, hostPort(options.host ?? options.hostname ?? "", options.port ?? undefined));
    return socket;
  }
}

function reportPinMismatch(socket: TLSSocket, expected: string, where: string): void {
  let presented: string | undefined;
  // Node's verification is itself a `secure` listener; ours must run first.
  // It only records: destroying the socket here would break Node's listener.
  socket.prependOnceListener("secure", () => {
    presented = pinOfPeerCertificate(socket.getPeerCertificate(true));
  });
  // Node fails verification by `socket.destroy(verifyError)`: replace that
  // error (kept as the cause) when the key was not the pinned one.
  const destroy = socket.destroy;
  socket.destroy = function (this: TLSSocket, error?: Error): TLSSocket {
    const mismatch = error !== undefined && !isKilnError(error) && presented !== undefined && !pinsEqual(presented, expected);
    return destroy.call(this, mismatch ? pinMismatch(expected, presented!, where, error) : error);
  };
}

/**
 * One https.Agent per peer: trusts only the peer's pinned certificate,
 * presents our identity, TLS 1.3, pin-checked, keep-alive, and no cached TLS
 * sessions. Failures to connect with another key are KILN_PIN_MISMATCH.
 */
export function pinnedAgent(peer: PinnedPeer, me: Identity): https.Agent {
  if (!isPin(peer.pin)) throw new TypeError(`not a pin: ${peer.pin}`);
  // A stored pin that does not describe the stored certificate would fail
  // every connection with a confusing mismatch: say so here.
  const certPin = spkiPin(peer.certPem);
  if (!pinsEqual(certPin, peer.pin)) throw new TypeError(`the pinned certificate's pin ${certPin} is not the pin ${peer.pin}`);
  return new PinnedAgent(peer.pin, {
    ca: [peer.certPem],
    cert: me.certPem,
    key: me.keyPem,
    servername: PEER_SERVERNAME,
    minVersion: MIN_VERSION,
    checkServerIdentity: pinCheck(peer.pin),
    keepAlive: true,
    maxCachedSessions: 0,
  });
}

/**
 * TLS options for https.createServer. Every client is asked for a
 * certificate; `ca` holds the approved clients' certificates only (an empty
 * list trusts no one: Node adds its public roots only when `ca` is absent).
 * The handshake is allowed to finish without a trusted client certificate so
 * unpaired clients can reach the pairing routes: every other route must check
 * that `clientPinOf(req.socket)` is an approved pin. That pin is proven even
 * when the chain is not trusted (TLS 1.3's CertificateVerify: the client signs
 * the handshake with the key); `authorized` is true as well for clients
 * approved before the connection was made, which the server does not require,
 * so an approval written by another process counts from the next request.
 */
export function serverTlsOptions(
  me: Identity,
  approvedClientCerts: string[],
): tls.SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean; minVersion: "TLSv1.3" } {
  return {
    key: me.keyPem,
    cert: me.certPem,
    ca: [...approvedClientCerts],
    requestCert: true,
    rejectUnauthorized: false, // server side only; see above
    minVersion: MIN_VERSION,
  };
}

/**
 * The client's pin as the TLS layer saw it, or undefined when it presented
 * no certificate. Presented is not trusted: also check `socket.authorized`
 * (its certificate is one of the approved ones) or compare with a known pin.
 */
export function clientPinOf(socket: TLSSocket): string | undefined {
  return pinOfPeerCertificate(socket.getPeerCertificate(true));
}

function unreachable(where: string, cause: unknown): KilnError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new KilnError("KILN_REMOTE_UNREACHABLE", ExitCode.remote, `cannot reach a kiln peer at ${where}: ${why}`, {
    hint: "is 'kiln peer serve' running there?",
    cause,
    data: { peer: where },
  });
}

/**
 * Learn a server's certificate and pin before pairing: a TLS handshake, no
 * application data, then close.
 *
 * The connection verifies normally (against Node's public roots), so a peer's
 * self-signed certificate fails verification and Node destroys the socket.
 * The certificate is captured just before that, by a `secure` listener placed
 * ahead of Node's own; once it is captured, the verification error is the
 * expected outcome and is ignored. Anything that stops the handshake earlier
 * (refused, reset, timeout, not TLS 1.3) is KILN_REMOTE_UNREACHABLE.
 */
export async function previewPeer(
  host: string,
  port: number,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ pin: string; certPem: string }> {
  if (opts.signal?.aborted) throw new CancelledError();
  const where = hostPort(host, port);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let captured: { pin: string; certPem: string } | undefined;
    let settled = false;
    const socket = tls.connect({ host, port, servername: PEER_SERVERNAME, rejectUnauthorized: true, minVersion: MIN_VERSION });
    const finish = (error?: KilnError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      if (error) reject(error);
      else if (captured) resolve(captured);
      else reject(unreachable(where, new Error("the connection closed before the TLS handshake completed")));
    };
    const onAbort = (): void => finish(new CancelledError());
    const timer = setTimeout(() => finish(unreachable(where, new Error(`no TLS handshake within ${timeoutMs / 1000} s`))), timeoutMs);
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    socket.prependOnceListener("secure", () => {
      const raw = socket.getPeerCertificate(true)?.raw;
      if (!raw?.length) return;
      try {
        const cert = new X509Certificate(raw);
        captured = { pin: spkiPin(cert), certPem: cert.toString() };
      } catch {
        // not a certificate Node can parse: reported as "closed before…" below
      }
    });
    // Verified after all (a publicly trusted certificate): nothing more to learn.
    socket.once("secureConnect", () => finish());
    socket.on("error", (e) => finish(captured ? undefined : unreachable(where, e)));
    socket.once("close", () => finish());
  });
}
