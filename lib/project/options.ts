/**
 * The option table PlatformIO 6.1 knows (platformio-core
 * `platformio/project/options.py`), reduced to what reading needs: scope,
 * whether the value is a list, its type, its default, its environment
 * variable and its old names.
 */

export type OptionScope = "platformio" | "env";
export type OptionType =
  | { kind: "string" }
  | { kind: "int"; min?: number; max?: number }
  | { kind: "bool" }
  | { kind: "choice"; choices: readonly string[]; upper?: boolean };

export interface OptionMeta {
  scope: OptionScope;
  name: string;
  description: string;
  multiple: boolean;
  type: OptionType;
  /** Default, interpolated like a written value (so `${platformio.core_dir}/lib` works). */
  default?: string;
  sysenvvar?: string;
  oldnames?: readonly string[];
}

const str = { kind: "string" } as const;
const int = { kind: "int" } as const;
const bool = { kind: "bool" } as const;
const choice = (choices: readonly string[], upper = false): OptionType => ({ kind: "choice", choices, upper });

type Row = [name: string, description: string, extra?: Partial<Omit<OptionMeta, "scope" | "name" | "description">>];

const M = { multiple: true } as const;

const platformioRows: Row[] = [
  ["name", "Project name"],
  ["description", "Project description"],
  ["default_envs", "Environments processed by default", { ...M, sysenvvar: "PLATFORMIO_DEFAULT_ENVS", oldnames: ["env_default"] }],
  ["extra_configs", "Extra configuration files", M],
  ["core_dir", "PlatformIO core directory", { default: "~/.platformio", sysenvvar: "PLATFORMIO_CORE_DIR", oldnames: ["home_dir"] }],
  ["globallib_dir", "Global libraries directory", { default: "${platformio.core_dir}/lib", sysenvvar: "PLATFORMIO_GLOBALLIB_DIR" }],
  ["platforms_dir", "Platforms directory", { default: "${platformio.core_dir}/platforms", sysenvvar: "PLATFORMIO_PLATFORMS_DIR" }],
  ["packages_dir", "Packages directory", { default: "${platformio.core_dir}/packages", sysenvvar: "PLATFORMIO_PACKAGES_DIR" }],
  ["cache_dir", "Cache directory", { default: "${platformio.core_dir}/.cache", sysenvvar: "PLATFORMIO_CACHE_DIR" }],
  ["build_cache_dir", "Shared build cache directory", { sysenvvar: "PLATFORMIO_BUILD_CACHE_DIR" }],
  // kiln keeps its work under .kiln, not PlatformIO's .pio, so the two tools never fight over one tree.
  ["workspace_dir", "Workspace directory", { default: "${PROJECT_DIR}/.kiln", sysenvvar: "PLATFORMIO_WORKSPACE_DIR" }],
  ["build_dir", "Build directory", { default: "${platformio.workspace_dir}/build", sysenvvar: "PLATFORMIO_BUILD_DIR" }],
  ["libdeps_dir", "Library dependencies directory", { default: "${platformio.workspace_dir}/libdeps", sysenvvar: "PLATFORMIO_LIBDEPS_DIR" }],
  ["include_dir", "Include directory", { default: "${PROJECT_DIR}/include", sysenvvar: "PLATFORMIO_INCLUDE_DIR" }],
  ["src_dir", "Source directory", { default: "${PROJECT_DIR}/src", sysenvvar: "PLATFORMIO_SRC_DIR" }],
  ["lib_dir", "Private libraries directory", { default: "${PROJECT_DIR}/lib", sysenvvar: "PLATFORMIO_LIB_DIR" }],
  ["data_dir", "Data directory", { default: "${PROJECT_DIR}/data", sysenvvar: "PLATFORMIO_DATA_DIR" }],
  ["test_dir", "Test directory", { default: "${PROJECT_DIR}/test", sysenvvar: "PLATFORMIO_TEST_DIR" }],
  ["boards_dir", "Custom boards directory", { default: "${PROJECT_DIR}/boards", sysenvvar: "PLATFORMIO_BOARDS_DIR" }],
  ["monitor_dir", "Monitor filters directory", { default: "${PROJECT_DIR}/monitor", sysenvvar: "PLATFORMIO_MONITOR_DIR" }],
  ["shared_dir", "Shared directory", { default: "${PROJECT_DIR}/shared", sysenvvar: "PLATFORMIO_SHARED_DIR" }],
];

const envRows: Row[] = [
  ["platform", "Development platform"],
  ["platform_packages", "Custom packages and versions", M],
  ["framework", "Frameworks", M],
  ["board", "Board ID"],
  ["board_build.mcu", "Microcontroller (MCU) type", { oldnames: ["board_mcu"] }],
  ["board_build.f_cpu", "MCU frequency", { oldnames: ["board_f_cpu"] }],
  ["board_build.f_flash", "Flash frequency", { oldnames: ["board_f_flash"] }],
  ["board_build.flash_mode", "Flash mode", { oldnames: ["board_flash_mode"] }],
  ["board_build.ldscript", "Linker script"],
  ["build_type", "Build configuration", { type: choice(["release", "test", "debug"]), default: "release" }],
  ["build_flags", "Build flags", { ...M, sysenvvar: "PLATFORMIO_BUILD_FLAGS" }],
  ["build_src_flags", "Project source build flags", { ...M, sysenvvar: "PLATFORMIO_BUILD_SRC_FLAGS", oldnames: ["src_build_flags"] }],
  ["build_unflags", "Build flags to remove", { ...M, sysenvvar: "PLATFORMIO_BUILD_UNFLAGS" }],
  ["build_src_filter", "Source filter", { ...M, default: "+<*> -<.git/> -<.svn/>", sysenvvar: "PLATFORMIO_BUILD_SRC_FILTER", oldnames: ["src_filter"] }],
  ["targets", "Custom targets", M],
  ["upload_port", "Upload port", { sysenvvar: "PLATFORMIO_UPLOAD_PORT" }],
  ["upload_protocol", "Upload protocol"],
  ["upload_speed", "Upload speed", { type: int }],
  ["upload_flags", "Upload flags", { ...M, sysenvvar: "PLATFORMIO_UPLOAD_FLAGS" }],
  ["upload_resetmethod", "Upload reset method"],
  ["upload_command", "Custom upload command"],
  ["monitor_port", "Monitor port"],
  ["monitor_speed", "Monitor speed", { type: int, default: "9600", oldnames: ["monitor_baud"] }],
  ["monitor_parity", "Monitor parity", { type: choice(["N", "E", "O", "S", "M"], true), default: "N" }],
  ["monitor_filters", "Monitor filters", M],
  ["monitor_rts", "Monitor RTS line state", { type: { kind: "int", min: 0, max: 1 } }],
  ["monitor_dtr", "Monitor DTR line state", { type: { kind: "int", min: 0, max: 1 } }],
  ["monitor_eol", "Monitor end of line", { type: choice(["CR", "LF", "CRLF"], true), default: "CRLF" }],
  ["monitor_raw", "Monitor raw mode", { type: bool, default: "no" }],
  ["monitor_echo", "Monitor echo", { type: bool, default: "no" }],
  ["monitor_encoding", "Monitor encoding", { default: "UTF-8" }],
  ["lib_deps", "Library dependencies", { ...M, oldnames: ["lib_use", "lib_force", "lib_install"] }],
  ["lib_ignore", "Libraries to ignore", M],
  ["lib_extra_dirs", "Extra library storages", { ...M, sysenvvar: "PLATFORMIO_LIB_EXTRA_DIRS" }],
  ["lib_ldf_mode", "Library dependency finder mode", { type: choice(["off", "chain", "deep", "chain+", "deep+"]), default: "chain" }],
  ["lib_compat_mode", "Library compatibility mode", { type: choice(["off", "soft", "strict"]), default: "soft" }],
  ["lib_archive", "Archive libraries", { type: bool, default: "yes" }],
  ["extends", "Sections this one extends", M],
  ["extra_scripts", "Extra scripts", { ...M, sysenvvar: "PLATFORMIO_EXTRA_SCRIPTS", oldnames: ["extra_script"] }],
  ["check_tool", "Static analysis tool", { ...M, default: "cppcheck" }],
  ["check_src_filters", "Static analysis source filter", { ...M, oldnames: ["check_patterns"] }],
  ["check_flags", "Static analysis flags", M],
  ["check_severity", "Static analysis severity", M],
  ["check_skip_packages", "Skip packages in static analysis", { type: bool }],
  ["test_framework", "Unit test framework", { type: choice(["doctest", "googletest", "unity", "custom"]), default: "unity" }],
  ["test_filter", "Tests to run", M],
  ["test_ignore", "Tests to ignore", M],
  ["test_port", "Test port"],
  ["test_speed", "Test port speed", { type: int, default: "115200" }],
  ["test_build_src", "Build project sources with tests", { type: bool, oldnames: ["test_build_project_src"] }],
  ["test_testing_command", "Testing command", M],
  ["debug_tool", "Debug tool"],
  ["debug_build_flags", "Debug build flags", { ...M, default: "-Og -g2 -ggdb2" }],
  ["debug_init_break", "Initial breakpoint", { default: "tbreak main" }],
  ["debug_init_cmds", "Debugger init commands", M],
  ["debug_extra_cmds", "Debugger extra commands", M],
  ["debug_load_cmds", "Debugger load commands", { ...M, default: "load", oldnames: ["debug_load_cmd"] }],
  ["debug_load_mode", "Debugger load mode", { type: choice(["always", "modified", "manual"]), default: "always" }],
  ["debug_server", "Debug server", M],
  ["debug_port", "Debug port"],
  ["debug_speed", "Debug speed"],
  ["debug_svd_path", "SVD file"],
  ["debug_server_ready_pattern", "Debug server ready pattern"],
  ["debug_test", "Test to debug"],
];

function build(scope: OptionScope, rows: Row[]): Map<string, OptionMeta> {
  const out = new Map<string, OptionMeta>();
  for (const [name, description, extra] of rows) {
    out.set(name, { scope, name, description, multiple: false, type: str, ...extra });
  }
  return out;
}

export const OPTIONS: Record<OptionScope, Map<string, OptionMeta>> = {
  platformio: build("platformio", platformioRows),
  env: build("env", envRows),
};

const OLD_NAMES: Record<OptionScope, Map<string, OptionMeta>> = { platformio: new Map(), env: new Map() };
for (const scope of ["platformio", "env"] as const) {
  for (const meta of OPTIONS[scope].values()) for (const old of meta.oldnames ?? []) OLD_NAMES[scope].set(old, meta);
}

/** `platformio` for [platformio], `env` for [env] and [env:*], undefined for free sections. */
export function sectionScope(section: string): OptionScope | undefined {
  const scope = section.includes(":") ? section.slice(0, section.indexOf(":")) : section;
  return scope === "platformio" || scope === "env" ? scope : undefined;
}

/** The option's metadata, by current or old name. */
export function findOptionMeta(section: string, option: string): OptionMeta | undefined {
  const scope = sectionScope(section);
  if (!scope) return undefined;
  return OPTIONS[scope].get(option) ?? OLD_NAMES[scope].get(option);
}

/** The current name when `option` is an old one in this section's scope. */
export function renamedOption(section: string, option: string): string | undefined {
  const scope = sectionScope(section);
  return scope ? OLD_NAMES[scope].get(option)?.name : undefined;
}

export const CUSTOM_OPTION_PREFIXES = ["custom_", "board_"] as const;
