// The "Latest results" section of bench/README.md, from a results file: machine, commit and date, the
// cycles table, the comparison, and the failover, restart and memory figures.
import { machineLine } from "../machine.js";
import type { BenchReport } from "../results.js";
import { describeFailover } from "../suites/failover.js";
import { describeMemory } from "../suites/memory.js";
import { describeRestart } from "../suites/restart.js";
import { comparisonTable, cyclesTable, warningsSummary } from "./table.js";

/** Markers around the generated section in bench/README.md. */
export const resultsBeginMarker = "<!-- results:begin (written by `npm run bench -- ... --update-readme`) -->";
export const resultsEndMarker = "<!-- results:end -->";

function fenced(text: string): string {
  return ["```", text.trim(), "```"].join("\n");
}

/** The section's Markdown, `resultsFile` being where the full figures are kept (relative to bench/). */
export function resultsMarkdown(report: BenchReport, resultsFile: string): string {
  const { machine } = report;
  const parts = [
    `Run of ${machine.date.slice(0, 16).replace("T", " ")} UTC: ${machineLine(machine).replace(/^\d{4}-\d{2}-\d{2}, /, "")}. ` +
      `${machine.etcd ?? "etcd not installed"}; ${machine.redis ?? "redis-server not installed"}. ` +
      `Full figures: [${resultsFile}](${resultsFile}).`,
  ];
  if (report.cycles !== undefined) {
    const comparison = comparisonTable(report.cycles);
    if (comparison !== null) parts.push("### raftlock against etcd and redis (lock cycles, each client its own lock)", comparison, "![cycles/s and p99 against clients](chart.svg)");
    parts.push("### Every figure", cyclesTable(report.cycles));
    const warnings = warningsSummary(report.cycles);
    if (warnings.length > 0) parts.push("Logged by the servers during the figures (warnings, errors, role changes) and leader changes:", fenced(warnings.join("\n")));
  }
  if (report.failover !== undefined) parts.push("### Failover", fenced(describeFailover(report.failover)));
  if (report.restart !== undefined) parts.push("### Restart", fenced(describeRestart(report.restart)));
  if (report.memory !== undefined) parts.push("### Memory per held lock", fenced(describeMemory(report.memory)));
  if (report.errors !== undefined) parts.push("### Suites that failed", fenced(Object.entries(report.errors).map(([suite, message]) => `${suite}: ${message}`).join("\n")));
  return parts.join("\n\n");
}

/** `readme` with the text between the markers replaced by `section`; throws when a marker is missing. */
export function replaceResultsSection(readme: string, section: string): string {
  const begin = readme.indexOf(resultsBeginMarker);
  const end = readme.indexOf(resultsEndMarker);
  if (begin < 0 || end < begin) throw new Error(`bench/README.md lacks the markers ${resultsBeginMarker} ... ${resultsEndMarker}`);
  return `${readme.slice(0, begin + resultsBeginMarker.length)}\n\n${section}\n\n${readme.slice(end)}`;
}
