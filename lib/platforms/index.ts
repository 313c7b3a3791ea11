/**
 * The platform registry: `platform = <id>` in platformio.ini → module.
 * A new platform is one file plus one line here.
 */
import { ConfigError, nearest, type SourceLocation } from "../core/errors.js";
import type { PlatformModule } from "./types.js";
import { nativePlatform } from "./native.js";
import { atmelavrPlatform } from "./atmelavr.js";

const platforms: PlatformModule[] = [
  nativePlatform,
  atmelavrPlatform,
];

export function allPlatforms(): readonly PlatformModule[] {
  return platforms;
}

/**
 * The module for a `platform` value. PlatformIO specs like
 * `platformio/atmelavr @ ^5` or `atmelavr@5.2.0` select by name; the version
 * is kiln's own (the module is the lock). Throws ConfigError (exit 3) naming
 * the known platforms.
 */
export function getPlatform(spec: string, location?: SourceLocation): PlatformModule {
  const id = platformId(spec);
  const found = platforms.find((p) => p.id === id);
  if (found) return found;
  const known = platforms.map((p) => p.id);
  const near = nearest(id, known);
  throw new ConfigError("KILN_UNKNOWN_PLATFORM", `unknown platform '${spec}'`, {
    location,
    hint: `${near.length ? `did you mean ${near.map((n) => `'${n}'`).join(", ")}? ` : ""}known platforms: ${known.join(", ")}`,
    data: { platform: spec, known },
  });
}

/** `platformio/atmelavr @ ^5.2.0` → `atmelavr`. */
export function platformId(spec: string): string {
  const name = spec.split("@")[0]!.trim();
  return name.slice(name.lastIndexOf("/") + 1);
}
