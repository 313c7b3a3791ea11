import { execFileSync } from "node:child_process";

/**
 * Assert an external tool is installed. Tests never skip silently: a missing
 * tool is a failure naming the package that scripts/test.sh installs.
 */
export function requireTool(tool: string, debianPackage: string): string {
  try {
    return execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(`'${tool}' is not installed; run scripts/test.sh (installs Debian package '${debianPackage}')`);
  }
}

/** Whether a process with this pid still exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
