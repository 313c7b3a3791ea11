/**
 * The peer's side of a remote build: the blob store (project files by
 * sha256), the workspaces (one per client, project and env, kept warm so
 * the peer's builds are incremental too), the job queue with its slots, and
 * one job's run: materialise the files, then build with the very same
 * `buildProject` a local build uses, its Reporter calls forwarded as frames.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, copyFile, lstat, mkdir, readdir, rename, rm, stat, statfs, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Settings } from "../core/config.js";
import { CancelledError, ExitCode, KilnError, errnoCode, isKilnError } from "../core/errors.js";
import { fileClosed, tempPathFor, readJson, writeFileAtomic } from "../core/fs.js";
import type { FirmwareManifest } from "../core/manifest.js";
import type { KilnEvent, Reporter, StepHandle } from "../core/report.js";
import { checkArtifactManifest, containedPath, LIMITS, type FileEntry } from "./guards.js";
import { HttpError, type JobFrame, type JobRequest, type WireError } from "./wire.js";

/** Content-addressed project files: `<root>/<2 hex>/<sha256>`, verified while written. */
export class BlobStore {
  constructor(readonly root: string) {}

  path(sha: string): string {
    return join(this.root, sha.slice(0, 2), sha);
  }

  async has(sha: string): Promise<boolean> {
    try {
      return (await lstat(this.path(sha))).isFile();
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return false;
      throw e;
    }
  }

  /** Stream a body in; refuses more than `size` bytes or other content than `sha` (temp file, then rename). */
  async put(sha: string, size: number, body: Readable): Promise<void> {
    const dest = this.path(sha);
    await mkdir(dirname(dest), { recursive: true });
    const tmp = tempPathFor(dest);
    const hash = createHash("sha256");
    let seen = 0;
    const file = createWriteStream(tmp, { mode: 0o600 });
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            seen += chunk.length;
            if (seen > size) throw new HttpError(413, "too_large", `blob ${sha} is larger than its declared ${size} bytes`);
            hash.update(chunk);
            yield chunk;
          }
        },
        file,
      );
      if (seen !== size) throw new HttpError(400, "size_mismatch", `blob ${sha}: got ${seen} bytes, declared ${size}`);
      const got = hash.digest("hex");
      if (got !== sha) throw new HttpError(422, "hash_mismatch", `blob content hashes to ${got}, not ${sha}`);
      await rename(tmp, dest);
    } catch (e) {
      await fileClosed(file);
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** Mark blobs as used now (the retention sweep removes blobs unused for a day). */
  async touch(shas: readonly string[]): Promise<void> {
    const now = new Date();
    await Promise.all(shas.map((s) => utimes(this.path(s), now, now).catch(() => undefined)));
  }
}

/** A job's frames: a ring of the last lines, plus live followers. */
class FrameLog {
  private frames: Array<{ seq: number; data: string }> = [];
  private bytes = 0;
  private seq = 0;
  private readonly followers = new Set<(seq: number, data: string) => void>();

  push(frame: JobFrame): void {
    let data = JSON.stringify(frame);
    if (data.length > LIMITS.logLineBytes && frame.kind !== "end") {
      data = JSON.stringify({ kind: "tool-output", text: `${data.slice(0, LIMITS.logLineBytes)}… [truncated by the peer]` });
    }
    const seq = ++this.seq;
    this.frames.push({ seq, data });
    this.bytes += data.length;
    while (this.frames.length > 5000 || this.bytes > 2 << 20) this.bytes -= this.frames.shift()!.data.length;
    for (const f of this.followers) f(seq, data);
  }

  /** Replay frames after `afterSeq`, then follow live ones until the returned function is called. */
  follow(afterSeq: number, fn: (seq: number, data: string) => void): () => void {
    for (const f of this.frames) if (f.seq > afterSeq) fn(f.seq, f.data);
    this.followers.add(fn);
    return () => this.followers.delete(fn);
  }
}

export type JobState = "queued" | "running" | "ok" | "failed" | "cancelled";

export class Job {
  readonly id = randomBytes(9).toString("base64url");
  state: JobState = "queued";
  readonly log = new FrameLog();
  readonly abort = new AbortController();
  manifest: FirmwareManifest | undefined;
  buildDir: string | undefined;
  finishedAt: number | undefined;
  private readonly ended: Promise<void>;
  private resolveEnded!: () => void;

  constructor(
    readonly clientPin: string,
    readonly clientLabel: string,
    readonly request: JobRequest,
    readonly workspace: string,
  ) {
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  get done(): boolean {
    return this.state === "ok" || this.state === "failed" || this.state === "cancelled";
  }

  finish(state: "ok" | "failed" | "cancelled", error?: WireError): void {
    if (this.done) return;
    this.state = state;
    this.finishedAt = Date.now();
    this.log.push({ kind: "end", status: state, error });
    this.resolveEnded();
  }

  whenDone(): Promise<void> {
    return this.ended;
  }
}

export interface JobRunnerOptions {
  settings: Settings;
  blobs: BlobStore;
  /** Parallel compiles per build. */
  jobs: number;
  timeLimitMs: number;
}

/**
 * Build one job in its workspace. Never throws: every outcome ends the job
 * with a frame the client turns into the same exit code as a local build.
 */
export async function runJob(job: Job, opts: JobRunnerOptions): Promise<void> {
  const { signal } = job.abort;
  const timer = setTimeout(() => job.abort.abort(new KilnError("KILN_REMOTE_TIME_LIMIT", ExitCode.remote, `the peer stopped the build after its time limit (${Math.round(opts.timeLimitMs / 1000)} s)`)), opts.timeLimitMs);
  timer.unref();
  job.state = "running";
  job.log.push({ kind: "state", state: "running" });
  try {
    const projectDir = join(job.workspace, "project");
    await materialize(job.workspace, projectDir, job.request.files, opts.blobs);
    const reporter = new ForwardingReporter(job, job.request.verbose === true);
    const { openProject } = await import("../build/open.js");
    const { buildProject, throwIfFailed } = await import("../build/index.js");
    const project = await openProject({ dir: projectDir, settings: opts.settings, board: job.request.board });
    for (const w of project.warnings) reporter.warn(w);
    if (!project.envNames.includes(job.request.env)) {
      throw new KilnError("KILN_UNKNOWN_ENV", ExitCode.config, `the project sent has no env '${job.request.env}'`);
    }
    const summary = await buildProject({
      project,
      envNames: [job.request.env],
      settings: opts.settings,
      reporter,
      signal,
      jobs: opts.jobs,
      keepGoing: false,
      colorDiagnostics: job.request.color === true,
      frozenLockfile: job.request.frozenLockfile === true,
      debugPrefixMap: job.request.projectDir ? { from: projectDir, to: job.request.projectDir } : undefined,
    });
    if (signal.aborted) throw signal.reason instanceof KilnError ? signal.reason : new CancelledError();
    throwIfFailed(summary);
    const built = summary.envs[0]!;
    const text = await readJson<unknown>(built.manifestPath);
    job.manifest = checkArtifactManifest(text);
    job.buildDir = dirname(built.manifestPath);
    job.finish("ok");
  } catch (e) {
    const reason: unknown = signal.aborted ? signal.reason : e;
    if (reason instanceof CancelledError || (signal.aborted && !(reason instanceof KilnError))) job.finish("cancelled");
    else if (isKilnError(reason)) job.finish("failed", { code: reason.code, message: reason.message, hint: reason.hint, exitCode: reason.exitCode });
    else {
      const err = reason instanceof Error ? reason : new Error(String(reason));
      job.finish("failed", { code: "KILN_REMOTE_INTERNAL", message: `the peer failed: ${err.message}`, hint: "see the peer's log", exitCode: ExitCode.remote });
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Make `projectDir` hold exactly the manifest's files. Files whose content is
 * unchanged keep their mtime (the peer's build stays incremental); files no
 * longer listed are removed; `.kiln/` (the peer's build dir) is left alone.
 */
async function materialize(workspace: string, projectDir: string, files: FileEntry[], blobs: BlobStore): Promise<void> {
  const recordFile = join(workspace, "files.json");
  const before = (await readJson<Record<string, string>>(recordFile)) ?? {};
  const after: Record<string, string> = {};
  await mkdir(projectDir, { recursive: true });
  for (const f of files) {
    const dest = containedPath(projectDir, f.path);
    after[f.path] = f.sha256;
    const current = await lstatOrUndefined(dest);
    if (current?.isFile() && before[f.path] === f.sha256 && current.size === f.size && (current.mode & 0o111 ? 0o755 : 0o644) === f.mode) continue;
    await mkdirReal(projectDir, dirname(f.path));
    if (current && !current.isFile()) await rm(dest, { recursive: true, force: true });
    const tmp = tempPathFor(dest);
    try {
      await copyFile(blobs.path(f.sha256), tmp);
      await chmod(tmp, f.mode);
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
  for (const path of Object.keys(before)) {
    if (!(path in after)) await rm(containedPath(projectDir, path), { force: true });
  }
  await writeFileAtomic(recordFile, JSON.stringify(after));
}

/** Create `rel`'s folders under root, refusing anything on the way that is not a real folder. */
async function mkdirReal(root: string, rel: string): Promise<void> {
  if (rel === "." || rel === "") return;
  let dir = root;
  for (const part of rel.split("/")) {
    dir = join(dir, part);
    const st = await lstatOrUndefined(dir);
    if (st?.isDirectory()) continue;
    if (st) await rm(dir, { force: true });
    await mkdir(dir);
  }
}

async function lstatOrUndefined(p: string) {
  try {
    return await lstat(p);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

/** The peer's Reporter for one job: every call becomes a frame for the client. */
class ForwardingReporter implements Reporter {
  readonly isJson = false;
  private steps = 0;
  constructor(
    private readonly job: Job,
    readonly verbose: boolean,
  ) {}
  event(e: KilnEvent): void {
    this.job.log.push({ kind: "event", event: e as Record<string, unknown> });
  }
  step(label: string): StepHandle {
    const id = ++this.steps;
    const push = (status: "start" | "update" | "ok" | "failed", text?: string): void => this.job.log.push({ kind: "step", id, label, status, text });
    push("start");
    return { update: (t) => push("update", t), succeed: (t) => push("ok", t), fail: (t) => push("failed", t) };
  }
  info(message: string): void {
    this.job.log.push({ kind: "info", text: message });
  }
  warn(message: string): void {
    this.job.log.push({ kind: "warn", text: message });
  }
  command(argv: readonly string[], cwd?: string): void {
    if (this.verbose) this.job.log.push({ kind: "command", argv: [...argv], cwd });
  }
  toolOutput(text: string): void {
    this.job.log.push({ kind: "tool-output", text });
  }
  error(): void {
    // Errors travel once, in the end frame.
  }
}

/**
 * Bounded slots and queue. `submit` refuses (503 + Retry-After) when the
 * queue is full; a job whose workspace is busy waits for it, so two builds
 * never share a tree.
 */
export class JobQueue {
  private readonly waiting: Job[] = [];
  private readonly running = new Set<Job>();

  constructor(
    private readonly slots: number,
    private readonly maxQueue: number,
    private readonly run: (job: Job) => Promise<void>,
  ) {}

  get counts(): { running: number; queued: number } {
    return { running: this.running.size, queued: this.waiting.length };
  }

  /** Queue a job; returns its position (0 = started now). */
  submit(job: Job): number {
    if (this.running.size >= this.slots && this.waiting.length >= this.maxQueue) {
      throw new HttpError(503, "queue_full", `the peer is busy (${this.running.size} building, ${this.waiting.length} queued)`, { "retry-after": "10" });
    }
    this.waiting.push(job);
    job.log.push({ kind: "state", state: "queued", position: this.waiting.length });
    this.pump();
    return job.state === "queued" ? this.waiting.indexOf(job) + 1 : 0;
  }

  /** Cancel a queued or running job; the running build's process groups are killed by its signal. */
  cancel(job: Job): void {
    const i = this.waiting.indexOf(job);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      job.finish("cancelled");
      return;
    }
    if (!job.done) job.abort.abort(new CancelledError());
  }

  /** Every running job's promise (for a graceful stop). */
  cancelAll(): Promise<void[]> {
    for (const j of [...this.waiting]) this.cancel(j);
    for (const j of this.running) this.cancel(j);
    return Promise.all([...this.running].map((j) => j.whenDone()));
  }

  private pump(): void {
    while (this.running.size < this.slots) {
      const busy = new Set([...this.running].map((j) => j.workspace));
      const next = this.waiting.findIndex((j) => !busy.has(j.workspace));
      if (next < 0) return;
      const [job] = this.waiting.splice(next, 1);
      this.running.add(job!);
      void this.run(job!).finally(() => {
        this.running.delete(job!);
        this.pump();
      });
    }
  }
}

/** Free bytes on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Retention: remove workspaces and blobs not used for `maxAgeMs` (a day by
 * default). Workspaces in use are skipped.
 */
export async function sweep(root: string, maxAgeMs: number, inUse: ReadonlySet<string>): Promise<number> {
  const cutoff = Date.now() - maxAgeMs;
  let removed = 0;
  const visit = async (dir: string, depth: number): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return;
      throw e;
    }
    for (const name of names) {
      const p = join(dir, name);
      if (depth > 0) {
        await visit(p, depth - 1);
        continue;
      }
      if (inUse.has(p)) continue;
      const st = await stat(p).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) {
        await rm(p, { recursive: true, force: true });
        removed++;
      }
    }
  };
  await visit(join(root, "workspaces"), 2);
  await visit(join(root, "blobs"), 1);
  return removed;
}

/** Stream a file of the job's build dir (an image listed in its manifest). */
export async function openImage(job: Job, name: string): Promise<{ size: number; stream: Readable }> {
  const img = job.manifest?.images.find((i) => i.path === name);
  if (!img || !job.buildDir) throw new HttpError(404, "unknown_image", `the job has no image '${name}'`);
  const file = containedPath(job.buildDir, img.path);
  const st = await lstat(file);
  if (!st.isFile()) throw new HttpError(500, "not_a_file", `image ${name} is not a regular file`);
  return { size: st.size, stream: createReadStream(file) };
}

