/**
 * Per-env incremental state, `<buildDir>/state.json`. It is only ever written
 * atomically, and an entry is trusted only together with its output file:
 * interrupting kiln at any moment leaves either the old state (whose stamps no
 * longer match anything rebuilt since) or the new one.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
// A namespace import: a named import of `hash` would fail to link on Node 20.10 and 20.11.
import * as crypto from "node:crypto";
import { writeFileAtomicSync } from "../core/fs.js";
import { errnoCode } from "../core/errors.js";

const STATE_VERSION = 1;

export interface OutputRecord {
  /** Hash of the exact command line. */
  sig: string;
  /** Input files (source and every header from the depfile). */
  deps: string[];
  /** Hash of the inputs' mtimes when the output was made; "" = always rebuild. */
  stamp: string;
}

export interface ScanRecord {
  mtimeMs: number;
  size: number;
  includes: string[];
}

export interface BuildState {
  version: number;
  outputs: Record<string, OutputRecord>;
  scans: Record<string, ScanRecord>;
  /** Last size result, so a no-op build need not run the size tool. */
  size?: { flashBytes: number; ramBytes: number; linkStamp: string } | undefined;
  /** Hash of what was last written to manifest / compile_commands. */
  written: Record<string, string>;
}

export function statePath(buildDir: string): string {
  return join(buildDir, "state.json");
}

/** Read at start-up (synchronous on purpose: nothing else runs yet). A damaged file means a full rebuild, not an error. */
export function loadState(buildDir: string): BuildState {
  try {
    const data = JSON.parse(readFileSync(statePath(buildDir), "utf8")) as BuildState;
    if (data.version === STATE_VERSION && data.outputs && data.scans) return { ...data, written: data.written ?? {} };
  } catch (e) {
    if (errnoCode(e) !== "ENOENT" && !(e instanceof SyntaxError)) throw e;
  }
  return { version: STATE_VERSION, outputs: {}, scans: {}, written: {} };
}

export async function saveState(buildDir: string, state: BuildState): Promise<void> {
  writeFileAtomicSync(statePath(buildDir), JSON.stringify(state));
}

/** Node's one-shot hash (20.12 and later): a third of createHash's cost for short texts, hashed per unit in every build. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string) => string }).hash;

export function hashText(text: string): string {
  return oneShot ? oneShot("sha1", text) : crypto.createHash("sha1").update(text).digest("hex");
}

/** The signature of a command line: its words, NUL-separated. */
export function commandSig(argv: readonly string[]): string {
  return hashText(argv.join("\0"));
}

/**
 * Forget what this machine knows about some outputs (a peer just replaced
 * them): the next local build makes them again instead of trusting a stamp
 * that describes other bytes.
 */
export async function forgetOutputs(buildDir: string, outputs: readonly string[]): Promise<void> {
  const state = loadState(buildDir);
  let changed = false;
  for (const o of outputs) {
    if (state.outputs[o]) {
      delete state.outputs[o];
      changed = true;
    }
    if (state.written[o]) {
      delete state.written[o];
      changed = true;
    }
  }
  if (state.size) {
    state.size = undefined;
    changed = true;
  }
  if (changed) await saveState(buildDir, state);
}
