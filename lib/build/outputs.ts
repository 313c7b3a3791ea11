/**
 * How a build decides an output is up to date, and records one it made:
 * shared by the runner and by the launcher's finish of a head-started build
 * (lib/build/finish.ts), so both leave the same state behind.
 */
import { readFileSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { ManifestImage } from "../core/manifest.js";
import { parseDepfile } from "./depfile.js";
import { commandSig, hashText, type BuildState, type OutputRecord } from "./state.js";

/** stat lookups shared by one build (include scans and freshness); files kiln writes are re-read after writing. */
export class Mtimes {
  private readonly cache = new Map<string, { mtimeMs: number; size: number; isFile: boolean } | null>();
  /** For the library finder: the same cached stat. */
  readonly stat = (path: string): { mtimeMs: number; size: number; isFile: boolean } | undefined => {
    let st = this.cache.get(path);
    if (st === undefined) {
      try {
        const s = statSync(path);
        st = { mtimeMs: s.mtimeMs, size: s.size, isFile: s.isFile() };
      } catch {
        st = null;
      }
      this.cache.set(path, st);
    }
    return st ?? undefined;
  };
  get(path: string): number {
    return this.stat(path)?.mtimeMs ?? -1;
  }
  forget(path: string): void {
    this.cache.delete(path);
  }
  stamp(deps: readonly string[]): string {
    let s = "";
    for (const d of deps) {
      const m = this.get(d);
      if (m < 0) return "";
      s += `${m};`;
    }
    return hashText(s);
  }
}

/** A signature: a unit's precomputed one, or an argv to hash. */
function sigOf(cmd: string | readonly string[]): string {
  return typeof cmd === "string" ? cmd : commandSig(cmd);
}

export function isFresh(rec: OutputRecord | undefined, cmd: string | readonly string[], output: string, mt: Mtimes): boolean {
  if (!rec || !rec.stamp || rec.sig !== sigOf(cmd)) return false;
  if (mt.get(output) < 0) return false;
  return mt.stamp(rec.deps) === rec.stamp;
}

/** Record an output made at `startedMs` from `deps`; an input newer than the start means it changed mid-build. */
export function record(state: BuildState, output: string, cmd: string | readonly string[], deps: string[], mt: Mtimes, startedMs: number): void {
  for (const d of deps) mt.forget(d);
  // An input modified while the tool ran may not be what it read: leave the output unstamped so the next build redoes it.
  // (A file dated in the future, e.g. from an archive, is not "modified during" anything.)
  const now = Date.now();
  const changedDuring = deps.some((d) => {
    const m = mt.get(d);
    return m > startedMs && m <= now;
  });
  state.outputs[output] = { sig: sigOf(cmd), deps, stamp: changedDuring ? "" : mt.stamp(deps) };
}

/** A compiled source's inputs: itself, then its depfile's headers (relative ones from the project folder). */
export function compiledDeps(source: string, depfile: string, projectDir: string): string[] {
  const headers = parseDepfile(readFileSync(depfile, "utf8")).map((d) => (d.startsWith("/") || /^[A-Za-z]:/.test(d) ? d : join(projectDir, d)));
  return [...new Set([source, ...headers])];
}

/** What the manifest was made from: it is rewritten only when this changes. */
export function manifestStamp(imagePaths: readonly string[], upload: unknown, size: unknown, toolchain: string, mt: Mtimes): string {
  return hashText(`${mt.stamp(imagePaths)}|${JSON.stringify(upload ?? {})}|${JSON.stringify(size ?? {})}|${toolchain}`);
}

/** An image's manifest entry: its hash and size, read now. */
export function imageEntry(file: string, fields: Omit<ManifestImage, "sha256" | "sizeBytes">): ManifestImage {
  const data = readFileSync(file);
  return { path: fields.path, sha256: createHash("sha256").update(data).digest("hex"), sizeBytes: data.length, format: fields.format, role: fields.role, offset: fields.offset };
}
