/**
 * The firmware manifest: the seam between building and flashing. A build
 * writes `<buildDir>/manifest.json`; a flasher reads nothing else. Paths are
 * relative to the manifest's directory so a build dir can be moved or
 * shipped from a peer.
 */
import { readFile } from "node:fs/promises";
import { KilnError, ExitCode, errnoCode } from "./errors.js";

export const MANIFEST_NAME = "manifest.json";

export interface ManifestImage {
  /** Relative to the manifest's directory. */
  path: string;
  sha256: string;
  sizeBytes: number;
  /** `hex`, `eep`, `bin`, `elf`, `uf2`. */
  format: string;
  /** What the image is: `flash`, `eeprom`, `bootloader`, `partitions`, `program`. */
  role: string;
  offset?: number | undefined;
}

export interface FirmwareManifest {
  schema: 1;
  env: string;
  platform: string;
  board?: { id: string; name: string; mcu: string; fCpu: number; usbIds: string[] } | undefined;
  images: ManifestImage[];
  /** Upload settings the build resolved (protocol, speed, flags, touch…). */
  upload: Record<string, unknown>;
  /** Tool paths and identity the flasher may need (avrdude path, conf). */
  tools: Record<string, string>;
  size?: { flashBytes: number; ramBytes: number; flashMaxBytes?: number | undefined; ramMaxBytes?: number | undefined } | undefined;
  toolchain: string;
  builtAt: string;
  /** Set when a build peer made the images: which one (its label and pin). */
  peer?: { label: string; pin: string } | undefined;
}

/** Read and sanity-check a manifest; a missing one means "not built yet". */
export async function readManifest(file: string): Promise<FirmwareManifest> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") {
      throw new KilnError("KILN_NO_FIRMWARE", ExitCode.build, `no firmware manifest at ${file}`, { hint: "run 'kiln build' first" });
    }
    throw e;
  }
  let data: FirmwareManifest;
  try {
    data = JSON.parse(text) as FirmwareManifest;
  } catch (e) {
    throw new KilnError("KILN_MANIFEST_INVALID", ExitCode.build, `${file}: not valid JSON (${(e as Error).message})`, { hint: "run 'kiln clean' then 'kiln build'" });
  }
  if (data.schema !== 1 || !Array.isArray(data.images)) {
    throw new KilnError("KILN_MANIFEST_INVALID", ExitCode.build, `${file}: unsupported manifest (schema ${String(data.schema)})`, { hint: "run 'kiln clean' then 'kiln build'" });
  }
  return data;
}
