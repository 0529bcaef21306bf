// The "Latest results" section of bench/README.md, from one or more results files (a later file's suites
// replace an earlier one's, e.g. a suite run again after a failure): for each suite the run it comes from
// (date, machine, commit), then the cycles table, the comparison, and the failover, restart and memory figures.
import { machineLine } from "../machine.js";
import type { BenchReport, MachineInfo } from "../results.js";
import { describeFailover } from "../suites/failover.js";
import { describeMemory } from "../suites/memory.js";
import { describeRestart } from "../suites/restart.js";
import { comparisonTable, cyclesTable, warningsSummary } from "./table.js";

/** Markers around the generated section in bench/README.md. */
export const resultsBeginMarker = "<!-- results:begin (written by `npm run bench -- ... --update-readme`) -->";
export const resultsEndMarker = "<!-- results:end -->";

const suiteNames = ["cycles", "failover", "restart", "memory"] as const;
type SuiteName = (typeof suiteNames)[number];

/** A results file and what it holds, relative to bench/ for links. */
export interface ResultsSource {
  readonly report: BenchReport;
  readonly file: string;
}

function fenced(text: string): string {
  return ["```", text.trim(), "```"].join("\n");
}

function runLine(machine: MachineInfo, file: string): string {
  return `run of ${machine.date.slice(0, 16).replace("T", " ")} UTC: ${machineLine(machine).replace(/^\d{4}-\d{2}-\d{2}, /, "")}; ${machine.etcd ?? "etcd not installed"}; ${machine.redis ?? "redis-server not installed"}. Full figures: [${file}](${file})`;
}

/** The section's Markdown: each suite from the last source that has it. */
export function resultsMarkdown(sources: readonly ResultsSource[]): string {
  const from = new Map<SuiteName, ResultsSource>();
  for (const source of sources) for (const suite of suiteNames) if (source.report[suite] !== undefined) from.set(suite, source);
  const parts: string[] = [];
  for (const source of new Set(from.values())) {
    const suites = suiteNames.filter((suite) => from.get(suite) === source);
    parts.push(`**${suites.join(", ")}**: ${runLine(source.report.machine, source.file)}.`);
  }
  const cycles = from.get("cycles")?.report.cycles;
  if (cycles !== undefined) {
    const comparison = comparisonTable(cycles);
    if (comparison !== null) parts.push("### raftlock against etcd and redis (lock cycles, each client its own lock)", comparison, "![cycles/s and p99 against clients](chart.svg)");
    parts.push("### Every figure", cyclesTable(cycles));
    const warnings = warningsSummary(cycles);
    if (warnings.length > 0) parts.push("Logged by the servers during the figures (warnings, errors, role changes) and leader changes:", fenced(warnings.join("\n")));
  }
  const failover = from.get("failover")?.report.failover;
  if (failover !== undefined) parts.push("### Failover", fenced(describeFailover(failover)));
  const restart = from.get("restart")?.report.restart;
  if (restart !== undefined) parts.push("### Restart", fenced(describeRestart(restart)));
  const memory = from.get("memory")?.report.memory;
  if (memory !== undefined) parts.push("### Memory per held lock", fenced(describeMemory(memory)));
  const failed = sources.flatMap((source) => Object.entries(source.report.errors ?? {}).filter(([suite]) => !from.has(suite as SuiteName)));
  if (failed.length > 0) parts.push("### Suites that failed", fenced(failed.map(([suite, message]) => `${suite}: ${message}`).join("\n")));
  return parts.join("\n\n");
}

/** `readme` with the text between the markers replaced by `section`; throws when a marker is missing. */
export function replaceResultsSection(readme: string, section: string): string {
  const begin = readme.indexOf(resultsBeginMarker);
  const end = readme.indexOf(resultsEndMarker);
  if (begin < 0 || end < begin) throw new Error(`bench/README.md lacks the markers ${resultsBeginMarker} ... ${resultsEndMarker}`);
  return `${readme.slice(0, begin + resultsBeginMarker.length)}\n\n${section}\n\n${readme.slice(end)}`;
}
