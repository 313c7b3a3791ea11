/**
 * `kiln peer serve`: an HTTPS build peer. Mutual TLS 1.3; a client is who
 * its certificate's key says it is (the SPKI pin, proven by the TLS
 * handshake), and only APPROVED pins reach jobs and blobs. Pairing requests
 * from unknown keys wait in memory for the operator (`kiln peer approve`,
 * through a 0600 Unix socket beside the identity), or are approved at once
 * inside a `--pair` window or with a one-time code.
 *
 * The peer only compiles: it accepts a file manifest and an env, never a
 * command, and never flashes anything.
 */
import { createServer as createHttpsServer, type Server } from "node:https";
import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Settings } from "../core/config.js";
import { ExitCode, KilnError, errnoCode } from "../core/errors.js";
import { VERSION } from "../version.js";
import { checkFileManifest, LIMITS } from "./guards.js";
import type { Identity } from "./identity.js";
import { BlobStore, Job, JobQueue, freeBytes, openImage, runJob, sweep } from "./jobs.js";
import { clientsFile, readClients, writeClients, type ClientRecord } from "./store.js";
import { clientPinOf, serverTlsOptions } from "./tls.js";
import { HttpError, KEY_PATTERN, NAME_PATTERN, readJsonBody, sendJson, str, type JobAnswer, type JobRequest, type PairAnswer, type PeerInfo } from "./wire.js";

export interface ServeOptions {
  host: string;
  port: number;
  /** Parallel compiles per build. */
  jobs: number;
  /** Builds at once. */
  slots: number;
  maxQueue: number;
  label: string;
  identity: Identity;
  configDir: string;
  /** Blobs and workspaces (`<cacheDir>/peer`). */
  stateDir: string;
  settings: Settings;
  /** `--pair`: approve every pairing request for this long. */
  pairWindowMs: number;
  timeLimitMs: number;
  minFreeBytes: number;
  /** One log line (requests, pairing, jobs). */
  log: (line: string) => void;
}

interface Pending {
  id: string;
  pin: string;
  label: string;
  certPem: string;
  address: string;
  since: number;
  decided?: "approved" | "denied" | undefined;
  waiters: Set<() => void>;
}

const PENDING_MAX = 16;
const PENDING_TTL_MS = 10 * 60_000;
const PAIR_ATTEMPTS_PER_MIN = 10;
const CODE_TTL_MS = 10 * 60_000;
const JOB_RETENTION_MS = 30 * 60_000;
const SWEEP_AGE_MS = 24 * 3600_000;
const STATUS_HOLD_MS = 25_000;

export class PeerServer {
  private server!: Server;
  private admin: NetServer | undefined;
  private clients: ClientRecord[] = [];
  private clientsStamp = "-";
  private readonly pending = new Map<string, Pending>();
  private readonly attempts = new Map<string, number[]>();
  private windowUntil: number;
  private code: { value: string; expires: number } | undefined;
  private readonly jobs = new Map<string, Job>();
  private readonly byClientJobId = new Map<string, Job>();
  private readonly queue: JobQueue;
  private readonly blobs: BlobStore;
  private readonly sockets = new Set<Socket>();
  private sweeper: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly opts: ServeOptions) {
    this.windowUntil = opts.pairWindowMs > 0 ? Date.now() + opts.pairWindowMs : 0;
    this.blobs = new BlobStore(join(opts.stateDir, "blobs"));
    this.queue = new JobQueue(opts.slots, opts.maxQueue, (job) => this.runJob(job));
  }

  get url(): string {
    const a = this.server.address();
    const port = typeof a === "object" && a ? a.port : this.opts.port;
    const host = this.opts.host.includes(":") ? `[${this.opts.host}]` : this.opts.host;
    return `https://${host}:${port}`;
  }

  get pairWindowOpen(): boolean {
    return Date.now() < this.windowUntil;
  }

  /** A fresh one-time pairing code (valid once, for ten minutes). */
  newCode(): string {
    const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const pick = (): string => Array.from({ length: 4 }, () => alphabet[randomInt(alphabet.length)]).join("");
    this.code = { value: `${pick()}-${pick()}`, expires: Date.now() + CODE_TTL_MS };
    return this.code.value;
  }

  async start(): Promise<void> {
    await this.reloadClients();
    await this.startAdmin();
    const approved = this.clients.filter((c) => c.status === "approved").map((c) => c.certPem);
    this.server = createHttpsServer(serverTlsOptions(this.opts.identity, approved), (req, res) => void this.handle(req, res));
    this.server.headersTimeout = 10_000;
    // The time to *send* a request (headers and body); event-stream answers are not limited by it.
    this.server.requestTimeout = 300_000;
    this.server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    this.server.on("tlsClientError", (err, socket) => {
      this.opts.log(`TLS handshake from ${socket.remoteAddress ?? "?"} failed: ${err.message}`);
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", (e: NodeJS.ErrnoException) => {
        // Nothing may stay behind: the admin socket would keep the process alive and block the next start.
        this.admin?.close();
        void rm(this.adminPath(), { force: true });
        reject(
          e.code === "EADDRINUSE"
            ? new KilnError("KILN_PORT_IN_USE", ExitCode.remote, `port ${this.opts.port} on ${this.opts.host} is already in use`, { hint: "stop the other server or pick another --port" })
            : e,
        );
      });
      this.server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    void sweep(this.opts.stateDir, SWEEP_AGE_MS, new Set()).catch((e: Error) => this.opts.log(`retention sweep failed: ${e.message}`));
    this.sweeper = setInterval(() => {
      void sweep(this.opts.stateDir, SWEEP_AGE_MS, this.busyWorkspaces()).catch(() => undefined);
      this.forgetOldJobs();
    }, 3600_000);
    this.sweeper.unref();
  }

  /** Stop: no new connections, running builds cancelled (their compilers killed), state left consistent. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.sweeper);
    this.server.close();
    for (const p of this.pending.values()) this.decide(p, "denied");
    await this.queue.cancelAll();
    // Followers got their end frames; close what is still open.
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.admin ? this.admin.close(() => r()) : r()));
    await rm(this.adminPath(), { force: true });
  }

  private adminPath(): string {
    return join(this.opts.configDir, "peer", "admin.sock");
  }

  private busyWorkspaces(): Set<string> {
    return new Set([...this.jobs.values()].filter((j) => !j.done).map((j) => j.workspace));
  }

  private forgetOldJobs(): void {
    const cutoff = Date.now() - JOB_RETENTION_MS;
    for (const [id, j] of this.jobs) {
      if (j.finishedAt !== undefined && j.finishedAt < cutoff) {
        this.jobs.delete(id);
        this.byClientJobId.delete(`${j.clientPin}/${j.request.clientJobId}`);
      }
    }
  }

  // ── clients (approved / revoked rows on disk) ────────────────────────────

  /** Re-read clients.json when it changed (`kiln peer revoke` writes it from another process). */
  private async reloadClients(): Promise<void> {
    let stamp = "";
    try {
      // The atomic rename gives a new inode: a rewrite within one timestamp tick is still seen.
      const st = await stat(clientsFile(this.opts.configDir));
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") throw e;
    }
    if (stamp === this.clientsStamp) return;
    this.clients = await readClients(this.opts.configDir);
    this.clientsStamp = stamp;
    if (this.server) {
      const approved = this.clients.filter((c) => c.status === "approved").map((c) => c.certPem);
      this.server.setSecureContext(serverTlsOptions(this.opts.identity, approved));
    }
  }

  private async saveClient(row: ClientRecord): Promise<void> {
    const rows = await readClients(this.opts.configDir);
    const i = rows.findIndex((r) => r.pin === row.pin);
    if (i >= 0) rows[i] = row;
    else rows.push(row);
    await writeClients(this.opts.configDir, rows);
    this.clientsStamp = "-";
    await this.reloadClients();
  }

  // ── HTTP ─────────────────────────────────────────────────────────────────

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const pin = clientPinOf(req.socket as TLSSocket);
    let who = pin ? pin.slice(0, 12) : "no-cert";
    try {
      await this.reloadClients();
      const client = pin ? this.clients.find((c) => c.pin === pin) : undefined;
      if (client) who = client.label;
      const url = new URL(req.url ?? "/", "https://kiln-peer");
      const parts = url.pathname.split("/").filter(Boolean);
      if (parts[0] !== "v1") throw new HttpError(404, "not_found", `no route ${url.pathname}`);
      if (parts[1] === "pair") return await this.handlePair(req, res, parts, url, pin);
      // Everything else: an approved client only.
      if (!pin) throw new HttpError(401, "client_certificate_required", "present the client certificate you paired with");
      if (!client) throw new HttpError(401, "not_paired", "this client is not paired with this peer");
      if (client.status !== "approved") throw new HttpError(403, "revoked", "this client's pairing was revoked on the peer");
      client.lastSeen = new Date().toISOString();
      await this.route(req, res, parts, client);
    } catch (e) {
      const err = e instanceof HttpError ? e : e instanceof KilnError ? new HttpError(400, e.code, e.message) : undefined;
      if (!err) {
        this.opts.log(`internal error on ${req.method} ${req.url}: ${(e as Error).stack ?? String(e)}`);
        if (!res.headersSent) sendJson(res, 500, { error: "internal", message: "the peer failed; see its log" });
        else res.destroy();
      } else if (!res.headersSent) {
        // An oversized body is not read to its end: the connection closes, and says so first.
        sendJson(res, err.status, { error: err.code, message: err.message }, err.status === 413 ? { ...err.headers, connection: "close" } : err.headers);
        if (err.status === 413) res.once("finish", () => req.socket.destroy());
      } else res.destroy();
    } finally {
      if (!(req.url ?? "").endsWith("/events")) this.opts.log(`${req.method} ${req.url} ${res.statusCode} ${who} ${Math.round(performance.now() - started)} ms`);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, parts: string[], client: ClientRecord): Promise<void> {
    const [, what, id, sub] = parts;
    const method = req.method ?? "GET";
    if (what === "info" && method === "GET" && !id) return sendJson(res, 200, this.info());
    if (what === "blobs" && method === "PUT" && id && !sub) {
      if (!/^[0-9a-f]{64}$/.test(id)) throw new HttpError(400, "bad_hash", "blob name must be a sha256");
      const size = Number(req.headers["content-length"]);
      if (!Number.isInteger(size) || size < 0) throw new HttpError(411, "length_required", "PUT a blob with a Content-Length");
      if (size > LIMITS.blobBytes) throw new HttpError(413, "too_large", `blob of ${size} bytes is over the ${LIMITS.blobBytes}-byte limit`);
      if (!(await this.blobs.has(id))) await this.blobs.put(id, size, req);
      else for await (const _ of req) void _;
      return sendJson(res, 201, { sha256: id });
    }
    if (what === "jobs" && method === "POST" && !id) return this.submit(req, res, client);
    const job = id ? this.jobs.get(id) : undefined;
    if (what === "jobs" && id && (!job || job.clientPin !== client.pin)) throw new HttpError(404, "unknown_job", `no job ${id}`);
    if (job && method === "GET" && sub === "events") return this.events(req, res, job);
    if (job && method === "POST" && sub === "cancel") {
      this.queue.cancel(job);
      this.opts.log(`job ${job.id} (${client.label}, ${job.request.env}) cancel requested`);
      return sendJson(res, 202, { state: job.state });
    }
    if (job && method === "GET" && sub === "artifacts") {
      if (job.state !== "ok" || !job.manifest) throw new HttpError(409, "job_not_completed", `job ${job.id} is ${job.state}`);
      return sendJson(res, 200, job.manifest);
    }
    if (job && method === "GET" && sub === "images" && parts[4]) {
      if (job.state !== "ok") throw new HttpError(409, "job_not_completed", `job ${job.id} is ${job.state}`);
      let name: string;
      try {
        name = decodeURIComponent(parts[4]);
      } catch {
        throw new HttpError(400, "bad_name", "the image name is not valid percent-encoding");
      }
      const { size, stream } = await openImage(job, name);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
      stream.pipe(res);
      return;
    }
    if (job && method === "DELETE" && !sub) {
      this.queue.cancel(job);
      this.jobs.delete(job.id);
      this.byClientJobId.delete(`${job.clientPin}/${job.request.clientJobId}`);
      return sendJson(res, 200, { deleted: job.id });
    }
    throw new HttpError(404, "not_found", `no route ${method} ${req.url}`);
  }

  private info(): PeerInfo {
    const { running, queued } = this.queue.counts;
    return { version: VERSION, label: this.opts.label, slots: this.opts.slots, running, queued, maxQueue: this.opts.maxQueue, jobs: this.opts.jobs };
  }

  private async submit(req: IncomingMessage, res: ServerResponse, client: ClientRecord): Promise<void> {
    const body = await readJsonBody(req, LIMITS.jobBodyBytes);
    const request: JobRequest = {
      clientJobId: str(body, "clientJobId", { pattern: KEY_PATTERN }),
      project: str(body, "project", { pattern: KEY_PATTERN }),
      // A folder name of the workspace: never ".", "..", or anything starting with a dot.
      env: str(body, "env", { pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/ }),
      board: str(body, "board", { optional: true, pattern: /^[A-Za-z0-9_.-]{0,64}$/ }) || undefined,
      // Only ever a debug-info label: absolute, one line, no '=' (it ends the map's first half).
      projectDir: str(body, "projectDir", { optional: true, max: 4096, pattern: /^(\/|[A-Za-z]:[\\/])[^\0\n\r=]*$/ }) || undefined,
      files: checkFileManifest(body.files),
      verbose: body.verbose === true,
      color: body.color === true,
      frozenLockfile: body.frozenLockfile === true,
    };
    if (request.files.some((f) => f.path === ".kiln" || f.path.startsWith(".kiln/"))) throw new HttpError(400, "reserved_path", "'.kiln/' is the peer's build folder and cannot be uploaded");
    const key = `${client.pin}/${request.clientJobId}`;
    const known = this.byClientJobId.get(key);
    if (known) return sendJson(res, 200, { status: "queued", jobId: known.id, position: 0, workspace: join(known.workspace, "project") } satisfies JobAnswer);
    const missing: string[] = [];
    for (const sha of new Set(request.files.map((f) => f.sha256))) if (!(await this.blobs.has(sha))) missing.push(sha);
    if (missing.length) return sendJson(res, 200, { status: "needs-blobs", missing } satisfies JobAnswer);
    if (this.stopping) throw new HttpError(503, "stopping", "the peer is shutting down", { "retry-after": "30" });
    const free = await freeBytes(this.opts.stateDir);
    if (free < this.opts.minFreeBytes) {
      throw new HttpError(507, "disk_low", `the peer has ${Math.round(free / 2 ** 20)} MiB free, below its ${Math.round(this.opts.minFreeBytes / 2 ** 20)} MiB floor`, { "retry-after": "60" });
    }
    await this.blobs.touch(request.files.map((f) => f.sha256));
    const workspace = join(this.opts.stateDir, "workspaces", client.pin.slice(0, 16), request.project, request.env);
    await mkdir(workspace, { recursive: true });
    await this.saveClient({ ...client, lastSeen: new Date().toISOString(), address: req.socket.remoteAddress ?? client.address });
    const job = new Job(client.pin, client.label, request, workspace);
    const position = this.queue.submit(job);
    this.jobs.set(job.id, job);
    this.byClientJobId.set(key, job);
    this.opts.log(`job ${job.id} from ${client.label}: env ${request.env}, ${request.files.length} files${position ? `, queued at ${position}` : ""}`);
    sendJson(res, 201, { status: "queued", jobId: job.id, position, workspace: join(workspace, "project") } satisfies JobAnswer);
  }

  private async runJob(job: Job): Promise<void> {
    const t0 = performance.now();
    await runJob(job, { settings: this.opts.settings, blobs: this.blobs, jobs: this.opts.jobs, timeLimitMs: this.opts.timeLimitMs });
    this.opts.log(`job ${job.id} (${job.clientLabel}, ${job.request.env}) ${job.state} in ${Math.round(performance.now() - t0)} ms`);
  }

  /** Server-sent events: replay from Last-Event-ID, then live until the end frame. */
  private events(req: IncomingMessage, res: ServerResponse, job: Job): void {
    const after = Number(req.headers["last-event-id"] ?? 0) || 0;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.flushHeaders();
    let ended = false;
    const heartbeat = setInterval(() => res.write(": ping\n\n"), 15_000);
    const stop = job.log.follow(after, (seq, data) => {
      if (ended) return;
      res.write(`id: ${seq}\ndata: ${data}\n\n`);
      if (data.startsWith('{"kind":"end"')) {
        ended = true;
        queueMicrotask(() => close());
      }
    });
    const close = (): void => {
      clearInterval(heartbeat);
      stop();
      res.end();
    };
    res.once("close", close);
  }

  // ── pairing ──────────────────────────────────────────────────────────────

  private async handlePair(req: IncomingMessage, res: ServerResponse, parts: string[], url: URL, pin: string | undefined): Promise<void> {
    if (!pin) throw new HttpError(401, "client_certificate_required", "pairing needs the client's certificate");
    const address = req.socket.remoteAddress ?? "?";
    if (req.method === "POST" && parts.length === 2) {
      this.rateLimit(address);
      const body = await readJsonBody(req, 16 << 10);
      const label = str(body, "label", { pattern: NAME_PATTERN });
      const code = str(body, "code", { optional: true, max: 32 });
      const certPem = certPemOf(req.socket as TLSSocket);
      const answer = await this.pair({ pin, label, code, certPem, address });
      this.opts.log(`pairing request from ${label} (${address}, pin ${pin.slice(0, 16)}…): ${answer.status}${answer.id ? ` — approve with 'kiln peer approve ${answer.id}'` : ""}`);
      return sendJson(res, 200, answer);
    }
    if (req.method === "GET" && parts[2] === "status") {
      const id = url.searchParams.get("id") ?? "";
      const p = this.pending.get(id);
      if (!p || p.pin !== pin) {
        const row = this.clients.find((c) => c.pin === pin);
        const status = row?.status === "approved" ? "approved" : "expired";
        return sendJson(res, 200, { status, label: this.opts.label } satisfies PairAnswer);
      }
      if (!p.decided) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, STATUS_HOLD_MS);
          p.waiters.add(() => {
            clearTimeout(t);
            resolve();
          });
          res.once("close", resolve);
        });
      }
      return sendJson(res, 200, { status: p.decided ?? "pending", id: p.id, label: this.opts.label } satisfies PairAnswer);
    }
    throw new HttpError(404, "not_found", `no route ${req.method} ${url.pathname}`);
  }

  private rateLimit(address: string): void {
    const now = Date.now();
    const recent = (this.attempts.get(address) ?? []).filter((t) => t > now - 60_000);
    recent.push(now);
    this.attempts.set(address, recent);
    if (recent.length > PAIR_ATTEMPTS_PER_MIN) throw new HttpError(429, "rate_limited", "too many pairing attempts; wait a minute", { "retry-after": "60" });
  }

  private async pair(r: { pin: string; label: string; code: string; certPem: string; address: string }): Promise<PairAnswer> {
    const label = this.opts.label;
    const row = this.clients.find((c) => c.pin === r.pin);
    // Re-pairing an approved key needs nobody: the key already proved who it is.
    if (row?.status === "approved") return { status: "approved", label };
    const codeOk = row === undefined && this.code !== undefined && Date.now() < this.code.expires && sameText(r.code.toUpperCase(), this.code.value);
    if (codeOk) this.code = undefined; // once
    if (codeOk || (row === undefined && this.pairWindowOpen)) {
      await this.saveClient({ id: shortId(r.pin), label: r.label, pin: r.pin, certPem: r.certPem, status: "approved", pairedAt: new Date().toISOString(), address: r.address });
      return { status: "approved", label, message: codeOk ? "approved with the one-time code" : "approved: the pairing window is open" };
    }
    if (r.code) return { status: "rejected", label, message: "the pairing code is wrong, used or expired" };
    this.expirePending();
    const existing = [...this.pending.values()].find((p) => p.pin === r.pin && !p.decided);
    if (existing) return { status: "pending", id: existing.id, label };
    if (this.pending.size >= PENDING_MAX) return { status: "busy", label, message: "too many pairing requests are waiting; try later" };
    const p: Pending = { id: shortId(r.pin), pin: r.pin, label: r.label, certPem: r.certPem, address: r.address, since: Date.now(), waiters: new Set() };
    this.pending.set(p.id, p);
    return { status: "pending", id: p.id, label };
  }

  private expirePending(): void {
    const cutoff = Date.now() - PENDING_TTL_MS;
    for (const [id, p] of this.pending) if (p.since < cutoff || p.decided) this.pending.delete(id);
  }

  private decide(p: Pending, decision: "approved" | "denied"): void {
    p.decided = decision;
    for (const w of p.waiters) w();
    p.waiters.clear();
    // Keep the decision a moment so a status poll in flight can read it.
    setTimeout(() => this.pending.delete(p.id), 60_000).unref();
  }

  /** Approve or deny a pending request by id or pin prefix (the admin socket's verbs). */
  async resolvePending(key: string, decision: "approved" | "denied"): Promise<Pending> {
    this.expirePending();
    const k = key.toLowerCase().replace(/[\s:]/g, "");
    const p = this.pending.get(key) ?? [...this.pending.values()].find((x) => k.length >= 8 && x.pin.startsWith(k));
    if (!p || p.decided) throw new KilnError("KILN_NO_SUCH_REQUEST", ExitCode.usage, `no pending pairing request '${key}'`, { hint: "run 'kiln peer list' on the peer to see pending requests" });
    if (decision === "approved") {
      await this.saveClient({ id: p.id, label: p.label, pin: p.pin, certPem: p.certPem, status: "approved", pairedAt: new Date().toISOString(), address: p.address });
    }
    this.decide(p, decision);
    this.opts.log(`pairing request ${p.id} from ${p.label} ${decision}`);
    return p;
  }

  // ── admin socket (same user only: 0700 folder, 0600 socket) ──────────────

  private async startAdmin(): Promise<void> {
    const path = this.adminPath();
    checkSocketPath(path);
    await mkdir(join(this.opts.configDir, "peer"), { recursive: true, mode: 0o700 });
    if (await adminAlive(path)) {
      throw new KilnError("KILN_PEER_RUNNING", ExitCode.remote, `another 'kiln peer serve' is running for ${this.opts.configDir}`, { hint: "stop it first, or use another KILN_HOME" });
    }
    await rm(path, { force: true });
    this.admin = createNetServer((sock) => {
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("data", (d: string) => {
        buf += d;
        if (buf.length > 4096) sock.destroy();
        const nl = buf.indexOf("\n");
        if (nl < 0) return;
        void this.adminCommand(buf.slice(0, nl)).then((answer) => sock.end(`${JSON.stringify(answer)}\n`));
      });
      sock.on("error", () => undefined);
    });
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        this.admin!.once("error", reject);
        this.admin!.listen(path, () => resolve());
      });
    } finally {
      process.umask(oldMask);
    }
  }

  private async adminCommand(line: string): Promise<Record<string, unknown>> {
    try {
      const msg = JSON.parse(line) as { op?: string; key?: string };
      if (msg.op === "list") {
        this.expirePending();
        return {
          ok: true,
          pending: [...this.pending.values()].filter((p) => !p.decided).map((p) => ({ id: p.id, label: p.label, pin: p.pin, address: p.address, since: new Date(p.since).toISOString() })),
          info: this.info(),
          url: this.url,
          pairWindowOpen: this.pairWindowOpen,
        };
      }
      if ((msg.op === "approve" || msg.op === "deny") && typeof msg.key === "string") {
        const p = await this.resolvePending(msg.key, msg.op === "approve" ? "approved" : "denied");
        return { ok: true, id: p.id, label: p.label, pin: p.pin };
      }
      if (msg.op === "code") return { ok: true, code: this.newCode(), expiresInSeconds: CODE_TTL_MS / 1000 };
      if (msg.op === "window") {
        this.windowUntil = Date.now() + 300_000;
        return { ok: true, expiresInSeconds: 300 };
      }
      return { ok: false, code: "KILN_USAGE", message: `unknown admin request ${JSON.stringify(msg.op)}` };
    } catch (e) {
      const err = e instanceof KilnError ? e : new KilnError("KILN_USAGE", ExitCode.usage, (e as Error).message);
      return { ok: false, code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode };
    }
  }
}

/**
 * The longest Unix socket path every system takes (sun_path: 104 bytes on macOS, 108 on Linux, with
 * the closing NUL). Node 20 binds and connects to a longer path cut short without a word: the socket
 * would land outside its 0700 folder, under a name nothing looks for.
 */
const SOCKET_PATH_MAX = 103;

function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes <= SOCKET_PATH_MAX) return;
  throw new KilnError("KILN_PEER_SOCKET_PATH", ExitCode.config, `the peer's admin socket would be ${path}: ${bytes} bytes, over the ${SOCKET_PATH_MAX} a Unix socket path may have`, {
    hint: "set KILN_HOME to a shorter folder (the same one for 'kiln peer serve' and 'kiln peer approve')",
  });
}

/** Send one request to the running server's admin socket. */
export async function adminRequest(configDir: string, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
  const path = join(configDir, "peer", "admin.sock");
  checkSocketPath(path);
  return new Promise((resolve, reject) => {
    const sock = netConnect(path);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`${JSON.stringify(msg)}\n`));
    sock.on("data", (d: string) => (buf += d));
    sock.on("end", () => {
      try {
        resolve(JSON.parse(buf) as Record<string, unknown>);
      } catch {
        reject(new KilnError("KILN_PEER_ADMIN", ExitCode.remote, `the peer server answered nonsense on ${path}`));
      }
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT" || e.code === "ECONNREFUSED") {
        reject(new KilnError("KILN_PEER_NOT_RUNNING", ExitCode.remote, `no 'kiln peer serve' is running for ${configDir}`, { hint: "pending requests live in the running server: start 'kiln peer serve' (same KILN_HOME) first" }));
      } else reject(e);
    });
  });
}

async function adminAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = netConnect(path);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

function certPemOf(socket: TLSSocket): string {
  const raw = socket.getPeerCertificate(false).raw;
  return `-----BEGIN CERTIFICATE-----\n${raw.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END CERTIFICATE-----\n`;
}

/** The operator types this: the start of the pin plus a little randomness, never reused. */
function shortId(pin: string): string {
  return `${pin.slice(0, 6)}${randomBytes(2).toString("hex")}`;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

