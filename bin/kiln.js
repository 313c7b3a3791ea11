#!/usr/bin/env node
// kiln's launcher. dist/bundle/ is tsc's output bundled by scripts/bundle.mjs (fewer files to load at start-up).
import { run } from "../dist/bundle/cli.js";

process.exitCode = await run(process.argv.slice(2));
