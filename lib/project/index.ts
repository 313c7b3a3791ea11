/**
 * lib/project: a project's configuration, read exactly as PlatformIO reads
 * platformio.ini (docs/config.md, platformio-ini.md), or from kiln's own
 * config file, or made up from command-line options (a "synthetic"
 * project). Everyone else sees only `Project` and `ResolvedEnv`.
 */
import { access, readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { Settings } from "../core/config.js";
import { ConfigError, errnoCode, formatLocation, nearest, type SourceLocation } from "../core/errors.js";
import { globToRegExp } from "./filter.js";
import { emptyIni, parseIni, type IniData, type IniEntry } from "./ini.js";
import { findKilnConfig } from "./kiln-config.js";
import { ConfigResolver, castValue, optionWarnings, type TypedValue } from "./resolve.js";
import type { BuildType, LdfMode, OptionValue, Project, ProjectDirs, ResolvedEnv } from "./types.js";

export type * from "./types.js";
export { parseBuildFlags, applyUnflags, flagsToArgs, mergeFlags, shellSplit, emptyFlags, type FlagArgs, type ParseFlagsOptions } from "./flags.js";
export { selectSources, parseSrcFilter, globToRegExp, SOURCE_EXTENSIONS, SKETCH_EXTENSIONS, DEFAULT_SRC_FILTER } from "./filter.js";
export { parseMultiValues, projectHash } from "./resolve.js";
export { parseIni, emptyIni, type IniData, type IniEntry, type IniSection } from "./ini.js";

export interface SyntheticProject {
  /** Name of the one env (`[env:NAME]`). */
  envName: string;
  /** Options as in platformio.ini (`board`, `platform`, `build_flags`…); lists one item per line. */
  options: Record<string, string>;
  /** Sources directory (a sketch folder); default `<dir>/src`. */
  srcDir?: string;
}

export interface LoadProjectOptions {
  settings: Settings;
  synthetic?: SyntheticProject;
}

const ENV_NAME_RE = /^[a-z\d_-]+$/i;
/** Where values of a synthetic project come from, in messages. */
const COMMAND_LINE = "(command line)";

/**
 * Read the project in `dir`: `platformio.ini` (plus its `extra_configs`),
 * else a kiln config found by cosmiconfig in `dir`, else — with
 * `opts.synthetic` — a one-env project with no file at all (synthetic wins
 * over files). Throws ConfigError: `KILN_NO_CONFIG` when there is nothing
 * to read, `KILN_CONFIG_SYNTAX` (file:line), `KILN_CONFIG_ENV_NAME`, and
 * any lookup error of [platformio] options. Every env is resolved once
 * here so that `project.warnings` is complete on return; an env with a bad
 * value throws its ConfigError from `project.env(name)`, so only commands
 * that use it fail.
 */
export async function loadProject(dir: string, opts: LoadProjectOptions): Promise<Project> {
  const projectDir = resolve(dir);
  const env = opts.settings.env;
  const warnings: string[] = [];
  const resolver = (ini: IniData): ConfigResolver => new ConfigResolver(ini, { projectDir, env, warnings });

  if (opts.synthetic) {
    const ini = emptyIni();
    const entries = new Map<string, IniEntry>();
    for (const [k, v] of Object.entries(opts.synthetic.options)) entries.set(k.toLowerCase(), { raw: v, file: COMMAND_LINE, percent: false });
    ini.sections.set(`env:${opts.synthetic.envName}`, { name: `env:${opts.synthetic.envName}`, file: COMMAND_LINE, options: entries });
    if (opts.synthetic.srcDir !== undefined) {
      const src: IniEntry = { raw: resolve(projectDir, opts.synthetic.srcDir), file: COMMAND_LINE, percent: false };
      ini.sections.set("platformio", { name: "platformio", file: COMMAND_LINE, options: new Map([["src_dir", src]]) });
    }
    return finish({ projectDir, configFile: "", configKind: "synthetic", files: [], ini, r: resolver(ini), warnings, env, kiln: {} });
  }

  const iniPath = join(projectDir, "platformio.ini");
  let text: string | undefined;
  try {
    text = await readFile(iniPath, "utf8");
  } catch (e) {
    if (errnoCode(e) !== "ENOENT" && errnoCode(e) !== "ENOTDIR") throw e;
  }
  if (text !== undefined) {
    const ini = emptyIni();
    parseIni(text, iniPath, ini);
    const r = resolver(ini);
    await readExtraConfigs(r, projectDir, env);
    moveLegacyLibExtraDirs(ini, warnings);
    return finish({ projectDir, configFile: iniPath, configKind: "platformio", files: ini.files, ini, r, warnings, env, kiln: {} });
  }

  const kc = await findKilnConfig(projectDir);
  if (!kc) {
    const isDir = await stat(projectDir).then(
      (st) => st.isDirectory(),
      () => undefined,
    );
    const message =
      isDir === undefined ? `project directory ${projectDir} does not exist` : isDir ? `no platformio.ini or kiln config in ${projectDir}` : `${projectDir} is not a directory`;
    throw new ConfigError("KILN_NO_CONFIG", message, {
      hint: "run 'kiln init' to create a project, pass -d <project dir>, or build a sketch folder with 'kiln build <dir> --board <id>'",
      data: { dir: projectDir },
    });
  }
  warnings.push(...kc.warnings);
  const kiln = { jobs: kc.jobs, cacheDir: kc.cacheDir === undefined ? undefined : resolve(projectDir, expandHome(kc.cacheDir, env)) };
  return finish({ projectDir, configFile: kc.file, configKind: "kiln", files: [kc.file], ini: kc.ini, r: resolver(kc.ini), warnings, env, kiln });
}

function expandHome(p: string, env: Settings["env"]): string {
  if (p !== "~" && !p.startsWith("~/") && !p.startsWith("~\\")) return p;
  return join(env.HOME || env.USERPROFILE || homedir(), p.slice(1));
}

/**
 * Read `[platformio] extra_configs` files after the main one (§1: the file
 * read last wins). Patterns are relative to the project dir, `~` expanded;
 * wildcards are allowed in the file name. Newly listed files are read too.
 */
async function readExtraConfigs(r: ConfigResolver, projectDir: string, env: Settings["env"]): Promise<void> {
  const done = new Set(r.ini.files);
  for (;;) {
    const patterns = (r.get("platformio", "extra_configs") as string[] | undefined) ?? [];
    let added = false;
    for (const pattern of patterns) {
      const full = resolve(projectDir, expandHome(pattern, env));
      const files = await globFile(full);
      if (!files.length) r.warn(`\`extra_configs\`: no file matches \`${pattern}\``);
      for (const f of files) {
        if (done.has(f)) continue;
        done.add(f);
        parseIni(await readFile(f, "utf8"), f, r.ini);
        r.invalidate();
        added = true;
      }
    }
    if (!added) return;
  }
}

async function globFile(full: string): Promise<string[]> {
  const dir = dirname(full);
  const name = basename(full);
  if (!/[*?[]/.test(name)) {
    return access(full).then(
      () => [full],
      () => [],
    );
  }
  const { re } = globToRegExp(name);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => !e.isDirectory() && re.test(e.name))
    .map((e) => join(dir, e.name))
    .sort();
}

/** PlatformIO moves a `[platformio] lib_extra_dirs` to `[env]`, with this warning. */
function moveLegacyLibExtraDirs(ini: IniData, warnings: string[]): void {
  const pio = ini.sections.get("platformio");
  const entry = pio?.options.get("lib_extra_dirs");
  if (!pio || !entry) return;
  let envSection = ini.sections.get("env");
  if (!envSection) {
    envSection = { name: "env", file: entry.file, line: entry.line, options: new Map() };
    ini.sections.set("env", envSection);
  }
  envSection.options.set("lib_extra_dirs", entry);
  pio.options.delete("lib_extra_dirs");
  warnings.push(
    `${formatLocation({ file: entry.file, line: entry.line })}: \`lib_extra_dirs\` configuration option is deprecated in section [platformio]! Please move it to global \`env\` section`,
  );
}

interface Parts {
  projectDir: string;
  configFile: string;
  configKind: Project["configKind"];
  files: string[];
  ini: IniData;
  r: ConfigResolver;
  warnings: string[];
  env: Settings["env"];
  kiln: Project["kiln"];
}

function finish(p: Parts): Project {
  const { ini, r, projectDir } = p;
  const envNames: string[] = [];
  for (const s of ini.sections.values()) {
    if (!s.name.startsWith("env:")) continue;
    const name = s.name.slice(4);
    // A synthetic env is named after a board id, which the user did not write as a section.
    if (p.configKind !== "synthetic" && !ENV_NAME_RE.test(name)) {
      throw new ConfigError("KILN_CONFIG_ENV_NAME", `invalid environment name '${name}' in [${s.name}]: use only letters, digits, '_' and '-'`, {
        location: { file: s.file, line: s.line },
        hint: "rename the section, e.g. [env:my_board]",
      });
    }
    envNames.push(name);
  }
  p.warnings.push(...optionWarnings(ini));
  const dir = (option: string): string => resolve(projectDir, expandHome(String(r.get("platformio", option) ?? ""), p.env));
  const dirs: ProjectDirs = {
    src: dir("src_dir"),
    include: dir("include_dir"),
    lib: dir("lib_dir"),
    test: dir("test_dir"),
    build: dir("build_dir"),
    data: dir("data_dir"),
    boards: dir("boards_dir"),
    workspace: dir("workspace_dir"),
    libdeps: dir("libdeps_dir"),
  };
  const defaultEnvs = (r.get("platformio", "default_envs") as string[] | undefined) ?? [];
  const defaultEnvsAt = r.getRaw("platformio", "default_envs")?.location;
  const cache = new Map<string, ResolvedEnv>();

  const unknownEnvError = (unknown: string[], location: SourceLocation | undefined, where: string): ConfigError => {
    const near = nearest(unknown[0]!, envNames);
    return new ConfigError(
      "KILN_UNKNOWN_ENV",
      `unknown environment${unknown.length > 1 ? "s" : ""} ${unknown.map((u) => `'${u}'`).join(", ")} ${where}; valid environments: ${envNames.join(", ")}`,
      { location, hint: near.length ? `did you mean ${near.map((n) => `'${n}'`).join(", ")}?` : "'kiln config' lists the environments", data: { unknown, valid: envNames } },
    );
  };
  const noEnvs = (): ConfigError =>
    new ConfigError("KILN_NO_ENVS", `no environments in ${p.configFile || "the project"}`, {
      hint: "add an [env:NAME] section with `platform` and `board` (or an `env` entry in the kiln config)",
    });

  const project: Project = {
    dir: projectDir,
    configFile: p.configFile,
    configKind: p.configKind,
    files: p.files,
    dirs,
    envNames,
    defaultEnvs,
    kiln: p.kiln,
    warnings: p.warnings,
    env(name: string): ResolvedEnv {
      const hit = cache.get(name);
      if (hit) return hit;
      if (!envNames.length) throw noEnvs();
      if (!envNames.includes(name)) throw unknownEnvError([name], undefined, "requested");
      const resolved = resolveEnv(name, r, ini, projectDir, p.env);
      cache.set(name, resolved);
      return resolved;
    },
    selectEnvs(requested: readonly string[]): string[] {
      if (!envNames.length) throw noEnvs();
      const badDefaults = defaultEnvs.filter((e) => !envNames.includes(e));
      if (badDefaults.length) throw unknownEnvError(badDefaults, defaultEnvsAt, "in `default_envs`");
      const badRequested = requested.filter((e) => !envNames.includes(e));
      if (badRequested.length) throw unknownEnvError(badRequested, undefined, "in -e");
      const chosen = requested.length ? requested : defaultEnvs.length ? defaultEnvs : envNames;
      return [...new Set(chosen)];
    },
  };
  // Resolve every env now so that `project.warnings` is complete when the
  // caller prints it right after loading (PlatformIO also checks all envs on
  // start). A broken env is not fatal here: its ConfigError is thrown again,
  // unchanged, by `project.env()` for a command that uses that env.
  for (const name of envNames) {
    try {
      project.env(name);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
    }
  }
  return project;
}

function resolveEnv(name: string, r: ConfigResolver, ini: IniData, projectDir: string, env: Settings["env"]): ResolvedEnv {
  const section = `env:${name}`;
  const options: Record<string, OptionValue> = {};
  const typed = new Map<string, TypedValue>();
  for (const option of r.options(section)) {
    const raw = r.getRaw(section, option);
    if (!raw) continue;
    options[option] = { value: raw.value, location: raw.location };
    typed.set(option, castValue(section, option, raw));
  }
  const get = (option: string): TypedValue | undefined => (typed.has(option) ? typed.get(option) : r.get(section, option));
  const str = (option: string): string | undefined => {
    const v = get(option);
    return v === undefined ? undefined : String(v);
  };
  const list = (option: string): string[] => (get(option) as string[] | undefined) ?? [];
  const int = (option: string): number | undefined => get(option) as number | undefined;

  const monitorRaw = get("monitor_raw") === true;
  let monitorFilters = list("monitor_filters");
  if (monitorRaw && monitorFilters.length) {
    r.warn(
      `The \`monitor_raw\` and \`monitor_filters\` options cannot be used simultaneously for the \`${name}\` environment in the \`${basename(r.ini.files[0] ?? "platformio.ini")}\` file. The \`monitor_filters\` option will be disabled to avoid conflicts.`,
    );
    monitorFilters = [];
  }
  const scripts = options.extra_scripts;
  if (scripts) {
    r.warn(
      `${formatLocation(scripts.location)}: \`extra_scripts\` in [env:${name}] is ignored: kiln does not run PlatformIO's Python build scripts, so check that the build does not depend on them`,
    );
  }
  const boardOverrides: Record<string, string> = {};
  for (const [option, v] of Object.entries(options)) if (option.startsWith("board_")) boardOverrides[option.slice(6)] = v.value;
  const where = ini.sections.get(section);
  return {
    name,
    platform: str("platform") ?? "",
    board: str("board"),
    framework: list("framework"),
    buildType: get("build_type") as BuildType,
    buildFlags: list("build_flags"),
    buildSrcFlags: list("build_src_flags"),
    buildUnflags: list("build_unflags"),
    buildSrcFilter: list("build_src_filter"),
    libDeps: list("lib_deps"),
    libIgnore: list("lib_ignore"),
    libExtraDirs: list("lib_extra_dirs").map((d) => (isAbsolute(d) ? d : resolve(projectDir, expandHome(d, env)))),
    libLdfMode: get("lib_ldf_mode") as LdfMode,
    libCompatMode: get("lib_compat_mode") as ResolvedEnv["libCompatMode"],
    libArchive: get("lib_archive") as boolean,
    platformPackages: list("platform_packages"),
    upload: {
      port: str("upload_port"),
      protocol: str("upload_protocol"),
      speed: int("upload_speed"),
      flags: list("upload_flags"),
      resetMethod: str("upload_resetmethod"),
      command: str("upload_command"),
    },
    monitor: {
      port: str("monitor_port"),
      speed: int("monitor_speed") ?? 9600,
      parity: get("monitor_parity") as ResolvedEnv["monitor"]["parity"],
      filters: monitorFilters,
      rts: int("monitor_rts") as 0 | 1 | undefined,
      dtr: int("monitor_dtr") as 0 | 1 | undefined,
      eol: get("monitor_eol") as ResolvedEnv["monitor"]["eol"],
      raw: monitorRaw,
      echo: get("monitor_echo") === true,
      encoding: str("monitor_encoding") ?? "UTF-8",
    },
    boardOverrides,
    options,
    location: where ? { file: where.file, line: where.line } : undefined,
  };
}
