/**
 * User settings and the process environment. This is the only module that
 * reads `process.env`; everything else receives a `Settings` value.
 *
 * Settings come from, lowest to highest priority: defaults, the user settings
 * file (`<configDir>/settings.json`), KILN_* environment variables, and the
 * command line (applied by the command layer).
 */
import { readFileSync } from "node:fs";
import { homedir, cpus, availableParallelism } from "node:os";
import { join } from "node:path";
import { ConfigError, errnoCode } from "./errors.js";

export interface UserSettings {
  /** Default parallel jobs (`--jobs`). */
  jobs?: number;
  /** Where packages, the object cache and downloads live. */
  cacheDir?: string;
  /** Extra Arduino Boards Manager index URLs (arduino-cli's board_manager.additional_urls). */
  indexUrls?: string[];
  /** PEM file of extra CAs trusted for downloads. */
  caFile?: string;
  /** Never touch the network. */
  offline?: boolean;
  /** HTTP(S) proxy; HTTPS_PROXY/HTTP_PROXY from the environment otherwise. */
  proxy?: string;
  /** Inactivity timeout for downloads, in ms. */
  downloadTimeoutMs?: number;
  /**
   * `platform_packages` items per platform for sketch folders built without a
   * config (`kiln build Blink --board uno`), e.g. Debian's system toolchain.
   */
  platformPackages?: Record<string, string[]>;
  /** Build on paired peers: `auto` (when one is free), `always`, `never` (`--remote`). */
  remote?: "auto" | "always" | "never";
}

export interface Settings extends UserSettings {
  /** A snapshot of the process environment, for `${sysenv.X}`, PLATFORMIO_* overrides and child processes. */
  env: Readonly<Record<string, string | undefined>>;
  cacheDir: string;
  configDir: string;
  jobs: number;
  /** Colour choice from NO_COLOR / FORCE_COLOR; undefined = decide by TTY. */
  color: boolean | undefined;
  /** Running under CI (CI env var set): no spinners. */
  ci: boolean;
  /** NO_PROXY host patterns. */
  noProxy: string[];
  /** Location of the settings file (may not exist). */
  settingsFile: string;
}

export function defaultJobs(): number {
  return typeof availableParallelism === "function" ? availableParallelism() : cpus().length || 1;
}

/** Read settings. Synchronous: runs once at start-up, before anything is in flight. */
export function loadSettings(env: Readonly<Record<string, string | undefined>> = process.env): Settings {
  const home = env.HOME || env.USERPROFILE || homedir();
  const kilnHome = env.KILN_HOME;
  const configDir = kilnHome || join(env.XDG_CONFIG_HOME || join(home, ".config"), "kiln");
  const settingsFile = join(configDir, "settings.json");
  const user = readUserSettings(settingsFile);
  const cacheDir = env.KILN_CACHE_DIR || user.cacheDir || kilnHome || join(env.XDG_CACHE_HOME || join(home, ".cache"), "kiln");

  let color: boolean | undefined;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") color = false;
  if (env.FORCE_COLOR !== undefined) color = env.FORCE_COLOR !== "0" && env.FORCE_COLOR !== "false";

  const jobsEnv = env.KILN_JOBS ? Number.parseInt(env.KILN_JOBS, 10) : undefined;
  const offline = env.KILN_OFFLINE ? env.KILN_OFFLINE !== "0" && env.KILN_OFFLINE !== "false" : user.offline;
  const proxy = user.proxy || env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy || undefined;
  const noProxy = (env.NO_PROXY || env.no_proxy || "").split(",").map((s) => s.trim()).filter(Boolean);
  const caFile = env.KILN_CA_FILE || user.caFile;
  const remote = env.KILN_REMOTE || user.remote;
  if (remote !== undefined && remote !== "auto" && remote !== "always" && remote !== "never") {
    throw new ConfigError("KILN_SETTINGS_INVALID", `remote must be auto, always or never, got '${remote}'`, { location: { file: env.KILN_REMOTE ? "KILN_REMOTE" : settingsFile } });
  }

  return {
    ...user,
    env,
    cacheDir,
    configDir,
    settingsFile,
    jobs: jobsEnv && jobsEnv > 0 ? jobsEnv : user.jobs && user.jobs > 0 ? user.jobs : defaultJobs(),
    color,
    ci: Boolean(env.CI) && env.CI !== "false" && env.CI !== "0",
    offline: offline ?? false,
    proxy,
    noProxy,
    caFile,
    remote,
  };
}

function readUserSettings(file: string): UserSettings {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return {};
    throw e;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError("KILN_SETTINGS_INVALID", `not valid JSON: ${(e as Error).message}`, {
      location: { file },
      hint: "fix or delete the settings file",
    });
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError("KILN_SETTINGS_INVALID", "settings must be a JSON object", { location: { file } });
  }
  const s = data as Record<string, unknown>;
  const out: UserSettings = {};
  const check = (key: string, type: "number" | "string" | "boolean" | "string[]"): boolean => {
    const v = s[key];
    if (v === undefined) return false;
    const ok = type === "string[]" ? Array.isArray(v) && v.every((x) => typeof x === "string") : typeof v === type;
    if (!ok) throw new ConfigError("KILN_SETTINGS_INVALID", `'${key}' must be a ${type}, got ${JSON.stringify(v)}`, { location: { file } });
    return true;
  };
  if (check("jobs", "number")) out.jobs = s.jobs as number;
  if (check("cacheDir", "string")) out.cacheDir = s.cacheDir as string;
  if (check("indexUrls", "string[]")) out.indexUrls = s.indexUrls as string[];
  if (check("caFile", "string")) out.caFile = s.caFile as string;
  if (check("offline", "boolean")) out.offline = s.offline as boolean;
  if (check("proxy", "string")) out.proxy = s.proxy as string;
  if (check("downloadTimeoutMs", "number")) out.downloadTimeoutMs = s.downloadTimeoutMs as number;
  if (check("remote", "string")) out.remote = s.remote as UserSettings["remote"];
  if (s.platformPackages !== undefined) {
    const pp = s.platformPackages;
    const ok = typeof pp === "object" && pp !== null && !Array.isArray(pp) && Object.values(pp).every((v) => Array.isArray(v) && v.every((x) => typeof x === "string"));
    if (!ok) {
      throw new ConfigError("KILN_SETTINGS_INVALID", `'platformPackages' must map platform ids to lists of package specs, got ${JSON.stringify(pp)}`, {
        location: { file },
        hint: 'e.g. { "atmelavr": ["toolchain-atmelavr @ symlink:///usr"] }',
      });
    }
    out.platformPackages = pp as Record<string, string[]>;
  }
  return out;
}
