/**
 * Where a package comes from: kiln's catalog (the default), or what the env's
 * `platform_packages` names instead (PlatformIO's syntax, `NAME @ SPEC`):
 *
 *   NAME @ symlink:///path          a directory used in place (never copied)
 *   NAME @ file:///path/x.tar.gz    a local archive (hashed, pinned in kiln.lock)
 *   NAME @ file:///path/dir         a local directory, snapshotted into the store
 *   NAME @ https://…/x.zip[#sha256=HEX]   an archive by URL (pinned on first download)
 *   NAME @ arduino:PACKAGER/TOOL@VERSION  a tool (or core, by architecture) from the indexUrls
 *   NAME @ system                   a system install found on PATH (Debian's avr-gcc → /usr)
 *
 * A local source is used only when configured: it never replaces a pinned
 * package silently (the lock records the source; changing it is a lock change).
 */
import { access, stat } from "node:fs/promises";
import { constants } from "node:fs";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { errnoCode } from "../core/errors.js";
import { findPlatform, findTool, parseChecksum, toolSystem, type IndexArchive, type PackageIndex } from "./arduino-index.js";
import { catalogPackage, loadCatalog, type CatalogArchive } from "./catalog.js";
import { PackageUnavailableError, PlatformPackageSpecError } from "./errors.js";
import { CATALOG_HOSTS, type Host } from "./hosts.js";
import type { LockedArchive, LockedPackage } from "./lockfile.js";

export type PackageSpec =
  | { type: "symlink"; path: string }
  | { type: "file"; path: string; sha256?: string | undefined }
  | { type: "url"; url: string; sha256?: string | undefined }
  | { type: "arduino"; packager: string; tool: string; version?: string | undefined }
  | { type: "system" };

export interface PlatformPackageItem {
  name: string;
  spec: PackageSpec;
  raw: string;
}

function fragmentSha(url: string): { url: string; sha256?: string } {
  const m = /#sha256=([0-9a-fA-F]{64})$/.exec(url);
  return m ? { url: url.slice(0, m.index), sha256: m[1]!.toLowerCase() } : { url };
}

/** Parse one `platform_packages` item. Throws PlatformPackageSpecError. */
export function parsePlatformPackage(raw: string): PlatformPackageItem {
  const at = raw.indexOf("@");
  if (at < 0) throw new PlatformPackageSpecError(raw, "expected 'NAME @ SOURCE'");
  const name = raw.slice(0, at).trim().replace(/^[\w.-]+\//, "");
  const text = raw.slice(at + 1).trim();
  if (!/^[\w.+-]+$/.test(name)) throw new PlatformPackageSpecError(raw, `'${name}' is not a package name`);
  if (!text) throw new PlatformPackageSpecError(raw, "no source after '@'");
  if (text.startsWith("symlink://")) {
    const path = fileURLToPath(`file://${text.slice("symlink://".length)}`);
    return { name, spec: { type: "symlink", path }, raw };
  }
  if (text.startsWith("file://")) {
    const { url, sha256 } = fragmentSha(text);
    return { name, spec: { type: "file", path: fileURLToPath(url), sha256 }, raw };
  }
  if (/^https?:\/\//.test(text)) {
    if (/\.git(#.*)?$/.test(text) || text.startsWith("git+")) throw new PlatformPackageSpecError(raw, "git sources are not supported; use a release archive URL");
    return { name, spec: { type: "url", ...fragmentSha(text) }, raw };
  }
  const ard = /^arduino:([\w.-]+)\/([\w.+-]+)(?:@(.+))?$/.exec(text);
  if (ard) return { name, spec: { type: "arduino", packager: ard[1]!, tool: ard[2]!, version: ard[3] }, raw };
  if (text === "system") return { name, spec: { type: "system" }, raw };
  if (isAbsolute(text)) throw new PlatformPackageSpecError(raw, `write a path as symlink://${text} (used in place) or file://${text} (copied)`);
  throw new PlatformPackageSpecError(raw, `'${text}' is not a source kiln knows (registry versions are not supported)`);
}

/** Programs that identify a system install, for `NAME @ system`. */
const SYSTEM_PROGRAMS: Record<string, string> = {
  "toolchain-atmelavr": "avr-gcc",
  "tool-avrdude": "avrdude",
  "toolchain-gccarmnoneeabi": "arm-none-eabi-gcc",
  "toolchain-xtensa": "xtensa-lx106-elf-gcc",
  "toolchain-xtensa-esp-elf": "xtensa-esp32-elf-gcc",
  "toolchain-riscv32-esp": "riscv32-esp-elf-gcc",
  "tool-openocd": "openocd",
  "tool-dfuutil-arduino": "dfu-util",
  "tool-picotool-rp2040-earlephilhower": "picotool",
};

async function findOnPath(program: string, env: Readonly<Record<string, string | undefined>>): Promise<string | undefined> {
  const exts = process.platform === "win32" ? (env.PATHEXT ?? ".EXE;.CMD").split(";") : [""];
  for (const dir of (env.PATH ?? env.Path ?? "").split(delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = join(dir, program + ext);
      try {
        await access(p, constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

function locked(a: CatalogArchive | IndexArchive): LockedArchive {
  if ("triplet" in a) return { url: a.url, sha256: a.sha256, sha1: a.sha1, md5: a.md5, size: a.size };
  const c = parseChecksum(a.checksum);
  return { url: a.url, size: a.size, [c.algorithm]: c.hex };
}

export interface ResolveContext {
  platform: string;
  /** Loads the configured Arduino indexes (only when an `arduino:` source needs them). */
  indexes: () => Promise<PackageIndex>;
  env: Readonly<Record<string, string | undefined>>;
}

/** Resolve a package to what kiln.lock records. No download happens here. */
export async function resolvePackage(ctx: ResolveContext, name: string, item: PlatformPackageItem | undefined, forUpload: boolean | undefined): Promise<LockedPackage> {
  if (!item) {
    const catalog = await loadCatalog();
    const pkg = catalogPackage(catalog, ctx.platform, name);
    if (!pkg) {
      const known = catalog.platforms[ctx.platform];
      throw new PackageUnavailableError(name, known ? `not in kiln's catalog for platform '${ctx.platform}' (it has ${Object.keys(known.packages).join(", ")})` : `kiln's catalog has no platform '${ctx.platform}'`);
    }
    const archives: Record<string, LockedArchive> = {};
    for (const h of CATALOG_HOSTS) if (pkg.hosts[h]) archives[h] = locked(pkg.hosts[h]!);
    return { version: pkg.version, source: `catalog:${ctx.platform}`, type: "archive", archives, forUpload };
  }
  const source = `platform_packages:${item.raw.trim()}`;
  const spec = item.spec;
  switch (spec.type) {
    case "symlink": {
      await mustBeDir(item, spec.path);
      return { version: "symlink", source, type: "symlink", path: spec.path, forUpload };
    }
    case "file": {
      const s = await stat(spec.path).catch((e: unknown) => {
        if (errnoCode(e) === "ENOENT") throw new PlatformPackageSpecError(item.raw, `${spec.path} does not exist`);
        throw e;
      });
      if (s.isDirectory()) return { version: "directory", source, type: "directory", path: spec.path, forUpload };
      return { version: "file", source, type: "archive", archives: { "*": { url: `file://${spec.path}`, sha256: spec.sha256, size: s.size } }, forUpload };
    }
    case "url":
      return { version: "url", source, type: "archive", archives: { "*": { url: spec.url, sha256: spec.sha256 } }, forUpload };
    case "system": {
      const program = SYSTEM_PROGRAMS[name];
      if (!program) throw new PlatformPackageSpecError(item.raw, `kiln does not know which program identifies '${name}'; use ${name} @ symlink:///its/prefix`);
      const found = await findOnPath(program, ctx.env);
      if (!found) throw new PackageUnavailableError(name, `'${program}' is not on PATH (platform_packages asks for the system install)`, `install it (Debian: apt-get install ${program === "avr-gcc" ? "gcc-avr avr-libc" : program}) or point at it with ${name} @ symlink:///prefix`);
      return { version: "system", source, type: "system", path: dirname(dirname(found)), forUpload };
    }
    case "arduino": {
      const index = await ctx.indexes();
      const tool = findTool(index, { packager: spec.packager, name: spec.tool, version: spec.version });
      if (tool) {
        const archives: Record<string, LockedArchive> = {};
        for (const h of CATALOG_HOSTS) {
          const sys = toolSystem(tool, h as Host);
          if (sys) archives[h] = locked(sys);
        }
        return { version: tool.version, source, type: "archive", archives, forUpload };
      }
      const core = findPlatform(index, spec.packager, spec.tool, spec.version);
      if (core) return { version: core.version, source, type: "archive", archives: { "*": locked(core) }, forUpload };
      throw new PackageUnavailableError(name, `${spec.packager}/${spec.tool}${spec.version ? `@${spec.version}` : ""} is in none of the configured indexes (${index.sources.join(", ") || "indexUrls is empty"})`, "add the vendor's package_index.json URL to the indexUrls setting");
    }
  }
}

async function mustBeDir(item: PlatformPackageItem, path: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isDirectory()) throw new PlatformPackageSpecError(item.raw, `${path} is not a directory`);
}
