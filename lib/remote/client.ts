/**
 * The client's side of a remote build: a pinned connection per peer, the
 * project's file manifest (content-addressed, so only what the peer lacks is
 * uploaded), the job's live event stream replayed into the local Reporter,
 * and the artifacts: every image's size and sha256 checked before anything
 * is put where the flasher reads.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { request as httpsRequest, type Agent } from "node:https";
import type { IncomingMessage } from "node:http";
import { hostname } from "node:os";
import { join, relative, sep } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CancelledError, ExitCode, KilnError, errnoCode } from "../core/errors.js";
import { fileClosed, readJson, tempPathFor, writeFileAtomic } from "../core/fs.js";
import { MANIFEST_NAME, type FirmwareManifest } from "../core/manifest.js";
import type { Reporter, StepHandle } from "../core/report.js";
import type { Project } from "../project/types.js";
import type { EnvBuildResult } from "../build/index.js";
import { ArtifactError, checkArtifactManifest, checkFileManifest, containedPath, LIMITS, unsafePathReason, type FileEntry } from "./guards.js";
import type { Identity } from "./identity.js";
import type { PeerHealth } from "./scheduler.js";
import type { PeerRecord } from "./store.js";
import { pinnedAgent } from "./tls.js";
import type { JobAnswer, JobFrame, JobRequest, PeerInfo, WireError } from "./wire.js";

/** Never sent: build outputs, version control, dependencies of other tools. */
const SKIP_DIRS = new Set([".git", ".svn", ".hg", ".pio", ".kiln", "node_modules"]);

export class RemoteError extends KilnError {}

/** The peer could not be reached, or the connection dropped (`lost`: mid-job). */
export function unreachable(peer: PeerRecord, cause: unknown, lost = false): RemoteError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new RemoteError("KILN_REMOTE_UNREACHABLE", ExitCode.remote, `peer '${peer.label}' (${peer.url}) ${lost ? "was lost" : "is unreachable"}: ${why}`, {
    hint: "is 'kiln peer serve' running there? Build locally with --remote never",
    data: { peer: peer.label, lost },
    cause,
  });
}

/** A peer that does not prove the paired key, or refuses this client: never a silent fallback. */
export function authFailure(peer: PeerRecord, message: string, cause?: unknown): RemoteError {
  return new RemoteError("KILN_REMOTE_AUTH", ExitCode.remote, `peer '${peer.label}' (${peer.url}): ${message}`, {
    hint: `if this is expected (the peer's identity was rotated, or it revoked this client), pair again with 'kiln peer pair ${peer.url}', or 'kiln peer remove ${peer.label}'`,
    data: { peer: peer.label },
    cause,
  });
}

interface Answer {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

/** One peer, one pinned agent (TLS sessions never cached, so every connection proves the pin). */
export class PeerClient {
  private readonly agent: Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(
    readonly peer: PeerRecord,
    me: Identity,
  ) {
    const u = new URL(peer.url);
    this.host = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port || 443);
    this.agent = pinnedAgent({ pin: peer.pin, certPem: peer.certPem }, me);
  }

  close(): void {
    this.agent.destroy();
  }

  /** Send a request; resolves with the open response (caller reads it). */
  open(method: string, path: string, opts: { body?: Buffer | Readable; headers?: Record<string, string | number>; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: this.host, port: this.port, method, path, agent: this.agent, headers: opts.headers, signal: opts.signal }, resolve);
      const timer = opts.timeoutMs ? setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${opts.timeoutMs} ms`), { code: "ETIMEDOUT" })), opts.timeoutMs) : undefined;
      req.on("response", () => clearTimeout(timer));
      req.on("error", (e) => {
        clearTimeout(timer);
        reject(this.mapError(e));
      });
      if (opts.body instanceof Readable) opts.body.pipe(req);
      else req.end(opts.body);
    });
  }

  async call(method: string, path: string, opts: { json?: unknown; body?: Buffer | Readable; headers?: Record<string, string | number>; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Answer> {
    const body = opts.json !== undefined ? Buffer.from(JSON.stringify(opts.json)) : opts.body;
    const headers = opts.json !== undefined ? { "content-type": "application/json", "content-length": (body as Buffer).length, ...opts.headers } : opts.headers;
    const res = await this.open(method, path, { body, headers, timeoutMs: opts.timeoutMs, signal: opts.signal });
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > LIMITS.jsonBodyBytes) throw new Error("answer too large");
        chunks.push(c);
      }
    } catch (e) {
      throw this.mapError(e);
    }
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** A JSON call whose non-2xx answers become kiln errors (401/403 auth, 503 busy, others rejected). */
  async json<T>(method: string, path: string, json?: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const a = await this.call(method, path, { json, ...opts });
    const value = parseJson(a.body);
    if (a.status >= 200 && a.status < 300) return value as T;
    throw this.refusal(a.status, value, a.headers["retry-after"]);
  }

  refusal(status: number, value: unknown, retryAfter?: string | string[]): KilnError {
    const v = (value ?? {}) as { error?: string; message?: string };
    const what = v.message ?? `HTTP ${status}`;
    if (status === 401 || status === 403) return authFailure(this.peer, `refused this client: ${what}`);
    if (status === 503 || status === 507 || status === 429) {
      return new RemoteError("KILN_REMOTE_BUSY", ExitCode.remote, `peer '${this.peer.label}' is busy: ${what}`, { hint: retryAfter ? `retry in ${String(retryAfter)} s, or build locally with --remote never` : "build locally with --remote never", data: { peer: this.peer.label, busy: true } });
    }
    return new RemoteError("KILN_REMOTE_REJECTED", ExitCode.remote, `peer '${this.peer.label}' refused the request: ${what} (${v.error ?? status})`, { hint: "see the peer's log", data: { peer: this.peer.label, status, reason: v.error } });
  }

  mapError(e: unknown): KilnError {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    const msg = (e as Error).message ?? String(e);
    if (code === "KILN_PIN_MISMATCH") return authFailure(this.peer, `presented a key that is not the paired one (${msg})`, e);
    if (e instanceof KilnError) return e;
    if (code === "ABORT_ERR") return new CancelledError();
    if (/^ERR_SSL|^ERR_TLS|CERT|alert/i.test(code) || /certificate|alert|handshake/i.test(msg)) return authFailure(this.peer, `the TLS handshake failed: ${msg}`, e);
    return unreachable(this.peer, e);
  }

  async info(timeoutMs: number, signal?: AbortSignal): Promise<PeerInfo> {
    return this.json<PeerInfo>("GET", "/v1/info", undefined, { timeoutMs, signal });
  }
}

/** Ask each peer for its load, quickly; failures become reasons (auth failures are kept as errors). */
export async function probePeer(client: PeerClient, timeoutMs = 1500, signal?: AbortSignal): Promise<{ health: PeerHealth; error?: KilnError }> {
  const t0 = performance.now();
  try {
    const i = await client.info(timeoutMs, signal);
    return { health: { ok: true, slots: i.slots, running: i.running, queued: i.queued, maxQueue: i.maxQueue, latencyMs: performance.now() - t0 } };
  } catch (e) {
    const err = client.mapError(e);
    const reason = err.code === "KILN_REMOTE_AUTH" ? "refused (authentication)" : err.code === "KILN_REMOTE_BUSY" ? "busy" : "unreachable";
    return { health: { ok: false, reason }, error: err };
  }
}

/** A stable key for this project on this machine (its workspace on the peer). */
export function projectKey(projectDir: string): string {
  return createHash("sha256").update(`${hostname()}\0${projectDir}`).digest("base64url").slice(0, 32);
}

interface HashCache {
  [path: string]: { size: number; mtimeMs: number; sha256: string };
}

/**
 * Every file of the project that a build may read: sources, config, project
 * libraries — never build dirs, version control, or anything outside the
 * project. Hashes are cached by (size, mtime) beside the build dir.
 */
export async function projectFiles(project: Project): Promise<{ files: FileEntry[]; abs: Map<string, string> }> {
  const root = await realpath(project.dir);
  const buildRoot = project.dirs.build;
  const cacheFile = join(buildRoot, "remote-files.json");
  const cache = (await readJson<HashCache>(cacheFile)) ?? {};
  const next: HashCache = {};
  const found: Array<{ rel: string; abs: string; size: number; mtimeMs: number; mode: number }> = [];
  const seenDirs = new Set<string>();
  const walk = async (dir: string, real: string): Promise<void> => {
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const abs = join(dir, d.name);
      if (abs === buildRoot || (d.isDirectory() && SKIP_DIRS.has(d.name))) continue;
      const rel = relative(project.dir, abs).split(sep).join("/");
      if (rel === "compile_commands.json") continue;
      let st = await lstat(abs);
      let target = abs;
      if (st.isSymbolicLink()) {
        target = await realpath(abs).catch(() => "");
        if (!target || (target !== root && !target.startsWith(root + sep))) {
          throw new KilnError("KILN_UNSAFE_INPUT", ExitCode.integrity, `${rel} is a link to outside the project (${target || "nowhere"}); a peer gets only the project's own files`, { hint: "copy what it points to into the project, or build locally with --remote never", data: { path: rel } });
        }
        st = await stat(abs);
      }
      if (st.isDirectory()) await walk(abs, target);
      else if (st.isFile()) {
        const reason = unsafePathReason(rel);
        if (reason) throw new KilnError("KILN_UNSAFE_INPUT", ExitCode.integrity, `cannot send ${JSON.stringify(rel)} to a peer: ${reason}`, { hint: "rename it, or build locally with --remote never", data: { path: rel, reason } });
        found.push({ rel, abs, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  await walk(project.dir, root);
  found.sort((a, b) => (a.rel < b.rel ? -1 : 1));
  const files: FileEntry[] = [];
  const abs = new Map<string, string>();
  await Promise.all(
    found.map(async (f) => {
      const c = cache[f.rel];
      const sha256 = c && c.size === f.size && c.mtimeMs === f.mtimeMs ? c.sha256 : await hashFile(f.abs);
      next[f.rel] = { size: f.size, mtimeMs: f.mtimeMs, sha256 };
    }),
  );
  for (const f of found) {
    files.push({ path: f.rel, sha256: next[f.rel]!.sha256, size: f.size, mode: f.mode });
    abs.set(f.rel, f.abs);
  }
  checkFileManifest(files);
  await mkdir(buildRoot, { recursive: true });
  await writeFileAtomic(cacheFile, JSON.stringify(next));
  return { files, abs };
}

export async function hashFile(file: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(file), h);
  return h.digest("hex");
}

export interface RemoteEnvOptions {
  client: PeerClient;
  project: Project;
  envName: string;
  board?: string | undefined;
  files: { files: FileEntry[]; abs: Map<string, string> };
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  verbose: boolean;
  color: boolean;
  frozenLockfile?: boolean | undefined;
  /** The manifest's `upload` and `tools` as this machine sees them (never the peer's). */
  localFlash: () => Promise<{ upload: Record<string, unknown>; tools: Record<string, string> }>;
}

/** Build one env on a peer and put its verified firmware into the local build dir. */
export async function buildEnvRemotely(o: RemoteEnvOptions): Promise<EnvBuildResult> {
  const started = performance.now();
  const { client, reporter } = o;
  const label = client.peer.label;
  const request: JobRequest = {
    clientJobId: randomBytes(12).toString("base64url"),
    project: projectKey(o.project.dir),
    env: o.envName,
    board: o.board,
    projectDir: /[=\n\r\0]/.test(o.project.dir) ? undefined : o.project.dir,
    files: o.files.files,
    verbose: o.verbose,
    color: o.color,
    frozenLockfile: o.frozenLockfile,
  };
  let answer = await client.json<JobAnswer>("POST", "/v1/jobs", request, { signal: o.signal, timeoutMs: 30_000 });
  if (answer.status === "needs-blobs") {
    await uploadBlobs(client, answer.missing, o.files, reporter, o.signal);
    answer = await client.json<JobAnswer>("POST", "/v1/jobs", request, { signal: o.signal, timeoutMs: 30_000 });
  }
  if (answer.status !== "queued") throw new RemoteError("KILN_REMOTE_REJECTED", ExitCode.remote, `peer '${label}' still lacks ${answer.missing.length} uploaded files`, { hint: "retry; if it persists, see the peer's log" });
  const end = await followJob(client, answer.jobId, answer.workspace, o);
  if (end.status === "cancelled") {
    if (o.signal?.aborted) throw new CancelledError();
    // Not our cancel: the peer is stopping. Like a lost connection, the build goes elsewhere.
    throw unreachable(client.peer, new Error("the peer cancelled the build (it is shutting down)"), true);
  }
  if (end.status === "failed") throw remoteFailure(label, end.error);
  const buildDir = join(o.project.dirs.build, o.envName);
  const manifestPath = await fetchArtifacts(client, answer.jobId, buildDir, o);
  const ms = Math.round(performance.now() - started);
  return { env: o.envName, status: "ok", ms, compiled: end.compiled, reused: end.reused, linked: end.linked, size: end.size, program: join(buildDir, end.program ?? ""), manifestPath, compileCommands: [] };
}

/** The peer's failure, with the exit code a local build would have had. */
function remoteFailure(label: string, e: WireError | undefined): KilnError {
  if (!e) return new RemoteError("KILN_REMOTE_FAILED", ExitCode.remote, `the build on peer '${label}' failed`);
  const exit = Object.values(ExitCode).includes(e.exitCode as never) ? (e.exitCode as KilnError["exitCode"]) : ExitCode.remote;
  return new KilnError(e.code, exit, `on peer '${label}': ${e.message}`, { hint: e.hint, data: { peer: label } });
}

async function uploadBlobs(client: PeerClient, missing: string[], files: RemoteEnvOptions["files"], reporter: Reporter, signal?: AbortSignal): Promise<void> {
  const bySha = new Map(files.files.map((f) => [f.sha256, f]));
  const queue = [...missing];
  const total = queue.reduce((n, s) => n + (bySha.get(s)?.size ?? 0), 0);
  const step = reporter.step(`Uploading ${queue.length} file${queue.length === 1 ? "" : "s"} (${formatBytes(total)}) to peer '${client.peer.label}'`);
  try {
    const worker = async (): Promise<void> => {
      for (let sha = queue.shift(); sha; sha = queue.shift()) {
        const f = bySha.get(sha);
        if (!f) throw new RemoteError("KILN_REMOTE_REJECTED", ExitCode.remote, `peer '${client.peer.label}' asked for a file this build did not list (${sha})`);
        const a = await client.call("PUT", `/v1/blobs/${sha}`, { body: createReadStream(files.abs.get(f.path)!), headers: { "content-type": "application/octet-stream", "content-length": f.size }, signal });
        if (a.status !== 201) {
          const v = parseJson(a.body) as { error?: string } | undefined;
          if (v?.error === "hash_mismatch" || v?.error === "size_mismatch") {
            throw new KilnError("KILN_FILE_CHANGED", ExitCode.build, `${f.path} changed while it was being sent to peer '${client.peer.label}'`, { hint: "run the build again" });
          }
          throw client.refusal(a.status, v, a.headers["retry-after"]);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    step.succeed();
  } catch (e) {
    step.fail();
    throw e;
  }
}

interface JobEnd {
  status: "ok" | "failed" | "cancelled";
  error?: WireError | undefined;
  compiled: number;
  reused: number;
  linked: boolean;
  size?: EnvBuildResult["size"];
  program?: string | undefined;
}

/**
 * Follow the job's event stream to its end frame, replaying every frame into
 * the local Reporter (the peer's paths shown as this project's). A dropped
 * stream is resumed from the last frame seen; Ctrl-C cancels the job on the
 * peer and waits briefly for its confirmation.
 */
async function followJob(client: PeerClient, jobId: string, workspace: string, o: RemoteEnvOptions): Promise<JobEnd> {
  const { reporter } = o;
  const label = client.peer.label;
  const fromJson = JSON.stringify(workspace).slice(1, -1);
  const toJson = JSON.stringify(o.project.dir).slice(1, -1);
  const steps = new Map<number, StepHandle>();
  const end: JobEnd = { status: "failed", compiled: 0, reused: 0, linked: false };
  let lastSeq = 0;
  let finished = false;
  let cancelSent = false;
  const stream = new AbortController();
  const onAbort = (): void => {
    if (cancelSent) return;
    cancelSent = true;
    void client.call("POST", `/v1/jobs/${jobId}/cancel`, { timeoutMs: 5000 }).catch(() => undefined);
    // If the peer never confirms, stop waiting.
    setTimeout(() => stream.abort(), 10_000).unref();
  };
  o.signal?.addEventListener("abort", onAbort, { once: true });
  if (o.signal?.aborted) onAbort();

  const handle = (data: string): void => {
    const frame = JSON.parse(fromJson ? data.split(fromJson).join(toJson) : data) as JobFrame;
    switch (frame.kind) {
      case "event": {
        const e = Object.fromEntries(Object.entries(frame.event).map(([k, v]) => [k, typeof v === "string" ? clean(v) : v]));
        // Only a build's own events; the client writes its own summary.
        if (!FORWARDED_EVENTS.has(String(e.type))) return;
        if (e.type === "env-end") {
          end.compiled = Number(e.compiled ?? 0);
          end.reused = Number(e.reused ?? 0);
          end.linked = e.linked === true;
          end.size = e.size as EnvBuildResult["size"];
        }
        reporter.event({ ...e, type: String(e.type), peer: label });
        return;
      }
      case "step": {
        const text = frame.text === undefined ? undefined : `[${label}] ${clean(String(frame.text))}`;
        if (frame.status === "start") steps.set(frame.id, reporter.step(`[${label}] ${clean(String(frame.label))}`));
        const s = steps.get(frame.id);
        if (frame.status === "update") s?.update(text ?? "");
        if (frame.status === "ok") s?.succeed(text);
        if (frame.status === "failed") s?.fail(text);
        return;
      }
      case "info":
        return reporter.info(`[${label}] ${clean(String(frame.text))}`);
      case "warn":
        return reporter.warn(`peer '${label}': ${clean(String(frame.text))}`);
      case "tool-output":
        return reporter.toolOutput(clean(String(frame.text)));
      case "command":
        return reporter.command(Array.isArray(frame.argv) ? frame.argv.map((a) => clean(String(a))) : [], frame.cwd === undefined ? undefined : clean(String(frame.cwd)));
      case "state":
        if (frame.state === "queued" && (frame.position ?? 0) >= 1) reporter.info(`Queued on peer '${label}' (position ${frame.position})`);
        return;
      case "end":
        finished = true;
        end.status = frame.status;
        end.error = frame.error;
        return;
    }
  };

  let failures = 0;
  try {
    while (!finished) {
      try {
        const res = await client.open("GET", `/v1/jobs/${jobId}/events`, { headers: { accept: "text/event-stream", ...(lastSeq ? { "last-event-id": String(lastSeq) } : {}) }, signal: stream.signal });
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
          throw client.refusal(res.statusCode ?? 0, parseJson(Buffer.concat(chunks)));
        }
        let buf = "";
        res.setEncoding("utf8");
        for await (const chunk of res as AsyncIterable<string>) {
          buf += chunk;
          if (buf.length > 4 * LIMITS.logLineBytes) throw new RemoteError("KILN_REMOTE_REJECTED", ExitCode.remote, `peer '${label}' sent an event longer than ${4 * LIMITS.logLineBytes} bytes`, { hint: "see the peer's log" });
          for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let data = "";
            let id = 0;
            for (const line of block.split("\n")) {
              if (line.startsWith("id: ")) id = Number(line.slice(4));
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (!data || id <= lastSeq) continue;
            lastSeq = id;
            failures = 0;
            handle(data);
          }
        }
        if (!finished) throw Object.assign(new Error("the event stream ended before the build did"), { code: "ECONNRESET" });
      } catch (e) {
        if (finished) break;
        if (stream.signal.aborted) throw new CancelledError();
        const err = client.mapError(e);
        if (err.code !== "KILN_REMOTE_UNREACHABLE" || ++failures > 2) {
          if (err.code === "KILN_REMOTE_UNREACHABLE") {
            reporter.warn(`*** the connection to peer '${label}' was lost (${(e as Error).message}); the remote build was aborted ***`);
            throw unreachable(client.peer, e, true);
          }
          throw err;
        }
        await new Promise((r) => setTimeout(r, 300 * failures));
      }
    }
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
  // A user's cancel wins over whatever the peer finished with.
  if (o.signal?.aborted) return { ...end, status: "cancelled" };
  end.program = undefined;
  return end;
}

/**
 * Download the job's images into the build dir. Each image is streamed to a
 * temp file with its size capped and sha256 checked; only when all are good
 * is the old manifest removed, the images renamed into place, and the new
 * manifest written last — a crash leaves no manifest, never a wrong one.
 */
async function fetchArtifacts(client: PeerClient, jobId: string, buildDir: string, o: RemoteEnvOptions): Promise<string> {
  const a = await client.call("GET", `/v1/jobs/${jobId}/artifacts`, { timeoutMs: 30_000, signal: o.signal });
  if (a.status !== 200) throw client.refusal(a.status, parseJson(a.body));
  const manifest = checkArtifactManifest(parseJson(a.body));
  if (manifest.env !== o.envName) throw new ArtifactError(`is for env '${manifest.env}', not '${o.envName}'`);
  await mkdir(buildDir, { recursive: true });
  const staged: Array<{ tmp: string; dest: string }> = [];
  try {
    for (const img of manifest.images) {
      const dest = containedPath(buildDir, img.path);
      if ((await sha256IfFile(dest)) === img.sha256) continue;
      const tmp = tempPathFor(dest);
      staged.push({ tmp, dest });
      const res = await client.open("GET", `/v1/jobs/${jobId}/images/${encodeURIComponent(img.path)}`, { signal: o.signal, timeoutMs: 30_000 });
      if (res.statusCode !== 200) {
        res.resume();
        throw client.refusal(res.statusCode ?? 0, undefined);
      }
      const hash = createHash("sha256");
      let size = 0;
      // ELF programs (a native build) must stay runnable.
      const file = createWriteStream(tmp, { mode: img.format === "elf" ? 0o755 : 0o644 });
      await pipeline(
        res,
        async function* (src: AsyncIterable<Buffer>) {
          for await (const c of src) {
            size += c.length;
            if (size > img.sizeBytes) throw new ArtifactError(`is larger than its manifest says (${img.sizeBytes} bytes)`, img.path);
            hash.update(c);
            yield c;
          }
        },
        file,
      ).catch(async (e: unknown) => {
        // The temp file is removed below: not before its stream has closed (see fileClosed).
        await fileClosed(file);
        throw e;
      });
      const got = hash.digest("hex");
      if (size !== img.sizeBytes || got !== img.sha256) {
        throw new ArtifactError(`does not match its manifest (sha256 ${got}, ${size} bytes; expected ${img.sha256}, ${img.sizeBytes} bytes)`, img.path);
      }
    }
    const manifestPath = join(buildDir, MANIFEST_NAME);
    const { upload, tools } = await o.localFlash();
    await rm(manifestPath, { force: true });
    for (const s of staged) await rename(s.tmp, s.dest);
    staged.length = 0;
    const { forgetOutputs } = await import("../build/state.js");
    await forgetOutputs(buildDir, [...manifest.images.map((i) => join(buildDir, i.path)), manifestPath]);
    const local: FirmwareManifest = { ...manifest, upload, tools, peer: { label: client.peer.label, pin: client.peer.pin } };
    await writeFileAtomic(manifestPath, JSON.stringify(local, null, 2));
    return manifestPath;
  } finally {
    for (const s of staged) await rm(s.tmp, { force: true });
  }
}

async function sha256IfFile(file: string): Promise<string | undefined> {
  try {
    const st = await lstat(file);
    if (!st.isFile()) return undefined;
    return createHash("sha256").update(await readFile(file)).digest("hex");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw e;
  }
}

/** The events a peer's build may report; anything else it sends is dropped. */
const FORWARDED_EVENTS = new Set(["env-start", "env-end", "compile-start", "compile-end", "diagnostic", "archive", "link", "image", "size", "lockfile"]);

/**
 * A peer's text, for this terminal: colour (SGR) sequences are kept, every
 * other control character (cursor moves, OSC titles, bidi overrides) is shown
 * escaped instead of obeyed.
 */
export function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*m|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (m) => (m.length > 1 ? m : `\\u${m.charCodeAt(0).toString(16).padStart(4, "0")}`));
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

