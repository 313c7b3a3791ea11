#!/usr/bin/env node
// Bundle dist/ (tsc's output) into dist/bundle/: kiln's own modules, clipanion, got, tar's parser
// and p-limit in a few ESM chunks, so start-up resolves and parses a handful of files instead of ~45.
// Modules that commands import lazily stay lazy (esbuild code splitting: one chunk per dynamic
// import; got and tar are among those: loaded module by module from node_modules they took ~60 and
// ~15 ms more before a package install's first request and first unpacked file; p-limit and its
// queue, ~8 ms of resolving and loading two packages in every build that compiles; typanion, the
// CommonJS validators of `kiln upload`'s and `kiln monitor`'s options, whose import through Node's
// CommonJS loader cost those commands ~60 ms). Every other package stays external and is loaded from
// node_modules only when used (serialport, yauzl…).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const bundled = new Set(["clipanion", "got", "tar", "p-limit", "typanion"]);
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

/**
 * got imports http2-wrapper (which loads Node's http2) for its `http2` option alone, which kiln
 * never sets: ~25-35 ms of every package install's start. The bundle gets a stand-in that says so
 * if it is ever reached. (http2-wrapper is also got's only CommonJS dependency: without it no chunk
 * calls require(), which an ESM chunk could do only with a createRequire of its own in every chunk.)
 */
const noHttp2 = {
  name: "no-http2",
  setup(b) {
    b.onResolve({ filter: /^http2-wrapper$/ }, () => ({ path: "http2-wrapper", namespace: "kiln-stub" }));
    b.onLoad({ filter: /.*/, namespace: "kiln-stub" }, () => ({
      loader: "js",
      contents: 'const no = () => { throw new Error("kiln does not use HTTP/2 (got\'s http2 option)"); };\nexport default { get auto() { return no(); }, get globalAgent() { return no(); } };\n',
    }));
  },
};

/**
 * @sindresorhus/is (got's type checks) makes two Intl.ListFormat objects when it loads, for the
 * wording of its error messages: ICU's list data costs ~15 ms of every download's start. The bundle
 * makes them on first use instead. Fails the build if the package no longer reads that way.
 */
let listFormatPatched = false;
const lazyListFormat = {
  name: "lazy-list-format",
  setup(b) {
    b.onLoad({ filter: /[\\/]@sindresorhus[\\/]is[\\/].*\.js$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      const made = /new Intl\.ListFormat\(/g;
      if (!made.test(text)) return undefined;
      listFormatPatched = true;
      const contents = text.replace(made, "kilnLazyListFormat(");
      const helper = "const kilnLazyListFormat = (...a) => { let f; return { format: (list) => (f ??= new Intl.ListFormat(...a)).format(list) }; };\n";
      return { loader: "js", contents: helper + contents };
    });
  },
};

// Start empty: chunk names carry content hashes, so old ones would pile up (and ship).
rmSync(join(root, "dist", "bundle"), { recursive: true, force: true });

/**
 * kiln's build, for the no-op stamp's "same kiln" check (lib/build/noop.ts kilnStamp): a hash of
 * tsc's output and the version, the same in both bundles below, which each carry their own copy of
 * that module.
 */
const buildId = createHash("sha256");
buildId.update(pkg.version);
for (const f of readdirSync(join(root, "dist"), { recursive: true }).map(String).filter((f) => /\.(js|json)$/.test(f) && !f.startsWith("bundle")).sort()) {
  buildId.update(`\0${f}\0`);
  buildId.update(readFileSync(join(root, "dist", f)));
}
const define = { KILN_BUILD: JSON.stringify(buildId.digest("hex").slice(0, 16)) };

// The launcher's first stop (lib/fastpath.ts), alone in one CommonJS file: bin/kiln.js require()s
// it, so a build answered from the stamp never starts Node's ESM loader (≈ 15 ms).
await build({
  entryPoints: [join(root, "dist", "fastpath.js")],
  outfile: join(root, "dist", "bundle", "fastpath.cjs"),
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  logLevel: "warning",
  legalComments: "none",
  banner: { js: 'const kilnImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  define: { ...define, "import.meta.url": "kilnImportMetaUrl" },
});

await build({
  entryPoints: [join(root, "dist", "cli.js")],
  define,
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
  plugins: [clipanionEsm, noHttp2, lazyListFormat],
});
if (!listFormatPatched) throw new Error("scripts/bundle.mjs: @sindresorhus/is no longer makes Intl.ListFormat objects as it loads; update or drop the lazy-list-format plugin");
