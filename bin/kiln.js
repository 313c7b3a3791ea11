#!/usr/bin/env node
// kiln's launcher (CommonJS: see bin/package.json). An exact repeat of the last no-op build, or the
// head start of a few changed files, is handled by dist/bundle/fastpath.cjs (lib/fastpath.ts); everything
// else runs the CLI, dist/bundle/cli.js (tsc's output bundled by scripts/bundle.mjs into CommonJS
// chunks). Both are require()d, so Node's ESM loader starts only if a command imports an ES-module
// package (execa, ora). Other commands do not even load the fast path.
"use strict";
const argv = process.argv.slice(2);
const fast = argv[0] === "build" ? require("../dist/bundle/fastpath.cjs").fastNoop(argv) : undefined;
const cli = () =>
  require("../dist/bundle/cli.js")
    .run(argv)
    .then((code) => {
      process.exitCode = code;
    });
if (typeof fast === "number") process.exitCode = fast;
else if (fast === undefined) cli();
// A head-started build the fast path finishes itself, or hands back (undefined) to the CLI.
else fast.then((code) => (code === undefined ? cli() : (process.exitCode = code)));
