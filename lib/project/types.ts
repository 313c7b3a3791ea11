/**
 * The resolved view of a project: what lib/project hands to everyone else.
 * Values are already looked up (extends, [env], env-var overrides) and
 * interpolated (`${…}`); list options are arrays of items.
 */
import type { SourceLocation } from "../core/errors.js";

export type BuildType = "release" | "debug" | "test";
export type LdfMode = "off" | "chain" | "deep" | "chain+" | "deep+";

/** `[platformio]` directories, absolute. */
export interface ProjectDirs {
  src: string;
  include: string;
  lib: string;
  test: string;
  /** Root of per-env build dirs (kiln default `<project>/.kiln/build`). */
  build: string;
  data: string;
  boards: string;
  /** `workspace_dir` (kiln default `<project>/.kiln`). */
  workspace?: string;
  /** `libdeps_dir`; per-env libraries live in `<libdeps>/<env>/`. */
  libdeps?: string;
}

/** One value of one option, with where it came from (for errors and warnings). */
export interface OptionValue {
  /** Raw text after interpolation; list options keep the unsplit text. */
  value: string;
  location?: SourceLocation | undefined;
}

export interface ResolvedEnv {
  /** Env name without `env:` (`uno`). */
  name: string;
  /** `platform` as written; "" when unset (e.g. a synthetic project given only a board). */
  platform: string;
  board: string | undefined;
  framework: string[];
  buildType: BuildType;
  /** Items of build_flags (each item may hold several shell words). */
  buildFlags: string[];
  buildSrcFlags: string[];
  buildUnflags: string[];
  /** Items of build_src_filter (default `+<*> -<.git/> -<.svn/>`). */
  buildSrcFilter: string[];
  libDeps: string[];
  libIgnore: string[];
  /** Absolute paths, `~` expanded. */
  libExtraDirs: string[];
  libLdfMode: LdfMode;
  /** `lib_compat_mode` (default `soft`); always set by loadProject. */
  libCompatMode?: "off" | "soft" | "strict";
  libArchive: boolean;
  platformPackages: string[];
  upload: {
    port?: string | undefined;
    protocol?: string | undefined;
    speed?: number | undefined;
    flags: string[];
    resetMethod?: string | undefined;
    command?: string | undefined;
  };
  monitor: {
    port?: string | undefined;
    speed: number;
    parity: "N" | "E" | "O" | "S" | "M";
    filters: string[];
    rts?: 0 | 1 | undefined;
    dtr?: 0 | 1 | undefined;
    eol: "CR" | "LF" | "CRLF";
    raw: boolean;
    echo: boolean;
    encoding: string;
  };
  /** `board_<dotted.path>` options with `board_` stripped (`build.f_cpu` → "8000000L"), raw strings. */
  boardOverrides: Record<string, string>;
  /** Every option the env resolves to (after lookup + interpolation), for `kiln config` and custom_* use. */
  options: Record<string, OptionValue>;
  /** The file that defines `[env:NAME]` (or the kiln config file). */
  location?: SourceLocation | undefined;
}

export interface Project {
  /** Absolute project directory. */
  dir: string;
  /** The main config file (platformio.ini or kiln config), absolute; "" for a synthetic project. */
  configFile: string;
  /** `platformio` (ini), `kiln` (cosmiconfig) or `synthetic` (made from command-line options, no file). */
  configKind: "platformio" | "kiln" | "synthetic";
  /** Every config file read (main + extra_configs), for change detection. */
  files: string[];
  dirs: ProjectDirs;
  /** All env names in file order. */
  envNames: string[];
  /** `default_envs` (may be empty). */
  defaultEnvs: string[];
  /** kiln-specific settings from a kiln config (`jobs`, `cacheDir`). */
  kiln: { jobs?: number | undefined; cacheDir?: string | undefined };
  /** Warnings found while reading (unknown options, deprecated names), with file:line. */
  warnings: string[];
  /** Resolve one env; throws ConfigError with file:line for bad values. */
  env(name: string): ResolvedEnv;
  /** The env names a multi-env command should use: `-e` list, else default_envs, else all. */
  selectEnvs(requested: readonly string[]): string[];
}

/**
 * build_flags routed like PlatformIO (platformio-ini.md §10). Every array
 * holds single argv words; `defines` are `NAME` or `NAME=VALUE` exactly as
 * the compiler must receive them after `-D`.
 */
export interface ParsedFlags {
  defines: string[];
  /** `-UNAME` words, emitted after all -D. */
  undefines: string[];
  includeDirs: string[];
  libDirs: string[];
  libs: string[];
  /** C and C++ compile flags (and -include / -isystem … with their argument). */
  ccFlags: string[];
  cFlags: string[];
  cxxFlags: string[];
  asFlags: string[];
  linkFlags: string[];
}
