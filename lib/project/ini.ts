/**
 * An INI reader with Python `configparser` semantics, as PlatformIO uses it
 * (`ConfigParser(inline_comment_prefixes=("#", ";"))`, strict, basic `%`
 * interpolation). Several files can be read into one `IniData`: sections
 * merge across files and the file read last wins for an option; inside one
 * file a repeated section or option is an error.
 */
import { ConfigError } from "../core/errors.js";

export interface IniEntry {
  /** The value as written, continuation lines joined with "\n". */
  raw: string;
  file: string;
  /** Undefined for values that do not come from a line of an INI file. */
  line?: number | undefined;
  /**
   * Whether `%%` / `%(name)s` apply (configparser basic interpolation).
   * False for values from a kiln config or a synthetic project.
   */
  percent: boolean;
}

export interface IniSection {
  name: string;
  file: string;
  line?: number | undefined;
  /** Lower-cased option name → entry, in first-written order. */
  options: Map<string, IniEntry>;
}

export interface IniData {
  /** In first-seen order; `[DEFAULT]` is kept apart in `defaults`. */
  sections: Map<string, IniSection>;
  defaults: Map<string, IniEntry>;
  /** Files read, in order. */
  files: string[];
}

export function emptyIni(): IniData {
  return { sections: new Map(), defaults: new Map(), files: [] };
}

const SECTION_RE = /^\[(.+)\]/;
const OPTION_RE = /^(.*?)\s*([=:])\s*(.*)$/;

/** Index where an inline comment starts: `;` or `#` at column 0 or after whitespace. */
function inlineCommentStart(line: string): number {
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if ((c === ";" || c === "#") && (i === 0 || /\s/.test(line[i - 1]!))) return i;
  }
  return -1;
}

function syntaxError(file: string, line: number | undefined, message: string, hint?: string): ConfigError {
  return new ConfigError("KILN_CONFIG_SYNTAX", message, {
    location: { file, line },
    hint: hint ?? "platformio.ini follows Python configparser syntax; see docs/config.md#syntax",
  });
}

/**
 * Check `%` use in a value the way configparser's BasicInterpolation would
 * on read: `%%` and `%(name)s` are fine, any other `%` is an error. Done at
 * parse time so the error carries the line even for options never read.
 */
function checkPercent(value: string, option: string, file: string, line: number | undefined): void {
  for (let i = value.indexOf("%"); i >= 0; i = value.indexOf("%", i)) {
    const next = value[i + 1];
    if (next === "%") {
      i += 2;
      continue;
    }
    if (next === "(") {
      const m = /^%\(([^)]+)\)s/.exec(value.slice(i));
      if (!m) throw syntaxError(file, line, `bad interpolation variable reference in \`${option}\`: ${JSON.stringify(value.slice(i))}`);
      i += m[0].length;
      continue;
    }
    throw syntaxError(
      file,
      line,
      `'%' must be followed by '%' or '(', found: ${JSON.stringify(value.slice(i))} (option \`${option}\`)`,
      "write a literal percent sign as %%",
    );
  }
}

/**
 * Parse `text` (the contents of `file`) into `into`. Throws ConfigError
 * `KILN_CONFIG_SYNTAX` with file:line for: an option before any section, a
 * line that is neither section, option nor continuation, an empty option
 * name, a duplicate section or option in this file, a bad `%`.
 */
export function parseIni(text: string, file: string, into: IniData): void {
  into.files.push(file);
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  const seenSections = new Set<string>();
  const seenOptions = new Set<string>();
  let current: { name: string; options: Map<string, IniEntry> } | undefined;
  let option: { name: string; parts: string[]; entry: IniEntry } | undefined;
  let indentLevel = 0;
  const pending: Array<{ name: string; parts: string[]; entry: IniEntry }> = [];

  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    const lineNo = n + 1;
    const trimmed = line.trim();
    let commentStart = inlineCommentStart(line);
    if (trimmed.startsWith(";") || trimmed.startsWith("#")) commentStart = 0;
    const value = (commentStart >= 0 ? line.slice(0, commentStart) : line).trim();
    if (!value) {
      // configparser keeps blank lines inside a value (they are dropped when
      // the value is split into items), but not comment lines.
      if (commentStart < 0 && option) option.parts.push("");
      continue;
    }
    const indent = line.length - line.trimStart().length;
    if (current && option && indent > indentLevel) {
      option.parts.push(value);
      continue;
    }
    indentLevel = indent;
    const sm = SECTION_RE.exec(value);
    if (sm) {
      const name = sm[1]!;
      if (seenSections.has(name)) throw syntaxError(file, lineNo, `section [${name}] already exists in this file`);
      option = undefined;
      if (name === "DEFAULT") {
        current = { name, options: into.defaults };
        continue;
      }
      seenSections.add(name);
      let section = into.sections.get(name);
      if (!section) {
        section = { name, file, line: lineNo, options: new Map() };
        into.sections.set(name, section);
      }
      current = { name, options: section.options };
      continue;
    }
    if (!current) {
      throw syntaxError(file, lineNo, `file contains no section headers; found ${JSON.stringify(line)} before the first [section]`);
    }
    const om = OPTION_RE.exec(value);
    if (!om || !om[1]) throw syntaxError(file, lineNo, `cannot parse line ${JSON.stringify(line)}: expected 'option = value', '[section]' or an indented continuation`);
    const name = om[1].trimEnd().toLowerCase();
    const key = `${current.name}\0${name}`;
    if (seenOptions.has(key)) throw syntaxError(file, lineNo, `option \`${name}\` in section [${current.name}] already exists in this file`);
    seenOptions.add(key);
    const entry: IniEntry = { raw: "", file, line: lineNo, percent: true };
    // Re-setting an option from a later file keeps its original position,
    // like a Python dict.
    current.options.set(name, entry);
    option = { name, parts: [om[3]!.trim()], entry };
    pending.push(option);
  }
  for (const p of pending) {
    p.entry.raw = p.parts.join("\n").trimEnd();
    checkPercent(p.entry.raw, p.name, file, p.entry.line);
  }
}

/**
 * configparser's BasicInterpolation for one value: `%%` → `%`, `%(name)s`
 * → the raw value of `name` in the same section (or `[DEFAULT]`),
 * recursively. `lookup` answers the raw entry of a name in that section.
 */
export function expandPercent(
  entry: IniEntry,
  option: string,
  section: string,
  lookup: (name: string) => IniEntry | undefined,
  depth = 0,
): string {
  if (!entry.percent || !entry.raw.includes("%")) return entry.raw;
  if (depth > 10) {
    throw new ConfigError("KILN_CONFIG_RECURSION", `%(…)s interpolation of \`${option}\` in section [${section}] is nested too deeply (a loop?)`, {
      location: { file: entry.file, line: entry.line },
    });
  }
  return entry.raw.replace(/%%|%\(([^)]+)\)s/g, (m, name: string | undefined) => {
    if (m === "%%") return "%";
    const ref = lookup(name!.toLowerCase());
    if (!ref) {
      throw new ConfigError("KILN_CONFIG_UNDEFINED", `\`${option}\` in section [${section}] refers to %(${name})s, which is not an option of [${section}] or [DEFAULT]`, {
        location: { file: entry.file, line: entry.line },
        hint: "%(name)s reads another option of the same section; use ${section.option} for other sections",
      });
    }
    return expandPercent(ref, name!, section, lookup, depth + 1);
  });
}
