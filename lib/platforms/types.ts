/**
 * What a platform module is: data plus pure functions. A platform describes
 * the packages an env needs and the BuildPlan for it; lib/build runs the plan,
 * lib/toolchains installs the packages, lib/flash flashes the manifest. A
 * platform never spawns, downloads or prints anything.
 */
import type { ParsedFlags, Project, ResolvedEnv } from "../project/types.js";

export interface BoardDefinition {
  id: string;
  name: string;
  platform: string;
  vendor?: string | undefined;
  mcu: string;
  /** Clock in Hz (from `16000000L`). */
  fCpu: number;
  /** Flash and RAM available to the program, bytes. */
  flashBytes: number;
  ramBytes: number;
  frameworks: string[];
  /** USB ids as `vvvv:pppp`, lower-case hex. */
  usbIds: string[];
  /** The whole board manifest after `board_*` overrides (PlatformIO's board JSON shape). */
  manifest: Record<string, unknown>;
}

/** A package a plan needs, by PlatformIO name (`toolchain-atmelavr`). */
export interface PackageRequest {
  name: string;
  kind: "toolchain" | "framework" | "uploader" | "tool";
  /** Needed only for upload/flash commands. */
  forUpload?: boolean;
}

/** argv prefixes per language; the builder appends `-I…`, `-c src -o obj -MMD -MF dep`. */
export interface CompileRecipe {
  c: string[];
  cxx: string[];
  asm: string[];
  /** Include dirs of this scope, in order (before library include dirs). */
  includeDirs: string[];
}

/** A fixed set of sources compiled with one recipe (the Arduino core, a variant). */
export interface SourceGroup {
  /** Stable id, also the object subdirectory (`core`, `variant`). */
  id: string;
  root: string;
  /** Absolute source paths. */
  sources: string[];
  recipe: CompileRecipe;
  /** Archive file name inside the build dir (`core.a`); absent → objects linked directly. */
  archive?: string | undefined;
  /**
   * Shareable across projects: the builder may fetch/put the compiled archive
   * in the user cache, keyed by the recipe, the toolchain identity and the
   * sources' content.
   */
  shared?: boolean | undefined;
}

export interface ImageStep {
  label: string;
  /** Final output path (absolute). */
  output: string;
  /** The argv writing to `tmpOutput`; the builder renames it to `output` on success. */
  argv(tmpOutput: string): string[];
}

export interface ImageInfo {
  /** Path relative to the build dir. */
  path: string;
  /** `hex`, `bin`, `eep`, `elf`, `uf2`. */
  format: string;
  /** Flash offset for raw images (ESP), absent for self-addressed formats. */
  offset?: number | undefined;
  /** What the image is for: `flash`, `eeprom`, `bootloader`, `partitions`, `program`. */
  role: string;
}

export interface SizeRecipe {
  argv: string[];
  /** Turn the size tool's stdout into byte counts. */
  parse(stdout: string): { flashBytes: number; ramBytes: number };
  flashMaxBytes?: number | undefined;
  ramMaxBytes?: number | undefined;
}

export interface BuildPlan {
  env: string;
  platform: string;
  board?: BoardDefinition | undefined;
  /** Per-env build directory (absolute). */
  buildDir: string;
  toolchain: {
    cc: string;
    cxx: string;
    ar: string;
    /** `ar` arguments before the archive name (`rcs`). */
    arFlags: string[];
    /** Words that identify what the compiler produces (version text), for cache keys. */
    identity: string;
  };
  project: {
    srcDir: string;
    /** build_src_filter items. */
    srcFilter: string[];
    recipe: CompileRecipe;
    /** Arduino sketches: convert `.ino`/`.pde` into one `.ino.cpp` first. */
    sketch: boolean;
  };
  libraries: {
    /** Folders of libraries, searched in order (lib_extra_dirs, lib_dir, framework libraries). */
    storages: string[];
    ignore: string[];
    ldfMode: string;
    recipe: CompileRecipe;
    /** Archive each library (lib_archive). */
    archive: boolean;
  };
  /** Framework sources compiled regardless of includes (core, variant). */
  groups: SourceGroup[];
  link: {
    /** Final program path (absolute): firmware.elf, program. */
    output: string;
    /** The link argv for these objects and archives, writing `tmpOutput` (renamed to `output` on success). */
    argv(objects: string[], archives: string[], tmpOutput: string): string[];
  };
  images: ImageStep[];
  size?: SizeRecipe | undefined;
  /** The images a flasher needs, for the firmware manifest. */
  manifestImages: ImageInfo[];
  /** Settings the flasher needs, copied into the manifest. */
  upload?: Record<string, unknown> | undefined;
  /** Tool paths the flasher needs (`avrdude`, `avrdude.conf`), copied into the manifest. */
  tools?: Record<string, string> | undefined;
}

export interface PlanContext {
  project: Project;
  env: ResolvedEnv;
  board: BoardDefinition | undefined;
  /** build_flags / build_src_flags / build_unflags, routed. */
  flags: { build: ParsedFlags; src: ParsedFlags; unflags: ParsedFlags };
  /** Installed package dirs by name (`toolchain-atmelavr` → /…/store/…). */
  packages: Record<string, string>;
  buildDir: string;
  /** The process environment (CC/CXX for native). */
  hostEnv: Readonly<Record<string, string | undefined>>;
  /**
   * Ask the builder whether a snippet compiles with an argv prefix; answered
   * from a cache when it can. Lets a platform detect toolchain quirks without
   * spawning anything itself.
   */
  probe(argvPrefix: string[], source: string, ext: "c" | "cpp"): Promise<boolean>;
  /** The toolchain's `--version` first line (cached). */
  toolVersion(tool: string): Promise<string>;
}

export interface PlatformModule {
  id: string;
  title: string;
  /** Frameworks this platform supports (`arduino`); native has none. */
  frameworks: string[];
  boards(): BoardDefinition[];
  /** The board for an env, with `board_*` overrides applied; throws UnknownBoardError. */
  resolveBoard(env: ResolvedEnv): BoardDefinition | undefined;
  packages(env: ResolvedEnv, board: BoardDefinition | undefined): PackageRequest[];
  plan(ctx: PlanContext): Promise<BuildPlan>;
  /**
   * The manifest's `upload` and `tools` as this machine sees them, for a
   * firmware built elsewhere: a peer's tool paths mean nothing here, and what
   * runs on this machine is never a peer's choice.
   */
  flashSettings?(env: ResolvedEnv, board: BoardDefinition | undefined, packages: Record<string, string>): Promise<{ upload: Record<string, unknown>; tools: Record<string, string> }>;
}
