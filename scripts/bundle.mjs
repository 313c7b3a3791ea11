#!/usr/bin/env node
// Bundle dist/ (tsc's output) into dist/bundle/: kiln's own modules, clipanion, got, tar's parser
// and p-limit in a few chunks (split by esbuild as ES modules, shipped as CommonJS: see toCommonJs),
// so start-up resolves and parses a handful of files instead of ~45.
// Modules that commands import lazily stay lazy (esbuild code splitting: one chunk per dynamic
// import; got and tar are among those: loaded module by module from node_modules they took ~60 and
// ~15 ms more before a package install's first request and first unpacked file; p-limit and its
// queue, ~8 ms of resolving and loading two packages in every build that compiles; typanion, the
// CommonJS validators of `kiln upload`'s and `kiln monitor`'s options, whose import through Node's
// CommonJS loader cost those commands ~60 ms). Every other package stays external and is loaded from
// node_modules only when used (serialport, yauzl…).
import { build, transform } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
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

const split = await build({
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
  write: false,
});
if (!listFormatPatched) throw new Error("scripts/bundle.mjs: @sindresorhus/is no longer makes Intl.ListFormat objects as it loads; update or drop the lazy-list-format plugin");

/**
 * esbuild splits code into ES modules only; kiln ships its chunks as CommonJS, so that the launcher
 * require()s the CLI and Node's ESM loader never starts for kiln's own code (its start, and its
 * resolving and linking per module: ≈ 10–30 ms of CPU per command; an install's first request
 * ≈ 12 ms sooner, paired over 30 rounds). Each chunk is converted on its own: an import between
 * chunks becomes a require() (a dynamic one a promise around it, so chunks still load only when
 * used), as does one of Node's own modules; import() of a package left external stays a real
 * import() (execa and ora are ES modules only); import.meta.url becomes the chunk's own file URL;
 * the code stays strict. A require() of any other package would fail at run time for an
 * ES-module-only one, so it fails the build instead.
 */
const externalSpecifier = (spec) => external.some((p) => spec === p || spec.startsWith(`${p}/`));
const builtins = new Set(builtinModules);
async function toCommonJs(file) {
  let imports = false;
  const code = file.text.replace(/\bimport\((["'])([^"'.][^"']*)\1\)/g, (whole, q, spec) => {
    if (!externalSpecifier(spec)) return whole;
    imports = true;
    return `kilnImport(${q}${spec}${q})`;
  });
  const metaUrl = code.includes("import.meta.url");
  // esbuild's `// dist/…` and `// node_modules/…` lines say which module each part of a chunk is (the
  // start-up tests read them); a transform keeps only legal comments, so they travel as those.
  const marked = code.replace(/^\/\/ ((?:dist|node_modules)\/\S+)$/gm, "//! $1");
  const out = await transform(marked, {
    format: "cjs",
    platform: "node",
    target: "node20",
    supported: { "dynamic-import": false },
    ...(metaUrl ? { define: { "import.meta.url": "kilnImportMetaUrl" } } : {}),
  });
  const stray = [...out.code.matchAll(/\brequire\((["'])([^"'.][^"']*)\1\)/g)].map((m) => m[2]).filter((spec) => !spec.startsWith("node:") && !builtins.has(spec));
  if (stray.length) throw new Error(`scripts/bundle.mjs: ${relative(root, file.path)} would require() ${stray.join(", ")}: bundle it, or load it with import() from a package listed in dependencies`);
  const prelude = [
    metaUrl ? 'const kilnImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' : "",
    imports ? "const kilnImport = (specifier) => import(specifier);" : "",
  ].filter(Boolean);
  const text = out.code.replace(/^(\s*)\/\/! ((?:dist|node_modules)\/\S+)$/gm, "$1// $2");
  // ES modules are strict; so stays their code.
  return ['"use strict";', ...prelude, text].join("\n");
}
for (const file of split.outputFiles) {
  mkdirSync(dirname(file.path), { recursive: true });
  writeFileSync(file.path, await toCommonJs(file));
}
// The root package.json says "module"; the bundle's .js files are CommonJS.
writeFileSync(join(root, "dist", "bundle", "package.json"), '{ "type": "commonjs" }\n');
