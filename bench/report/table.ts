// The human table of a cycles run (also what bench/README.md holds), as Markdown.
import type { ScenarioResult, ServerUsage } from "../results.js";

const mebibyte = 1024 * 1024;

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}

function rate(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "-";
}

/** "n1 L 95% / n2 41% / n3 40%": each server's share of a core, the leader marked. */
function serverCpu(servers: readonly ServerUsage[]): string {
  if (servers.length === 0) return "-";
  return servers.map((server) => `${server.name}${server.role === "leader" ? " L" : ""} ${fixed(server.cores * 100, 0)}%`).join(" / ");
}

function peakRss(servers: readonly ServerUsage[]): string {
  const peaks = servers.map((server) => server.peakRssBytes).filter(Number.isFinite);
  return peaks.length === 0 ? "-" : `${fixed(Math.max(...peaks) / mebibyte, 0)}`;
}

function generatorCpu(result: ScenarioResult): string {
  const shares = result.generators.map((generator) => fixed(generator.cores * 100, 0)).join("+");
  return `${result.generator === "node" ? "node" : "redis-benchmark"} ${shares}%${result.generatorSaturated ? " SAT" : ""}`;
}

function errors(result: ScenarioResult): string {
  const entries = Object.entries(result.errors);
  return entries.length === 0 ? "0" : entries.map(([code, count]) => `${count} ${code}`).join(", ");
}

/** Every figure of a cycles run, one row each. */
export function cyclesTable(results: readonly ScenarioResult[]): string {
  const header = "| system | scenario | clients | rate | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | server CPU (1 core = 100%) | peak RSS MiB | generator CPU | other CPU |";
  const rule = "|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|---|--:|";
  const rows = results.map(
    (result) =>
      `| ${result.system} | ${result.scenario} | ${result.clients} | ${rate(result.ratePerSecond)} ${result.unit} | ${fixed(result.p50Ms, 2)} | ${fixed(result.p90Ms, 2)} | ${fixed(result.p99Ms, 2)} | ${fixed(result.p999Ms, 1)} | ${fixed(result.maxMs, 1)} | ${errors(result)} | ${serverCpu(result.servers)} | ${peakRss(result.servers)} | ${generatorCpu(result)} | ${fixed(result.otherCores * 100, 0)}% |`,
  );
  return [header, rule, ...rows].join("\n");
}

/** raftlock's RESP cycle against etcd's and redis's at each client count, as ratios. */
export function comparisonTable(results: readonly ScenarioResult[]): string | null {
  const figure = (scenario: string, clients: number): ScenarioResult | undefined => results.find((result) => result.scenario === scenario && result.clients === clients);
  const counts = [...new Set(results.filter((result) => result.scenario === "resp-cycle").map((result) => result.clients))];
  const rows = counts.flatMap((clients) => {
    const raftlock = figure("resp-cycle", clients)!;
    const etcd = figure("etcd-cycle", clients);
    const redis = figure("redis-cycle", clients);
    if (etcd === undefined && redis === undefined) return [];
    const ratio = (other: ScenarioResult | undefined): string => (other === undefined ? "-" : `${fixed(raftlock.ratePerSecond / other.ratePerSecond, 2)}x`);
    const cell = (other: ScenarioResult | undefined): string => (other === undefined ? "-" : `${rate(other.ratePerSecond)} (p50 ${fixed(other.p50Ms, 2)}, p99 ${fixed(other.p99Ms, 2)})`);
    return [`| ${clients} | ${rate(raftlock.ratePerSecond)} (p50 ${fixed(raftlock.p50Ms, 2)}, p99 ${fixed(raftlock.p99Ms, 2)}) | ${cell(etcd)} | ${ratio(etcd)} | ${cell(redis)} | ${ratio(redis)} |`];
  });
  if (rows.length === 0) return null;
  return ["| clients | raftlock RESP cycles/s (ms) | etcd cycles/s (ms) | raftlock / etcd | redis cycles/s (ms) | raftlock / redis |", "|--:|--:|--:|--:|--:|--:|", ...rows].join("\n");
}

/** Server warnings of every run, for the notes under the table. */
export function warningsSummary(results: readonly ScenarioResult[]): string[] {
  return results.flatMap((result) => {
    const lines = Object.entries(result.serverWarnings).map(([message, count]) => `${result.scenario} x${result.clients}: ${count} x ${message}`);
    if (result.leaderChanged) lines.push(`${result.scenario} x${result.clients}: the leader changed during the run`);
    return lines;
  });
}
