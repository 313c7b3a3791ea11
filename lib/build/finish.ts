/**
 * The launcher finishes a head-started build itself when what the build
 * would do is already known: the last build's stamp held except for a few
 * sources (lib/build/noop.ts), their compiles were started with the last
 * build's commands (lib/build/headstart.ts), and after them the build only
 * links (FinishRecipe: one env, no archive to remake, no image, no size). The
 * CLI, the config reader and the planner are then never loaded — about 200 ms
 * of CPU that otherwise runs beside the compile.
 *
 * It finishes only when the result is the one the normal path would reach,
 * and otherwise leaves everything to it (returns undefined, having printed
 * nothing): a changed source whose #include lines changed (the libraries used
 * may differ), a compile that failed or printed anything (the normal path
 * reports diagnostics), a source edited during its compile, a link that
 * failed or printed anything. The normal path then adopts the finished
 * compiles and does the rest; what was already done (a compiled object,
 * recorded in the state) counts as done.
 *
 * Records are made with the runner's own functions (lib/build/outputs.ts),
 * while the link runs; the stamp is written by writeStamp with the times it
 * started from (and the compiles' new depfiles), so a file edited while this
 * ran is seen by the next build.
 */
import { readFileSync, renameSync, rmSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { relative, sep } from "node:path";
import { tempPathFor, writeFileAtomicSync } from "../core/fs.js";
import type { FirmwareManifest } from "../core/manifest.js";
import { abandonHeadStarts, claimHeadStart, fillTemplate, peekHeadStart, type HeadStart } from "./headstart.js";
import { scanIncludes } from "./libraries.js";
import type { NoopStamp } from "./noop.js";
import { removeStamp, writeStamp } from "./noop.js";
import { compiledDeps, imageEntry, manifestStamp, Mtimes, record } from "./outputs.js";
import { commandSig, loadState, saveState } from "./state.js";

export interface FinishOptions {
  projectDir: string;
  /** Date.now() when the launcher looked at the stamp: anything newer is the next build's to see. */
  startedAtMs: number;
  /** performance.now() at the launcher's start, for the "built in" line. */
  t0: number;
}

/** A finished build: its exit code and what the normal path would have printed (plain mode). */
export interface FinishResult {
  code: number;
  report: string;
}

/** What is running, for an interrupt: the head-started compiles, then the link. */
interface Running {
  compiles: Array<Promise<unknown>>;
  link?: ChildProcess | undefined;
  linkTmp?: string | undefined;
}

/**
 * Start finishing the build. `done` is the result, or undefined when the normal path must take
 * over; `stop()` (Ctrl-C) does what the normal path does on an interrupt — stops every process this
 * started (the compiles' whole process groups, the link), and removes their temp files. Nothing
 * half-made is recorded either way: the state and the stamp are written last.
 */
export function startFinish(stamp: NoopStamp, changed: readonly string[], opts: FinishOptions): { done: Promise<FinishResult | undefined>; stop(): Promise<void> } {
  const running: Running = { compiles: [] };
  return {
    done: finish(stamp, changed, opts, running),
    stop: async () => {
      const waits = [...running.compiles];
      abandonHeadStarts();
      const l = running.link;
      if (l && l.exitCode === null && l.signalCode === null) {
        waits.push(new Promise((resolve) => l.once("close", resolve)));
        l.kill("SIGKILL");
      }
      await Promise.all(waits);
      if (running.linkTmp) rmSync(running.linkTmp, { force: true });
    },
  };
}

async function finish(stamp: NoopStamp, changed: readonly string[], opts: FinishOptions, running: Running): Promise<FinishResult | undefined> {
  const f = stamp.finish!;
  const { projectDir } = opts;
  const state = loadState(f.buildDir);
  const mt = new Mtimes();

  // The libraries a build uses follow the sources' #include lines: unchanged lines, unchanged plan.
  const scanned = new Map<string, { mtimeMs: number; size: number }>();
  for (const source of changed) {
    const before = state.scans[source];
    const st = mt.stat(source);
    if (!before || !st) return undefined;
    const includes = scanIncludes(readFileSync(source, "utf8"));
    if (includes.length !== before.includes.length || includes.some((inc, i) => inc !== before.includes[i])) return undefined;
    scanned.set(source, { mtimeMs: st.mtimeMs, size: st.size });
  }
  const starts: Array<{ source: string; h: HeadStart }> = [];
  for (const [source, object] of stamp.units!.list) {
    if (!changed.includes(source)) continue;
    const h = peekHeadStart(object);
    if (!h || !state.outputs[object]) return undefined;
    starts.push({ source, h });
  }
  const linkRec = state.outputs[f.link.output];
  if (!linkRec || commandSig(fillTemplate(f.link.template, f.link.output, "")) !== linkRec.sig) return undefined;

  // The compiles: each must have succeeded silently, from the source as it was when it started.
  running.compiles = starts.map(({ h }) => h.done);
  const done = await Promise.all(starts.map(async ({ source, h }) => ({ source, h, r: await h.done })));
  for (const { source, h, r } of done) {
    if (r.failedToStart || r.exitCode !== 0 || (r.stdout + r.stderr).trim()) return undefined;
    mt.forget(source);
    if (mt.get(source) !== scanned.get(source)!.mtimeMs || scanned.get(source)!.mtimeMs >= h.startedMs) return undefined;
  }

  // From here on every step is kept: the normal path, if it must take over, finds it done. The link
  // starts first; the compiles are recorded while it runs.
  for (const { h } of done) {
    claimHeadStart(h.object, h.template);
    renameSync(h.tmp, h.object);
  }
  const linkStarted = Date.now();
  const linkTmp = tempPathFor(f.link.output);
  running.linkTmp = linkTmp;
  const linking = link(fillTemplate(f.link.template, linkTmp, ""), linkTmp, f.link.output, projectDir, running);
  /** Every compile's inputs as its depfile says now: the stamp rests on them too (a header it did not include before). */
  const inputs: string[] = [];
  try {
    for (const { source, h } of done) {
      const deps = compiledDeps(source, h.dep, projectDir);
      rmSync(h.dep, { force: true });
      mt.forget(h.object);
      record(state, h.object, state.outputs[h.object]!.sig, deps, mt, h.startedMs);
      state.scans[source] = { ...scanned.get(source)!, includes: state.scans[source]!.includes };
      inputs.push(...deps);
    }
  } catch (e) {
    await linking;
    throw e;
  }
  if (!(await linking)) {
    await saveState(f.buildDir, state);
    removeStamp(projectDir);
    return undefined;
  }
  mt.forget(f.link.output);
  record(state, f.link.output, linkRec.sig, linkRec.deps, mt, linkStarted);

  // The manifest: the same as before but for the images' hashes and the time.
  let manifest: FirmwareManifest;
  try {
    manifest = JSON.parse(readFileSync(f.manifest, "utf8")) as FirmwareManifest;
  } catch {
    await saveState(f.buildDir, state);
    removeStamp(projectDir);
    return undefined;
  }
  manifest.images = manifest.images.map((img, i) => imageEntry(f.images[i]!, img));
  manifest.builtAt = new Date().toISOString();
  writeFileAtomicSync(f.manifest, JSON.stringify(manifest, null, 2));
  mt.forget(f.manifest);
  state.written[f.manifest] = manifestStamp(f.images, manifest.upload, manifest.size, manifest.toolchain, mt);
  await saveState(f.buildDir, state);

  // The stamp: every time as it was looked at when this build started, but for the changed sources (as compiled) and what was written.
  const written = new Set([...done.map((m) => m.h.object), f.link.output, f.manifest]);
  const known = new Map<string, number>([...stamp.files, ...stamp.dirs]);
  for (const { source } of done) known.set(source, scanned.get(source)!.mtimeMs);
  for (const p of written) known.set(p, mt.get(p));
  const settled = Object.values(state.outputs).every((r) => r.stamp);
  if (!settled) removeStamp(projectDir);
  else {
    const { v: _v, files, dirs, ...rest } = stamp;
    writeStamp(projectDir, rest, [...files.map(([p]) => p), ...inputs], dirs.map(([p]) => p), opts.startedAtMs, written, written, known);
  }

  const rel = (p: string): string => {
    const r = relative(projectDir, p);
    return r.startsWith("..") ? p : r.split(sep).join("/");
  };
  const line = stamp.envs[0]!;
  const secs = ((performance.now() - opts.t0) / 1000).toFixed(2);
  const report = [
    `Building ${f.env}`,
    ...done.map((m) => `  compile ${rel(m.source)}`),
    `  link    ${rel(f.link.output)}`,
    `${f.env}: built in ${secs}s (compiled ${done.length}, reused ${line.reused - done.length}, linked${line.sizeText})`,
    "",
  ].join("\n");
  return { code: 0, report };
}

/** Run the link into `tmp`, then rename it over `output`; false when it failed or printed anything. */
function link(argv: string[], tmp: string, output: string, cwd: string, running: Running): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ["ignore", "pipe", "pipe"] });
    running.link = child;
    let said = false;
    const heard = (): void => {
      said = true;
    };
    child.stdout.on("data", heard);
    child.stderr.on("data", heard);
    child.once("error", () => resolve(false));
    child.once("close", (code) => {
      let ok = code === 0 && !said;
      try {
        if (ok) renameSync(tmp, output);
      } catch {
        ok = false;
      }
      rmSync(tmp, { force: true });
      resolve(ok);
    });
  });
}
