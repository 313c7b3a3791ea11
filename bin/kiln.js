#!/usr/bin/env node
// kiln's launcher. dist/bundle/ is tsc's output bundled by scripts/bundle.mjs (fewer files to load at start-up).
// An exact repeat of the last no-op build is answered before the CLI is loaded (lib/fastpath.ts);
// other commands do not even load that check.
const argv = process.argv.slice(2);
const fast = argv[0] === "build" ? (await import("../dist/bundle/fastpath.js")).fastNoop(argv) : undefined;
if (fast !== undefined) process.exitCode = fast;
else {
  const { run } = await import("../dist/bundle/cli.js");
  process.exitCode = await run(argv);
}
