/**
 * User-configured Arduino package indexes (settings `indexUrls`, like
 * arduino-cli's board_manager.additional_urls): fetched on demand, cached under
 * `<cacheDir>/indexes/`, revalidated with ETag / If-Modified-Since after
 * `maxAgeMs`. A stale cache is used (with a warning) when the network fails;
 * offline, only the cache is read.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { errnoCode } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { IndexFormatError, mergeIndexes, parseIndex, type PackageIndex } from "./arduino-index.js";
import { agentsFor, certificateAuthorities, type NetworkOptions } from "./download.js";
import { DownloadError, OfflineError, PackageUnavailableError, redactUrl } from "./errors.js";

interface CacheMeta {
  url: string;
  etag?: string | undefined;
  lastModified?: string | undefined;
  fetchedAt: number;
}

/**
 * The largest index kiln reads (Arduino's own package_index.json, the largest
 * there is, is a few MB): a server sending more is refused, not buffered.
 */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface IndexLoadOptions extends NetworkOptions {
  dir: string;
  offline?: boolean | undefined;
  /** Revalidate even a fresh cache (kiln pkg update). */
  refresh?: boolean | undefined;
  maxAgeMs?: number | undefined;
  signal?: AbortSignal | undefined;
  warn?: ((message: string) => void) | undefined;
  /** Refuse an index larger than this (default MAX_INDEX_BYTES). */
  maxIndexBytes?: number | undefined;
}

function parseOrThrow(text: string, url: string): PackageIndex {
  try {
    return parseIndex(JSON.parse(text), url);
  } catch (e) {
    const detail = e instanceof IndexFormatError || e instanceof SyntaxError ? e.message : String(e);
    throw new PackageUnavailableError(`index ${redactUrl(url)}`, `not a valid package index: ${detail}`, "check the URL in the indexUrls setting");
  }
}

async function loadOne(url: string, opts: IndexLoadOptions): Promise<PackageIndex> {
  if (url.startsWith("file:")) return parseOrThrow(await readFile(fileURLToPath(url), "utf8"), url);
  const base = join(opts.dir, createHash("sha256").update(url).digest("hex").slice(0, 32));
  const cached = await readFile(`${base}.json`, "utf8").catch((e: unknown) => (errnoCode(e) === "ENOENT" ? undefined : Promise.reject(e)));
  const meta = cached === undefined ? undefined : ((await readFile(`${base}.meta.json`, "utf8").then((t) => JSON.parse(t) as CacheMeta).catch(() => undefined)) ?? { url, fetchedAt: 0 });
  if (opts.offline) {
    if (cached === undefined) throw new OfflineError([`package index ${redactUrl(url)}`], "no cached copy of");
    return parseOrThrow(cached, url);
  }
  if (cached !== undefined && meta && !opts.refresh && Date.now() - meta.fetchedAt < (opts.maxAgeMs ?? 3_600_000)) return parseOrThrow(cached, url);
  const { got } = await import("got");
  const headers: Record<string, string> = { "user-agent": "kiln" };
  if (cached !== undefined && meta?.etag) headers["if-none-match"] = meta.etag;
  if (cached !== undefined && meta?.lastModified) headers["if-modified-since"] = meta.lastModified;
  const maxBytes = opts.maxIndexBytes ?? MAX_INDEX_BYTES;
  try {
    const ca = opts.caFile ? await certificateAuthorities(opts.caFile) : undefined;
    const agent = await agentsFor(new URL(url), opts, ca);
    const request = got(url, {
      headers,
      throwHttpErrors: false,
      retry: { limit: opts.retries ?? 2 },
      timeout: { socket: opts.idleTimeoutMs ?? 30_000, connect: opts.idleTimeoutMs ?? 30_000 },
      ...(ca ? { https: { certificateAuthority: ca } } : {}),
      ...(agent ? { agent } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let tooLarge = false;
    request.on("downloadProgress", ({ transferred, total }: { transferred: number; total?: number }) => {
      if (transferred > maxBytes || (total ?? 0) > maxBytes) {
        tooLarge = true;
        request.cancel();
      }
    });
    const res = await request.catch((e: unknown) => {
      if (tooLarge) throw new PackageUnavailableError(`index ${redactUrl(url)}`, `larger than ${maxBytes} bytes`, "check the URL in the indexUrls setting: a package index is JSON of a few MB at most");
      throw e;
    });
    if (res.statusCode === 304 && cached !== undefined) {
      await writeFileAtomic(`${base}.meta.json`, JSON.stringify({ ...meta, url, fetchedAt: Date.now() }));
      return parseOrThrow(cached, url);
    }
    if (res.statusCode !== 200) throw new DownloadError(url, `HTTP ${res.statusCode}`, { status: res.statusCode });
    const index = parseOrThrow(res.body, url);
    await writeFileAtomic(`${base}.json`, res.body);
    const etag = res.headers.etag;
    const lastModified = res.headers["last-modified"];
    await writeFileAtomic(`${base}.meta.json`, JSON.stringify({ url, etag, lastModified, fetchedAt: Date.now() } satisfies CacheMeta));
    return index;
  } catch (e) {
    if (cached !== undefined && !(e instanceof PackageUnavailableError)) {
      opts.warn?.(`could not refresh ${redactUrl(url)} (${(e as Error).message}); using the copy cached ${new Date(meta?.fetchedAt ?? 0).toISOString()}`);
      return parseOrThrow(cached, url);
    }
    if (e instanceof DownloadError || e instanceof PackageUnavailableError) throw e;
    throw new DownloadError(url, (e as Error).message, { cause: e });
  }
}

/** Load and merge every configured index (cross-packager dependencies resolve across all). */
export async function loadIndexes(urls: readonly string[], opts: IndexLoadOptions): Promise<PackageIndex> {
  return mergeIndexes(await Promise.all(urls.map((u) => loadOne(u, opts))));
}
