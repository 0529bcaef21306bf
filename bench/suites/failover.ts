// Failover time: lock cycles run steadily from clients connected to the two followers; the leader is
// killed (SIGKILL, a crash), stopped (SIGTERM, a graceful handoff) or cut off from both followers (a
// network partition, through the chaos harness's fault network); measured from the fault to the first
// cycle that began after it and succeeded, and the longest time without any successful cycle. Between
// rounds the stopped node is started again, or the partition healed, and the old leader caught up.
// Default timeouts (election 1-2 s).
import { type LeaderView, RaftlockCluster } from "../clusters/raftlock-cluster.js";
import { type CycleRecord, FreshCycles, SteadyLoad } from "../load/failover-load.js";
import { openClient, type WorkloadSpec } from "../load/workloads.js";
import type { BenchOptions } from "../options.js";

/** What happens to the leader in a round. */
export const failoverKinds = ["SIGKILL", "SIGTERM", "partition"] as const;
export type FailoverKind = (typeof failoverKinds)[number];

/** Steady load before the fault, so that the cycle rate and the connections are warm. */
const steadyBeforeMs = 2000;
/** How long cycles are watched after the first one that succeeds after the fault (later gaps count too). */
const watchAfterRecoveryMs = 2000;
/** A round fails when no cycle succeeds within this long after the fault. */
const recoveryTimeoutMs = 30_000;
/** Pause between rounds once the restarted node is caught up. */
const settleBetweenRoundsMs = 1000;
/** Poll interval for the isolated leader's own view of the leader: short against a 1-2 s election timeout. */
const stepDownPollMs = 20;

export interface FailoverRound {
  readonly kind: FailoverKind;
  /** The leader the fault hit. */
  readonly oldLeader: string;
  readonly newLeader: string;
  /** From the fault to the followers agreeing on a new leader (polled every 20 ms). */
  readonly newLeaderMs: number;
  /** From the fault to the completion of the first successful cycle that began after it. */
  readonly recoveryMs: number;
  /** Longest time without a successful cycle completing, around the fault. */
  readonly longestGapMs: number;
  /**
   * From the fault to the completion of the first successful *fresh* cycle that began after it (one
   * begins every 50 ms on a client that is not waiting): when the cluster takes new cycles again, even
   * while the clients' cycles in flight at the fault still wait for an answer.
   */
  readonly freshRecoveryMs?: number;
  readonly errors: Record<string, number>;
  /** Partition: from the cut to the isolated leader no longer naming itself leader (CheckQuorum). */
  readonly stepDownMs?: number;
  /** Partition: from healing to the old leader following the new one. */
  readonly rejoinMs?: number;
}

export interface FailoverMedian {
  readonly recoveryMs: number;
  readonly longestGapMs: number;
  readonly newLeaderMs: number;
  readonly freshRecoveryMs?: number;
  readonly stepDownMs?: number;
  readonly rejoinMs?: number;
}

export interface FailoverResult {
  readonly clients: number;
  readonly rounds: readonly FailoverRound[];
  /** By kind; results from before the partition kind have SIGKILL and SIGTERM only. */
  readonly median: Partial<Record<FailoverKind, FailoverMedian>>;
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Cuts both directions of both of `leaderId`'s peer links; returns the undo. */
function isolate(cluster: RaftlockCluster, leaderId: string): () => void {
  const network = cluster.network;
  if (network === null) throw new Error("a partition round needs a cluster started with a fault network");
  // Bytes are dropped but the connections stay open, as behind a real partition (no reset reaches either
  // end): the nodes learn of it only from silence. `Link.cut` would also reset the connections at once,
  // which a follower takes as its leader's stream closing, the fast path of a crash.
  const links = cluster.nodes.filter((node) => node.id !== leaderId).map((node) => network.link(leaderId, node.id));
  for (const link of links) for (const end of [link.a, link.b]) link.block(end, true);
  // Unblocking also resets the links' connections: their streams lost bytes mid-frame.
  return () => {
    for (const link of links) link.heal();
  };
}

/** When `leaderId` stops naming itself leader, polled on its own HTTP port (which the partition leaves reachable). */
async function watchStepDown(cluster: RaftlockCluster, leaderId: string, faultMs: number, stopped: () => boolean): Promise<number | undefined> {
  while (!stopped() && performance.now() < faultMs + recoveryTimeoutMs) {
    try {
      const { status, body } = await cluster.httpClient(leaderId).get("/v1/cluster/leader");
      if (status !== 200 || (body as LeaderView).id !== leaderId) return performance.now() - faultMs;
    } catch {
      // a busy node may drop a poll; the next one decides
    }
    await new Promise((resolve) => setTimeout(resolve, stepDownPollMs));
  }
  return undefined;
}

async function runRound(cluster: RaftlockCluster, options: BenchOptions, kind: FailoverKind, round: number): Promise<FailoverRound> {
  const leader = await cluster.leader();
  const survivors = cluster.nodes.filter((node) => node.id !== leader.id);
  const spec: WorkloadSpec = {
    kind: "resp-cycle",
    endpoints: survivors.map((node) => ({ host: node.host, port: node.respPort })),
    runId: `f${Date.now().toString(36)}-${kind}-${round}`,
    lockTtlMs: options.lockTtlMs,
    contendedLocks: 1,
    waitMs: 0,
    consistency: "linearizable",
    readLock: "",
  };
  const clients = await Promise.all(Array.from({ length: options.failoverClients }, (_, k) => openClient(spec, k)));
  const load = new SteadyLoad(clients);
  const fresh = new FreshCycles(spec, options.failoverClients);
  await new Promise((resolve) => setTimeout(resolve, steadyBeforeMs));
  const errorsBefore = { ...load.errors };

  const faultMs = performance.now();
  let stopped: Promise<void> = Promise.resolve();
  let heal: (() => void) | null = null;
  let stepDown: Promise<number | undefined> = Promise.resolve(undefined);
  let watching = true;
  if (kind === "partition") {
    heal = isolate(cluster, leader.id);
    stepDown = watchStepDown(cluster, leader.id, faultMs, () => !watching);
  } else {
    stopped = cluster.stop(leader.id, kind);
  }
  const survivorIds = survivors.map((node) => node.id);
  const newLeader = cluster.leader(survivorIds, recoveryTimeoutMs, leader.id).then((view) => ({ view, atMs: performance.now() }));
  const recoveredAtMs = await waitForRecovery(load.successes, faultMs);
  await new Promise((resolve) => setTimeout(resolve, watchAfterRecoveryMs));
  await Promise.all([load.stop(), fresh.stop()]);
  const freshRecoveredAtMs = firstAfter(fresh.successes, faultMs)?.endedMs;
  await stopped;
  const elected = await newLeader;
  watching = false;
  const stepDownMs = await stepDown;

  const completions = load.successes.map((record) => record.endedMs).filter((endedMs) => endedMs >= faultMs - steadyBeforeMs / 2);
  let longestGapMs = 0;
  for (let k = 1; k < completions.length; k++) longestGapMs = Math.max(longestGapMs, completions[k]! - completions[k - 1]!);
  const errors: Record<string, number> = {};
  for (const [code, count] of Object.entries(load.errors)) if (count - (errorsBefore[code] ?? 0) > 0) errors[code] = count - (errorsBefore[code] ?? 0);
  const figures = { kind, oldLeader: leader.id, newLeader: elected.view.id, newLeaderMs: elected.atMs - faultMs, recoveryMs: recoveredAtMs - faultMs, longestGapMs, errors };
  const freshFigure = freshRecoveredAtMs === undefined ? {} : { freshRecoveryMs: freshRecoveredAtMs - faultMs };

  if (heal !== null) {
    const healedMs = performance.now();
    heal();
    await cluster.leader(cluster.nodes.map((node) => node.id), recoveryTimeoutMs);
    const rejoinMs = performance.now() - healedMs;
    await cluster.settled();
    await new Promise((resolve) => setTimeout(resolve, settleBetweenRoundsMs));
    return { ...figures, ...freshFigure, ...(stepDownMs === undefined ? {} : { stepDownMs }), rejoinMs };
  }
  cluster.launch(leader.id);
  await cluster.waitReady(leader.id);
  await cluster.settled();
  await new Promise((resolve) => setTimeout(resolve, settleBetweenRoundsMs));
  return { ...figures, ...freshFigure };
}

/** The first successful cycle that began after the fault. */
function firstAfter(successes: readonly CycleRecord[], faultMs: number): CycleRecord | undefined {
  return successes.find((record) => record.beganMs >= faultMs);
}

/** When the first cycle that began after the fault completed successfully. */
async function waitForRecovery(successes: readonly CycleRecord[], faultMs: number): Promise<number> {
  const deadlineMs = faultMs + recoveryTimeoutMs;
  while (performance.now() < deadlineMs) {
    const first = firstAfter(successes, faultMs);
    if (first !== undefined) return first.endedMs;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`no lock cycle succeeded within ${recoveryTimeoutMs} ms of the fault`);
}

/**
 * `--rounds` rounds of each of `--failover-kinds` under load, each kind on a cluster of its own: a
 * partition needs the nodes behind the fault network, whose relays the other kinds should not pay for.
 */
export async function runFailover(options: BenchOptions, progress: (line: string) => void): Promise<FailoverResult> {
  const rounds: FailoverRound[] = [];
  for (const kind of options.failoverKinds) {
    const cluster = await RaftlockCluster.start(3, [], [], kind === "partition");
    try {
      await cluster.leader();
      for (const node of cluster.nodes) await cluster.waitReady(node.id);
      for (let round = 1; round <= options.rounds; round++) {
        const result = await runRound(cluster, options, kind, round);
        rounds.push(result);
        const partitionFigures = kind === "partition" ? `, isolated leader stepped down after ${result.stepDownMs?.toFixed(0) ?? "-"} ms, rejoined ${result.rejoinMs?.toFixed(0)} ms after healing` : "";
        progress(
          `failover ${kind} ${round}/${options.rounds}: ${result.oldLeader} -> ${result.newLeader}, new leader after ${result.newLeaderMs.toFixed(0)} ms, ` +
            `cycles again after ${result.recoveryMs.toFixed(0)} ms (fresh ones after ${result.freshRecoveryMs?.toFixed(0) ?? "-"} ms), longest gap ${result.longestGapMs.toFixed(0)} ms${partitionFigures}, errors ${JSON.stringify(result.errors)}`,
        );
      }
    } finally {
      await cluster.close();
    }
  }
  const median: FailoverResult["median"] = {};
  for (const kind of options.failoverKinds) {
    const these = rounds.filter((round) => round.kind === kind);
    const of = (figure: (round: FailoverRound) => number | undefined): number => medianOf(these.map(figure).filter((value) => value !== undefined));
    median[kind] = {
      recoveryMs: of((round) => round.recoveryMs),
      longestGapMs: of((round) => round.longestGapMs),
      newLeaderMs: of((round) => round.newLeaderMs),
      freshRecoveryMs: of((round) => round.freshRecoveryMs),
      ...(kind === "partition" ? { stepDownMs: of((round) => round.stepDownMs), rejoinMs: of((round) => round.rejoinMs) } : {}),
    };
  }
  return { clients: options.failoverClients, rounds, median };
}

const kindLabels: Record<FailoverKind, string> = { SIGKILL: "kill -9  ", SIGTERM: "SIGTERM  ", partition: "partition" };

/** The failover medians as printed lines (also for results written before the partition kind). */
export function describeFailover(result: FailoverResult): string {
  const kinds = failoverKinds.filter((kind) => result.median[kind] !== undefined);
  const lines = [`failover with ${result.clients} clients cycling on the followers (median of ${result.rounds.length / kinds.length} rounds each):`];
  for (const kind of kinds) {
    const m = result.median[kind]!;
    const fresh = m.freshRecoveryMs === undefined ? "" : ` (fresh ones after ${m.freshRecoveryMs.toFixed(0)} ms)`;
    const partition = m.stepDownMs === undefined ? "" : `; the isolated leader stepped down after ${m.stepDownMs.toFixed(0)} ms and rejoined as a follower ${m.rejoinMs?.toFixed(0)} ms after healing`;
    lines.push(`  ${kindLabels[kind]}: new leader after ${m.newLeaderMs.toFixed(0)} ms, cycles succeed again after ${m.recoveryMs.toFixed(0)} ms${fresh}, longest gap ${m.longestGapMs.toFixed(0)} ms${partition}`);
  }
  return lines.join("\n");
}
