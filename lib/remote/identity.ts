/**
 * A kiln peer's identity: a P-256 key and a self-signed X.509 certificate,
 * identified by the SHA-256 of its SubjectPublicKeyInfo (the "pin").
 *
 * Peers trust each other by pin, not by a certificate authority: pairing
 * shows the pin (as hex and as six words people can read aloud), and from
 * then on each side accepts only that exact key (lib/remote/tls.ts).
 *
 * Node can parse certificates but not issue them, and kiln takes no
 * dependency for that, so this file carries a minimal ASN.1 DER encoder:
 * just the types a certificate needs, written to RFC 5280 / X.690.
 *
 * CA:FALSE, checked. A peer certificate is an end-entity certificate that
 * is also its own trust anchor (`ca:` holds exactly the pinned certificate).
 * test/remote/identity.test.ts first checks that Node/OpenSSL 3 accepts that
 * with basicConstraints CA:FALSE and keyUsage digitalSignature alone, as a
 * TLS server certificate and as an mTLS client certificate, and it does. So
 * no peer certificate can act as a CA: a paired peer cannot mint other
 * certificates that would chain to its own. (The price: OpenSSL does not call
 * such a certificate "self-signed", so `X509Certificate.checkIssued(itself)`
 * is false, while its signature verifies with its own key.) `ca: true`
 * (CA:TRUE + keyCertSign) remains as an option for that test.
 */
import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
  type KeyObject,
} from "node:crypto";
import { chmod, mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ExitCode, KilnError, errnoCode } from "../core/errors.js";
import { tempPathFor } from "../core/fs.js";
import { acquireLock } from "../toolchains/lock.js";

export interface Identity {
  keyPem: string;
  certPem: string;
  certDer: Buffer;
  /** Lower-case hex SHA-256 of the certificate's SubjectPublicKeyInfo. */
  pin: string;
}

/** The TLS server name (SNI) and the certificate's DNS name; peers never check hostnames. */
export const PEER_SERVERNAME = "kiln-peer";

/** How long a new certificate is valid. Trust is by pin, so expiry is only a formality. */
const VALIDITY_YEARS = 10;

// ---------------------------------------------------------------------------
// ASN.1 DER (X.690): each function returns one complete TLV.

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const der = {
  sequence: (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items)),
  set: (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items)),
  /** DER BOOLEAN: TRUE is 0xFF. (FALSE defaults are omitted by the callers, as DER requires.) */
  boolean: (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00])),
  /** INTEGER from a small non-negative number (below 2^31). */
  integer: (n: number): Buffer => {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(n);
    return der.unsignedInteger(bytes);
  },
  /** INTEGER from big-endian unsigned bytes: minimal, with a 0x00 prefix when the top bit is set. */
  unsignedInteger: (bytes: Buffer): Buffer => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const trimmed = bytes.subarray(i);
    return tlv(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
  },
  oid: (dotted: string): Buffer => {
    const arcs = dotted.split(".").map(Number);
    const out: number[] = [40 * arcs[0]! + arcs[1]!];
    for (const arc of arcs.slice(2)) {
      const base128: number[] = [arc & 0x7f];
      for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift(0x80 | (v & 0x7f));
      out.push(...base128);
    }
    return tlv(0x06, Buffer.from(out));
  },
  utf8String: (s: string): Buffer => tlv(0x0c, Buffer.from(s, "utf8")),
  printableString: (s: string): Buffer => tlv(0x13, Buffer.from(s, "ascii")),
  octetString: (content: Buffer): Buffer => tlv(0x04, content),
  /** BIT STRING of whole bytes (0 unused bits). */
  bitString: (content: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), content])),
  /** RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) from 2050. */
  time: (d: Date): Buffer => {
    const iso = d.toISOString(); // 2024-01-02T03:04:05.678Z
    const digits = iso.slice(0, 19).replace(/[-T:]/g, ""); // 20240102030405
    const year = d.getUTCFullYear();
    return year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, "ascii")) : tlv(0x18, Buffer.from(`${digits}Z`, "ascii"));
  },
  /** [n] EXPLICIT: a constructed context tag wrapping one complete TLV. */
  explicit: (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner),
  /** [n] IMPLICIT primitive (used for the SAN dNSName, [2] IA5String). */
  implicitPrimitive: (n: number, content: Buffer): Buffer => tlv(0x80 | n, content),
};

/** Exposed for the tests only: the encoder, checked against known encodings. */
export const derForTests = der;

const OID = {
  commonName: "2.5.4.3",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
};

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  // critical BOOLEAN DEFAULT FALSE: DER omits a default value.
  return der.sequence(der.oid(oid), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

function name(commonName: string): Buffer {
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(commonName))));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (for P-256, the point 04‖x‖y). */
function subjectKeyId(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: "jwk" });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]);
  return createHash("sha1").update(point).digest();
}

export interface GenerateOptions {
  commonName?: string;
  /** The clock, for tests. */
  now?: Date;
  /**
   * basicConstraints cA (with keyUsage keyCertSign). Default false, see the
   * module comment; true exists for the test that compares the two.
   */
  ca?: boolean;
}

/** A new P-256 key and a self-signed certificate for it. */
export function generateIdentity(opts: GenerateOptions = {}): Identity {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const certDer = selfSignedCertificate(publicKey, privateKey, opts);
  const cert = new X509Certificate(certDer);
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { keyPem, certPem: cert.toString(), certDer, pin: spkiPin(cert) };
}

function selfSignedCertificate(publicKey: KeyObject, privateKey: KeyObject, opts: GenerateOptions): Buffer {
  const now = opts.now ?? new Date();
  const ca = opts.ca ?? false;
  const cn = opts.commonName ?? PEER_SERVERNAME;
  const DAY = 24 * 3600 * 1000;
  const notBefore = new Date(now.getTime() - DAY); // tolerate a peer whose clock is behind
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);

  // Random positive serial of exactly 16 bytes (top bit clear, next bit set).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;

  const signatureAlgorithm = der.sequence(der.oid(OID.ecdsaWithSha256)); // no parameters (RFC 5758)
  // keyUsage is a named BIT STRING: DER drops trailing zero bits.
  // digitalSignature = bit 0 (0x80), keyCertSign = bit 5 (0x04).
  const keyUsage = ca ? der.bitString(Buffer.from([0x84]), 2) : der.bitString(Buffer.from([0x80]), 7);
  const extensions = [
    // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, ... }: empty when CA:FALSE.
    extension(OID.basicConstraints, true, der.sequence(...(ca ? [der.boolean(true)] : []))),
    extension(OID.keyUsage, true, keyUsage),
    extension(OID.extKeyUsage, false, der.sequence(der.oid(OID.serverAuth), der.oid(OID.clientAuth))),
    extension(OID.subjectAltName, false, der.sequence(der.implicitPrimitive(2, Buffer.from(PEER_SERVERNAME, "ascii")))),
    extension(OID.subjectKeyIdentifier, false, der.octetString(subjectKeyId(publicKey))),
  ];
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // version v3
    der.unsignedInteger(serial),
    signatureAlgorithm,
    name(cn), // issuer
    der.sequence(der.time(notBefore), der.time(notAfter)),
    name(cn), // subject
    publicKey.export({ type: "spki", format: "der" }),
    der.explicit(3, der.sequence(...extensions)),
  );
  // crypto.sign with an EC key returns the DER ECDSA-Sig-Value the certificate wants.
  const signature = sign("sha256", tbs, privateKey);
  return der.sequence(tbs, signatureAlgorithm, der.bitString(signature));
}


// ---------------------------------------------------------------------------
// Pins

/** Lower-case hex SHA-256 of the certificate's SubjectPublicKeyInfo (Buffer = DER, string = PEM). */
export function spkiPin(cert: Buffer | string | X509Certificate): string {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return createHash("sha256").update(x.publicKey.export({ type: "spki", format: "der" })).digest("hex");
}

export function isPin(s: unknown): s is string {
  return typeof s === "string" && /^[0-9a-f]{64}$/.test(s);
}

/** What a person pastes (upper case, spaces, colons, dashes, grouped) as 64 lower-case hex, or undefined. */
export function normalizePin(input: string): string | undefined {
  const compact = input.trim().replace(/[\s:-]+/g, "").toLowerCase();
  return isPin(compact) ? compact : undefined;
}

/** For people: 16 groups of 4 hex digits separated by spaces. */
export function formatPin(pin: string): string {
  return pin.match(/.{1,4}/g)?.join(" ") ?? "";
}

/**
 * 256 short, common, distinct English words: byte value n is PIN_WORDS[n].
 * Never reorder or edit: people compare the words two machines show.
 */
const PIN_WORDS = [
  "acid", "acorn", "actor", "agent", "alarm", "album", "alley", "amber",
  "angle", "ankle", "apple", "apron", "arrow", "atlas", "attic", "audio",
  "award", "bacon", "badge", "bagel", "baker", "banjo", "barn", "basil",
  "beach", "bead", "beard", "bell", "bench", "berry", "bike", "bird",
  "blade", "blank", "bloom", "board", "boat", "bolt", "bone", "book",
  "boot", "bowl", "brick", "bride", "brush", "bucket", "bunny", "cabin",
  "cable", "cake", "camel", "candy", "canoe", "cape", "card", "cargo",
  "carrot", "castle", "cedar", "chair", "chalk", "cheese", "cherry", "chess",
  "chin", "cider", "circle", "city", "clay", "cliff", "clock", "cloud",
  "clown", "coal", "coast", "cobra", "cocoa", "coin", "comet", "coral",
  "corn", "couch", "cow", "crab", "crane", "crown", "cube", "cup",
  "daisy", "dance", "deer", "desert", "desk", "dial", "diver", "dog",
  "doll", "dolphin", "donkey", "door", "dragon", "drum", "duck", "eagle",
  "earth", "echo", "egg", "elbow", "elk", "engine", "fabric", "falcon",
  "farm", "feather", "fence", "fern", "ferry", "fiddle", "field", "fig",
  "film", "finger", "fish", "flag", "flame", "flute", "foam", "forest",
  "fork", "fossil", "fox", "frog", "fruit", "galaxy", "garden", "garlic",
  "gate", "gem", "ghost", "giant", "ginger", "glass", "globe", "glove",
  "goat", "gold", "grape", "grass", "gravel", "guitar", "hammer", "harbor",
  "hat", "hawk", "hazel", "helmet", "hill", "hippo", "honey", "hook",
  "horse", "house", "igloo", "iron", "island", "ivory", "jacket", "jade",
  "jaguar", "jam", "jar", "jelly", "jet", "jewel", "judge", "juice",
  "kettle", "key", "kite", "kitten", "knife", "koala", "ladder", "lake",
  "lamp", "lantern", "laptop", "leaf", "lemon", "lens", "lily", "lion",
  "lizard", "lobster", "lock", "magnet", "mango", "maple", "marble", "meadow",
  "melon", "mirror", "monkey", "moon", "moose", "mouse", "mug", "needle",
  "nest", "night", "noodle", "nut", "oak", "ocean", "olive", "onion",
  "orange", "otter", "owl", "paddle", "panda", "paper", "parrot", "peach",
  "pearl", "pencil", "pepper", "piano", "pillow", "pilot", "pine", "planet",
  "plum", "pony", "potato", "pumpkin", "puzzle", "quilt", "rabbit", "radio",
  "rain", "raven", "ribbon", "river", "robot", "rocket", "rose", "ruby",
  "saddle", "salmon", "sand", "shark", "sheep", "shell", "silver", "snail",
] as const;

/** Six words, one per byte of the pin's first 6 bytes: a short string people can compare by ear. */
export function pinWords(pin: string): string {
  if (!isPin(pin)) throw new TypeError(`not a pin: ${pin}`);
  return [...Buffer.from(pin.slice(0, 12), "hex")].map((b) => PIN_WORDS[b]!).join(" ");
}

/** Exposed for the tests only. */
export const pinWordListForTests: readonly string[] = PIN_WORDS;

/** Constant-time comparison of two pins; false when either is not a valid pin. */
export function pinsEqual(a: string, b: string): boolean {
  if (!isPin(a) || !isPin(b)) return false;
  return timingSafeEqual(Buffer.from(a, "hex"), Buffer.from(b, "hex"));
}

// ---------------------------------------------------------------------------
// On disk: <dir>/key.pem + <dir>/cert.pem

const KEY_FILE = "key.pem";
const CERT_FILE = "cert.pem";
const LOCK_FILE = "identity.lock";

function invalid(file: string, why: string, cause?: unknown): KilnError {
  return new KilnError("KILN_IDENTITY_INVALID", ExitCode.config, `${file}: ${why}`, {
    hint: "delete it to make a new identity; paired peers must pair again",
    cause,
    data: { file },
  });
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * Load this machine's identity from `dir`, or create it on first use.
 *
 * Crash safety: both files are first written under temp names, then renamed
 * key first, cert second. A crash can therefore leave a key without its cert
 * but never a cert beside a key that did not make it; either half alone
 * counts as "no identity yet" and is replaced. The directory is 0700, the
 * files 0600. Permissions of existing files are not policed; only a file
 * kiln cannot read as a key/certificate (or a pair that does not match) is
 * refused, with KILN_IDENTITY_INVALID.
 */
export async function loadOrCreateIdentity(dir: string): Promise<{ identity: Identity; created: boolean }> {
  const keyFile = join(dir, KEY_FILE);
  const certFile = join(dir, CERT_FILE);
  const [keyPem, certPem] = await Promise.all([readIfExists(keyFile), readIfExists(certFile)]);
  if (keyPem !== undefined && certPem !== undefined) {
    return { identity: parseIdentity(keyFile, keyPem, certFile, certPem), created: false };
  }

  await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode only applies to a directory it creates (and passes through the umask).
  if (((await stat(dir)).mode & 0o077) !== 0) await chmod(dir, 0o700);
  // Two kiln processes starting at once must not interleave their renames
  // (key from one, cert from the other): create under a lock, and look again
  // once we hold it, since the other process may have just finished.
  const lock = await acquireLock(join(dir, LOCK_FILE));
  try {
    const [k, c] = await Promise.all([readIfExists(keyFile), readIfExists(certFile)]);
    if (k !== undefined && c !== undefined) return { identity: parseIdentity(keyFile, k, certFile, c), created: false };
    return { identity: await createIdentityFiles(dir, keyFile, certFile), created: true };
  } finally {
    await lock.release();
  }
}

async function createIdentityFiles(dir: string, keyFile: string, certFile: string): Promise<Identity> {
  const identity = generateIdentity();
  const keyTmp = tempPathFor(keyFile);
  const certTmp = tempPathFor(certFile);
  try {
    // `mode` applies at creation, so the key is never readable by others, even briefly.
    await writeFile(keyTmp, identity.keyPem, { mode: 0o600, flag: "wx" });
    await writeFile(certTmp, identity.certPem, { mode: 0o600, flag: "wx" });
    // A lone cert (its key deleted) goes first, so the new key never sits beside a foreign cert.
    await rm(certFile, { force: true });
    await rename(keyTmp, keyFile);
    await rename(certTmp, certFile);
  } catch (e) {
    await Promise.all([rm(keyTmp, { force: true }), rm(certTmp, { force: true })]);
    throw e;
  }
  await removeStaleTemps(dir);
  return identity;
}

/** Temp files a crashed creation left behind (ours are removed on failure). */
async function removeStaleTemps(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const stale = names.filter((n) => n.startsWith(`${KEY_FILE}.tmp-`) || n.startsWith(`${CERT_FILE}.tmp-`));
  await Promise.all(stale.map((n) => rm(join(dir, n), { force: true })));
}

function parseIdentity(keyFile: string, keyPem: string, certFile: string, certPem: string): Identity {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw invalid(keyFile, "not a readable private key", e);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw invalid(certFile, "not a readable certificate", e);
  }
  const fromKey = createPublicKey(key).export({ type: "spki", format: "der" });
  const fromCert = cert.publicKey.export({ type: "spki", format: "der" });
  if (!fromKey.equals(fromCert)) throw invalid(certFile, `its public key does not belong to ${keyFile}`);
  return { keyPem, certPem, certDer: cert.raw, pin: spkiPin(cert) };
}
