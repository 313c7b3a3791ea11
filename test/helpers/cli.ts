/**
 * Spawn the built `bin/kiln.js` like a user would, with a private KILN_HOME,
 * and collect exit code, stdout and stderr.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (build-test/test/helpers → ../../..). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const kilnBin = join(repoRoot, "bin", "kiln.js");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as NDJSON (only lines that parse). */
  events: Array<Record<string, unknown>>;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
}

export async function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", CI: "1", ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, [kilnBin, ...args], { cwd: opts.cwd ?? repoRoot, env: env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.stdin.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => child.on("close", (c, s) => res([c, s])));
  clearTimeout(timer);
  const events: Array<Record<string, unknown>> = [];
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not an event line
    }
  }
  return { code, signal, stdout, stderr, events };
}

let processRoot: string | undefined;

/**
 * One folder per test process (node:test runs each file in its own), removed when that process
 * exits, so a run leaves nothing in the system's temp folder: the suite makes thousands of stores,
 * homes and projects. KILN_KEEP_TEST_TMP=1 keeps them for a look (the path is printed).
 */
function testRoot(): string {
  if (processRoot) return processRoot;
  const root = mkdtempSync(join(tmpdir(), "kiln-t-"));
  processRoot = root;
  process.once("exit", () => {
    if (process.env.KILN_KEEP_TEST_TMP) return void process.stderr.write(`kept the test files in ${root}\n`);
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // A child still writing, or a folder a test made unreadable: the system's temp cleaner gets it.
    }
  });
  return root;
}

/** A fresh temp dir, inside this test process's folder (removed at exit; a t.after may remove it sooner). */
export async function tempDir(prefix = "kiln-test-"): Promise<string> {
  return mkdtemp(join(testRoot(), prefix));
}

/** Write a tree of files: { "src/main.cpp": "…" }. */
export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const p = join(root, rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, text);
  }
}

/** Fail loudly when a tool the suite needs is missing (CI installs it via scripts/test.sh). */
export { requireTool } from "./tools.js";
