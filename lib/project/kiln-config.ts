/**
 * kiln's own project config, for projects without a platformio.ini: found
 * by cosmiconfig in the project directory only (`kiln.config.{js,mjs,cjs,
 * json,yaml,yml}`, `.kilnrc`, `.kilnrc.{json,yaml,yml,js,mjs,cjs}`, or a
 * `"kiln"` key in package.json). The data is translated into the same
 * sections an INI would have, so every rule (extends, `${…}`, overrides,
 * types) is shared with platformio.ini. Shape (docs/config.md):
 *
 *   {
 *     defaultEnvs?: string | string[],
 *     jobs?: number, cacheDir?: string,
 *     platformio?: { src_dir?: …, build_dir?: …, … },   // [platformio]
 *     common?: { <option>: value },                    // [env]
 *     env: { <name>: { <option>: value } },            // [env:<name>]
 *     sections?: { <name>: { <option>: value } },      // free sections
 *   }
 *
 * A value is a string, number, boolean or array of strings (a list).
 */
import { ConfigError, nearest } from "../core/errors.js";
import { emptyIni, type IniData, type IniEntry } from "./ini.js";

export const KILN_SEARCH_PLACES = [
  "kiln.config.js",
  "kiln.config.mjs",
  "kiln.config.cjs",
  "kiln.config.json",
  "kiln.config.yaml",
  "kiln.config.yml",
  ".kilnrc",
  ".kilnrc.json",
  ".kilnrc.yaml",
  ".kilnrc.yml",
  ".kilnrc.js",
  ".kilnrc.mjs",
  ".kilnrc.cjs",
  "package.json",
];

const TOP_KEYS = ["defaultEnvs", "jobs", "cacheDir", "platformio", "common", "env", "sections"];

export interface KilnConfigFile {
  file: string;
  ini: IniData;
  jobs?: number | undefined;
  cacheDir?: string | undefined;
  warnings: string[];
}

/** Find and read a kiln config in `dir` (not its parents); undefined when there is none. */
export async function findKilnConfig(dir: string): Promise<KilnConfigFile | undefined> {
  // Loaded only here: most projects have a platformio.ini and never pay for cosmiconfig.
  const { cosmiconfig } = await import("cosmiconfig");
  const explorer = cosmiconfig("kiln", { searchPlaces: KILN_SEARCH_PLACES, searchStrategy: "none", cache: false });
  let found;
  try {
    found = await explorer.search(dir);
  } catch (e) {
    throw new ConfigError("KILN_CONFIG_SYNTAX", `cannot read the kiln config in ${dir}: ${(e as Error).message}`, {
      hint: "fix the syntax of the file named above",
      cause: e,
    });
  }
  if (!found) return undefined;
  let data: unknown = found.config ?? {};
  if (typeof data === "function") data = await (data as () => unknown)();
  return kilnConfigToIni(data, found.filepath);
}

type Value = string | number | boolean | string[];

function invalid(file: string, path: string, message: string): ConfigError {
  return new ConfigError("KILN_CONFIG_INVALID", `${path}: ${message}`, {
    location: { file },
    hint: "see docs/config.md#kilns-own-config-format for the shape",
    data: { path },
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function toText(v: unknown, file: string, path: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) {
    return v
      .map((item, i) => {
        if (typeof item !== "string" && typeof item !== "number") throw invalid(file, `${path}[${i}]`, `list items must be strings, got ${JSON.stringify(item)}`);
        return String(item);
      })
      .join("\n");
  }
  throw invalid(file, path, `must be a string, number, boolean or list of strings, got ${JSON.stringify(v)}`);
}

/** Translate parsed kiln config data into INI sections. Throws `KILN_CONFIG_INVALID` on a wrong shape. */
export function kilnConfigToIni(data: unknown, file: string): KilnConfigFile {
  if (!isRecord(data)) throw invalid(file, "(top level)", "the config must be an object");
  const ini = emptyIni();
  ini.files.push(file);
  const warnings: string[] = [];
  for (const key of Object.keys(data)) {
    if (TOP_KEYS.includes(key)) continue;
    const near = nearest(key, TOP_KEYS, 2);
    warnings.push(`${file}: unknown key \`${key}\` in the kiln config${near.length ? ` (did you mean ${near.map((n) => `\`${n}\``).join(" or ")}?)` : ""}`);
  }
  const addSection = (name: string, options: unknown, path: string): void => {
    if (!isRecord(options)) throw invalid(file, path, "must be an object of option: value");
    const map = new Map<string, IniEntry>();
    for (const [k, v] of Object.entries(options)) {
      if (v === undefined || v === null) continue;
      map.set(k.toLowerCase(), { raw: toText(v as Value, file, `${path}.${k}`), file, percent: false });
    }
    const existing = ini.sections.get(name);
    if (existing) for (const [k, e] of map) existing.options.set(k, e);
    else ini.sections.set(name, { name, file, options: map });
  };
  if (data.platformio !== undefined) addSection("platformio", data.platformio, "platformio");
  if (data.defaultEnvs !== undefined) {
    const raw = toText(data.defaultEnvs, file, "defaultEnvs");
    addSection("platformio", { default_envs: raw }, "defaultEnvs");
  }
  if (data.common !== undefined) addSection("env", data.common, "common");
  if (data.sections !== undefined) {
    if (!isRecord(data.sections)) throw invalid(file, "sections", "must be an object of section name: options");
    for (const [name, opts] of Object.entries(data.sections)) {
      if (name === "platformio" || name === "env" || name.startsWith("env:")) throw invalid(file, `sections.${name}`, "use `platformio`, `common` or `env` for this section");
      addSection(name, opts, `sections.${name}`);
    }
  }
  if (data.env !== undefined) {
    if (!isRecord(data.env)) throw invalid(file, "env", "must be an object of environment name: options");
    for (const [name, opts] of Object.entries(data.env)) addSection(`env:${name}`, opts, `env.${name}`);
  }
  let jobs: number | undefined;
  if (data.jobs !== undefined) {
    if (typeof data.jobs !== "number" || !Number.isInteger(data.jobs) || data.jobs < 1) throw invalid(file, "jobs", `must be a positive integer, got ${JSON.stringify(data.jobs)}`);
    jobs = data.jobs;
  }
  let cacheDir: string | undefined;
  if (data.cacheDir !== undefined) {
    if (typeof data.cacheDir !== "string" || !data.cacheDir) throw invalid(file, "cacheDir", `must be a path, got ${JSON.stringify(data.cacheDir)}`);
    cacheDir = data.cacheDir;
  }
  return { file, ini, jobs, cacheDir, warnings };
}
