// Shared helpers for kiln's benchmarks: run tools side by side with hyperfine, print medians and ratios.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";

/** Fail with the Debian package to install when a tool is missing. */
export function requireTools(tools) {
  for (const t of tools) {
    try {
      execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" });
    } catch {
      throw new Error(`benchmark needs '${t}' (apt-get install ${t === "ninja" ? "ninja-build" : t})`);
    }
  }
}

/**
 * The tools of a scenario measured with hyperfine (-N: no shell, so
 * millisecond tools are measured fairly). Returns one row per tool with the
 * raw times in ms.
 *
 * Interleaved (the default): round after round, each tool runs once per
 * round, so a machine that slows down or speeds up during the scenario
 * (disk write-back after a cold build, another tenant) weighs on every tool
 * alike. One hyperfine call per tool and round; `interleave: false` gives
 * hyperfine's own order (all runs of one tool, then the next).
 */
export function hyperfine(scenario, tools, { runs, warmup = 1, env, interleave = true }) {
  const load = loadavg()[0];
  // `rounds`: the i-th time of every row is from the same round (interleaved runs).
  const rows = tools.map((t) => ({ scenario, name: t.name, times: [], cpuSum: 0, load, rounds: interleave }));
  const add = (i, r) => {
    rows[i].times.push(...r.times);
    rows[i].cpuSum += r.cpu * r.times.length;
  };
  if (!interleave) hyperfineOnce(tools, { runs, warmup, env }).forEach((r, i) => add(i, r));
  else {
    for (let round = -warmup; round < runs; round++) {
      tools.forEach((t, i) => {
        const [r] = hyperfineOnce([t], { runs: 1, warmup: 0, env });
        if (round >= 0) add(i, r);
      });
    }
  }
  return rows.map(({ cpuSum, ...r }) => ({ ...r, cpu: cpuSum / r.times.length }));
}

/** One hyperfine invocation: per tool, its times (ms) and mean CPU (ms). */
function hyperfineOnce(tools, { runs, warmup, env }) {
  const dir = mkdtempSync(join(tmpdir(), "kiln-hf-"));
  const out = join(dir, "r.json");
  const args = ["-N", "--style", "none", "--warmup", String(warmup), "--runs", String(runs), "--export-json", out];
  for (const t of tools) {
    args.push("--command-name", t.name);
    if (t.prepare) args.push("--prepare", t.prepare);
    else if (tools.some((x) => x.prepare)) args.push("--prepare", "true");
    args.push(t.cmd);
  }
  try {
    execFileSync("hyperfine", args, { env, stdio: ["ignore", "ignore", "inherit"] });
    const data = JSON.parse(readFileSync(out, "utf8"));
    return data.results.map((r) => ({ times: r.times.map((s) => s * 1000), cpu: ((r.user ?? 0) + (r.system ?? 0)) * 1000 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function median(row) {
  if (!row) return NaN;
  const t = [...row.times].sort((a, b) => a - b);
  const m = t.length >> 1;
  return t.length % 2 ? t[m] : (t[m - 1] + t[m]) / 2;
}

/** Print a Markdown table of medians, min–max, CPU, then the requested ratios (`floor`: ms, or per scenario). */
export function printTable(title, rows, { ratios = [], floor } = {}) {
  const fmt = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  console.log(`\n### ${title}\n`);
  console.log("| Scenario | Tool | Median ms | Min–max ms | CPU ms | Runs | load avg |");
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const t = [...r.times].sort((a, b) => a - b);
    console.log(`| ${r.scenario} | ${r.name} | ${fmt(median(r))} | ${fmt(t[0])}–${fmt(t.at(-1))} | ${fmt(r.cpu)} | ${t.length} | ${r.load.toFixed(2)} |`);
  }
  if (ratios.length) {
    // Round by round: the tools' runs are interleaved (hyperfine()), so the i-th time of each row
    // is from the same round; their ratio within a round cancels the host's drift between rounds.
    const row = (scenario, name) => rows.find((r) => r.scenario === scenario && r.name === name);
    const paired = (fn, ...rs) => {
      if (rs.some((r) => !r || !r.rounds || r.times.length !== rs[0].times.length)) return "";
      const per = rs[0].times.map((_, i) => fn(...rs.map((r) => r.times[i])));
      return `${median({ times: per }).toFixed(2)}× (${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`;
    };
    console.log("\n| Ratio | Of the medians | Round by round: median (min–max) |\n|---|---:|---:|");
    for (const [scenario, a, b, extra] of ratios) {
      const ra = row(scenario, a);
      const rb = row(scenario, b);
      const ma = median(ra);
      const mb = median(rb);
      console.log(`| ${scenario}: ${a} / ${b} | ${(ma / mb).toFixed(2)}× | ${paired((x, y) => x / y, ra, rb)} |`);
      const f = typeof floor === "function" ? floor(scenario) : floor;
      if (extra === "floor" && f) {
        const rf = row(scenario, "node -e 0");
        console.log(`| ${scenario}: ${a} / (${b} + node floor) | ${(ma / (mb + f)).toFixed(2)}× | ${rf ? paired((x, y, z) => x / (y + z), ra, rb, rf) : ""} |`);
      }
    }
  }
}
