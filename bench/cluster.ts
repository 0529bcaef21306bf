// Commit latency and throughput of a real 3-node cluster on loopback: three node processes, writes through
// the HTTP write barrier (POST /v1/cluster/barrier) at the leader, each acknowledged once applied there.
// Usage: npx tsx bench/cluster.ts [--seconds 10] [--proposers 64]
import { performance } from "node:perf_hooks";
import { E2eCluster } from "../test/e2e/harness.js";

/** Sequential writes measured for the idle-latency figure. */
const latencySamples = 1000;
const warmupWrites = 200;

function argument(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

function percentile(sortedMs: number[], fraction: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction))]!;
}

async function main(): Promise<void> {
  const seconds = argument("seconds", 10);
  const proposers = argument("proposers", 64);
  const cluster = await E2eCluster.start(3, ["--log-level", "warn"], false);
  try {
    const leader = await cluster.leader();
    const url = `http://127.0.0.1:${cluster.node(leader.id).httpPort}/v1/cluster/barrier`;
    const write = async (): Promise<void> => {
      const response = await fetch(url, { method: "POST" });
      if (response.status !== 200) throw new Error(`barrier answered ${response.status}: ${await response.text()}`);
      await response.arrayBuffer();
    };
    for (let k = 0; k < warmupWrites; k++) await write();

    const latenciesMs: number[] = [];
    for (let k = 0; k < latencySamples; k++) {
      const startedMs = performance.now();
      await write();
      latenciesMs.push(performance.now() - startedMs);
    }
    latenciesMs.sort((a, b) => a - b);

    let completed = 0;
    const deadlineMs = performance.now() + seconds * 1000;
    const startedMs = performance.now();
    await Promise.all(
      Array.from({ length: proposers }, async () => {
        while (performance.now() < deadlineMs) {
          await write();
          completed++;
        }
      }),
    );
    const elapsedS = (performance.now() - startedMs) / 1000;
    console.log(`idle commit latency over ${latencySamples} sequential writes: median ${percentile(latenciesMs, 0.5).toFixed(2)} ms, p99 ${percentile(latenciesMs, 0.99).toFixed(2)} ms`);
    console.log(`throughput with ${proposers} concurrent proposers for ${elapsedS.toFixed(1)} s: ${(completed / elapsedS).toFixed(0)} writes/s`);
  } finally {
    await cluster.close();
  }
}

await main();
