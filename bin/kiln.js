#!/usr/bin/env node
// kiln's launcher (CommonJS: see bin/package.json). An exact repeat of the last no-op build, or the
// head start of a few changed files, is handled by dist/bundle/fastpath.cjs (lib/fastpath.ts), loaded
// with require() so that such a build never starts Node's ESM loader; everything else imports the
// CLI, dist/bundle/cli.js (tsc's output bundled by scripts/bundle.mjs). Other commands do not even
// load the fast path.
"use strict";
const argv = process.argv.slice(2);
const fast = argv[0] === "build" ? require("../dist/bundle/fastpath.cjs").fastNoop(argv) : undefined;
if (fast !== undefined) process.exitCode = fast;
else {
  import("../dist/bundle/cli.js")
    .then(({ run }) => run(argv))
    .then((code) => {
      process.exitCode = code;
    });
}
