#!/usr/bin/env node
// `npm run bench`: every benchmark under scripts/bench/, one after the other.
// Each prints Markdown tables of medians and ratios; docs/benchmarks.md records the results.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
for (const f of readdirSync(here).sort()) {
  if (!f.endsWith(".mjs") || f === "run.mjs" || f === "lib.mjs") continue;
  if (only.length && !only.some((o) => f.includes(o))) continue;
  const file = join(here, f);
  if (!existsSync(file)) continue;
  console.log(`\n## ${f}`);
  execFileSync(process.execPath, [file], { stdio: "inherit" });
}
