/**
 * Toolchain facts a platform asks for (the compiler's version text, whether a
 * snippet compiles), answered once per toolchain binary and cached in the
 * user cache. The key includes the binary's resolved path, size and mtime, so
 * upgrading a compiler re-probes, and a no-op build spawns nothing.
 */
import { readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";
import { tmpdir } from "node:os";
import { writeFileAtomic } from "../core/fs.js";
import { runTool } from "../core/exec.js";
import { hashText } from "./state.js";

interface ProbeCache {
  entries: Record<string, string | boolean>;
}

/** Find an executable on PATH (what execa would run), for keying the cache. */
export function whichSync(tool: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (isAbsolute(tool) || tool.includes("/")) return tool;
  const exts = process.platform === "win32" ? (env.PATHEXT ?? ".EXE;.CMD").split(";") : [""];
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    for (const e of exts) {
      const p = join(dir, tool + e);
      try {
        if (statSync(p).isFile()) return p;
      } catch {
        // keep looking
      }
    }
  }
  return undefined;
}

function toolKey(tool: string, env: Readonly<Record<string, string | undefined>>): string {
  const path = whichSync(tool, env);
  if (!path) return `missing:${tool}`;
  try {
    const st = statSync(path);
    return `${path}:${st.size}:${st.mtimeMs}`;
  } catch {
    return `missing:${path}`;
  }
}

export class Prober {
  private cache: ProbeCache | undefined;
  private dirty = false;
  constructor(
    private readonly file: string,
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly signal?: AbortSignal,
  ) {}

  private load(): ProbeCache {
    if (!this.cache) {
      try {
        this.cache = JSON.parse(readFileSync(this.file, "utf8")) as ProbeCache;
        if (typeof this.cache.entries !== "object") throw new Error("bad cache");
      } catch {
        this.cache = { entries: {} };
      }
    }
    return this.cache;
  }

  /** First line of `<tool> --version`, or "" when the tool is missing. */
  async toolVersion(tool: string): Promise<string> {
    const key = `version:${toolKey(tool, this.env)}`;
    const c = this.load();
    const hit = c.entries[key];
    if (typeof hit === "string") return hit;
    let version = "";
    try {
      const r = await runTool([tool, "--version"], { signal: this.signal });
      version = r.exitCode === 0 ? (r.stdout.split("\n")[0] ?? "").trim() : "";
    } catch {
      version = "";
    }
    c.entries[key] = version;
    this.dirty = true;
    return version;
  }

  /** Whether `source` compiles (-fsyntax-only) with `argvPrefix`. */
  async probe(argvPrefix: string[], source: string, ext: "c" | "cpp"): Promise<boolean> {
    const tool = argvPrefix[0]!;
    const key = `probe:${toolKey(tool, this.env)}:${hashText([...argvPrefix, ext, source].join("\0"))}`;
    const c = this.load();
    const hit = c.entries[key];
    if (typeof hit === "boolean") return hit;
    const dir = await mkdtemp(join(tmpdir(), "kiln-probe-"));
    let ok = false;
    try {
      const file = join(dir, `probe.${ext}`);
      await writeFile(file, source);
      const r = await runTool([...argvPrefix, "-fsyntax-only", file], { signal: this.signal });
      ok = r.exitCode === 0;
    } catch {
      ok = false;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    c.entries[key] = ok;
    this.dirty = true;
    return ok;
  }

  async save(): Promise<void> {
    if (this.dirty && this.cache) await writeFileAtomic(this.file, JSON.stringify(this.cache));
    this.dirty = false;
  }
}
