// bench/chart.svg: lock cycles/s and p99 latency against client count, raftlock and etcd side by side,
// as grouped bars. Hand-written SVG, no dependencies; redis (an order of magnitude higher, one node, no
// replication) is in the table only, so that it does not flatten the bars that are being compared.
import type { MachineInfo, ScenarioResult } from "../results.js";

interface Series {
  readonly scenario: string;
  readonly label: string;
  readonly color: string;
}

const series: readonly Series[] = [
  { scenario: "resp-cycle", label: "raftlock (RESP)", color: "#2b6cb0" },
  { scenario: "http-cycle", label: "raftlock (HTTP)", color: "#63b3ed" },
  { scenario: "etcd-cycle", label: "etcd 3.4 (JSON gateway)", color: "#dd6b20" },
];

const panelWidth = 460;
const panelHeight = 300;
const margin = { top: 56, right: 16, bottom: 48, left: 64 };
const gap = 24;

function escape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Round axis maximum and step: 1, 2 or 5 times a power of ten, about five ticks. */
function niceScale(maxValue: number): { max: number; step: number } {
  const rough = Math.max(maxValue, 1e-9) / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough)!;
  return { max: Math.ceil(maxValue / step) * step, step };
}

function label(value: number): string {
  if (value === 0) return "0";
  if (value >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (value >= 9.95) return value.toFixed(0);
  return value.toFixed(1);
}

function panel(results: readonly ScenarioResult[], x0: number, title: string, value: (result: ScenarioResult) => number): string {
  const clients = [...new Set(results.filter((result) => series.some((one) => one.scenario === result.scenario)).map((result) => result.clients))].sort((a, b) => a - b);
  const shown = series.filter((one) => results.some((result) => result.scenario === one.scenario));
  const values = results.filter((result) => shown.some((one) => one.scenario === result.scenario)).map(value).filter(Number.isFinite);
  const { max, step } = niceScale(Math.max(...values, 0) * 1.1);
  const plotWidth = panelWidth - margin.left - margin.right;
  const plotHeight = panelHeight - margin.top - margin.bottom;
  const y = (v: number): number => margin.top + plotHeight - (v / max) * plotHeight;
  const groupWidth = plotWidth / Math.max(clients.length, 1);
  const barWidth = (groupWidth * 0.8) / Math.max(shown.length, 1);
  const parts: string[] = [`<g transform="translate(${x0},0)">`, `<text x="${panelWidth / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(title)}</text>`];
  for (let tick = 0; tick <= max + step / 2; tick += step) {
    parts.push(`<line x1="${margin.left}" x2="${panelWidth - margin.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${y(tick) + 4}" text-anchor="end" font-size="11" fill="#4a5568">${label(tick)}</text>`);
  }
  for (const [g, count] of clients.entries()) {
    const groupX = margin.left + g * groupWidth + groupWidth * 0.1;
    for (const [s, one] of shown.entries()) {
      const result = results.find((candidate) => candidate.scenario === one.scenario && candidate.clients === count);
      if (result === undefined || !Number.isFinite(value(result))) continue;
      const v = value(result);
      const x = groupX + s * barWidth;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${one.color}"><title>${escape(`${one.label}, ${count} clients: ${v.toFixed(2)}`)}</title></rect>`);
      parts.push(`<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#1a202c">${label(v)}</text>`);
    }
    parts.push(`<text x="${(margin.left + g * groupWidth + groupWidth / 2).toFixed(1)}" y="${margin.top + plotHeight + 18}" text-anchor="middle" font-size="12">${count}</text>`);
  }
  parts.push(`<line x1="${margin.left}" x2="${panelWidth - margin.right}" y1="${y(0)}" y2="${y(0)}" stroke="#4a5568"/>`);
  parts.push(`<text x="${margin.left + plotWidth / 2}" y="${panelHeight - 10}" text-anchor="middle" font-size="12" fill="#4a5568">concurrent clients</text>`);
  parts.push("</g>");
  return parts.join("\n");
}

/** The chart of the cycle figures, as a standalone SVG document. */
export function drawChart(results: readonly ScenarioResult[], machine: MachineInfo): string {
  const width = panelWidth * 2 + gap;
  const height = panelHeight + 56;
  const shown = series.filter((one) => results.some((result) => result.scenario === one.scenario));
  const legend = shown
    .map((one, k) => `<rect x="${16 + k * 210}" y="${panelHeight + 14}" width="12" height="12" fill="${one.color}"/><text x="${32 + k * 210}" y="${panelHeight + 24}" font-size="12">${escape(one.label)}</text>`)
    .join("\n");
  const footnote = `acquire+release cycles, each client its own lock, 3 members on loopback, fsync before every acknowledgement; ${machine.date.slice(0, 10)}, ${machine.cpus} cores, commit ${machine.commit}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(results, 0, "lock cycles per second (higher is better)", (result) => result.ratePerSecond),
    panel(results, panelWidth + gap, "cycle latency p99, ms (lower is better)", (result) => result.p99Ms),
    legend,
    `<text x="16" y="${height - 8}" font-size="10" fill="#4a5568">${escape(footnote)}</text>`,
    "</svg>",
    "",
  ].join("\n");
}
