// Failover time: lock cycles run steadily from clients connected to the two followers; the leader is
// killed (SIGKILL, a crash) or stopped (SIGTERM, a graceful handoff); measured from the signal to the
// first cycle that began after it and succeeded, and the longest time without any successful cycle.
// The stopped node is started again and caught up between rounds. Default timeouts (election 1-2 s).
import { RaftlockCluster } from "../clusters/raftlock-cluster.js";
import { errorCode, type LoadClient, openClient, type WorkloadSpec } from "../load/workloads.js";
import type { BenchOptions } from "../options.js";

/** Steady load before the signal, so that the cycle rate and the connections are warm. */
const steadyBeforeMs = 2000;
/** How long cycles are watched after the first one that succeeds after the signal (later gaps count too). */
const watchAfterRecoveryMs = 2000;
/** A round fails when no cycle succeeds within this long after the signal. */
const recoveryTimeoutMs = 30_000;
/** Pause after a failed cycle, as the load generator's clients do. */
const errorBackoffMs = 10;
/** Pause between rounds once the restarted node is caught up. */
const settleBetweenRoundsMs = 1000;

export interface FailoverRound {
  readonly signal: "SIGKILL" | "SIGTERM";
  readonly stoppedLeader: string;
  readonly newLeader: string;
  /** From the signal to the survivors agreeing on a new leader (polled every 20 ms). */
  readonly newLeaderMs: number;
  /** From the signal to the completion of the first successful cycle that began after it. */
  readonly recoveryMs: number;
  /** Longest time without a successful cycle completing, around the signal. */
  readonly longestGapMs: number;
  readonly errors: Record<string, number>;
}

export interface FailoverResult {
  readonly clients: number;
  readonly rounds: readonly FailoverRound[];
  readonly median: Record<"SIGKILL" | "SIGTERM", { readonly recoveryMs: number; readonly longestGapMs: number; readonly newLeaderMs: number }>;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

interface CycleRecord {
  readonly beganMs: number;
  readonly endedMs: number;
}

/** Clients cycling in a closed loop until stopped, recording every success and counting errors. */
class SteadyLoad {
  readonly successes: CycleRecord[] = [];
  readonly errors: Record<string, number> = {};
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(private readonly clients: readonly LoadClient[]) {
    this.loops = clients.map(async (client) => {
      while (this.running) {
        const beganMs = performance.now();
        try {
          await client.run();
          this.successes.push({ beganMs, endedMs: performance.now() });
        } catch (error) {
          const code = errorCode(error);
          this.errors[code] = (this.errors[code] ?? 0) + 1;
          await new Promise((resolve) => setTimeout(resolve, errorBackoffMs));
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((client) => client.close()));
  }
}

async function runRound(cluster: RaftlockCluster, options: BenchOptions, signal: "SIGKILL" | "SIGTERM", round: number): Promise<FailoverRound> {
  const leader = await cluster.leader();
  const survivors = cluster.nodes.filter((node) => node.id !== leader.id);
  const spec: WorkloadSpec = {
    kind: "resp-cycle",
    endpoints: survivors.map((node) => ({ host: node.host, port: node.respPort })),
    runId: `f${Date.now().toString(36)}-${signal}-${round}`,
    lockTtlMs: options.lockTtlMs,
    contendedLocks: 1,
    waitMs: 0,
    consistency: "linearizable",
    readLock: "",
  };
  const clients = await Promise.all(Array.from({ length: options.failoverClients }, (_, k) => openClient(spec, k)));
  const load = new SteadyLoad(clients);
  await new Promise((resolve) => setTimeout(resolve, steadyBeforeMs));
  const errorsBefore = { ...load.errors };

  const signalledMs = performance.now();
  const stopped = cluster.stop(leader.id, signal);
  const survivorIds = survivors.map((node) => node.id);
  const newLeader = cluster.leader(survivorIds, recoveryTimeoutMs, leader.id).then((view) => ({ view, atMs: performance.now() }));
  const recoveredAtMs = await waitForRecovery(load, signalledMs);
  await new Promise((resolve) => setTimeout(resolve, watchAfterRecoveryMs));
  await load.stop();
  await stopped;
  const elected = await newLeader;

  const completions = load.successes.map((record) => record.endedMs).filter((endedMs) => endedMs >= signalledMs - steadyBeforeMs / 2);
  let longestGapMs = 0;
  for (let k = 1; k < completions.length; k++) longestGapMs = Math.max(longestGapMs, completions[k]! - completions[k - 1]!);
  const errors: Record<string, number> = {};
  for (const [code, count] of Object.entries(load.errors)) if (count - (errorsBefore[code] ?? 0) > 0) errors[code] = count - (errorsBefore[code] ?? 0);

  cluster.launch(leader.id);
  await cluster.waitReady(leader.id);
  await cluster.settled();
  await new Promise((resolve) => setTimeout(resolve, settleBetweenRoundsMs));
  return { signal, stoppedLeader: leader.id, newLeader: elected.view.id, newLeaderMs: elected.atMs - signalledMs, recoveryMs: recoveredAtMs - signalledMs, longestGapMs, errors };
}

/** When the first cycle that began after the signal completed successfully. */
async function waitForRecovery(load: SteadyLoad, signalledMs: number): Promise<number> {
  const deadlineMs = signalledMs + recoveryTimeoutMs;
  while (performance.now() < deadlineMs) {
    const first = load.successes.find((record) => record.beganMs >= signalledMs);
    if (first !== undefined) return first.endedMs;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`no lock cycle succeeded within ${recoveryTimeoutMs} ms of stopping the leader`);
}

/** `--rounds` rounds of kill -9, then of SIGTERM, of the leader under load. */
export async function runFailover(options: BenchOptions, progress: (line: string) => void): Promise<FailoverResult> {
  const cluster = await RaftlockCluster.start(3);
  const rounds: FailoverRound[] = [];
  try {
    await cluster.leader();
    for (const node of cluster.nodes) await cluster.waitReady(node.id);
    for (const signal of ["SIGKILL", "SIGTERM"] as const) {
      for (let round = 1; round <= options.rounds; round++) {
        const result = await runRound(cluster, options, signal, round);
        rounds.push(result);
        progress(
          `failover ${signal} ${round}/${options.rounds}: ${result.stoppedLeader} -> ${result.newLeader}, new leader after ${result.newLeaderMs.toFixed(0)} ms, ` +
            `cycles again after ${result.recoveryMs.toFixed(0)} ms, longest gap ${result.longestGapMs.toFixed(0)} ms, errors ${JSON.stringify(result.errors)}`,
        );
      }
    }
  } finally {
    await cluster.close();
  }
  const medianOf = (signal: "SIGKILL" | "SIGTERM"): FailoverResult["median"]["SIGKILL"] => {
    const these = rounds.filter((round) => round.signal === signal);
    return { recoveryMs: median(these.map((round) => round.recoveryMs)), longestGapMs: median(these.map((round) => round.longestGapMs)), newLeaderMs: median(these.map((round) => round.newLeaderMs)) };
  };
  return { clients: options.failoverClients, rounds, median: { SIGKILL: medianOf("SIGKILL"), SIGTERM: medianOf("SIGTERM") } };
}

/** The failover medians as printed lines. */
export function describeFailover(result: FailoverResult): string {
  const lines = [`failover with ${result.clients} clients cycling on the followers (median of ${result.rounds.length / 2} rounds each):`];
  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    const m = result.median[signal];
    lines.push(`  ${signal === "SIGKILL" ? "kill -9 " : "SIGTERM "}: new leader after ${m.newLeaderMs.toFixed(0)} ms, cycles succeed again after ${m.recoveryMs.toFixed(0)} ms, longest gap ${m.longestGapMs.toFixed(0)} ms`);
  }
  return lines.join("\n");
}
