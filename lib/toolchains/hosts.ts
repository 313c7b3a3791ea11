/**
 * Hosts: kiln's canonical names for the machines packages run on, and the
 * mapping from Arduino index host triplets to them (reference/packages.md §2).
 *
 * arduino-cli matches triplets with unanchored regexps, which picks aarch64
 * builds on 32-bit ARM and ignores `aarch64-apple-darwin`; kiln classifies
 * every triplet with anchored patterns into one canonical host, then picks
 * exact → documented fallback → `all`, first listed on a tie.
 */

export type Host =
  | "linux-x64"
  | "linux-arm64"
  | "linux-arm"
  | "linux-ia32"
  | "darwin-x64"
  | "darwin-arm64"
  | "win32-x64"
  | "win32-ia32"
  | "win32-arm64";

/** The hosts the committed catalog is generated for (the six). */
export const CATALOG_HOSTS: readonly Host[] = ["linux-x64", "linux-arm64", "linux-arm", "darwin-x64", "darwin-arm64", "win32-x64"];

/** The canonical host for a Node platform/arch pair; undefined when kiln knows none. */
export function canonicalHost(platform: string = process.platform, arch: string = process.arch): Host | undefined {
  const a = arch === "x64" ? "x64" : arch === "arm64" ? "arm64" : arch === "arm" ? "arm" : arch === "ia32" ? "ia32" : undefined;
  if (!a) return undefined;
  if (platform === "linux") return `linux-${a}` as Host;
  if (platform === "darwin" && (a === "x64" || a === "arm64")) return `darwin-${a}`;
  if (platform === "win32" && a !== "arm") return `win32-${a}` as Host;
  return undefined;
}

const TRIPLETS: Array<[RegExp, Host]> = [
  [/^(x86_64|amd64)-(.*-)?linux-gnu$/, "linux-x64"],
  [/^(aarch64|arm64)-(.*-)?linux-gnu(eabihf)?$/, "linux-arm64"],
  [/^(arm|armv[67]|armhf)[a-z0-9]*-(.*-)?linux-gnueabi(hf)?$/, "linux-arm"],
  [/^i[3456]86-(.*-)?linux-gnu$/, "linux-ia32"],
  [/^(x86_64|amd64)-apple-darwin[0-9.]*$/, "darwin-x64"],
  [/^(aarch64|arm64)-apple-darwin[0-9.]*$/, "darwin-arm64"],
  [/^i[3456]86-apple-darwin[0-9.]*$/, "darwin-x64"],
  [/^(x86_64|amd64)-(.*-)?(mingw32|cygwin)$/, "win32-x64"],
  [/^i[3456]86-(.*-)?(mingw32|cygwin)$/, "win32-ia32"],
  [/^(aarch64|arm64)-(.*-)?(mingw32|cygwin)$/, "win32-arm64"],
];

/**
 * The canonical host of an index triplet, `all` for any host, undefined for
 * hosts kiln does not run on (freebsd…). `i386-apple-darwin11` builds are
 * 64-bit-capable universal binaries in practice and count as darwin-x64.
 */
export function classifyTriplet(triplet: string): Host | "all" | undefined {
  const t = triplet.trim().toLowerCase();
  if (t === "all" || t === "*") return "all";
  for (const [re, host] of TRIPLETS) if (re.test(t)) return host;
  return undefined;
}

/** Hosts to try after an exact match, in order (Rosetta, WOW64). */
export const HOST_FALLBACKS: Readonly<Record<Host, readonly Host[]>> = {
  "linux-x64": [],
  "linux-arm64": [],
  "linux-arm": [],
  "linux-ia32": [],
  "darwin-x64": [],
  "darwin-arm64": ["darwin-x64"],
  "win32-x64": ["win32-ia32"],
  "win32-ia32": [],
  "win32-arm64": ["win32-x64", "win32-ia32"],
};

/**
 * Pick the item for `host` from a list whose entries carry an index triplet:
 * exact host → fallbacks in order → `all`; on a tie the first listed wins.
 */
export function pickForHost<T>(items: readonly T[], host: Host, tripletOf: (item: T) => string): T | undefined {
  const classes = items.map((it) => classifyTriplet(tripletOf(it)));
  for (const want of [host, ...HOST_FALLBACKS[host], "all"]) {
    const i = classes.indexOf(want as Host | "all");
    if (i >= 0) return items[i];
  }
  return undefined;
}
