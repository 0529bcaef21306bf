// Lock acquire+release cycles over RESP on a real 3-node loopback cluster: 1, 16 and 64 concurrent clients,
// each on its own lock, all connected to the leader. Usage: npx tsx bench/locks.ts [--seconds 10]
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { E2eCluster } from "../test/e2e/harness.js";

const concurrencies = [1, 16, 64];
const lockTtlMs = 30_000;

function argument(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

function percentile(sortedMs: number[], fraction: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const seconds = argument("seconds", 10);
  const cluster = await E2eCluster.start(3, ["--log-level", "warn"], false);
  try {
    const leader = await cluster.leader();
    const port = cluster.node(leader.id).respPort;
    for (const concurrency of concurrencies) {
      const clients = Array.from({ length: concurrency }, () => new Redis({ port, host: "127.0.0.1" }));
      const cyclesMs: number[] = [];
      const deadlineMs = performance.now() + seconds * 1000;
      const startedMs = performance.now();
      await Promise.all(
        clients.map(async (client, k) => {
          const lock = `bench-${concurrency}-${k}`;
          while (performance.now() < deadlineMs) {
            const cycleStartMs = performance.now();
            await client.call("LOCK.ACQUIRE", lock, `owner-${k}`, String(lockTtlMs));
            await client.call("LOCK.RELEASE", lock, `owner-${k}`);
            cyclesMs.push(performance.now() - cycleStartMs);
          }
        }),
      );
      const elapsedS = (performance.now() - startedMs) / 1000;
      cyclesMs.sort((a, b) => a - b);
      console.log(
        `${String(concurrency).padStart(2)} clients: ${(cyclesMs.length / elapsedS).toFixed(0)} acquire+release cycles/s, ` +
          `cycle p50 ${percentile(cyclesMs, 0.5).toFixed(2)} ms, p99 ${percentile(cyclesMs, 0.99).toFixed(2)} ms`,
      );
      for (const client of clients) client.disconnect();
    }
  } finally {
    await cluster.close();
  }
}

await main();
