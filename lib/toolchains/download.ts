/**
 * Fetch one archive into a temp file, hashing while streaming (one pass), then
 * check size and checksum. got is imported on first use only.
 *
 * - retries with exponential backoff on transient failures (connection reset,
 *   5xx, 429, truncated body, inactivity), never on 404 or a checksum mismatch;
 * - an inactivity timeout (no byte for `idleTimeoutMs`), not a total deadline;
 * - resume with `Range` + `If-Range` when the server answered with
 *   `Accept-Ranges: bytes`; a 200 to a range request restarts from zero;
 * - HTTPS_PROXY/NO_PROXY through hpagent, extra CAs added to Node's roots
 *   (verification is never turned off);
 * - `file://` URLs go through the same size and checksum checks.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, readFile, stat, truncate } from "node:fs/promises";
import { rootCertificates } from "node:tls";
import { Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
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
  /** The temp file to write (created or resumed). */
  dest: string;
  expected: ExpectedDigest;
  signal?: AbortSignal | undefined;
  onProgress?: ((bytes: number, totalBytes: number | undefined) => void) | undefined;
  /**
   * Also receives every byte as it arrives (streaming extraction). Destroyed
   * when a retry restarts or resumes the download; ended when the body is
   * complete, before verification.
   */
  tap?: Writable | undefined;
  /** Called before each retry with the reason, for the reporter. */
  onRetry?: ((attempt: number, reason: string) => void) | undefined;
}

export interface DownloadResult {
  sha256: string;
  size: number;
  /** Resumed at least once with a range request. */
  resumed: boolean;
}

/** Pass a chunk on to the tap, waiting while it is full; a destroyed tap is skipped. */
function feed(tap: Writable | undefined, chunk: Buffer): Promise<void> | undefined {
  if (!tap || tap.destroyed || tap.writableEnded || tap.write(chunk)) return undefined;
  return new Promise((resolve) => {
    const done = (): void => {
      tap.off("drain", done);
      tap.off("close", done);
      resolve();
    };
    tap.on("drain", done);
    tap.on("close", done);
  });
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
const caCache = new Map<string, Promise<string[]>>();

function certificateAuthorities(caFile: string): Promise<string[]> {
  let p = caCache.get(caFile);
  if (!p) {
    p = readFile(caFile, "utf8").then((pem) => [...rootCertificates, pem]);
    caCache.set(caFile, p);
  }
  return p;
}

async function agentsFor(url: URL, opts: NetworkOptions, ca: string[] | undefined): Promise<Record<string, unknown> | undefined> {
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

async function hashPrefix(file: string, bytes: number): Promise<Hash[]> {
  const hashes = [createHash("sha256")];
  if (bytes > 0) {
    for await (const chunk of createReadStream(file, { start: 0, end: bytes - 1 })) hashes[0]!.update(chunk as Buffer);
  }
  return hashes;
}

const TRANSIENT = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH", "ERR_STREAM_PREMATURE_CLOSE", "ECONNABORTED", "ERR_GOT_REQUEST_ERROR", "ERR_HTTP2_STREAM_ERROR"]);

/**
 * Download `url` to `dest` and verify it. Throws SizeMismatchError or
 * ChecksumMismatchError (exit 5) when the bytes are wrong, DownloadError
 * (exit 4) after the last attempt, CancelledError on abort. The caller owns
 * `dest` and deletes it on failure.
 */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const url = new URL(opts.url);
  if (url.protocol === "file:") return copyLocal(opts, fileURLToPath(url));
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new DownloadError(opts.url, `unsupported URL scheme '${url.protocol}'`);
  gotPromise ??= import("got").then((m) => m.got);
  const got = await gotPromise;
  const ca = opts.caFile ? await certificateAuthorities(opts.caFile) : undefined;
  const agent = await agentsFor(url, opts, ca);
  const idleMs = opts.idleTimeoutMs ?? 30_000;
  const retries = opts.retries ?? 3;
  let written = 0;
  let canResume = false;
  let validator: string | undefined;
  let resumed = false;
  let sha256 = createHash("sha256");
  let lastError: Error | undefined;

  for (let attempt = 0; attempt <= retries; attempt++) {
    if (opts.signal?.aborted) throw new CancelledError();
    if (attempt > 0) {
      opts.tap?.destroy();
      opts.onRetry?.(attempt, lastError?.message ?? "retry");
      await sleep((opts.backoffMs ?? 500) * 2 ** (attempt - 1), opts.signal);
      // What is on disk is the truth: re-hash it so hash and file agree.
      written = (await stat(opts.dest).catch(() => ({ size: 0 }))).size;
      if (!canResume || written === 0) {
        written = 0;
        await truncate(opts.dest, 0).catch(() => {});
      }
      [sha256] = (await hashPrefix(opts.dest, written)) as [Hash];
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
      let append = false;
      if (status === 206 && range && String(h["content-range"] ?? "").startsWith(`bytes ${written}-`)) {
        append = true;
        resumed = true;
      } else if (range) {
        written = 0;
        sha256 = createHash("sha256");
      }
      const length = h["content-length"] === undefined ? undefined : Number(h["content-length"]);
      const total = length === undefined ? opts.expected.size : written + length;
      if (!append && length !== undefined && opts.expected.size !== undefined && length !== opts.expected.size) {
        throw new SizeMismatchError(opts.url, opts.expected.size, length);
      }
      const limit = opts.expected.size;
      // Each chunk is on disk before the next is read, so after a failure the file holds every
      // byte hashed so far and the retry can resume from its size.
      const fh = await open(opts.dest, append ? "a" : "w");
      try {
        for await (const chunk of request as AsyncIterable<Buffer>) {
          arm();
          written += chunk.length;
          if (limit !== undefined && written > limit) throw new SizeMismatchError(opts.url, limit, written);
          sha256.update(chunk);
          opts.onProgress?.(written, total);
          // The disk write and the streamed unpack proceed side by side.
          await Promise.all([fh.write(chunk), attempt === 0 ? feed(opts.tap, chunk) : undefined]);
        }
      } finally {
        await fh.close();
      }
      clearTimeout(idle);
      if (length !== undefined && total !== undefined && written < total) throw new RetryableError(`connection closed after ${written} of ${total} bytes`);
      if (limit !== undefined && written < limit) throw new RetryableError(`body ended after ${written} of ${limit} bytes`);
      if (attempt === 0) opts.tap?.end();
      return verify(opts, sha256.digest("hex"), written, resumed);
    } catch (caught) {
      clearTimeout(idle);
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
  const sha256 = createHash("sha256");
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      sha256.update(chunk);
      opts.onProgress?.(size, opts.expected.size);
      const wait = feed(opts.tap, chunk);
      if (wait) void wait.then(() => cb(null, chunk));
      else cb(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(file), counter, createWriteStream(opts.dest), { signal: opts.signal });
    opts.tap?.end();
  } catch (e) {
    if (opts.signal?.aborted) throw new CancelledError();
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "EISDIR") throw new DownloadError(opts.url, `${file}: ${errnoCode(e) === "ENOENT" ? "no such file" : "is a directory"}`);
    throw e;
  }
  return verify(opts, sha256.digest("hex"), size, false);
}

async function verify(opts: DownloadOptions, sha256: string, size: number, resumed: boolean): Promise<DownloadResult> {
  const exp = opts.expected;
  if (exp.size !== undefined && size !== exp.size) throw new SizeMismatchError(opts.url, exp.size, size);
  if (exp.sha256 && exp.sha256.toLowerCase() !== sha256) throw new ChecksumMismatchError(opts.url, "sha256", exp.sha256.toLowerCase(), sha256, size);
  for (const alg of ["sha1", "md5"] as const) {
    const want = exp[alg];
    if (!want) continue;
    const h = createHash(alg);
    for await (const chunk of createReadStream(opts.dest)) h.update(chunk as Buffer);
    const got = h.digest("hex");
    if (got !== want.toLowerCase()) throw new ChecksumMismatchError(opts.url, alg, want.toLowerCase(), got, size);
  }
  return { sha256, size, resumed };
}
