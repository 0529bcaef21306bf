// `npm run bench -- [suite] [options]`: the benchmark harness of issue 8. See bench/README.md for what
// each figure measures; `--help` for the options.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";
import { GeneratorPool } from "./load/generator-pool.js";
import { describeMachine, machineLine } from "./machine.js";
import { parseOptions, usage, type BenchOptions } from "./options.js";
import { waitForQuietMachine } from "./quiet-machine.js";
import { drawChart } from "./report/chart-svg.js";
import { replaceResultsSection, resultsMarkdown } from "./report/markdown.js";
import { comparisonTable, cyclesTable, warningsSummary } from "./report/table.js";
import type { BenchReport } from "./results.js";
import { runCycles } from "./suites/cycles.js";
import { describeFailover, runFailover } from "./suites/failover.js";
import { describeMemory, runMemory } from "./suites/memory.js";
import { describeRestart, runRestart } from "./suites/restart.js";

function progress(line: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function defaultJsonPath(suite: string, date: string): string {
  return new URL(`./results/${date.slice(0, 19).replaceAll(":", "-")}-${suite}.json`, import.meta.url).pathname;
}

function writeReport(options: BenchOptions, report: BenchReport): string {
  const path = options.jsonPath ?? defaultJsonPath(options.suite, report.machine.date);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

const readmePath = new URL("./README.md", import.meta.url).pathname;

/** Rewrites the "Latest results" section of bench/README.md from reports saved at the given paths. */
function updateReadme(sources: readonly { report: BenchReport; path: string }[]): void {
  const section = resultsMarkdown(sources.map(({ report, path }) => ({ report, file: relative(dirname(readmePath), path) })));
  writeFileSync(readmePath, replaceResultsSection(readFileSync(readmePath, "utf8"), section));
  progress(`updated ${readmePath}`);
}

function printCycles(options: BenchOptions, report: BenchReport): void {
  const cycles = report.cycles ?? [];
  process.stdout.write(`\n${cyclesTable(cycles)}\n`);
  const comparison = comparisonTable(cycles);
  if (comparison !== null) process.stdout.write(`\n${comparison}\n`);
  const warnings = warningsSummary(cycles);
  if (warnings.length > 0) process.stdout.write(`\nserver warnings and leader changes:\n${warnings.map((line) => `  ${line}`).join("\n")}\n`);
  writeFileSync(options.chartPath, drawChart(cycles, report.machine));
  process.stdout.write(`chart: ${options.chartPath}\n`);
}

async function main(): Promise<void> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const options = parseOptions(process.argv.slice(2));
  if (options.suite === "chart") {
    if (options.fromPath === null) throw new Error("chart wants --from <results.json>[,<later results.json>...]");
    const sources = options.fromPath.split(",").map((path) => ({ path, report: JSON.parse(readFileSync(path, "utf8")) as BenchReport }));
    const withCycles = sources.filter((source) => source.report.cycles !== undefined).at(-1);
    if (withCycles !== undefined) printCycles(options, withCycles.report);
    if (options.updateReadme) updateReadme(sources);
    return;
  }
  const machine = describeMachine();
  progress(`raftlock bench ${options.suite}: ${machineLine(machine)}`);
  const report: BenchReport = { machine, options: { ...options } };
  const runs = (suite: string): boolean => options.suite === suite || options.suite === "all";
  const quiet = (): Promise<number> => waitForQuietMachine([], options.quietWaitS * 1000, progress);
  const failures: string[] = [];
  // Each suite's results are written as soon as it ends, and a failing suite does not stop the next one:
  // a long run keeps what it measured.
  const suite = async (name: string, run: () => Promise<void>): Promise<void> => {
    if (!runs(name)) return;
    try {
      await quiet();
      await run();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push(`${name}: ${message}`);
      report.errors = { ...report.errors, [name]: message };
      progress(`${name} failed: ${message}`);
    }
    progress(`results: ${writeReport(options, report)}`);
  };
  await suite("cycles", async () => {
    const pool = GeneratorPool.start(options.generators);
    try {
      report.cycles = await runCycles(pool, options, progress);
    } finally {
      await pool.close();
    }
    printCycles(options, report);
  });
  await suite("failover", async () => {
    report.failover = await runFailover(options, progress);
    process.stdout.write(`\n${describeFailover(report.failover)}\n`);
  });
  await suite("restart", async () => {
    report.restart = await runRestart(options, progress);
    process.stdout.write(`\n${describeRestart(report.restart)}\n`);
  });
  await suite("memory", async () => {
    report.memory = await runMemory(options, progress);
    process.stdout.write(`\n${describeMemory(report.memory)}\n`);
  });
  if (options.updateReadme) updateReadme([{ report, path: writeReport(options, report) }]);
  if (failures.length > 0) throw new Error(`${failures.length} suite(s) failed:\n  ${failures.join("\n  ")}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
