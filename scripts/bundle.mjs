#!/usr/bin/env node
// Bundle dist/ (tsc's output) into dist/bundle/: kiln's own modules and clipanion in a few ESM
// chunks, so start-up resolves and parses a handful of files instead of ~45. Modules that commands
// import lazily stay lazy (esbuild code splitting: one chunk per dynamic import). Every other
// package stays external and is loaded from node_modules only when used (got, tar, serialport…).
import { build } from "esbuild";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const bundled = new Set(["clipanion"]);
const external = Object.keys(pkg.dependencies ?? {}).filter((d) => !bundled.has(d));

const clipanionDir = join(root, "node_modules", "clipanion", "lib");
/**
 * Use clipanion's ESM files: its CommonJS build require()s node builtins, which
 * an ESM bundle cannot, and its `../platform` folder import resolves to the
 * CommonJS file through a nested package.json.
 */
const clipanionEsm = {
  name: "clipanion-esm",
  setup(b) {
    b.onResolve({ filter: /^clipanion$/ }, () => ({ path: join(clipanionDir, "advanced", "index.mjs") }));
    b.onResolve({ filter: /\/platform$/ }, (args) => (args.importer.startsWith(clipanionDir) ? { path: join(clipanionDir, "platform", "node.mjs") } : undefined));
  },
};

// Start empty: chunk names carry content hashes, so old ones would pile up (and ship).
rmSync(join(root, "dist", "bundle"), { recursive: true, force: true });

await build({
  entryPoints: [join(root, "dist", "cli.js"), join(root, "dist", "fastpath.js")],
  outdir: join(root, "dist", "bundle"),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external,
  chunkNames: "chunks/[name]-[hash]",
  logLevel: "warning",
  legalComments: "none",
  plugins: [clipanionEsm],
});
