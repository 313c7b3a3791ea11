/**
 * Option lookup exactly as PlatformIO 6.1 does it (platformio-ini.md §3–§6):
 * the `extends` walk, `[env]` last, PLATFORMIO_* overrides, defaults from
 * the option table, `${…}` interpolation, then type conversion.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { ConfigError, formatLocation, type SourceLocation } from "../core/errors.js";
import { expandPercent, type IniData, type IniEntry } from "./ini.js";
import { CUSTOM_OPTION_PREFIXES, OPTIONS, findOptionMeta, renamedOption, sectionScope, type OptionMeta } from "./options.js";

/** A looked-up value before type conversion. */
export interface RawValue {
  /** Text after overrides and interpolation; list options not yet split. */
  value: string;
  location: SourceLocation | undefined;
}

export type TypedValue = string | number | boolean | string[];

export interface ResolverContext {
  projectDir: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Collected warnings (deduplicated by the resolver). */
  warnings: string[];
  /** Seconds since the epoch, for `${UNIX_TIME}`. */
  now?: () => number;
}

/**
 * Split a list option (§1): on newlines when there is one, else on ", ";
 * items trimmed; empty and comment items dropped; " ;comment" tails removed.
 */
export function parseMultiValues(value: string): string[] {
  const items = value.split(value.includes("\n") ? "\n" : ", ");
  const out: string[] = [];
  for (let item of items) {
    item = item.trim();
    if (!item || item.startsWith(";") || item.startsWith("#")) continue;
    if (item.includes(";")) item = item.replace(/\s+;.*$/, "").trim();
    out.push(item);
  }
  return out;
}

const VAR_RE = /\$\{(?:([^.}()]+)\.)?([^}]+)\}/g;
const BOOL_TRUE = new Set(["1", "true", "t", "yes", "y", "on"]);
const BOOL_FALSE = new Set(["0", "false", "f", "no", "n", "off"]);

export class ConfigResolver {
  private readonly walks = new Map<string, string[]>();
  /** (section, option) pairs being resolved, to catch `${a.x}` → `${a.x}` loops. */
  private readonly active = new Set<string>();
  private readonly warned = new Set<string>();

  constructor(
    readonly ini: IniData,
    readonly ctx: ResolverContext,
  ) {}

  /** Forget cached walks after more files were read into `ini`. */
  invalidate(): void {
    this.walks.clear();
  }

  warn(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.ctx.warnings.push(message);
  }

  hasSection(name: string): boolean {
    return this.ini.sections.has(name);
  }

  /** An option written in `section` itself (or in `[DEFAULT]`), no walk. */
  entry(section: string, option: string): IniEntry | undefined {
    return this.ini.sections.get(section)?.options.get(option) ?? this.ini.defaults.get(option);
  }

  /** Option names of one section as configparser lists them: its own, then `[DEFAULT]`'s. */
  private ownOptions(section: string): string[] {
    const own = this.ini.sections.get(section);
    if (!own) return [];
    const names = [...own.options.keys()];
    for (const k of this.ini.defaults.keys()) if (!own.options.has(k)) names.push(k);
    return names;
  }

  private percentValue(section: string, option: string, entry: IniEntry): string {
    return expandPercent(entry, option, section, (name) => this.entry(section, name));
  }

  /**
   * The sections consulted for an option of `root`, in order (§3): the root,
   * then its `extends` parents depth-first with the last-listed parent
   * first, and `[env]` last for env sections. A cycle is a ConfigError.
   */
  walk(root: string): string[] {
    const cached = this.walks.get(root);
    if (cached) return cached;
    const order: string[] = [];
    const visit = (section: string, path: string[]): void => {
      if (path.includes(section)) {
        const cycle = [...path.slice(path.indexOf(section)), section];
        const from = path[path.length - 1]!;
        const e = this.entry(from, "extends");
        throw new ConfigError("KILN_CONFIG_EXTENDS_CYCLE", `\`extends\` forms a cycle: ${cycle.map((s) => `[${s}]`).join(" → ")}`, {
          location: e ? { file: e.file, line: e.line } : undefined,
          hint: "remove one of these `extends` so that no section extends itself",
          data: { sections: cycle },
        });
      }
      order.push(section);
      if (!this.hasSection(section)) return;
      const ext = this.entry(section, "extends");
      if (!ext) return;
      const parents = parseMultiValues(this.percentValue(section, "extends", ext));
      for (const p of parents) {
        if (!this.hasSection(p)) this.warn(`${formatLocation({ file: ext.file, line: ext.line })}: \`extends\` in section [${section}] names [${p}], which does not exist`);
      }
      for (let i = parents.length - 1; i >= 0; i--) visit(parents[i]!, [...path, section]);
    };
    visit(root, []);
    if (root.startsWith("env:")) visit("env", []);
    this.walks.set(root, order);
    return order;
  }

  /** First section of the walk that sets the option (by current or old name). */
  private traverse(section: string, option: string, meta: OptionMeta | undefined): { section: string; option: string; entry: IniEntry } | undefined {
    for (const s of this.walk(section)) {
      for (const name of this.ownOptions(s)) {
        if (name === option || (meta && (name === meta.name || meta.oldnames?.includes(name)))) {
          return { section: s, option: name, entry: this.entry(s, name)! };
        }
      }
    }
    return undefined;
  }

  /**
   * Option names visible in `section`, in walk order, old names reported
   * under their current name, plus options set only through PLATFORMIO_*
   * variables.
   */
  options(section: string): string[] {
    const out: string[] = [];
    for (const s of this.walk(section)) {
      for (const name of this.ownOptions(s)) {
        const canonical = renamedOption(section, name) ?? name;
        if (!out.includes(canonical)) out.push(canonical);
      }
    }
    const scope = sectionScope(section);
    if (scope) {
      for (const meta of OPTIONS[scope].values()) {
        if (!meta.sysenvvar || out.includes(meta.name)) continue;
        const vars = [meta.sysenvvar, ...(meta.oldnames ?? []).map((o) => `PLATFORMIO_${o.toUpperCase()}`)];
        if (vars.some((v) => this.ctx.env[v] !== undefined)) out.push(meta.name);
      }
    }
    return out;
  }

  /**
   * The option's text after lookup, PLATFORMIO_* override, default and
   * `${…}` interpolation; undefined when it is set nowhere and has no default.
   */
  getRaw(section: string, option: string, from?: SourceLocation): RawValue | undefined {
    const key = `${section}\0${option}`;
    if (this.active.has(key)) {
      throw new ConfigError("KILN_CONFIG_RECURSION", `Infinite recursion has been detected for \`${option}\` option in the \`${section}\` section`, {
        location: from,
        hint: "an option refers back to itself through ${…}; break the loop",
        data: { section, option },
      });
    }
    this.active.add(key);
    try {
      return this.lookup(section, option);
    } finally {
      this.active.delete(key);
    }
  }

  private lookup(section: string, option: string): RawValue | undefined {
    const meta = findOptionMeta(section, option);
    const found = this.traverse(section, option, meta);
    let value = found ? this.percentValue(found.section, found.option, found.entry) : undefined;
    let location: SourceLocation | undefined = found ? { file: found.entry.file, line: found.entry.line } : undefined;
    if (meta?.sysenvvar) {
      let envValue = this.ctx.env[meta.sysenvvar];
      let envName = meta.sysenvvar;
      if (!envValue) {
        for (const old of meta.oldnames ?? []) {
          envName = `PLATFORMIO_${old.toUpperCase()}`;
          envValue = this.ctx.env[envName];
          if (envValue) break;
        }
      }
      if (envValue && meta.multiple) {
        value = value ? `${value}\n${envValue}` : envValue;
        location ??= { file: `$${envName}` };
      } else if (envValue) {
        value = envValue;
        location = { file: `$${envName}` };
      }
    }
    if (value === undefined && meta?.default !== undefined) value = meta.default;
    if (value === undefined && meta?.scope === "platformio" && meta.name === "name") value = basename(this.ctx.projectDir);
    if (value === undefined) return undefined;
    return { value: this.interpolate(section, option, value, location), location };
  }

  /** `${…}` expansion of `value`, read as option `option` of `section` (§4). */
  interpolate(section: string, option: string, value: string, location: SourceLocation | undefined): string {
    if (!value.includes("$")) return value;
    if (/(^|[^$])\$PROJECT_HASH/.test(value)) {
      value = value.replace(/(^|[^$])\$PROJECT_HASH/g, "$1${PROJECT_HASH}");
      this.warn("Invalid variable declaration. Please use `${PROJECT_HASH}` instead of `$PROJECT_HASH`");
    }
    if (!value.includes("${") || !value.includes("}")) return value;
    return value.replace(VAR_RE, (whole, sec: string | undefined, opt: string) => this.reference(section, option, sec, opt, whole, location));
  }

  private reference(parentSection: string, parentOption: string, sec: string | undefined, opt: string, whole: string, location: SourceLocation | undefined): string {
    if (sec === undefined) {
      if (opt === "PROJECT_DIR") return this.ctx.projectDir;
      if (opt === "PROJECT_HASH") return projectHash(this.ctx.projectDir);
      if (opt === "UNIX_TIME") return String(this.ctx.now ? this.ctx.now() : Math.floor(Date.now() / 1000));
      // A build-system variable (SCons in PlatformIO); expanded when flags are used.
      return whole;
    }
    if (sec === "sysenv") return this.ctx.env[opt] ?? "";
    let target = sec;
    if (sec === "this") {
      target = parentSection;
      if (opt === "__env__") {
        if (!parentSection.startsWith("env:")) {
          throw new ConfigError(
            "KILN_CONFIG_THIS_ENV",
            `\`\${this.__env__}\` is called from the \`${parentSection}\` section that is not valid PlatformIO environment. Please check \`${parentOption}\` option in the \`${parentSection}\` section`,
            { location, hint: "${this.__env__} only has a value while an [env:NAME] section is read; pass the name explicitly or read it from an env section" },
          );
        }
        return parentSection.slice(4);
      }
    }
    const got = this.get(target, opt, location);
    if (got === undefined) {
      const what = this.hasSection(target) ? `there is no option \`${opt}\` in section [${target}]` : `there is no section [${target}]`;
      throw new ConfigError("KILN_CONFIG_UNDEFINED", `\`${whole}\` in option \`${parentOption}\` of section [${parentSection}]: ${what}`, {
        location,
        hint: "define the option, or fix the name in ${section.option}",
        data: { reference: whole, section: parentSection, option: parentOption },
      });
    }
    if (Array.isArray(got)) return got.join("\n");
    if (typeof got === "boolean") return got ? "True" : "False";
    return String(got);
  }

  /** The option converted like PlatformIO: lists split, int/bool/choice checked. */
  get(section: string, option: string, from?: SourceLocation): TypedValue | undefined {
    const raw = this.getRaw(section, option, from);
    if (!raw) return undefined;
    return castValue(section, option, raw);
  }
}

/** Convert a raw value by the option table; ConfigError `KILN_CONFIG_VALUE` with file:line on a bad one. */
export function castValue(section: string, option: string, raw: RawValue): TypedValue {
  const meta = findOptionMeta(section, option);
  if (!meta) return raw.value;
  if (meta.multiple) return parseMultiValues(raw.value);
  const v = raw.value;
  const fail = (what: string): never => {
    throw new ConfigError("KILN_CONFIG_VALUE", `${what} for \`${option}\` option in the \`${section}\` section (${meta.description})`, {
      location: raw.location,
      hint: "fix the value; docs/config.md lists every option kiln reads and its type",
      data: { section, option, value: v },
    });
  };
  switch (meta.type.kind) {
    case "string":
      return v;
    case "int": {
      const t = v.trim();
      if (!/^[+-]?\d+$/.test(t)) return fail(`'${v}' is not a valid integer`);
      const n = Number.parseInt(t, 10);
      const { min, max } = meta.type;
      if ((min !== undefined && n < min) || (max !== undefined && n > max)) return fail(`${n} is not in the range ${min ?? ""}..${max ?? ""}`);
      return n;
    }
    case "bool": {
      const t = v.trim().toLowerCase();
      if (BOOL_TRUE.has(t)) return true;
      if (BOOL_FALSE.has(t)) return false;
      return fail(`'${v}' is not a valid boolean (use yes/no, true/false, 1/0)`);
    }
    case "choice": {
      const t = meta.type.upper ? v.trim().toUpperCase() : v.trim();
      if (!meta.type.choices.includes(t)) return fail(`'${v}' is not one of ${meta.type.choices.map((c) => `'${c}'`).join(", ")}`);
      return t;
    }
  }
}

/** `<basename>-<first 10 hex of sha1(dir)>`, PlatformIO's `${PROJECT_HASH}`. */
export function projectHash(projectDir: string): string {
  return `${basename(projectDir)}-${createHash("sha1").update(projectDir).digest("hex").slice(0, 10)}`;
}

/**
 * Warnings PlatformIO prints for what is written in [platformio] and
 * [env*] sections: deprecated names (exact PlatformIO text) and unknown
 * options (except `custom_*` / `board_*` in env sections), each prefixed
 * with file:line.
 */
export function optionWarnings(ini: IniData): string[] {
  const out: string[] = [];
  for (const section of ini.sections.values()) {
    const scope = sectionScope(section.name);
    if (!scope) continue;
    for (const [name, entry] of section.options) {
      const where = formatLocation({ file: entry.file, line: entry.line });
      const renamed = renamedOption(section.name, name);
      if (renamed) {
        out.push(
          `${where}: \`${name}\` configuration option in section [${section.name}] is deprecated and will be removed in the next release! Please use \`${renamed}\` instead`,
        );
        continue;
      }
      if (OPTIONS[scope].has(name)) continue;
      if (scope === "env" && CUSTOM_OPTION_PREFIXES.some((p) => name.startsWith(p))) continue;
      out.push(`${where}: Ignore unknown configuration option \`${name}\` in section [${section.name}]`);
    }
  }
  return out;
}
