/**
 * Package failures. Integrity problems exit 5, network problems exit 4,
 * configuration (lockfile, platform_packages, offline with nothing stored) 3.
 * URLs are redacted (credentials removed) when the error is built.
 */
import { ExitCode, KilnError } from "../core/errors.js";

/** `https://user:pw@host/x?token=…` → `https://host/x`: no secrets in messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.protocol === "file:") return u.href;
    u.username = "";
    u.password = "";
    u.search = "";
    return u.href;
  } catch {
    return url;
  }
}

export class ChecksumMismatchError extends KilnError {
  constructor(readonly url: string, readonly algorithm: string, readonly expected: string, readonly actual: string, readonly bytes: number) {
    super("KILN_CHECKSUM_MISMATCH", ExitCode.integrity, `${algorithm} mismatch for ${redactUrl(url)}\n  expected ${expected}\n  actual   ${actual} (${bytes} bytes)`, {
      hint: "the download was corrupted or the file changed upstream; nothing was installed. Retry, or run 'kiln pkg update' if the vendor republished it",
      data: { url: redactUrl(url), algorithm, expected, actual, bytes },
    });
  }
}

export class SizeMismatchError extends KilnError {
  constructor(readonly url: string, readonly expectedBytes: number, readonly actualBytes: number) {
    super("KILN_SIZE_MISMATCH", ExitCode.integrity, `size mismatch for ${redactUrl(url)}: expected ${expectedBytes} bytes, got ${actualBytes}`, {
      hint: "the download was truncated or the file changed upstream; nothing was installed. Retry the command",
      data: { url: redactUrl(url), expected: expectedBytes, actual: actualBytes },
    });
  }
}

export class DownloadError extends KilnError {
  constructor(readonly url: string, message: string, options: { status?: number; cause?: unknown; hint?: string } = {}) {
    super("KILN_DOWNLOAD_FAILED", ExitCode.network, `download of ${redactUrl(url)} failed: ${message}`, {
      hint: options.hint ?? "check the network, the proxy (HTTPS_PROXY) and the CA file setting; then run again",
      cause: options.cause,
      data: { url: redactUrl(url), status: options.status },
    });
  }
}

export class UnsafeArchiveError extends KilnError {
  constructor(readonly archive: string, readonly entry: string, reason: string) {
    super("KILN_UNSAFE_ARCHIVE", ExitCode.integrity, `refusing ${archive}: entry '${entry}' ${reason}`, {
      hint: "the archive is malformed or hostile; nothing was installed. Report it to the package's publisher",
      data: { archive, entry, reason },
    });
  }
}

export class UnsupportedArchiveError extends KilnError {
  constructor(readonly archive: string, detail: string) {
    super("KILN_UNSUPPORTED_ARCHIVE", ExitCode.integrity, `cannot unpack ${archive}: ${detail}`, {
      hint: "kiln unpacks .tar.gz, .tar.bz2, .tar.xz, .tar.zst and .zip archives",
      data: { archive },
    });
  }
}

export class PackageUnavailableError extends KilnError {
  constructor(readonly packageName: string, detail: string, hint?: string) {
    super("KILN_PACKAGE_UNAVAILABLE", ExitCode.config, `package '${packageName}': ${detail}`, {
      hint: hint ?? "use platform_packages to point at a local archive or directory (see docs/packages.md)",
      data: { package: packageName },
    });
  }
}

export class OfflineError extends KilnError {
  constructor(readonly missing: string[], detail = "the store does not hold") {
    super("KILN_OFFLINE_MISSING", ExitCode.network, `offline: ${detail} ${missing.join(", ")}`, {
      hint: "run 'kiln pkg install' once with network access (without --offline), or copy the store from another machine",
      data: { missing },
    });
  }
}

export class LockfileOutdatedError extends KilnError {
  constructor(readonly lockFile: string, readonly changes: string[]) {
    super("KILN_LOCKFILE_OUTDATED", ExitCode.config, `${lockFile} is out of date (--frozen-lockfile):\n  ${changes.join("\n  ")}`, {
      hint: "run 'kiln pkg install' (or 'kiln pkg update') without --frozen-lockfile and commit kiln.lock",
      data: { file: lockFile, changes },
    });
  }
}

export class LockfileInvalidError extends KilnError {
  constructor(readonly lockFile: string, detail: string) {
    super("KILN_LOCKFILE_INVALID", ExitCode.config, `${lockFile}: ${detail}`, {
      hint: "fix the file, or delete it and run 'kiln pkg install' to write a new one",
      data: { file: lockFile },
    });
  }
}

export class PlatformPackageSpecError extends KilnError {
  constructor(readonly item: string, detail: string) {
    super("KILN_PLATFORM_PACKAGE_INVALID", ExitCode.config, `platform_packages item '${item}': ${detail}`, {
      hint: "use NAME @ symlink:///path, NAME @ file:///path, NAME @ https://…#sha256=HEX, NAME @ arduino:PACKAGER/TOOL@VERSION or NAME @ system",
      data: { item },
    });
  }
}

export class StoreWriteError extends KilnError {
  constructor(readonly path: string, readonly errno: string, cause: unknown) {
    const full = errno === "ENOSPC" || errno === "EDQUOT";
    super("KILN_STORE_WRITE_FAILED", ExitCode.config, `${full ? "disk full" : `cannot write (${errno})`} while installing into ${path}`, {
      hint: full ? "free some space (kiln pkg gc --older-than 30d removes unused packages) and retry; the store was left intact" : "check the permissions of the kiln cache directory (KILN_HOME / KILN_CACHE_DIR)",
      cause,
      data: { path, errno },
    });
  }
}
