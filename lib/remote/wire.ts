/**
 * The peer protocol, shared by both ends: routes, request and answer shapes,
 * and the server's small HTTP helpers (capped bodies, JSON answers, typed
 * refusals). REST plus server-sent events over mutual TLS; see
 * docs/remote.md for the whole exchange.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FileEntry } from "./guards.js";

export const DEFAULT_PORT = 7420;

export interface PairRequest {
  /** The client's name for itself, shown to the peer's operator. */
  label: string;
  version: string;
  /** A one-time code printed by the peer: approves at once. */
  code?: string | undefined;
}

export type PairStatus = "approved" | "pending" | "denied" | "rejected" | "expired" | "busy";

export interface PairAnswer {
  status: PairStatus;
  /** The pending request's id (what the operator types in `kiln peer approve ID`). */
  id?: string | undefined;
  /** The peer's own label. */
  label: string;
  message?: string | undefined;
}

export interface PeerInfo {
  version: string;
  label: string;
  /** Builds run at once (the others queue). */
  slots: number;
  running: number;
  queued: number;
  maxQueue: number;
  /** Parallel compiles per build. */
  jobs: number;
}

export interface JobRequest {
  /** Chosen by the client; a resubmission with the same id is the same job. */
  clientJobId: string;
  /** Stable key of the client's project (its workspace on the peer). */
  project: string;
  env: string;
  /** `--board` for a sketch folder without config. */
  board?: string | undefined;
  /** The project's path on the client: the peer's debug info names it instead of the workspace. */
  projectDir?: string | undefined;
  files: FileEntry[];
  verbose?: boolean | undefined;
  color?: boolean | undefined;
  /** `--frozen-lockfile`: the peer fails instead of changing kiln.lock. */
  frozenLockfile?: boolean | undefined;
}

export type JobAnswer =
  | { status: "needs-blobs"; missing: string[] }
  | { status: "queued"; jobId: string; position: number; workspace: string };

/**
 * One line of a job's event stream. `event`…`error` replay the peer's
 * Reporter calls; `end` is the last frame.
 */
export type JobFrame =
  | { kind: "event"; event: Record<string, unknown> }
  | { kind: "step"; id: number; label: string; status: "start" | "update" | "ok" | "failed"; text?: string | undefined }
  | { kind: "info" | "warn" | "tool-output"; text: string }
  | { kind: "command"; argv: string[]; cwd?: string | undefined }
  | { kind: "state"; state: "queued" | "running"; position?: number | undefined }
  | { kind: "end"; status: "ok" | "failed" | "cancelled"; error?: WireError | undefined };

export interface WireError {
  code: string;
  message: string;
  hint?: string | undefined;
  exitCode: number;
}

/** A refusal the server answers with (status, machine code, message), never a crash. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The whole body, refusing (413) as soon as it passes `cap` bytes. */
export async function readBody(req: IncomingMessage, cap: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > cap) throw new HttpError(413, "too_large", `body of ${declared} bytes is over the ${cap}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) throw new HttpError(413, "too_large", `body is over the ${cap}-byte limit`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function readJsonBody(req: IncomingMessage, cap: number): Promise<Record<string, unknown>> {
  const type = String(req.headers["content-type"] ?? "");
  if (!type.startsWith("application/json")) throw new HttpError(415, "bad_content_type", "expected application/json");
  const body = await readBody(req, cap);
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(400, "bad_json", "body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new HttpError(400, "bad_json", "body must be a JSON object");
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "cache-control": "no-store", ...headers });
  res.end(body);
}

/** Field readers that refuse (400) a missing or wrong-typed field, naming it. */
export function str(body: Record<string, unknown>, key: string, opts: { optional?: boolean; max?: number; pattern?: RegExp } = {}): string {
  const v = body[key];
  if (v === undefined && opts.optional) return "";
  if (typeof v !== "string") throw new HttpError(400, "bad_field", `'${key}' must be a string`);
  if (v.length > (opts.max ?? 256)) throw new HttpError(400, "bad_field", `'${key}' is longer than ${opts.max ?? 256} characters`);
  if (opts.pattern && !opts.pattern.test(v)) throw new HttpError(400, "bad_field", `'${key}' has characters outside ${opts.pattern.source}`);
  return v;
}

/** Labels, ids, env names: a fixed alphabet, checked before any lookup. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+ -]{0,63}$/;
export const KEY_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
