#!/usr/bin/env node
// kiln's launcher. dist/bundle/ is tsc's output bundled by scripts/bundle.mjs (fewer files to load at start-up).
// An exact repeat of the last no-op build is answered before the CLI is loaded (lib/fastpath.ts).
import { fastNoop } from "../dist/bundle/fastpath.js";

const argv = process.argv.slice(2);
const fast = fastNoop(argv);
if (fast !== undefined) process.exitCode = fast;
else {
  const { run } = await import("../dist/bundle/cli.js");
  process.exitCode = await run(argv);
}
