/**
 * PlatformIO's `platform = native`: the host's own C/C++ compiler (CC/CXX
 * respected), a program at `<buildDir>/program`, no packages, no boards.
 */
import { join } from "node:path";
import { flagsToArgs, applyUnflags } from "../project/flags.js";
import type { BuildPlan, PlanContext, PlatformModule } from "./types.js";

/** Split a CC-style variable (`ccache gcc -m32`) into argv words. */
function toolWords(value: string | undefined, fallback: string): string[] {
  const words = (value ?? "").trim().split(/\s+/).filter(Boolean);
  return words.length ? words : [fallback];
}

export const nativePlatform: PlatformModule = {
  id: "native",
  title: "Native (host compiler)",
  frameworks: [],
  boards: () => [],
  resolveBoard: () => undefined,
  packages: () => [],
  async plan(ctx: PlanContext): Promise<BuildPlan> {
    const { env, project, hostEnv } = ctx;
    const cc = toolWords(hostEnv.CC, "gcc");
    const cxx = toolWords(hostEnv.CXX, "g++");
    const ar = toolWords(hostEnv.AR, "ar")[0]!;
    const debug = env.buildType === "debug" ? ["-Og", "-g2", "-ggdb2"] : [];
    const common = flagsToArgs(applyUnflags(ctx.flags.build, ctx.flags.unflags));
    const src = flagsToArgs(applyUnflags(ctx.flags.src, ctx.flags.unflags));
    const includeDirs = [project.dirs.include, project.dirs.src];
    const recipe = (extra: typeof common) => ({
      c: [...cc, ...debug, ...common.c, ...extra.c],
      cxx: [...cxx, ...debug, ...common.cxx, ...extra.cxx],
      asm: [...cc, ...debug, ...common.asm, ...extra.asm],
      includeDirs,
    });
    const empty = { c: [], cxx: [], asm: [], link: [], libs: [] };
    const program = join(ctx.buildDir, process.platform === "win32" ? "program.exe" : "program");
    return {
      env: env.name,
      platform: "native",
      buildDir: ctx.buildDir,
      toolchain: { cc: cc.join(" "), cxx: cxx.join(" "), ar, arFlags: ["rcs"], identity: "" },
      project: { srcDir: project.dirs.src, srcFilter: env.buildSrcFilter, recipe: recipe(src), sketch: false },
      libraries: {
        storages: [...env.libExtraDirs, project.dirs.lib],
        ignore: env.libIgnore,
        ldfMode: env.libLdfMode,
        recipe: recipe(empty),
        archive: env.libArchive,
      },
      groups: [],
      link: {
        output: program,
        argv: (objects, archives, tmpOutput) => [...cxx, ...debug, ...common.link, "-o", tmpOutput, ...objects, ...archives, ...common.libs],
      },
      images: [],
      manifestImages: [{ path: program.slice(ctx.buildDir.length + 1), format: "elf", role: "program" }],
    };
  },
};
