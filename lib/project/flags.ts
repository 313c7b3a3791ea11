/**
 * build_flags / build_unflags routing as PlatformIO does it (SCons
 * `ParseFlags` plus PlatformIO's extensions; platformio-ini.md §10–§11),
 * producing argv words: kiln never builds a shell command line, so nothing
 * is quoted for a shell here.
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError, type SourceLocation } from "../core/errors.js";
import type { ParsedFlags } from "./types.js";

export function emptyFlags(): ParsedFlags {
  return { defines: [], undefines: [], includeDirs: [], libDirs: [], libs: [], ccFlags: [], cFlags: [], cxxFlags: [], asFlags: [], linkFlags: [] };
}

/**
 * Split one string into words like a POSIX shell (Python's `shlex.split`):
 * whitespace separates words; '…' is literal; "…" allows \\ \" \$ \` escapes;
 * a backslash outside quotes escapes the next character. No expansion and
 * no comments. An unterminated quote is a ConfigError.
 */
export function shellSplit(text: string, location?: SourceLocation): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw unterminated(text, "'", location);
      word += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      inWord = true;
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\" && j + 1 < text.length && '\\"$`\n'.includes(text[j + 1]!)) j++;
        word += text[j];
      }
      if (j >= text.length) throw unterminated(text, '"', location);
      i = j;
    } else if (c === "\\") {
      if (i + 1 < text.length) word += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function unterminated(text: string, quote: string, location: SourceLocation | undefined): ConfigError {
  return new ConfigError("KILN_CONFIG_FLAGS", `unterminated ${quote} quote in flags: ${text}`, {
    location,
    hint: "quote a flag as a whole, e.g. '-DNAME=\"text\"'",
  });
}

/** Flags that take the next word as their argument and stay paired with it. */
const CC_PAIR_FLAGS = new Set(["-include", "-imacros", "-isystem", "-iquote", "-idirafter", "--param"]);
const CC_LINK_PAIR_FLAGS = new Set(["-isysroot", "-arch"]);
const CC_LINK_FLAGS = new Set(["-mno-cygwin", "-pthread", "-openmp", "-fmerge-all-constants", "-fopenmp"]);
const PAIR_FLAGS = new Set([...CC_PAIR_FLAGS, ...CC_LINK_PAIR_FLAGS, "-framework", "-dylib_file"]);

export interface ParseFlagsOptions {
  /** Relative -I, -L and library-file paths are made absolute against it. */
  projectDir: string;
  /**
   * Build variables (`PIOENV`, `PROJECT_DIR`, `BUILD_DIR`…) expanded in
   * each word as `$NAME` or `${NAME}` before routing. Unknown names stay.
   */
  vars?: Readonly<Record<string, string>>;
  /** Where the items were written (`env.options.build_flags?.location`), for errors. */
  location?: SourceLocation | undefined;
}

function expandVars(word: string, vars: Readonly<Record<string, string>> | undefined): string {
  if (!vars || !word.includes("$")) return word;
  return word.replace(/\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)/g, (m, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? m);
}

/**
 * Route the items of build_flags (or build_src_flags / build_unflags) into
 * scopes (§10). Each item is shell-split; `-D NAME`, `-I dir`, `-include F`
 * and friends take the next word. Dynamic `!command` items are rejected
 * with ConfigError `KILN_DYNAMIC_FLAGS` (kiln runs no shell while reading a
 * project); set the flags through PLATFORMIO_BUILD_FLAGS or `${sysenv.X}`.
 * A `-UNAME` drops an exact bare `NAME` from the defines of this list and
 * is kept in `undefines`. Relative -I/-L paths are made absolute against
 * the project directory whether or not they exist yet.
 */
export function parseBuildFlags(items: readonly string[], opts: ParseFlagsOptions): ParsedFlags {
  const f = emptyFlags();
  const abs = (p: string): string => (isAbsolute(p) || p.startsWith("$") ? p : resolve(opts.projectDir, p));
  const words: string[] = [];
  for (const item of items) {
    if (item.trimStart().startsWith("!")) {
      throw new ConfigError("KILN_DYNAMIC_FLAGS", `dynamic build flags are not supported: ${item.trim()}`, {
        location: opts.location,
        hint: "run the command yourself and pass its output, e.g. PLATFORMIO_BUILD_FLAGS=\"$(python get_flags.py)\" kiln build, or use ${sysenv.NAME} in build_flags",
        data: { item },
      });
    }
    for (const w of shellSplit(item, opts.location)) words.push(expandVars(w, opts.vars));
  }
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const next = (): string | undefined => (i + 1 < words.length ? words[++i] : undefined);
    const withArg = (flag: string, target: string[][]): void => {
      const arg = next();
      for (const t of target) {
        t.push(flag);
        if (arg !== undefined) t.push(arg);
      }
    };
    if (!w.startsWith("-") && !w.startsWith("+")) {
      f.libs.push(abs(w));
    } else if (w === "-dylib_file") {
      withArg(w, [f.linkFlags]);
    } else if (w.startsWith("-L")) {
      const v = w.length > 2 ? w.slice(2) : next();
      if (v !== undefined) f.libDirs.push(abs(v));
    } else if (w.startsWith("-l")) {
      const v = w.length > 2 ? w.slice(2) : next();
      if (v !== undefined) f.libs.push(v);
    } else if (w.startsWith("-I")) {
      const v = w.length > 2 ? w.slice(2) : next();
      if (v !== undefined) f.includeDirs.push(abs(v));
    } else if (w.startsWith("-Wa,")) {
      f.asFlags.push(w.slice(4));
      f.ccFlags.push(w);
    } else if (w.startsWith("-Wl,")) {
      f.linkFlags.push(w);
    } else if (w.startsWith("-Wp,")) {
      f.ccFlags.push(w);
    } else if (w.startsWith("-D")) {
      const v = w.length > 2 ? w.slice(2) : next();
      if (v !== undefined) f.defines.push(v);
    } else if (w.startsWith("-U")) {
      const name = w.length > 2 ? w.slice(2) : next();
      if (name !== undefined) f.undefines.push(`-U${name}`);
    } else if (w === "-framework") {
      withArg(w, [f.linkFlags]);
    } else if (w.startsWith("-frameworkdir=")) {
      f.ccFlags.push(`-F${w.slice(14)}`);
      f.linkFlags.push(`-F${w.slice(14)}`);
    } else if (w.startsWith("-F")) {
      const v = w.length > 2 ? w.slice(2) : next();
      if (v !== undefined) {
        f.ccFlags.push(`-F${v}`);
        f.linkFlags.push(`-F${v}`);
      }
    } else if (CC_LINK_FLAGS.has(w) || w.startsWith("-fsanitize") || w.startsWith("+")) {
      f.ccFlags.push(w);
      f.linkFlags.push(w);
    } else if (w === "-mwindows") {
      f.linkFlags.push(w);
    } else if (w.startsWith("-std=")) {
      (w.slice(5).includes("++") ? f.cxxFlags : f.cFlags).push(w);
    } else if (w.startsWith("-stdlib=")) {
      f.cxxFlags.push(w);
    } else if (CC_PAIR_FLAGS.has(w)) {
      withArg(w, [f.ccFlags]);
    } else if (CC_LINK_PAIR_FLAGS.has(w)) {
      withArg(w, [f.ccFlags, f.linkFlags]);
    } else {
      f.ccFlags.push(w);
    }
  }
  const undefined_ = new Set(f.undefines.map((u) => u.slice(2)));
  if (undefined_.size) f.defines = f.defines.filter((d) => !undefined_.has(d));
  return f;
}

/** Words grouped so that a pair flag and its argument form one unit. */
function units(words: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (PAIR_FLAGS.has(w) && i + 1 < words.length) out.push([w, words[++i]!]);
    else out.push([w]);
  }
  return out;
}

const SCOPES = ["defines", "undefines", "includeDirs", "libDirs", "libs", "ccFlags", "cFlags", "cxxFlags", "asFlags", "linkFlags"] as const;

/**
 * Remove every token of `unflags` from every scope of `flags` (§11), not
 * only the scope it was routed to. A bare define `NAME` also removes
 * `NAME=…`; `NAME=1` removes only the exact `NAME=1`. `-include F` style
 * pairs are removed as pairs. Returns a new object.
 */
export function applyUnflags(flags: ParsedFlags, unflags: ParsedFlags): ParsedFlags {
  const drop = new Set<string>();
  for (const scope of SCOPES) for (const u of units(unflags[scope])) drop.add(u.join("\0"));
  const out = emptyFlags();
  for (const scope of SCOPES) {
    const kept = units(flags[scope]).filter((u) => {
      if (drop.has(u.join("\0"))) return false;
      if (scope === "defines") {
        const eq = u[0]!.indexOf("=");
        if (eq > 0 && drop.has(u[0]!.slice(0, eq))) return false;
      }
      return true;
    });
    out[scope] = kept.flat();
  }
  return out;
}

/** Concatenate flag sets in order (e.g. platform flags, then build_flags). */
export function mergeFlags(...sets: ParsedFlags[]): ParsedFlags {
  const out = emptyFlags();
  for (const s of sets) for (const scope of SCOPES) out[scope].push(...s[scope]);
  return out;
}

export interface FlagArgs {
  c: string[];
  cxx: string[];
  /** For assembler sources compiled through the gcc driver (`.S`, `.s`). */
  asm: string[];
  link: string[];
  libs: string[];
}

/**
 * argv words per tool: `-DX` defines, then `-UX` undefines, then `-I`
 * include dirs, then compile flags. Assembler-only flags reach the
 * assembler through the driver as `-Wa,X` (once, even when build_flags
 * already had the `-Wa,` form in the compile flags). `libs` entries that
 * are absolute paths (library files) are passed as they are, others as
 * `-lname`.
 */
export function flagsToArgs(f: ParsedFlags): FlagArgs {
  const pre = [...f.defines.map((d) => `-D${d}`), ...f.undefines, ...f.includeDirs.map((d) => `-I${d}`)];
  const asOnly = f.asFlags.map((a) => `-Wa,${a}`).filter((w) => !f.ccFlags.includes(w));
  return {
    c: [...pre, ...f.ccFlags, ...f.cFlags],
    cxx: [...pre, ...f.ccFlags, ...f.cxxFlags],
    asm: [...pre, ...f.ccFlags, ...asOnly],
    link: [...f.linkFlags, ...f.libDirs.map((d) => `-L${d}`)],
    libs: f.libs.map((l) => (isAbsolute(l) ? l : `-l${l}`)),
  };
}
