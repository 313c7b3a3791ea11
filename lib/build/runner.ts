/**
 * Runs one BuildPlan: sources → objects → archives → link → images → size →
 * manifest, incrementally.
 *
 * An output is rebuilt only when its exact command line changed, or one of
 * its recorded inputs (the source and every header of its gcc depfile) has a
 * different mtime than when it was made. A no-op build therefore stats files
 * and starts no process at all. Outputs are written under temp names and
 * renamed; the state is saved atomically, even when the build fails or is
 * cancelled, so nothing half-made is ever trusted.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { createHash } from "node:crypto";
import { basename, dirname, join, relative, sep } from "node:path";
import type { Reporter, SizeInfo, StepHandle } from "../core/report.js";
import { runTool, type RunResult } from "../core/exec.js";
import { tempPathFor, writeFileAtomicSync } from "../core/fs.js";
import { BuildFailedError, CancelledError, ConfigError, FirmwareTooLargeError, errnoCode, isKilnError } from "../core/errors.js";
import { MANIFEST_NAME, type FirmwareManifest } from "../core/manifest.js";
import type { BuildPlan, CompileRecipe, SourceGroup } from "../platforms/types.js";
import { selectSources, SKETCH_EXTENSIONS, SOURCE_EXTENSIONS } from "../project/filter.js";
import { findUsedLibraries, listLibraries, SOURCE_EXTS, type Library } from "./libraries.js";
import { claimHeadStart, compileTemplate, drop, fillTemplate, TMP_WORD, type HeadStart, type StampedUnits } from "./headstart.js";
import { contentStamp, whichSync, type FinishRecipe } from "./noop.js";
import { VERSION } from "../version.js";
import { commandSig, hashText, loadState, saveState, type BuildState } from "./state.js";
import { compiledDeps, imageEntry, isFresh, manifestStamp, Mtimes, record } from "./outputs.js";

export interface RunPlanOptions {
  plan: BuildPlan;
  projectDir: string;
  reporter: Reporter;
  signal?: AbortSignal | undefined;
  jobs: number;
  keepGoing: boolean;
  /** User cache dir; shared groups (the Arduino core) are cached under `objects/`. */
  cacheDir: string;
  /** Ask the compiler for coloured diagnostics (a terminal); never part of a command's signature. */
  colorDiagnostics?: boolean | undefined;
  /** Only work out the compile commands and write compile_commands.json (kiln compiledb). */
  compileDbOnly?: boolean | undefined;
  /** Also write compile_commands.json here (the project root, for clangd). */
  rootCompileDb?: string | undefined;
  /**
   * Debug info names `to` where the sources say `from` (a peer building a
   * client's project: the ELF then points at the client's files, and equals
   * the client's own build). Like colour, never part of a signature.
   */
  debugPrefixMap?: { from: string; to: string } | undefined;
  /** Collect what a no-op looked at (EnvBuildResult.noop), for the launcher's no-op stamp; `path` finds bare tool names. */
  collectNoop?: { path: string | undefined } | undefined;
}

export interface CompileCommand {
  directory: string;
  file: string;
  arguments: string[];
  output: string;
}

/** A compile command and its signature (the signature is not written to compile_commands.json). */
interface CompileEntry extends CompileCommand {
  sig: string;
}

export interface EnvBuildResult {
  env: string;
  status: "ok" | "failed" | "cancelled";
  ms: number;
  compiled: number;
  reused: number;
  linked: boolean;
  size?: SizeInfo | undefined;
  program: string;
  manifestPath: string;
  compileCommands: CompileCommand[];
  /**
   * Set after a successful build that left every output up to date (and collectNoop was asked): what it
   * depended on, the files it wrote itself, and its compile commands (lib/build/noop.ts, headstart.ts).
   */
  noop?:
    | {
        files: string[];
        dirs: string[];
        /** mtimes of some of those, taken while the linker ran (files the link cannot change). */
        known: Map<string, number>;
        sizeText: string;
        written: string[];
        made: string[];
        units: StampedUnits;
        contents: Array<[string, string]>;
        finish?: FinishRecipe | undefined;
      }
    | undefined;
}

interface EarlyNoop {
  files: string[];
  dirs: string[];
  known: Map<string, number>;
  units: StampedUnits;
}

interface Unit {
  source: string;
  object: string;
  argv: string[];
  /**
   * The command's signature: a hash of the words shared by the scope (compiler,
   * flags, include dirs), then the source and object. Equal iff the argv is.
   */
  sig: string;
}

type Lang = "c" | "cxx" | "asm";
function langOf(file: string): Lang | undefined {
  const i = file.lastIndexOf(".");
  const e = i < 0 ? "" : file.slice(i);
  if (e === ".c") return "c";
  if (e === ".S" || e === ".s" || e === ".sx" || e === ".spp" || e === ".SPP" || e === ".asm" || e === ".ASM") return "asm";
  if (SOURCE_EXTS.has(e)) return "cxx";
  return undefined;
}

const DIAG_RE = /^(.+?):(\d+):(?:(\d+):)? (fatal error|error|warning|note): (.*)$/gm;

export async function runPlan(opts: RunPlanOptions): Promise<EnvBuildResult> {
  const started = performance.now();
  const { plan, reporter, projectDir } = opts;
  const buildDir = plan.buildDir;
  const state = loadState(buildDir);
  let unitsBuilt: Unit[] = [];
  let archivesBuilt: string[] = [];
  /** The sketch files' text fingerprints: the stamp compares those, not their times (a touched sketch is no change). */
  const sketchContents: Array<[string, string]> = [];
  let noopDirs: (() => string[]) | undefined;
  let noopSources: string[] = [];
  /** What the no-op stamp needs, gathered while the linker ran. */
  let early: EarlyNoop | undefined;
  const mt = new Mtimes();
  const counts = { compiled: 0, reused: 0 };
  const rel = (p: string): string => {
    const r = relative(projectDir, p);
    return r.startsWith("..") ? p : r.split(sep).join("/");
  };

  reporter.event({ type: "env-start", env: plan.env, platform: plan.platform, board: plan.board?.id });
  const step = reporter.step(`${opts.compileDbOnly ? "Planning" : "Building"} ${plan.env}`);
  let status: EnvBuildResult["status"] = "ok";
  let linked = false;
  let size: EnvBuildResult["size"];
  const compileCommands: CompileEntry[] = [];
  const manifestPath = join(buildDir, MANIFEST_NAME);
  let failedAlready = false;
  let sizeText = "";
  /** Set when what follows the compiles is only the link (no archive made here, no image, no size): lib/build/finish.ts. */
  let linkOnly: FinishRecipe | undefined;
  /** Save the state, report the env's end; a failure to save is thrown only when nothing else failed. */
  const finish = async (): Promise<void> => {
    // Saving can fail too (a read-only or full disk). The first failure is the one the user sees.
    let saveError: unknown;
    try {
      await saveState(buildDir, state);
    } catch (e) {
      saveError = e;
      if (status === "ok") status = "failed";
    }
    const ms = Math.round(performance.now() - started);
    sizeText = size ? `, flash ${fmtSize(size.flashBytes, size.flashMaxBytes)}, RAM ${fmtSize(size.ramBytes, size.ramMaxBytes)}` : "";
    const verb = opts.compileDbOnly ? "compile_commands.json written" : "built";
    const summary = `${plan.env}: ${status === "ok" ? verb : status} in ${(ms / 1000).toFixed(2)}s (compiled ${counts.compiled}, reused ${counts.reused}${linked ? ", linked" : ""}${sizeText})`;
    if (status === "ok") step.succeed(summary);
    else step.fail(summary);
    reporter.event({ type: "env-end", env: plan.env, status, ms, compiled: counts.compiled, reused: counts.reused, linked, size });
    if (saveError !== undefined && !failedAlready) throw saveError;
  };

  try {
    mkdirSync(buildDir, { recursive: true });

    // 1. Project sources (and the sketch, converted to one C++ file).
    const srcExts = plan.project.sketch ? new Set([...SOURCE_EXTENSIONS, ...SKETCH_EXTENSIONS]) : SOURCE_EXTENSIONS;
    let projectSources: string[];
    try {
      projectSources = (await selectSources(plan.project.srcDir, plan.project.srcFilter, srcExts)).map((r) => join(plan.project.srcDir, r));
    } catch (e) {
      if (errnoCode(e) === "ENOENT") {
        throw new ConfigError("KILN_SRC_DIR_MISSING", `source directory ${plan.project.srcDir} does not exist`, {
          hint: "create it, or set src_dir in [platformio]; 'kiln init' makes a new project",
        });
      }
      throw e;
    }
    // The sources as selected (a sketch's .ino files, not the .cpp made from them): a no-op stamp must see their edits.
    const selectedSources = projectSources;
    if (plan.project.sketch) projectSources = await convertSketch(projectSources, buildDir, mt, state, sketchContents);
    if (projectSources.length === 0) {
      throw new ConfigError("KILN_NO_SOURCES", `no source files in ${plan.project.srcDir} match build_src_filter`, {
        hint: "add a .c/.cpp file (e.g. src/main.cpp) or check build_src_filter",
      });
    }

    // 2. Libraries reached from #include.
    const available = listLibraries(plan.libraries.storages, plan.libraries.ignore);
    const { libraries } = findUsedLibraries({
      sources: projectSources,
      projectIncludeDirs: plan.project.recipe.includeDirs,
      libraries: available,
      scans: state.scans,
      mode: plan.libraries.ldfMode,
      stat: mt.stat,
    });
    const libIncludes = libraries.flatMap((l) => l.includeDirs);
    // Also what decides a library's flags and layout (library.json / library.properties), for every library the LDF could pick.
    noopSources = [...selectedSources, ...available.flatMap((l) => [join(l.root, "library.json"), join(l.root, "library.properties")])];
    // What decides which files are compiled: the folders' listings (read again only for a no-op stamp).
    noopDirs = () => [...walkDirs(plan.project.srcDir), ...plan.libraries.storages, ...available.map((l) => l.root), ...libraries.flatMap((l) => walkDirs(l.root))];

    // 3. Compile units.
    const units: Unit[] = [];
    const objectFor = (source: string, base: string, objDir: string): string => join(buildDir, objDir, `${relative(base, source)}.o`);
    // The words before `-c` are the same for every source of a scope and language: build and hash them once.
    const prefixes = new Map<string, { words: string[]; hash: string }>();
    const prefixFor = (scope: string, lang: Lang, recipe: CompileRecipe, includeDirs: string[], extra: string[]): { words: string[]; hash: string } => {
      const key = `${scope}\0${lang}`;
      let p = prefixes.get(key);
      if (!p) {
        const words = [...recipe[lang], ...extra, ...uniq(includeDirs).map((d) => `-I${d}`)];
        p = { words, hash: commandSig(words) };
        prefixes.set(key, p);
      }
      return p;
    };
    const addUnit = (scope: string, source: string, object: string, recipe: CompileRecipe, includeDirs: string[], extra: string[] = []): Unit | undefined => {
      const lang = langOf(source);
      if (!lang) return undefined;
      const prefix = prefixFor(scope, lang, recipe, includeDirs, extra);
      const argv = [...prefix.words, "-c", source, "-o", object];
      const u = { source, object, argv, sig: `${prefix.hash}\0${source}\0${object}` };
      units.push(u);
      compileCommands.push({ directory: projectDir, file: source, arguments: argv, output: object, sig: u.sig });
      return u;
    };
    const projectObjects: string[] = [];
    for (const s of projectSources) {
      const base = s.startsWith(buildDir + sep) ? buildDir : plan.project.srcDir;
      const objDir = s.startsWith(buildDir + sep) ? "" : "src";
      const u = addUnit("project", s, objectFor(s, base, objDir), plan.project.recipe, [...plan.project.recipe.includeDirs, ...libIncludes]);
      if (u) projectObjects.push(u.object);
    }
    const libOutputs: Array<{ lib: Library; objects: string[]; archive: string }> = [];
    for (const lib of libraries) {
      const objects: string[] = [];
      const dirName = lib.name.replace(/[^\w.-]+/g, "_");
      for (const s of lib.sources) {
        const u = addUnit(`lib:${lib.root}`, s, objectFor(s, lib.srcDir, join("lib", dirName)), plan.libraries.recipe, [...lib.includeDirs, ...plan.libraries.recipe.includeDirs, ...libIncludes], lib.flags);
        if (u) objects.push(u.object);
      }
      libOutputs.push({ lib, objects, archive: join(buildDir, "lib", dirName, `lib${dirName}.a`) });
    }

    // 4. Framework groups; a shared one may come whole from the user cache.
    const groupOutputs: Array<{ group: SourceGroup; objects: string[]; archive?: string | undefined; shared?: { key: string; remember(): void } | undefined }> = [];
    for (const group of plan.groups) {
      const archive = group.archive ? join(buildDir, group.archive) : undefined;
      const objects: string[] = [];
      const groupUnits: Unit[] = [];
      for (const s of group.sources) {
        const u = addUnit(`group:${group.id}`, s, objectFor(s, group.root, group.id), group.recipe, group.recipe.includeDirs);
        if (u) {
          objects.push(u.object);
          groupUnits.push(u);
        }
      }
      let shared: { key: string; remember(): void } | undefined;
      if (group.shared && archive) {
        const r = await restoreSharedGroup({ group, archive, units: groupUnits, plan, state, mt, cacheDir: opts.cacheDir });
        shared = r;
        if (r.restored) {
          // Its objects are not needed here: drop them from the compile list.
          for (const u of groupUnits) units.splice(units.indexOf(u), 1);
          counts.reused += groupUnits.length;
          groupOutputs.push({ group, objects: [], archive });
          continue;
        }
      }
      groupOutputs.push({ group, objects, archive, shared });
    }

    // compile_commands.json changes exactly when a unit's command does: key it on the signatures, so a no-op need not serialise it.
    const writeCompileDbs = async (): Promise<void> => {
      const key = hashText(compileCommands.map((c) => c.sig).join("\n"));
      let text: string | undefined;
      const make = (): string => (text ??= JSON.stringify(compileCommands.map(({ sig: _sig, ...c }) => c), null, 1));
      await writeIfChanged(join(buildDir, "compile_commands.json"), key, make, state);
      if (opts.rootCompileDb) await writeIfChanged(opts.rootCompileDb, key, make, state);
    };
    if (opts.compileDbOnly) {
      await writeCompileDbs();
      await finish();
      return { env: plan.env, status, ms: 0, compiled: 0, reused: 0, linked: false, program: plan.link.output, manifestPath, compileCommands };
    }

    unitsBuilt = units;
    // 5. Compile what is out of date, in parallel.
    const dirty = units.filter((u) => !isFresh(state.outputs[u.object], u.sig, u.object, mt));
    counts.reused += units.length - dirty.length;
    const failures = await compileAll(dirty, { ...opts, progress: step, state, mt, rel, counts });
    if (opts.signal?.aborted) throw new CancelledError();
    if (failures.length) {
      throw new BuildFailedError(`${failures.length} file${failures.length > 1 ? "s" : ""} failed to compile in env '${plan.env}': ${failures.map((f) => rel(f.source)).join(", ")}`, {
        hint: "fix the errors shown above; --keep-going compiles the other files anyway",
      });
    }

    // 6. Archives: one ar call per archive.
    const archives: string[] = [];
    const linkObjects = [...projectObjects];
    for (const lo of libOutputs) {
      if (lo.objects.length === 0) continue;
      if (plan.libraries.archive) {
        await makeArchive(lo.archive, lo.objects, { ...opts, state, mt });
        archives.push(lo.archive);
      } else linkObjects.push(...lo.objects);
    }
    for (const go of groupOutputs) {
      if (go.archive) {
        if (go.objects.length) await makeArchive(go.archive, go.objects, { ...opts, state, mt });
        if (go.shared && go.objects.length) {
          await publishSharedGroup(go.archive, go.shared.key, opts.cacheDir);
          go.shared.remember();
        }
        archives.push(go.archive);
      } else linkObjects.push(...go.objects);
    }

    archivesBuilt = archives;
    // 7. Link. First, forget outputs this plan no longer makes (a deleted source's object; another folder's, in a
    // copied project): the state, and the no-op stamp made from it, describe this build only.
    const program = plan.link.output;
    const current = new Set([...compileCommands.map((c) => c.output), program, ...plan.images.map((i) => i.output), ...libOutputs.map((l) => l.archive)]);
    for (const go of groupOutputs) if (go.archive) current.add(go.archive).add(`shared:${go.archive}`);
    for (const key of Object.keys(state.outputs)) if (!current.has(key)) delete state.outputs[key];
    const linking = runStep({
      output: program,
      argvFor: (tmp) => plan.link.argv(linkObjects, archives, tmp),
      deps: [...linkObjects, ...archives],
      kind: "link",
      opts,
      state,
      mt,
    });
    if (opts.collectNoop) {
      // While the linker runs kiln only waits: look now at what the no-op stamp records that the link cannot change.
      linking.catch(() => undefined);
      await new Promise((resolve) => setImmediate(resolve));
      early = lookBeforeLink(plan, manifestPath, opts, mt, [...noopSources, ...noopFiles(plan, state, manifestPath, opts.rootCompileDb, opts.collectNoop.path)], noopDirs?.() ?? [], unitsBuilt);
    }
    linked = await linking;
    if (opts.collectNoop && plan.images.length === 0 && !plan.size) {
      linkOnly = {
        env: plan.env,
        buildDir,
        link: { output: program, template: plan.link.argv(linkObjects, archives, TMP_WORD) },
        manifest: manifestPath,
        images: plan.manifestImages.map((i) => join(buildDir, i.path)),
      };
    }

    // 8. Images and size run side by side: each reads only the program. Size comes from the cache when the program did not change.
    const sizeRecipe = plan.size;
    const linkStamp = mt.stamp([program]);
    const measure = async (): Promise<{ flashBytes: number; ramBytes: number } | undefined> => {
      if (!sizeRecipe) return undefined;
      if (state.size && state.size.linkStamp === linkStamp) return state.size;
      const r = await runTool(sizeRecipe.argv, { reporter, signal: opts.signal });
      if (r.exitCode !== 0) throw new BuildFailedError(`size tool failed: ${r.command}\n${r.stderr.trim()}`);
      state.size = { ...sizeRecipe.parse(r.stdout), linkStamp };
      return state.size;
    };
    const [measured] = await Promise.all([
      measure(),
      ...plan.images.map((img) => runStep({ output: img.output, argvFor: (tmp) => img.argv(tmp), deps: [program], kind: "image", opts, state, mt })),
    ]);

    // 9. Size report and limits.
    if (sizeRecipe && measured) {
      const { flashMaxBytes, ramMaxBytes } = sizeRecipe;
      size = { flashBytes: measured.flashBytes, ramBytes: measured.ramBytes, flashMaxBytes, ramMaxBytes };
      reporter.event({ type: "size", env: plan.env, ...size });
      const board = plan.board?.id ?? plan.env;
      if (flashMaxBytes && measured.flashBytes > flashMaxBytes) throw new FirmwareTooLargeError("flash", measured.flashBytes, flashMaxBytes, board);
      if (ramMaxBytes && measured.ramBytes > ramMaxBytes) throw new FirmwareTooLargeError("ram", measured.ramBytes, ramMaxBytes, board);
    }

    // 10. Manifest and compile_commands.json, rewritten only when they change.
    await writeManifest(plan, manifestPath, size, state, mt);
    await writeCompileDbs();
  } catch (e) {
    status = e instanceof CancelledError || opts.signal?.aborted ? "cancelled" : "failed";
    failedAlready = true;
    await finish();
    throw e;
  }
  // Every output is up to date (none left unstamped because an input changed while it was made): the stamp may say so.
  const settled = opts.collectNoop !== undefined && status === "ok" && Object.values(state.outputs).every((r) => r.stamp);
  await finish();
  return {
    noop: settled
      ? {
          files: early ? [...early.files, plan.link.output, ...plan.images.map((i) => i.output)] : [...noopSources, ...noopFiles(plan, state, manifestPath, opts.rootCompileDb, opts.collectNoop!.path)],
          dirs: early?.dirs ?? noopDirs?.() ?? [],
          known: early?.known ?? new Map(),
          sizeText,
          // Kiln's own files: outputs, the manifest, and what writeIfChanged wrote (compile databases, a sketch's .cpp).
          written: [...Object.keys(state.outputs), ...Object.keys(state.written), manifestPath],
          // What this build made: deleted while it ran, the next build must not be answered "up to date".
          made: [...unitsBuilt.map((u) => u.object), ...archivesBuilt, plan.link.output, ...plan.images.map((i) => i.output), manifestPath],
          units: early?.units ?? stampedUnits(unitsBuilt, opts),
          contents: sketchContents,
          finish: linkOnly,
        }
      : undefined,
    env: plan.env,
    status,
    ms: Math.round(performance.now() - started),
    compiled: counts.compiled,
    reused: counts.reused,
    linked,
    size,
    program: plan.link.output,
    manifestPath,
    compileCommands,
  };
}

/** The units' compile commands, their shared prefixes stored once (lib/build/headstart.ts). */
function stampedUnits(units: readonly Unit[], opts: RunPlanOptions): StampedUnits {
  const index = new Map<string, number>();
  const out: StampedUnits = { prefixes: [], list: [] };
  for (const u of units) {
    // A generated source (a sketch's .cpp) is rewritten by the build itself before it compiles: never started early.
    if (u.source.startsWith(opts.plan.buildDir + sep)) continue;
    const prefix = runPrefix(u, opts);
    const key = prefix.join("\0");
    let i = index.get(key);
    if (i === undefined) {
      i = out.prefixes.push(prefix) - 1;
      index.set(key, i);
    }
    out.list.push([u.source, u.object, i]);
  }
  return out;
}

/**
 * The stamp's lists, and the mtimes of every file and folder in them that
 * the steps after compiling do not write (the program, images, manifest and
 * compile databases are looked at when the stamp is written). Taken while the
 * linker runs, from the build's own stat cache (a file kiln wrote is looked
 * at again after writing; an input was looked at during this build, and one
 * changed since is simply seen as changed by the next build).
 */
function lookBeforeLink(plan: BuildPlan, manifestPath: string, opts: RunPlanOptions, mt: Mtimes, files: string[], dirs: string[], units: Unit[]): EarlyNoop {
  const later = new Set([plan.link.output, ...plan.images.map((i) => i.output), manifestPath, join(plan.buildDir, "compile_commands.json"), opts.rootCompileDb]);
  const known = new Map<string, number>();
  for (const p of [...files, ...dirs]) if (!later.has(p)) known.set(p, mt.get(p));
  return { files, dirs, known, units: stampedUnits(units, opts) };
}

/** Every file a no-op build's verdict rests on: outputs, their inputs, what it writes, its tools. */
function noopFiles(plan: BuildPlan, state: BuildState, manifestPath: string, rootCompileDb: string | undefined, path: string | undefined): string[] {
  const files = new Set<string>([manifestPath, join(plan.buildDir, "compile_commands.json")]);
  if (rootCompileDb) files.add(rootCompileDb);
  for (const [out, rec] of Object.entries(state.outputs)) {
    files.add(out);
    for (const d of rec.deps) files.add(d);
  }
  const tools = [plan.toolchain.cc, plan.toolchain.cxx, plan.toolchain.ar, plan.size?.argv[0], ...plan.images.map((i) => i.argv(i.output)[0])];
  for (const t of tools) {
    const p = t && whichSync(t, path);
    if (p) files.add(p);
  }
  return [...files];
}

/** A folder and every folder below it. */
function walkDirs(root: string): string[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let entries;
    try {
      entries = readdirSync(out[i]!, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) if (e.isDirectory() && e.name !== ".git" && e.name !== ".svn" && e.name !== ".kiln") out.push(join(out[i]!, e.name));
  }
  return out;
}

function fmtSize(used: number, max: number | undefined): string {
  return max ? `${used} / ${max} B (${((used / max) * 100).toFixed(1)}%)` : `${used} B`;
}

function uniq<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

interface CompileContext extends RunPlanOptions {
  progress: StepHandle;
  state: BuildState;
  mt: Mtimes;
  rel(p: string): string;
  counts: { compiled: number; reused: number };
}

/** The words of `u`'s command before `-c`, with this run's colour and prefix-map options. */
function runPrefix(u: Unit, ctx: Pick<RunPlanOptions, "colorDiagnostics" | "debugPrefixMap">): string[] {
  const words = u.argv.slice(0, u.argv.lastIndexOf("-c"));
  if (ctx.colorDiagnostics) words.push("-fdiagnostics-color=always");
  if (ctx.debugPrefixMap) words.push(`-fdebug-prefix-map=${ctx.debugPrefixMap.from}=${ctx.debugPrefixMap.to}`);
  return words;
}

/**
 * Wait for a compile the launcher started and take its result as runTool's;
 * undefined (compile again the usual way) when it could not start. An abort
 * kills it like any compile.
 */
async function adopt(h: HeadStart, source: string, argv: string[], ctx: CompileContext): Promise<RunResult | undefined> {
  ctx.reporter.command(argv, ctx.projectDir);
  const p0 = performance.now();
  const kill = (): void => drop(h);
  ctx.signal?.addEventListener("abort", kill, { once: true });
  try {
    const r = await h.done;
    if (ctx.signal?.aborted) throw new CancelledError();
    // The source rewritten after it started (by kiln's own sketch conversion, or an editor): not this build's compile.
    const changedSince = (statSync(source, { throwIfNoEntry: false })?.mtimeMs ?? Infinity) >= h.startedMs;
    if (r.failedToStart || changedSince) {
      drop(h);
      return undefined;
    }
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, command: argv.join(" "), durationMs: performance.now() - p0 };
  } finally {
    ctx.signal?.removeEventListener("abort", kill);
  }
}

async function compileAll(dirty: Unit[], ctx: CompileContext): Promise<Unit[]> {
  if (dirty.length === 0) return [];
  const { default: pLimit } = await import("p-limit");
  const limit = pLimit(Math.max(1, ctx.jobs));
  const failures: Unit[] = [];
  let stopping = false;
  let done = 0;
  const total = dirty.length;
  const { reporter, plan } = ctx;
  const dirsMade = new Set<string>();
  await Promise.all(
    dirty.map((u) =>
      limit(async () => {
        if (stopping || ctx.signal?.aborted) return;
        const dir = dirname(u.object);
        if (!dirsMade.has(dir)) {
          await mkdir(dir, { recursive: true });
          dirsMade.add(dir);
        }
        const template = compileTemplate(runPrefix(u, ctx), u.source);
        // Already started by the launcher with exactly this command (lib/build/headstart.ts)?
        const early = claimHeadStart(u.object, template);
        const tmp = early?.tmp ?? tempPathFor(u.object);
        const dep = `${tmp}.d`;
        const runArgv = fillTemplate(template, tmp, dep);
        // Display names (relative to the project) only for what is compiled: a no-op of a large project needs none.
        const label = ctx.rel(u.source);
        reporter.event({ type: "compile-start", env: plan.env, file: label, object: ctx.rel(u.object) });
        let t0 = early?.startedMs ?? Date.now();
        const p0 = performance.now();
        let ok = false;
        try {
          const adopted = early && (await adopt(early, u.source, runArgv, ctx));
          // A head start not adopted (its source changed meanwhile) is compiled again: that compile's start is the one that counts.
          if (!adopted) t0 = Date.now();
          const r = adopted || (await runTool(runArgv, { reporter, signal: ctx.signal, cwd: ctx.projectDir }));
          const output = r.stderr + r.stdout;
          if (output.trim()) {
            reporter.toolOutput(output);
            for (const m of output.matchAll(DIAG_RE)) {
              reporter.event({
                type: "diagnostic",
                env: plan.env,
                file: m[1]!,
                line: Number(m[2]),
                column: m[3] ? Number(m[3]) : undefined,
                severity: m[4] === "warning" ? "warning" : m[4] === "note" ? "note" : "error",
                message: m[5]!,
              });
            }
          }
          ok = r.exitCode === 0;
          if (ok) {
            // Synchronous from here: a finished compile's few small file operations cost less than as many trips through the thread pool.
            const deps = compiledDeps(u.source, dep, ctx.projectDir);
            renameSync(tmp, u.object);
            ctx.mt.forget(u.object);
            record(ctx.state, u.object, u.sig, deps, ctx.mt, t0);
            ctx.counts.compiled++;
          }
        } catch (e) {
          if (!(e instanceof CancelledError) && !isKilnError(e)) throw e;
          if (isKilnError(e) && !(e instanceof CancelledError)) reporter.error(e);
          ok = false;
        } finally {
          rmSync(tmp, { force: true });
          rmSync(dep, { force: true });
        }
        done++;
        reporter.event({ type: "compile-end", env: plan.env, file: label, object: ctx.rel(u.object), ms: Math.round(performance.now() - p0), status: ok ? "ok" : "failed" });
        if (!ok) {
          if (!ctx.signal?.aborted) failures.push(u);
          if (!ctx.keepGoing) stopping = true;
        }
        ctx.progress.update(`[${done}/${total}] ${label}`);
      }),
    ),
  );
  return failures;
}

async function makeArchive(archive: string, objects: string[], ctx: RunPlanOptions & { state: BuildState; mt: Mtimes }): Promise<void> {
  const { plan } = ctx;
  await runStep({
    output: archive,
    argvFor: (tmp) => [plan.toolchain.ar, ...plan.toolchain.arFlags, tmp, ...objects],
    deps: objects,
    kind: "archive",
    opts: ctx,
    state: ctx.state,
    mt: ctx.mt,
  });
}

/** Run a link/archive/image step when its output is stale; returns whether it ran. */
async function runStep(s: {
  output: string;
  argvFor(tmp: string): string[];
  deps: string[];
  kind: "link" | "archive" | "image";
  opts: RunPlanOptions;
  state: BuildState;
  mt: Mtimes;
}): Promise<boolean> {
  const sigArgv = s.argvFor(s.output);
  if (isFresh(s.state.outputs[s.output], sigArgv, s.output, s.mt)) return false;
  const { reporter, plan, signal } = s.opts;
  mkdirSync(dirname(s.output), { recursive: true });
  const tmp = tempPathFor(s.output);
  const t0 = Date.now();
  const p0 = performance.now();
  try {
    const r = await runTool(s.argvFor(tmp), { reporter, signal, cwd: s.opts.projectDir });
    const output = (r.stderr + r.stdout).trim();
    if (r.exitCode !== 0) {
      if (output) reporter.toolOutput(output);
      throw new BuildFailedError(`${s.kind} failed for ${basename(s.output)} in env '${plan.env}' (exit code ${r.exitCode})`, {
        hint: s.kind === "link" ? "undefined references usually mean a missing source, library or -l flag; --verbose shows the command" : "--verbose shows the command",
      });
    }
    if (output && s.kind === "link") reporter.toolOutput(output);
    renameSync(tmp, s.output);
  } finally {
    rmSync(tmp, { force: true });
  }
  s.mt.forget(s.output);
  record(s.state, s.output, sigArgv, s.deps, s.mt, t0);
  reporter.event({ type: s.kind, env: plan.env, output: relative(s.opts.projectDir, s.output), ms: Math.round(performance.now() - p0) });
  return true;
}

/**
 * Shared groups (the Arduino core): the archive is keyed by the content of
 * every file under the group's root and include dirs, the recipe, and the
 * toolchain identity. Locally, the key's inputs are tracked by mtime so a
 * no-op build does not hash anything.
 */
async function restoreSharedGroup(g: {
  group: SourceGroup;
  archive: string;
  units: Unit[];
  plan: BuildPlan;
  state: BuildState;
  mt: Mtimes;
  cacheDir: string;
}): Promise<{ restored: boolean; key: string; remember(): void }> {
  const files = groupFiles(g.group);
  // The key must not depend on where this project lives: object paths are taken relative to the build dir.
  const sigArgv = [g.plan.toolchain.identity, g.plan.toolchain.ar, ...g.plan.toolchain.arFlags, ...g.units.flatMap((u) => [...u.argv.slice(0, -1), relative(g.plan.buildDir, u.object)])];
  const keyRecord = `shared:${g.archive}`;
  const rec = g.state.outputs[keyRecord];
  /** Stamp the local archive as made from these inputs, so the next build neither hashes nor copies. */
  const remember = (): void => {
    g.mt.forget(g.archive);
    record(g.state, keyRecord, sigArgv, files, g.mt, Date.now());
  };
  if (rec && isFresh(rec, sigArgv, g.archive, g.mt) && rec.deps.length === files.length) {
    return { restored: true, key: "", remember };
  }
  const h = createHash("sha256");
  h.update(sigArgv.join("\0"));
  // Synchronous reads: this key is on the way to the first compile, and a pool round trip per small file cost more.
  for (const f of files) {
    h.update(`\0${f}\0`);
    h.update(readFileSync(f));
  }
  const key = h.digest("hex");
  const cached = join(g.cacheDir, "objects", key.slice(0, 2), key, basename(g.archive));
  let restored = false;
  try {
    await mkdir(dirname(g.archive), { recursive: true });
    const tmp = tempPathFor(g.archive);
    await copyFile(cached, tmp);
    await rename(tmp, g.archive);
    restored = true;
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw e;
  }
  if (restored) remember();
  return { restored, key, remember };
}

/** Put a freshly built shared archive into the user cache (atomic dir rename; a concurrent winner is fine). */
async function publishSharedGroup(archive: string, key: string, cacheDir: string): Promise<void> {
  const dest = join(cacheDir, "objects", key.slice(0, 2), key);
  try {
    statSync(join(dest, basename(archive)));
    return;
  } catch {
    // not cached yet
  }
  const tmpDir = tempPathFor(dest);
  await mkdir(tmpDir, { recursive: true });
  try {
    await copyFile(archive, join(tmpDir, basename(archive)));
    await rename(tmpDir, dest);
  } catch (e) {
    const code = errnoCode(e);
    if (code !== "EEXIST" && code !== "ENOTEMPTY") throw e;
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
}

/** Every file that can influence a group's objects: its root and include dirs, recursively. */
function groupFiles(group: SourceGroup): string[] {
  const out = new Set<string>();
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of entries) {
      const p = join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else out.add(p);
    }
  };
  walk(group.root);
  for (const d of group.recipe.includeDirs) walk(d);
  for (const s of group.sources) out.add(s);
  return [...out].sort();
}

/** Convert `.ino`/`.pde` files into one `<buildDir>/sketch/<name>.ino.cpp`, rewritten only when it changes. */
async function convertSketch(sources: string[], buildDir: string, mt: Mtimes, state: BuildState, contents: Array<[string, string]>): Promise<string[]> {
  const sketchFiles = sources.filter((s) => s.endsWith(".ino") || s.endsWith(".pde"));
  if (sketchFiles.length === 0) return sources;
  // Named like Arduino does: after the sketch folder when it holds `<folder>.ino`, else after the first sketch file.
  const folder = basename(dirname(sketchFiles[0]!));
  const main = sketchFiles.find((f) => basename(f).replace(/\.(ino|pde)$/, "") === folder) ?? [...sketchFiles].sort()[0]!;
  const name = basename(main).replace(/\.(ino|pde)$/, "");
  const out = join(buildDir, "sketch", `${name}.ino.cpp`);
  // Synchronous file calls here: a sketch is a few small files, read on the way to the first compile.
  const files = sketchFiles.map((path) => ({ path, text: readFileSync(path, "utf8") }));
  for (const f of files) contents.push([f.path, contentStamp(f.text)]);
  // The generated file depends only on the sketch files' names and text (and kiln's converter): when they
  // and the file we wrote are unchanged, skip the conversion (≈ 10 ms for a large sketch; a `touch` is free).
  const key = `sketch:${VERSION}:${hashText(JSON.stringify(files))}`;
  const outMtime = mt.get(out);
  if (outMtime >= 0 && state.written[out] === `${key}@${outMtime}`) return [out, ...sources.filter((s) => !sketchFiles.includes(s))];
  const { sketchToCpp } = await import("./sketch.js");
  const code = sketchToCpp(files);
  let old: string | undefined;
  try {
    old = readFileSync(out, "utf8");
  } catch {
    old = undefined;
  }
  if (old !== code) {
    writeFileAtomicSync(out, code);
    mt.forget(out);
  }
  state.written[out] = `${key}@${mt.get(out)}`;
  return [out, ...sources.filter((s) => !sketchFiles.includes(s))];
}

/**
 * Write `make()` to `file` unless this env's last write had the same key and
 * the file is still that write (same mtime: another env may have replaced it).
 */
async function writeIfChanged(file: string, key: string, make: () => string, state: BuildState): Promise<void> {
  const mtimeOf = (): number => {
    try {
      return statSync(file).mtimeMs;
    } catch {
      return -1;
    }
  };
  if (state.written[file] === `${key}@${mtimeOf()}`) return;
  writeFileAtomicSync(file, make());
  state.written[file] = `${key}@${mtimeOf()}`;
}

async function writeManifest(plan: BuildPlan, manifestPath: string, size: EnvBuildResult["size"], state: BuildState, mt: Mtimes): Promise<void> {
  const imagePaths = plan.manifestImages.map((i) => join(plan.buildDir, i.path));
  const stamp = manifestStamp(imagePaths, plan.upload, size, plan.toolchain.identity, mt);
  if (state.written[manifestPath] === stamp && mt.get(manifestPath) >= 0) return;
  // Synchronous: the build's last steps, with nothing else to run meanwhile (each pool round trip costs more than these reads).
  const images = plan.manifestImages.map((i, n) => imageEntry(imagePaths[n]!, i));
  const b = plan.board;
  const manifest: FirmwareManifest = {
    schema: 1,
    env: plan.env,
    platform: plan.platform,
    board: b ? { id: b.id, name: b.name, mcu: b.mcu, fCpu: b.fCpu, usbIds: b.usbIds } : undefined,
    images,
    upload: plan.upload ?? {},
    tools: plan.tools ?? {},
    size,
    toolchain: plan.toolchain.identity,
    builtAt: new Date().toISOString(),
  };
  writeFileAtomicSync(manifestPath, JSON.stringify(manifest, null, 2));
  state.written[manifestPath] = stamp;
}
