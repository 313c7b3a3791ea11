/**
 * build_src_filter (platformio-ini.md §12): `+<glob>` / `-<glob>` applied in
 * order over src_dir, with Python `glob` rules (`*` and `**` skip dot
 * names unless the pattern segment starts with `.`; a matched directory
 * brings every file beneath it).
 *
 * Runs on every build, so it reads the tree once (readdir withFileTypes,
 * directories in parallel) and matches patterns against that list; only
 * symbolic links cost a stat.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, errnoCode } from "../core/errors.js";
import { fnmatchSource, isGlob } from "../core/glob.js";

/** Extensions PlatformIO compiles (case-sensitive, like PlatformIO). */
export const SOURCE_EXTENSIONS: ReadonlySet<string> = new Set(["c", "cc", "cpp", "cxx", "c++", "S", "spp", "SPP", "sx", "s", "asm", "ASM"]);
/** Sketch extensions, for callers that convert them (the Arduino framework). */
export const SKETCH_EXTENSIONS: ReadonlySet<string> = new Set(["ino", "pde"]);
export const DEFAULT_SRC_FILTER: readonly string[] = ["+<*> -<.git/> -<.svn/>"];

interface Entry {
  /** Path relative to the root, `/`-separated. */
  rel: string;
  isDir: boolean;
  /** For a directory: index just past its last descendant (entries are in pre-order). */
  end: number;
}

async function walk(root: string): Promise<Entry[]> {
  const out: Entry[] = [];
  const visit = async (dir: string, prefix: string): Promise<Array<{ rel: string; isDir: boolean }>> => {
    const dirents = await readdir(dir, { withFileTypes: true });
    return Promise.all(
      dirents.map(async (d) => {
        let isDir = d.isDirectory();
        if (d.isSymbolicLink()) {
          try {
            isDir = (await stat(join(dir, d.name))).isDirectory();
          } catch (e) {
            // A dangling link is no source file; skip it like glob does.
            if (errnoCode(e) === "ENOENT") return { rel: "", isDir: false };
            throw e;
          }
        }
        return { rel: prefix + d.name, isDir };
      }),
    );
  };
  // Read each level in parallel, then lay the entries out in pre-order so a
  // directory's descendants follow it contiguously.
  const tree = new Map<string, Array<{ rel: string; isDir: boolean }>>();
  let level = [""];
  while (level.length) {
    const lists = await Promise.all(level.map((rel) => visit(rel ? join(root, rel) : root, rel ? `${rel}/` : "")));
    const nextLevel: string[] = [];
    lists.forEach((list, i) => {
      const kids = list.filter((k) => k.rel !== "");
      tree.set(level[i]!, kids);
      for (const k of kids) if (k.isDir) nextLevel.push(k.rel);
    });
    level = nextLevel;
  }
  const lay = (rel: string): void => {
    for (const k of tree.get(rel) ?? []) {
      const idx = out.length;
      out.push({ rel: k.rel, isDir: k.isDir, end: idx + 1 });
      if (k.isDir) {
        lay(k.rel);
        out[idx]!.end = out.length;
      }
    }
  };
  lay("");
  return out;
}

/** One glob segment (no `/`) as a regular expression source. */
function segmentRe(seg: string): string {
  // Python glob: wildcards never match a leading dot unless the pattern has one.
  const re = fnmatchSource(seg);
  return isGlob(seg) && !seg.startsWith(".") ? `(?!\\.)${re}` : re;
}

/** A glob relative to src_dir as a matcher for `/`-separated relative paths. */
export function globToRegExp(pattern: string): { re: RegExp; dirOnly: boolean; isRoot: boolean } {
  let p = pattern.replace(/\\/g, "/");
  const dirOnly = p.endsWith("/");
  p = p.replace(/\/+$/, "").replace(/^(\.\/)+/, "");
  const segs = p.split("/").filter((s) => s !== "" && s !== ".");
  let re = "";
  segs.forEach((seg, i) => {
    const last = i === segs.length - 1;
    if (seg === "**") {
      // Zero or more non-hidden directories (and, at the end, anything non-hidden beneath).
      re += last ? "(?:(?!\\.)[^/]+(?:/(?!\\.)[^/]+)*)?" : "(?:(?!\\.)[^/]+/)*";
    } else {
      re += segmentRe(seg) + (last ? "" : "/");
    }
  });
  return { re: new RegExp(`^${re}$`), dirOnly, isRoot: segs.length === 0 };
}

/** Parse filter items into ordered `+`/`-` patterns; text outside `<…>` is ignored. */
export function parseSrcFilter(filter: readonly string[]): Array<{ include: boolean; pattern: string }> {
  const out: Array<{ include: boolean; pattern: string }> = [];
  for (const m of filter.join(" ").matchAll(/([+-])<([^>]+)>/g)) out.push({ include: m[1] === "+", pattern: m[2]! });
  return out;
}

function extOf(rel: string): string {
  const base = rel.slice(rel.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot + 1) : "";
}

/**
 * The source files of `srcDir` selected by `filter` (build_src_filter
 * items; empty → PlatformIO's default), restricted to `exts` (default: the
 * compile extensions; add "ino"/"pde" for sketches). Paths are relative to
 * `srcDir`, `/`-separated, sorted. A missing `srcDir` is ConfigError
 * `KILN_SRC_DIR_MISSING`.
 */
export async function selectSources(srcDir: string, filter: string[], exts: ReadonlySet<string> = SOURCE_EXTENSIONS): Promise<string[]> {
  let entries: Entry[];
  try {
    entries = await walk(srcDir);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") {
      throw new ConfigError("KILN_SRC_DIR_MISSING", `source directory ${srcDir} does not exist`, {
        hint: "create it, or point `src_dir` in [platformio] at your sources",
        data: { srcDir },
      });
    }
    throw e;
  }
  const rules = parseSrcFilter(filter.length ? filter : DEFAULT_SRC_FILTER);
  const selected = new Set<string>();
  for (const { include, pattern } of rules) {
    const { re, dirOnly, isRoot } = globToRegExp(pattern);
    const matched: string[] = [];
    // `+<.>` names src_dir itself: everything beneath it.
    if (isRoot) for (const e of entries) if (!e.isDir) matched.push(e.rel);
    for (let i = 0; !isRoot && i < entries.length; i++) {
      const e = entries[i]!;
      if (!re.test(e.rel) || (dirOnly && !e.isDir)) continue;
      if (!e.isDir) {
        matched.push(e.rel);
        continue;
      }
      for (let j = i + 1; j < e.end; j++) if (!entries[j]!.isDir) matched.push(entries[j]!.rel);
    }
    for (const rel of matched) {
      if (!exts.has(extOf(rel))) continue;
      if (include) selected.add(rel);
      else selected.delete(rel);
    }
  }
  return [...selected].sort();
}
