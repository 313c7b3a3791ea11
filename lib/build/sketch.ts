/**
 * Arduino sketch → C++, the way the Arduino IDE (arduino-builder) does it:
 *
 *  1. the `.ino`/`.pde` files are concatenated, the main sketch (named like
 *     its folder) first, then the others in alphabetical order;
 *  2. `#include <Arduino.h>` goes on top;
 *  3. a prototype for every top-level function defined in the sketch is
 *     inserted before the first function definition, so functions can be
 *     called before they are defined (ctags' job in the IDE);
 *  4. `#line` directives map every line back to its `.ino` file and line, so
 *     compiler diagnostics point at what the user wrote.
 *
 * The scanner is a small lexer, not a C++ parser: it blanks comments,
 * strings, character literals and preprocessor lines, tracks brace depth,
 * and looks at what precedes each top-level `{`. Deliberate choices:
 *  - templates, methods (`A::f`), functions inside namespaces/classes/
 *    `extern "C"` blocks, and macro-defined bodies (`ISR(vect) {`) get no
 *    prototype;
 *  - a function already declared at top level gets no second prototype;
 *  - a prototype whose signature names a type defined after the insertion
 *    point is left out (it could not compile there);
 *  - default arguments stay in the prototype and are blanked (replaced by
 *    spaces, so line and column numbers hold) in the definition, since C++
 *    allows them only once;
 *  - code inside `#if 0` is ignored.
 */
import { basename, dirname, extname } from "node:path";

export interface SketchFile {
  path: string;
  text: string;
}

/** A function found in the sketch. Exported for tests and `kiln` diagnostics. */
export interface SketchFunction {
  name: string;
  /** The prototype, `void foo(int a = 3);`. */
  prototype: string;
  file: string;
  line: number;
}

const NOT_FUNCTION_NAMES = new Set(["if", "for", "while", "switch", "return", "else", "do", "catch", "sizeof", "new", "delete", "case", "defined", "decltype", "alignof", "static_assert", "throw"]);

/** The order Arduino compiles sketch files in: the main sketch (named like its folder) first, the rest alphabetically. */
export function sketchOrder<T extends { path: string }>(files: readonly T[]): T[] {
  const stem = (p: string) => basename(p, extname(p));
  const isMain = (f: T) => stem(f.path) === basename(dirname(f.path));
  const cmp = (a: T, b: T) => (basename(a.path) < basename(b.path) ? -1 : basename(a.path) > basename(b.path) ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const main = files.filter(isMain).sort(cmp);
  const rest = files.filter((f) => !isMain(f)).sort(cmp);
  return [...main, ...rest];
}

function lineDirective(line: number, file: string): string {
  return `#line ${line} "${file.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

interface Masks {
  /** Comments, strings, chars, preprocessor lines and `#if 0` code blanked. */
  code: string;
  /** Comments, preprocessor lines and `#if 0` code blanked; strings kept (for prototypes with string defaults). */
  text: string;
}

/** Replace every character but newlines in [from, to) with a space. */
function blank(chars: string[], from: number, to: number): void {
  for (let i = from; i < to; i++) if (chars[i] !== "\n") chars[i] = " ";
}

function mask(src: string): Masks {
  const code = src.split("");
  const text = src.split("");
  const n = src.length;
  let i = 0;
  let atLineStart = true;
  /** Depth of `#if 0` nesting being skipped (0 = not skipping), and nested #if depth inside it. */
  let skipDepth = 0;
  while (i < n) {
    const c = src[i]!;
    if (c === "\n") {
      atLineStart = true;
      i++;
      continue;
    }
    if (atLineStart && (c === " " || c === "\t" || c === "\r")) {
      i++;
      continue;
    }
    if (atLineStart && c === "#") {
      // A preprocessor line, with backslash continuations.
      let end = i;
      while (end < n) {
        const nl = src.indexOf("\n", end);
        if (nl < 0) {
          end = n;
          break;
        }
        let k = nl - 1;
        if (src[k] === "\r") k--;
        if (src[k] === "\\") {
          end = nl + 1;
          continue;
        }
        end = nl;
        break;
      }
      const directive = src.slice(i + 1, end).replace(/\/\*.*?\*\/|\/\/.*$/gm, "").trim();
      const word = /^\s*(\w+)/.exec(directive)?.[1] ?? "";
      if (skipDepth > 0) {
        if (word === "if" || word === "ifdef" || word === "ifndef") skipDepth++;
        else if (word === "endif") skipDepth--;
        else if ((word === "else" || word === "elif") && skipDepth === 1) skipDepth = 0;
      } else if (word === "if" && /^if\s+0\s*$/.test(directive)) {
        skipDepth = 1;
      }
      blank(code, i, end);
      blank(text, i, end);
      i = end;
      atLineStart = false;
      continue;
    }
    atLineStart = false;
    if (skipDepth > 0) {
      const nl = src.indexOf("\n", i);
      const end = nl < 0 ? n : nl;
      blank(code, i, end);
      blank(text, i, end);
      i = end;
      continue;
    }
    const next = src[i + 1];
    if (c === "/" && next === "/") {
      let end = src.indexOf("\n", i);
      if (end < 0) end = n;
      blank(code, i, end);
      blank(text, i, end);
      i = end;
      continue;
    }
    if (c === "/" && next === "*") {
      let end = src.indexOf("*/", i + 2);
      end = end < 0 ? n : end + 2;
      blank(code, i, end);
      blank(text, i, end);
      i = end;
      continue;
    }
    if (c === "R" && next === '"' && !/[\w]/.test(src[i - 1] ?? "")) {
      const open = src.indexOf("(", i + 2);
      if (open > 0) {
        const delim = src.slice(i + 2, open);
        const close = src.indexOf(`)${delim}"`, open);
        const end = close < 0 ? n : close + delim.length + 2;
        blank(code, i, end);
        i = end;
        continue;
      }
    }
    if (c === '"' || (c === "'" && !/[0-9a-fA-F]/.test(src[i - 1] ?? ""))) {
      // String or character literal (a quote after a hex digit is a C++14 digit separator).
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      const end = Math.min(n, j + 1);
      blank(code, i, end);
      i = end;
      continue;
    }
    i++;
  }
  return { code: code.join(""), text: text.join("") };
}

/** Index of the `(` matching the `)` at `close` in masked code, or -1. */
function matchOpen(code: string, close: number): number {
  let depth = 0;
  for (let k = close; k >= 0; k--) {
    const ch = code[k];
    if (ch === ")") depth++;
    else if (ch === "(") {
      depth--;
      if (depth === 0) return k;
    }
  }
  return -1;
}

interface Signature {
  name: string;
  /** Absolute offset of the `(` and `)` of the parameter list. */
  open: number;
  close: number;
}

/**
 * Is `code[start, end)` (a top-level statement head in masked code) a plain
 * function signature `ret name(params) [qualifiers]`? Returns where its
 * name and parameters are.
 */
function functionSignature(code: string, start: number, end: number): Signature | undefined {
  const head = code.slice(start, end);
  const tail = /\)\s*((?:const|volatile|noexcept|override|final|throw\s*\(\s*\))\s*)*$/.exec(head);
  if (!tail) return undefined;
  const close = start + tail.index;
  const open = matchOpen(code, close);
  if (open < start) return undefined;
  const before = code.slice(start, open).replace(/\s+/g, " ").trim();
  const m = /^(.*?)\s*(~?[A-Za-z_]\w*)$/.exec(before);
  if (!m) return undefined;
  const ret = m[1]!.trim();
  const name = m[2]!;
  if (!ret || ret.endsWith("::") || ret.endsWith(".") || ret.endsWith("->")) return undefined;
  if (NOT_FUNCTION_NAMES.has(name) || name === "operator") return undefined;
  // `__attribute__((noinline))` is the only parenthesis a return type may hold.
  const plainRet = ret.replace(/__attribute__\s*\(\(.*?\)\)/g, "");
  if (/[=(){};,]/.test(plainRet) || /\boperator\b/.test(ret)) return undefined;
  if (/^(template|typedef|using|namespace|return|else|case|goto|friend)\b/.test(ret)) return undefined;
  if (/^(struct|class|union|enum)\s+\w+$/.test(ret) && /^[A-Z_][A-Z0-9_]*$/.test(name)) return undefined;
  if (!/[A-Za-z_]/.test(ret)) return undefined;
  return { name, open, close };
}

/** Top-level `=` default values inside a parameter list, as [from, to) ranges. */
function defaultRanges(code: string, open: number, close: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let depth = 0;
  let eq = -1;
  for (let k = open + 1; k <= close; k++) {
    const ch = code[k]!;
    if (k === close || (ch === "," && depth === 0)) {
      if (eq >= 0) ranges.push([eq, k]);
      eq = -1;
      continue;
    }
    if (ch === "(" || ch === "[" || ch === "{" || ch === "<") depth++;
    else if (ch === ")" || ch === "]" || ch === "}" || ch === ">") depth = Math.max(0, depth - 1);
    else if (ch === "=" && depth === 0 && eq < 0) eq = k;
  }
  return ranges;
}

interface Scan {
  functions: Array<{ name: string; start: number; open: number; close: number; end: number }>;
  declared: Set<string>;
  /** Type names defined at top level and where. */
  types: Array<{ name: string; at: number }>;
}

function scan(code: string): Scan {
  const functions: Scan["functions"] = [];
  const declared = new Set<string>();
  const types: Scan["types"] = [];
  let depth = 0;
  let stmt = 0;
  let pendingTypedef = false;
  for (let i = 0; i < code.length; i++) {
    const ch = code[i];
    if (ch === "{") {
      if (depth === 0) {
        const head = code.slice(stmt, i);
        const start = stmt + (head.length - head.trimStart().length);
        const words = head.trim().replace(/\s+/g, " ");
        const sig = functionSignature(code, start, i);
        if (sig && !/^template\b/.test(words)) functions.push({ name: sig.name, start, open: sig.open, close: sig.close, end: i });
        const type = /^(?:typedef\s+)?(?:struct|class|union|enum(?:\s+class|\s+struct)?)\s+(?:__attribute__\s*\(\(.*?\)\)\s*)?([A-Za-z_]\w*)/.exec(words);
        if (type) types.push({ name: type[1]!, at: start });
        pendingTypedef = /^typedef\b/.test(words);
      }
      depth++;
    } else if (ch === "}") {
      depth = Math.max(0, depth - 1);
      if (depth === 0) stmt = i + 1;
    } else if (ch === ";" && depth === 0) {
      const head = code.slice(stmt, i).trim();
      const at = stmt + (code.slice(stmt, i).length - code.slice(stmt, i).trimStart().length);
      if (pendingTypedef) {
        const last = /([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*$/.exec(head);
        if (last) types.push({ name: last[1]!, at });
        pendingTypedef = false;
      } else if (/^typedef\b/.test(head)) {
        const fnPtr = /\(\s*\*\s*([A-Za-z_]\w*)\s*\)/.exec(head);
        const last = fnPtr ?? /([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*$/.exec(head);
        if (last) types.push({ name: last[1]!, at });
      } else if (/^using\s+([A-Za-z_]\w*)\s*=/.test(head)) {
        types.push({ name: /^using\s+([A-Za-z_]\w*)/.exec(head)![1]!, at });
      } else if (/^(?:struct|class|union|enum)\s+[A-Za-z_]\w*$/.test(head)) {
        // forward declaration: usable in signatures from here on
        types.push({ name: head.split(/\s+/)[1]!, at });
      } else {
        const sig = functionSignature(code, at, i);
        if (sig) declared.add(sig.name);
      }
      stmt = i + 1;
    }
  }
  return { functions, declared, types };
}

/** Where each line of the combined text comes from (file, line), following the `#line` directives we wrote. */
function lineOrigins(combined: string): Array<{ file: string; line: number }> {
  const out: Array<{ file: string; line: number }> = [];
  let file = "";
  let line = 1;
  for (const l of combined.split("\n")) {
    const m = /^#line (\d+) "((?:[^"\\]|\\.)*)"$/.exec(l);
    out.push({ file, line });
    if (m) {
      line = Number(m[1]);
      file = m[2]!.replace(/\\(.)/g, "$1");
    } else line++;
  }
  return out;
}

/** Functions the sketch defines and the prototypes kiln generates for them (what sketchToCpp inserts). */
export function sketchFunctions(files: readonly SketchFile[]): SketchFunction[] {
  return convert(files).functions;
}

/**
 * Convert a sketch's `.ino`/`.pde` files into one C++ translation unit.
 * Pure: no I/O. The result starts with `#include <Arduino.h>`, keeps every
 * original line (default arguments of definitions are blanked in place) and
 * maps lines back to the `.ino` files with `#line`.
 */
export function sketchToCpp(files: Array<{ path: string; text: string }>): string {
  return convert(files).cpp;
}

function convert(files: readonly SketchFile[]): { cpp: string; functions: SketchFunction[] } {
  const ordered = sketchOrder(files);
  let combined = "";
  for (const f of ordered) {
    const text = f.text.replace(/\r\n?/g, "\n");
    combined += `${lineDirective(1, f.path)}\n${text}${text.endsWith("\n") ? "" : "\n"}`;
  }
  const { code, text } = mask(combined);
  const { functions, declared, types } = scan(code);
  const origins = lineOrigins(combined);
  const lineStarts = [0];
  for (let k = code.indexOf("\n"); k >= 0; k = code.indexOf("\n", k + 1)) lineStarts.push(k + 1);
  /** 0-based line of an offset (binary search over line starts). */
  const lineOf = (offset: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };

  const chars = combined.split("");
  const result: SketchFunction[] = [];
  const first = functions[0];
  const insertAt = first ? first.start : -1;
  const seen = new Set<string>();
  for (const fn of functions) {
    const prototype = `${text.slice(fn.start, fn.end).replace(/\s+/g, " ").trim()};`;
    const defaults = defaultRanges(code, fn.open, fn.close);
    // Default arguments belong to the prototype; the definition must not repeat them.
    for (const [from, to] of defaults) blank(chars, from, to);
    if (declared.has(fn.name) || seen.has(prototype)) continue;
    const signatureWords = new Set(code.slice(fn.start, fn.close + 1).match(/[A-Za-z_]\w*/g) ?? []);
    if (types.some((t) => t.at > insertAt && signatureWords.has(t.name))) continue;
    seen.add(prototype);
    const origin = origins[lineOf(fn.start)]!;
    result.push({ name: fn.name, prototype, file: origin.file, line: origin.line });
  }

  const lines = chars.join("").split("\n");
  if (first && result.length) {
    const at = lineOf(first.start);
    const origin = origins[at]!;
    const block: string[] = [];
    for (const fn of result) block.push(lineDirective(fn.line, fn.file), fn.prototype);
    block.push(lineDirective(origin.line, origin.file));
    lines.splice(at, 0, ...block);
  }
  return { cpp: `#include <Arduino.h>\n${lines.join("\n")}`, functions: result };
}
