/**
 * Fetch one archive, hashing while streaming (one pass), and hand every byte
 * in order to a writable the caller opens (the streaming unpacker, or a temp
 * file); then check size and checksum. got is imported on first use only.
 *
 * - retries with exponential backoff on transient failures (connection reset,
 *   5xx, 429, truncated body, inactivity), never on 404 or a checksum mismatch;
 * - an inactivity timeout (no byte for `idleTimeoutMs`), not a total deadline;
 * - resume with `Range` + `If-Range` when the server answered with
 *   `Accept-Ranges: bytes`: the writable simply receives the rest, so nothing
 *   needs to be on disk to resume; a 200 to a range request (or a server
 *   without ranges) restarts from zero with a freshly opened writable;
 * - HTTPS_PROXY/NO_PROXY through hpagent, extra CAs added to Node's roots
 *   (verification is never turned off);
 * - `file://` URLs go through the same size and checksum checks.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { rootCertificates } from "node:tls";
import { setFlagsFromString } from "node:v8";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { CancelledError, errnoCode } from "../core/errors.js";
import { ChecksumMismatchError, DownloadError, SizeMismatchError } from "./errors.js";

export interface ExpectedDigest {
  size?: number | undefined;
  sha256?: string | undefined;
  sha1?: string | undefined;
  md5?: string | undefined;
}

export interface NetworkOptions {
  caFile?: string | undefined;
  proxy?: string | undefined;
  noProxy?: readonly string[] | undefined;
  /** Inactivity timeout (default 30 s). */
  idleTimeoutMs?: number | undefined;
  /** Extra attempts after the first (default 3). */
  retries?: number | undefined;
  /** First backoff delay, doubled each retry (default 500 ms). */
  backoffMs?: number | undefined;
}

export interface DownloadOptions extends NetworkOptions {
  url: string;
  /**
   * Where the bytes go. Called before the first byte, and again whenever the
   * download restarts from byte 0 (after the previous writable was
   * destroyed). A resumed download keeps writing to the same one. Ended when
   * the body is complete, before verification; the caller waits for it.
   */
  open: () => Writable | Promise<Writable>;
  expected: ExpectedDigest;
  signal?: AbortSignal | undefined;
  onProgress?: ((bytes: number, totalBytes: number | undefined) => void) | undefined;
  /** Called before each retry with the reason, for the reporter. */
  onRetry?: ((attempt: number, reason: string) => void) | undefined;
}

export interface DownloadResult {
  sha256: string;
  size: number;
  /** Resumed at least once with a range request. */
  resumed: boolean;
}

/**
 * Pass a chunk on, waiting while the writable is full. A destroyed one is
 * skipped: its owner reports why when it awaits its result.
 */
function feed(sink: Writable, chunk: Buffer): Promise<void> | undefined {
  if (sink.destroyed || sink.writableEnded || sink.write(chunk)) return undefined;
  return new Promise((resolve) => {
    const done = (): void => {
      sink.off("drain", done);
      sink.off("close", done);
      resolve();
    };
    sink.on("drain", done);
    sink.on("close", done);
  });
}

/** The running digests of the bytes handed on so far: sha256 always, sha1/md5 when expected. */
class Digests {
  private hashes = new Map<string, Hash>();
  constructor(private readonly expected: ExpectedDigest) {
    this.reset();
  }
  reset(): void {
    this.hashes = new Map([["sha256", createHash("sha256")]]);
    for (const alg of ["sha1", "md5"] as const) if (this.expected[alg]) this.hashes.set(alg, createHash(alg));
  }
  update(chunk: Buffer): void {
    for (const h of this.hashes.values()) h.update(chunk);
  }
  digest(): Map<string, string> {
    return new Map([...this.hashes].map(([alg, h]) => [alg, h.digest("hex")]));
  }
}

let youngGenerationCapped = false;

/**
 * A download streams 100+ MB through short-lived 64 KiB chunks, and V8 answers
 * that churn by growing its young generation to 16 MB per semi-space, which
 * stays resident. Keeping it at its initial size (read at each collection, so
 * it works after start-up) took the 100 MB install's peak RSS from ~101 to
 * ~78 MB with the same wall time (scripts/bench/pkg-install.mjs).
 */
function capYoungGeneration(): void {
  if (youngGenerationCapped) return;
  youngGenerationCapped = true;
  setFlagsFromString("--semi-space-growth-factor=1");
}

/** A transient failure: worth another attempt. */
class RetryableError extends Error {}

/** Whether `host` is excluded from proxying by NO_PROXY patterns. */
export function bypassesProxy(host: string, noProxy: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return noProxy.some((raw) => {
    const p = raw.toLowerCase().replace(/:\d+$/, "");
    if (p === "*") return true;
    const bare = p.replace(/^\*?\./, "");
    return h === bare || h.endsWith(`.${bare}`);
  });
}

type Got = typeof import("got").got;
let gotPromise: Promise<Got> | undefined;

/**
 * got, loaded once. An install calls this before its locks and folders are made, so that got's
 * ≈ 25–35 ms of compiling fills those file-system waits instead of following them.
 */
export function loadGot(): Promise<Got> {
  gotPromise ??= import("got").then((m) => m.got);
  return gotPromise;
}

const caCache = new Map<string, Promise<string[]>>();

/** Node's root CAs plus the PEM file of the caFile setting (read once per process). */
export function certificateAuthorities(caFile: string): Promise<string[]> {
  let p = caCache.get(caFile);
  if (!p) {
    p = readFile(caFile, "utf8").then((pem) => [...rootCertificates, pem]);
    caCache.set(caFile, p);
  }
  return p;
}

/** got's `agent` option for the proxy setting, unless NO_PROXY exempts the host. */
export async function agentsFor(url: URL, opts: NetworkOptions, ca: string[] | undefined): Promise<Record<string, unknown> | undefined> {
  if (!opts.proxy || bypassesProxy(url.hostname, opts.noProxy ?? [])) return undefined;
  const { HttpProxyAgent, HttpsProxyAgent } = await import("hpagent");
  const common = { proxy: opts.proxy, keepAlive: false, ...(ca ? { ca } : {}) };
  return { http: new HttpProxyAgent(common), https: new HttpsProxyAgent(common) };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new CancelledError());
    }, { once: true });
  });
}

const TRANSIENT = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH", "ERR_STREAM_PREMATURE_CLOSE", "ECONNABORTED", "ERR_GOT_REQUEST_ERROR", "ERR_HTTP2_STREAM_ERROR"]);

/**
 * Download `url` into the writables `opts.open` gives and verify it. Throws
 * SizeMismatchError or ChecksumMismatchError (exit 5) when the bytes are
 * wrong, DownloadError (exit 4) after the last attempt, CancelledError on
 * abort. The caller owns the writable and destroys it on failure.
 */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  capYoungGeneration();
  const url = new URL(opts.url);
  if (url.protocol === "file:") return copyLocal(opts, fileURLToPath(url));
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new DownloadError(opts.url, `unsupported URL scheme '${url.protocol}'`);
  const got = await loadGot();
  const ca = opts.caFile ? await certificateAuthorities(opts.caFile) : undefined;
  const agent = await agentsFor(url, opts, ca);
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  const retries = opts.retries ?? 3;
  const digests = new Digests(opts.expected);
  let sink = await opts.open();
  let written = 0;
  let canResume = false;
  let validator: string | undefined;
  let resumed = false;
  let lastError: Error | undefined;
  /** Back to byte 0: fresh digests and a fresh writable. */
  const restart = async (): Promise<void> => {
    if (written === 0) return;
    written = 0;
    digests.reset();
    sink.destroy();
    sink = await opts.open();
  };

  for (let attempt = 0; attempt <= retries; attempt++) {
    if (opts.signal?.aborted) throw new CancelledError();
    if (attempt > 0) {
      opts.onRetry?.(attempt, lastError?.message ?? "retry");
      await sleep((opts.backoffMs ?? 500) * 2 ** (attempt - 1), opts.signal);
      if (!canResume) await restart();
    }
    const range = written > 0;
    const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "kiln" };
    if (range) {
      headers.range = `bytes=${written}-`;
      if (validator) headers["if-range"] = validator;
    }
    const request = got.stream(url, {
      headers,
      retry: { limit: 0 },
      throwHttpErrors: false,
      decompress: false,
      followRedirect: true,
      timeout: { lookup: idleMs, connect: idleMs, secureConnect: idleMs, socket: idleMs, response: idleMs },
      ...(ca ? { https: { certificateAuthority: ca } } : {}),
      ...(agent ? { agent } : {}),
    });
    const onAbort = (): void => void request.destroy(new CancelledError());
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let idle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => request.destroy(new RetryableError(`no data for ${idleMs} ms (inactivity timeout)`)), idleMs);
    };
    try {
      arm();
      const response = await new Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
        request.once("response", resolve);
        request.once("error", reject);
      });
      const status = response.statusCode;
      if (status === 404 || status === 410) throw new DownloadError(opts.url, `HTTP ${status} (not found)`, { status, hint: "the vendor moved or removed the file; run 'kiln pkg update' or check the URL" });
      if (status >= 500 || status === 429 || status === 408) throw new RetryableError(`HTTP ${status}`);
      if (status !== 200 && status !== 206) throw new DownloadError(opts.url, `HTTP ${status}`, { status });
      const h = response.headers;
      canResume = h["accept-ranges"] === "bytes" || status === 206;
      validator = (h.etag as string | undefined) ?? (h["last-modified"] as string | undefined);
      if (status === 206 && range && String(h["content-range"] ?? "").startsWith(`bytes ${written}-`)) resumed = true;
      else await restart();
      const length = h["content-length"] === undefined ? undefined : Number(h["content-length"]);
      const total = length === undefined ? opts.expected.size : written + length;
      if (written === 0 && length !== undefined && opts.expected.size !== undefined && length !== opts.expected.size) {
        throw new SizeMismatchError(opts.url, opts.expected.size, length);
      }
      const limit = opts.expected.size;
      // Every byte counted and hashed has been handed on, so a retry can resume from `written`.
      for await (const chunk of request as AsyncIterable<Buffer>) {
        arm();
        written += chunk.length;
        if (limit !== undefined && written > limit) throw new SizeMismatchError(opts.url, limit, written);
        digests.update(chunk);
        opts.onProgress?.(written, total);
        const wait = feed(sink, chunk);
        if (wait) await wait;
      }
      clearTimeout(idle);
      if (length !== undefined && total !== undefined && written < total) throw new RetryableError(`connection closed after ${written} of ${total} bytes`);
      if (limit !== undefined && written < limit) throw new RetryableError(`body ended after ${written} of ${limit} bytes`);
      sink.end();
      return verify(opts, digests.digest(), written, resumed);
    } catch (caught) {
      clearTimeout(idle);
      // An answer not read to its end (a 404's page, a body cut short) would keep its connection, and
      // with it this process, open until the server closes it.
      request.destroy();
      if (opts.signal?.aborted) throw new CancelledError();
      if (caught instanceof DownloadError || caught instanceof SizeMismatchError || caught instanceof ChecksumMismatchError || caught instanceof CancelledError) throw caught;
      const e = (caught as Error).name === "TimeoutError" ? new RetryableError(`no data for ${idleMs} ms (inactivity timeout: ${(caught as Error).message})`) : caught;
      const code = errnoCode(e) ?? errnoCode((e as { cause?: unknown }).cause);
      if (code === "ENOSPC" || code === "EDQUOT" || code === "EACCES" || code === "EROFS") throw e;
      const transient = e instanceof RetryableError || (code !== undefined && TRANSIENT.has(code)) || (e as Error).name === "TimeoutError" || (e as Error).name === "ReadError";
      if (!transient) throw new DownloadError(opts.url, (e as Error).message, { cause: e });
      lastError = e as Error;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }
  throw new DownloadError(opts.url, `${lastError?.message ?? "failed"} (after ${retries + 1} attempts)`, { cause: lastError });
}

async function copyLocal(opts: DownloadOptions, file: string): Promise<DownloadResult> {
  const digests = new Digests(opts.expected);
  const sink = await opts.open();
  let size = 0;
  try {
    for await (const chunk of createReadStream(file, { signal: opts.signal })) {
      size += (chunk as Buffer).length;
      if (opts.expected.size !== undefined && size > opts.expected.size) throw new SizeMismatchError(opts.url, opts.expected.size, size);
      digests.update(chunk as Buffer);
      opts.onProgress?.(size, opts.expected.size);
      const wait = feed(sink, chunk as Buffer);
      if (wait) await wait;
    }
    sink.end();
  } catch (e) {
    if (opts.signal?.aborted) throw new CancelledError();
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "EISDIR") throw new DownloadError(opts.url, `${file}: ${errnoCode(e) === "ENOENT" ? "no such file" : "is a directory"}`);
    throw e;
  }
  return verify(opts, digests.digest(), size, false);
}

function verify(opts: DownloadOptions, digests: Map<string, string>, size: number, resumed: boolean): DownloadResult {
  const exp = opts.expected;
  if (exp.size !== undefined && size !== exp.size) throw new SizeMismatchError(opts.url, exp.size, size);
  for (const alg of ["sha256", "sha1", "md5"] as const) {
    const want = exp[alg]?.toLowerCase();
    if (want && want !== digests.get(alg)) throw new ChecksumMismatchError(opts.url, alg, want, digests.get(alg)!, size);
  }
  return { sha256: digests.get("sha256")!, size, resumed };
}
