// A load generator process: runs its share of a workload's clients, each in a closed loop (the next
// operation starts when the last one is answered), and reports latencies of the operations that completed
// inside the measured window, error counts, and its own CPU use. Started by generator-pool.ts.
import { performance } from "node:perf_hooks";
import { LatencyHistogram } from "../latency-histogram.js";
import type { FromGenerator, GeneratorResult, ToGenerator } from "./messages.js";
import { errorBackoffMs, errorCode, type LoadClient, openClient, type WorkloadSpec } from "./workloads.js";

/** Clients connected at once while preparing: a burst of 256 connects is fine, thousands are not needed. */
const connectBatchMax = 64;

let clients: LoadClient[] = [];

function reply(message: FromGenerator): void {
  process.send!(message);
}

async function prepare(spec: WorkloadSpec, clientIndexes: readonly number[]): Promise<void> {
  clients = [];
  for (let from = 0; from < clientIndexes.length; from += connectBatchMax) {
    clients.push(...(await Promise.all(clientIndexes.slice(from, from + connectBatchMax).map((index) => openClient(spec, index)))));
  }
}

async function run(warmupMs: number, durationMs: number): Promise<GeneratorResult> {
  const histogram = new LatencyHistogram();
  const errors: Record<string, number> = {};
  const startMs = performance.now();
  const windowStartMs = startMs + warmupMs;
  const windowEndMs = windowStartMs + durationMs;
  let cpuAtStart: NodeJS.CpuUsage | null = null;
  let eluAtStart: ReturnType<typeof performance.eventLoopUtilization> | null = null;
  let cpuInWindow: NodeJS.CpuUsage | null = null;
  let eluInWindow: ReturnType<typeof performance.eventLoopUtilization> | null = null;
  const windowOpened = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    eluAtStart = performance.eventLoopUtilization();
  }, warmupMs);
  const windowClosed = setTimeout(() => {
    cpuInWindow = process.cpuUsage(cpuAtStart ?? undefined);
    eluInWindow = performance.eventLoopUtilization(eluAtStart ?? undefined);
  }, warmupMs + durationMs);

  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < windowEndMs) {
        const beganMs = performance.now();
        try {
          await client.run();
          const endedMs = performance.now();
          if (endedMs >= windowStartMs && endedMs <= windowEndMs) histogram.record(endedMs - beganMs);
        } catch (error) {
          const endedMs = performance.now();
          if (endedMs >= windowStartMs && endedMs <= windowEndMs) {
            const code = errorCode(error);
            errors[code] = (errors[code] ?? 0) + 1;
          }
          await new Promise((resolve) => setTimeout(resolve, errorBackoffMs));
        }
      }
    }),
  );
  clearTimeout(windowOpened);
  clearTimeout(windowClosed);
  const cpu = cpuInWindow ?? process.cpuUsage(cpuAtStart ?? undefined);
  const elu = eluInWindow ?? performance.eventLoopUtilization(eluAtStart ?? undefined);
  await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  clients = [];
  return { histogram: histogram.toData(), errors, windowMs: durationMs, cores: (cpu.user + cpu.system) / 1000 / durationMs, eventLoopUtilization: elu.utilization };
}

process.on("message", (message: ToGenerator) => {
  const handle = async (): Promise<FromGenerator | null> => {
    switch (message.type) {
      case "prepare":
        await prepare(message.spec, message.clientIndexes);
        return { type: "prepared" };
      case "run":
        return { type: "result", result: await run(message.warmupMs, message.durationMs) };
      case "exit":
        process.exit(0);
    }
  };
  handle().then(
    (answer) => answer !== null && reply(answer),
    (error: unknown) => reply({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
  );
});
