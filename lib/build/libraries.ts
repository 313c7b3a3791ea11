/**
 * Library finder (PlatformIO's LDF, chain mode): libraries live in storages
 * (lib_extra_dirs, lib_dir, the framework's libraries/), and one is built
 * only when a scanned source `#include`s one of its headers. The sources of a
 * used library are scanned in turn, so dependencies are found transitively.
 *
 * Include scanning reads `#include` lines with a regex (no preprocessor, like
 * PlatformIO's chain mode: `#if` is not evaluated) and is cached per file by
 * mtime and size, so a no-op build reads no source text.
 */
import { readdirSync, readFileSync, statSync, type Dirent } from "node:fs";
import { basename, dirname, join, relative, sep } from "node:path";
import type { ScanRecord } from "./state.js";

export const SOURCE_EXTS = new Set([".c", ".cc", ".cpp", ".cxx", ".c++", ".S", ".spp", ".SPP", ".sx", ".s", ".asm", ".ASM"]);
const HEADER_EXTS = new Set([".h", ".hh", ".hpp", ".hxx", ".h++", ".inc", ".ipp", ".tpp"]);
/** Folders inside a library that are never compiled (PlatformIO's default library src_filter). */
const SKIP_DIRS = new Set(["examples", "example", "test", "tests", "extras", "docs", ".git", ".svn", ".github"]);

export interface Library {
  name: string;
  root: string;
  /** Where its sources are compiled from. */
  srcDir: string;
  /** What `-I` makes its headers visible. */
  includeDirs: string[];
  /** Absolute source paths. */
  sources: string[];
  /** Header paths relative to an include dir, `/`-separated → absolute path. */
  headers: Map<string, string>;
  /** Extra flags from library.json `build.flags`. */
  flags: string[];
}

function ext(name: string): string {
  const i = name.lastIndexOf(".");
  return i < 0 ? "" : name.slice(i);
}

function readDir(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** Collect files under `dir` (recursively unless `shallow`), skipping SKIP_DIRS and dot names. */
function walk(dir: string, into: string[], shallow = false): void {
  for (const d of readDir(dir)) {
    if (d.name.startsWith(".")) continue;
    const p = join(dir, d.name);
    if (d.isDirectory() || (d.isSymbolicLink() && isDir(p))) {
      if (!shallow && !SKIP_DIRS.has(d.name)) walk(p, into);
    } else into.push(p);
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function readManifest(root: string): { name?: string; srcDir?: string; includeDir?: string; flags?: string[] } {
  try {
    const j = JSON.parse(readFileSync(join(root, "library.json"), "utf8")) as {
      name?: string;
      build?: { srcDir?: string; includeDir?: string; flags?: string | string[] };
    };
    const flags = j.build?.flags;
    return {
      name: j.name,
      srcDir: j.build?.srcDir,
      includeDir: j.build?.includeDir,
      flags: flags === undefined ? undefined : Array.isArray(flags) ? flags : flags.split(/\s+/).filter(Boolean),
    };
  } catch {
    // no or unreadable library.json: fall back to library.properties
  }
  try {
    const m = /^name\s*=\s*(.+)$/m.exec(readFileSync(join(root, "library.properties"), "utf8"));
    return m ? { name: m[1]!.trim() } : {};
  } catch {
    return {};
  }
}

/** Describe the library in `root`, in PlatformIO's and Arduino's layouts. */
export function describeLibrary(root: string): Library | undefined {
  const manifest = readManifest(root);
  let srcDir: string;
  let includeDirs: string[];
  const files: string[] = [];
  if (manifest.srcDir) {
    srcDir = join(root, manifest.srcDir);
    includeDirs = [manifest.includeDir ? join(root, manifest.includeDir) : srcDir];
    walk(srcDir, files);
  } else if (isDir(join(root, "src"))) {
    // Arduino 1.5 / PlatformIO layout: everything under src/, recursively.
    srcDir = join(root, "src");
    includeDirs = [manifest.includeDir ? join(root, manifest.includeDir) : srcDir];
    if (!manifest.includeDir && isDir(join(root, "include"))) includeDirs.unshift(join(root, "include"));
    walk(srcDir, files);
  } else {
    // Arduino 1.0 layout: the root folder plus utility/.
    srcDir = root;
    includeDirs = [root];
    walk(root, files, true);
    walk(join(root, "utility"), files);
  }
  for (const inc of includeDirs) if (!inc.startsWith(srcDir)) walk(inc, files);
  const sources = files.filter((f) => SOURCE_EXTS.has(ext(f))).sort();
  const headers = new Map<string, string>();
  for (const f of files) {
    if (!HEADER_EXTS.has(ext(f))) continue;
    for (const inc of includeDirs) {
      if (f.startsWith(inc + sep)) {
        const rel = relative(inc, f).split(sep).join("/");
        if (!headers.has(rel)) headers.set(rel, f);
      }
    }
  }
  if (sources.length === 0 && headers.size === 0) return undefined;
  return { name: manifest.name ?? basename(root), root, srcDir, includeDirs, sources, headers, flags: manifest.flags ?? [] };
}

/** Every library in the storages, in search order; a name found twice keeps the first. */
export function listLibraries(storages: readonly string[], ignore: readonly string[]): Library[] {
  const ignored = new Set(ignore.map((n) => n.toLowerCase()));
  const seen = new Set<string>();
  const out: Library[] = [];
  for (const storage of storages) {
    for (const d of readDir(storage)) {
      if (d.name.startsWith(".")) continue;
      const root = join(storage, d.name);
      if (!(d.isDirectory() || (d.isSymbolicLink() && isDir(root)))) continue;
      const lib = describeLibrary(root);
      if (!lib) continue;
      const key = lib.name.toLowerCase();
      if (ignored.has(key) || ignored.has(d.name.toLowerCase()) || seen.has(key)) continue;
      seen.add(key);
      out.push(lib);
    }
  }
  return out;
}

const INCLUDE_RE = /^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]/gm;

/** The `#include` names of a source text, in order. */
export function scanIncludes(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(INCLUDE_RE)) out.push(m[2]!.trim());
  return out;
}

/** A file's mtime and size, or undefined when it does not exist. Builds share one cached lookup. */
export type StatFn = (path: string) => { mtimeMs: number; size: number; isFile: boolean } | undefined;

const plainStat: StatFn = (path) => {
  try {
    const st = statSync(path);
    return { mtimeMs: st.mtimeMs, size: st.size, isFile: st.isFile() };
  } catch {
    return undefined;
  }
};

/** Includes of a file, from the cache when its mtime and size are unchanged. */
export function includesOf(file: string, scans: Record<string, ScanRecord>, stat: StatFn = plainStat): string[] {
  const st = stat(file);
  if (!st) return [];
  const cached = scans[file];
  if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.includes;
  const includes = scanIncludes(readFileSync(file, "utf8"));
  scans[file] = { mtimeMs: st.mtimeMs, size: st.size, includes };
  return includes;
}

export interface ResolveResult {
  /** Used libraries, in discovery order. */
  libraries: Library[];
}

/**
 * Chain mode: follow includes from the project's sources (and the project
 * headers they reach) into libraries, transitively. `projectIncludeDirs` are
 * searched for quoted and angle includes before libraries.
 */
export function findUsedLibraries(opts: {
  sources: readonly string[];
  projectIncludeDirs: readonly string[];
  libraries: readonly Library[];
  scans: Record<string, ScanRecord>;
  /** `off`: use no library from includes. */
  mode: string;
  stat?: StatFn | undefined;
}): ResolveResult {
  const stat = opts.stat ?? plainStat;
  if (opts.mode === "off") return { libraries: [] };
  const byHeader = new Map<string, Library>();
  for (const lib of opts.libraries) for (const h of lib.headers.keys()) if (!byHeader.has(h)) byHeader.set(h, lib);
  const used: Library[] = [];
  const usedSet = new Set<Library>();
  const visited = new Set<string>();
  const queue = [...opts.sources];
  // Sources in one folder include the same headers: resolve each (folder, name) once.
  const resolved = new Map<string, string | null>();
  const resolveLocal = (dir: string, inc: string): string | null => {
    const key = `${dir}\0${inc}`;
    let hit = resolved.get(key);
    if (hit === undefined) {
      hit = null;
      for (const base of [dir, ...opts.projectIncludeDirs]) {
        const p = join(base, inc);
        if (stat(p)?.isFile) {
          hit = p;
          break;
        }
      }
      resolved.set(key, hit);
    }
    return hit;
  };
  while (queue.length) {
    const file = queue.pop()!;
    if (visited.has(file)) continue;
    visited.add(file);
    const dir = dirname(file);
    for (const inc of includesOf(file, opts.scans, stat)) {
      // A header next to the including file, or in a project include dir, is the project's own.
      const local = resolveLocal(dir, inc);
      if (local) {
        queue.push(local);
        continue;
      }
      const lib = byHeader.get(inc);
      if (lib && !usedSet.has(lib)) {
        usedSet.add(lib);
        used.push(lib);
        queue.push(...lib.sources, ...lib.headers.values());
      }
    }
  }
  return { libraries: used };
}
