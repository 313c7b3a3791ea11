/**
 * Arduino Boards Manager `package_index.json` files: parse, validate, and
 * resolve tools and platform archives for a host (reference/packages.md §1–3).
 * Pure functions over parsed data: fetching and caching live in index-cache.ts.
 */
import { pickForHost, type Host } from "./hosts.js";

/** One downloadable archive. `checksum` is `ALG:hex` as the index writes it. */
export interface IndexArchive {
  url: string;
  archiveFileName: string;
  checksum: string;
  size: number;
}

export interface IndexSystem extends IndexArchive {
  host: string;
}

export interface IndexTool {
  packager: string;
  name: string;
  version: string;
  systems: IndexSystem[];
}

export interface IndexToolRef {
  packager: string;
  name: string;
  /** Absent for discovery/monitor dependencies: the newest known is used. */
  version?: string | undefined;
}

export interface IndexPlatform extends IndexArchive {
  packager: string;
  architecture: string;
  name: string;
  version: string;
  toolsDependencies: IndexToolRef[];
  discoveryDependencies: IndexToolRef[];
  monitorDependencies: IndexToolRef[];
}

/** Every tool and platform of one or more loaded indexes. */
export interface PackageIndex {
  /** Where each index came from (URL or file), for messages. */
  sources: string[];
  tools: IndexTool[];
  platforms: IndexPlatform[];
}

export class IndexFormatError extends Error {}

function str(v: unknown, what: string): string {
  if (typeof v !== "string" || v === "") throw new IndexFormatError(`${what} must be a non-empty string`);
  return v;
}

/** `size` is a string officially but a number in real indexes: accept both. */
function size(v: unknown, what: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new IndexFormatError(`${what} must be a byte count, got ${JSON.stringify(v)}`);
  return n;
}

function archive(o: Record<string, unknown>, what: string): IndexArchive {
  const checksum = str(o.checksum, `${what}.checksum`);
  parseChecksum(checksum, `${what}.checksum`);
  return { url: str(o.url, `${what}.url`), archiveFileName: str(o.archiveFileName, `${what}.archiveFileName`), checksum, size: size(o.size, `${what}.size`) };
}

function refs(v: unknown, what: string): IndexToolRef[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new IndexFormatError(`${what} must be an array`);
  return v.map((d: Record<string, unknown>, i) => ({
    packager: str(d.packager, `${what}[${i}].packager`),
    name: str(d.name, `${what}[${i}].name`),
    version: d.version === undefined ? undefined : str(d.version, `${what}[${i}].version`),
  }));
}

/** Parse one index document. Throws IndexFormatError naming the bad field. */
export function parseIndex(data: unknown, source: string): PackageIndex {
  if (typeof data !== "object" || data === null || !Array.isArray((data as { packages?: unknown }).packages)) {
    throw new IndexFormatError("the root must be an object with a 'packages' array");
  }
  const out: PackageIndex = { sources: [source], tools: [], platforms: [] };
  for (const [pi, p] of ((data as { packages: Array<Record<string, unknown>> }).packages).entries()) {
    const packager = str(p.name, `packages[${pi}].name`);
    for (const [i, pl] of ((p.platforms as Array<Record<string, unknown>> | undefined) ?? []).entries()) {
      const w = `${packager}.platforms[${i}]`;
      out.platforms.push({
        packager,
        architecture: str(pl.architecture, `${w}.architecture`),
        name: typeof pl.name === "string" ? pl.name : "",
        version: str(pl.version, `${w}.version`),
        ...archive(pl, w),
        toolsDependencies: refs(pl.toolsDependencies, `${w}.toolsDependencies`),
        discoveryDependencies: refs(pl.discoveryDependencies, `${w}.discoveryDependencies`),
        monitorDependencies: refs(pl.monitorDependencies, `${w}.monitorDependencies`),
      });
    }
    for (const [i, t] of ((p.tools as Array<Record<string, unknown>> | undefined) ?? []).entries()) {
      const w = `${packager}.tools[${i}]`;
      const systems = ((t.systems as Array<Record<string, unknown>> | undefined) ?? []).map((s, j) => ({ host: str(s.host, `${w}.systems[${j}].host`), ...archive(s, `${w}.systems[${j}]`) }));
      out.tools.push({ packager, name: str(t.name, `${w}.name`), version: str(t.version, `${w}.version`), systems });
    }
  }
  return out;
}

/** Merge several parsed indexes; cross-packager dependencies resolve across all of them. */
export function mergeIndexes(indexes: readonly PackageIndex[]): PackageIndex {
  return { sources: indexes.flatMap((i) => i.sources), tools: indexes.flatMap((i) => i.tools), platforms: indexes.flatMap((i) => i.platforms) };
}

export type ChecksumAlgorithm = "sha256" | "sha1" | "md5";

/** `SHA-256:hex` → {sha256, hex}; MD5 and SHA-1 are accepted but weak. */
export function parseChecksum(text: string, what = "checksum"): { algorithm: ChecksumAlgorithm; hex: string } {
  const m = /^(SHA-256|SHA-1|MD5):([0-9a-fA-F]+)$/.exec(text.trim());
  const algorithm = m ? ({ "SHA-256": "sha256", "SHA-1": "sha1", MD5: "md5" } as const)[m[1] as "SHA-256" | "SHA-1" | "MD5"] : undefined;
  const hex = m?.[2]?.toLowerCase();
  const lengths = { sha256: 64, sha1: 40, md5: 32 };
  if (!algorithm || !hex || hex.length !== lengths[algorithm]) throw new IndexFormatError(`${what} must be 'SHA-256:<64 hex>' (or SHA-1/MD5), got '${text}'`);
  return { algorithm, hex };
}

/** Numeric-aware version order ("1.8.10" > "1.8.9"); good enough for picking the newest. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

export function findTool(index: PackageIndex, ref: IndexToolRef): IndexTool | undefined {
  const same = index.tools.filter((t) => t.packager === ref.packager && t.name === ref.name);
  if (ref.version !== undefined) return same.find((t) => t.version === ref.version);
  return same.sort((a, b) => compareVersions(b.version, a.version))[0];
}

export function findPlatform(index: PackageIndex, packager: string, architecture: string, version?: string): IndexPlatform | undefined {
  const same = index.platforms.filter((p) => p.packager === packager && p.architecture === architecture);
  if (version !== undefined) return same.find((p) => p.version === version);
  return same.sort((a, b) => compareVersions(b.version, a.version))[0];
}

/** The system of a tool for a host (anchored triplets, documented fallbacks, `all`). */
export function toolSystem(tool: IndexTool, host: Host): IndexSystem | undefined {
  return pickForHost(tool.systems, host, (s) => s.host);
}

export interface ResolvedPlatform {
  platform: IndexPlatform;
  /** Every dependency, resolved to a tool (versionless ones to the newest known). */
  tools: Array<{ ref: IndexToolRef; tool: IndexTool | undefined; role: "tools" | "discovery" | "monitor" }>;
}

/** A platform and all its dependencies, looked up across the merged index. */
export function resolvePlatform(index: PackageIndex, packager: string, architecture: string, version?: string): ResolvedPlatform | undefined {
  const platform = findPlatform(index, packager, architecture, version);
  if (!platform) return undefined;
  const tools: ResolvedPlatform["tools"] = [];
  const add = (list: IndexToolRef[], role: "tools" | "discovery" | "monitor"): void => {
    for (const ref of list) tools.push({ ref, tool: findTool(index, ref), role });
  };
  add(platform.toolsDependencies, "tools");
  add(platform.discoveryDependencies, "discovery");
  add(platform.monitorDependencies, "monitor");
  return { platform, tools };
}
