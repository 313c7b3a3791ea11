/**
 * `kiln build` / `kiln upload` with peers: ask the paired peers how busy
 * they are, let the scheduler choose, build there (or here), and say which
 * and why — never a silent fallback. A peer that fails authentication stops
 * the build (exit 8): it may be an attack, so kiln does not quietly build
 * elsewhere. A connection lost mid-job is retried once elsewhere, then
 * locally (`auto`); a compile error on the peer is the build's result.
 */
import { CancelledError, ExitCode, KilnError, isKilnError } from "../core/errors.js";
import type { BuildOptions, BuildSummary, EnvBuildResult } from "../build/index.js";
import { buildEnvRemotely, PeerClient, probePeer, projectFiles, projectKey } from "./client.js";
import { loadOrCreateIdentity } from "./identity.js";
import { pickBuildTarget, type PeerCandidate, type RemoteMode } from "./scheduler.js";
import { identityDir, readPeers, writePeers } from "./store.js";

export interface PeerBuildOptions extends BuildOptions {
  mode: RemoteMode;
  /** `--board` for a sketch folder without config (sent to the peer). */
  board?: string | undefined;
}

export async function buildWithPeers(opts: PeerBuildOptions): Promise<BuildSummary> {
  const { buildProject, localFlashSettings } = await import("../build/index.js");
  const { reporter, settings } = opts;
  const peers = opts.mode === "never" ? [] : await readPeers(settings.configDir);
  if (opts.mode === "never" || (!peers.length && opts.mode === "auto")) return buildProject(opts);

  const started = performance.now();
  const { identity } = await loadOrCreateIdentity(identityDir(settings.configDir));
  const key = projectKey(opts.project.dir);
  const clients = new Map(peers.map((p) => [p.pin, new PeerClient(p, identity)]));
  try {
    const probes = await Promise.all(peers.map(async (p) => (p.enabled ? probePeer(clients.get(p.pin)!, 1500, opts.signal) : undefined)));
    const refused = probes.find((r) => r?.error?.code === "KILN_REMOTE_AUTH");
    if (refused?.error) throw refused.error;
    const candidates: PeerCandidate[] = peers.map((p, i) => ({
      pin: p.pin,
      label: p.label,
      status: "approved",
      enabled: p.enabled,
      pairedAt: p.pairedAt,
      health: probes[i]?.health,
      builtThisProjectLast: p.recentProjects?.[0] === key,
    }));

    const results: EnvBuildResult[] = [];
    const errors: BuildSummary["errors"] = [];
    const exclude: string[] = [];
    const builtOn = new Set<string>();
    let lost = 0;
    let remaining = [...opts.envNames];
    let files: Awaited<ReturnType<typeof projectFiles>> | undefined;
    let cancelled = false;
    let localSummary: BuildSummary | undefined;
    while (remaining.length && !cancelled) {
      const d = pickBuildTarget({ mode: opts.mode, peers: candidates, exclude, lostConnections: lost });
      if (d.kind === "fail") {
        throw new KilnError("KILN_NO_COMPATIBLE_PEER", ExitCode.remote, `--remote always, but ${d.reason}`, {
          hint: "start 'kiln peer serve' on a paired machine, pair one with 'kiln peer pair URL', or use --remote auto",
          data: { breakdown: d.breakdown },
        });
      }
      if (d.kind === "local") {
        if (d.reason) reporter.info(`Building locally: ${d.reason}`);
        localSummary = await buildProject({ ...opts, envNames: remaining });
        results.push(...localSummary.envs);
        errors.push(...localSummary.errors);
        cancelled = localSummary.status === "cancelled";
        break;
      }
      const client = clients.get(d.pin)!;
      const env = remaining[0]!;
      reporter.info(`Building ${env} on ${d.reason}`);
      try {
        files ??= await projectFiles(opts.project);
        const r = await buildEnvRemotely({
          client,
          project: opts.project,
          envName: env,
          board: opts.board,
          files,
          reporter,
          signal: opts.signal,
          verbose: reporter.verbose,
          color: opts.colorDiagnostics === true,
          frozenLockfile: opts.frozenLockfile,
          localFlash: () => localFlashSettings({ project: opts.project, envName: env, settings, reporter, signal: opts.signal, offline: opts.offline, install: opts.includeUpload === true }),
        });
        results.push(r);
        builtOn.add(d.pin);
        remaining = remaining.slice(1);
      } catch (e) {
        if (e instanceof CancelledError || opts.signal?.aborted) {
          cancelled = true;
          break;
        }
        if (isKilnError(e) && (e.code === "KILN_REMOTE_UNREACHABLE" || e.code === "KILN_REMOTE_BUSY")) {
          // Another peer, or this machine, gets the env; the scheduler says which.
          reporter.warn(e.message);
          exclude.push(d.pin);
          if (e.data.lost === true) lost++;
          continue;
        }
        if (!isKilnError(e)) throw e;
        errors.push({ env, error: e });
        if (!opts.keepGoing) break;
        remaining = remaining.slice(1);
      }
    }
    if (builtOn.size) await remember(settings.configDir, builtOn, key);

    const status: BuildSummary["status"] = cancelled ? "cancelled" : errors.length ? "failed" : "ok";
    const ms = Math.round(performance.now() - started);
    if (!localSummary) {
      reporter.event({
        type: "summary",
        status,
        ms,
        envs: [...results.map((r) => ({ env: r.env, status: r.status, ms: r.ms })), ...errors.map((e) => ({ env: e.env, status: "failed", ms: 0, code: e.error.code }))],
      });
    }
    return { status, ms, envs: results, errors };
  } finally {
    for (const c of clients.values()) c.close();
  }
}

/** Last seen and affinity: the peers that just built this project put it first. */
async function remember(configDir: string, pins: Set<string>, key: string): Promise<void> {
  const rows = await readPeers(configDir);
  const now = new Date().toISOString();
  for (const r of rows) {
    if (!pins.has(r.pin)) continue;
    r.lastSeen = now;
    r.recentProjects = [key, ...(r.recentProjects ?? []).filter((k) => k !== key)].slice(0, 20);
  }
  await writePeers(configDir, rows);
}
