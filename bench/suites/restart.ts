// Restart time of a whole 3-node cluster (all nodes started at once, as after a power loss or an upgrade)
// with a long log to replay, and with a large snapshot to load: from the start of the processes to each
// node's /readyz (a leader known and everything committed at its start applied) and to the first
// successful lock cycle. Also the nodes' memory and idle CPU once they are up.
import { RespConnection } from "../clients/resp-connection.js";
import { RaftlockCluster } from "../clusters/raftlock-cluster.js";
import type { BenchOptions } from "../options.js";
import { coresUsed, machineCoresUsed, sampleCpu, sampleMachineCpu } from "../process-stats.js";
import { directoryBytes, inspectableNode, mebibytes, nodeMemory, type NodeMemory } from "./node-memory.js";
import { appendCommittedEntries, installLockSnapshot } from "./offline-data.js";

/** Quiet time after a start before memory is read and idle CPU is measured. */
const idleMeasureMs = 5000;
/** How long a restart may take before it counts as failed. */
const restartTimeoutMs = 600_000;
/** TTL of the snapshot's locks: they stay held through the measurement. */
const snapshotLockTtlMs = 3_600_000;

export interface RestartCase {
  readonly what: string;
  /** Log entries replayed, or locks in the snapshot. */
  readonly size: number;
  readonly buildMs: number;
  readonly dataBytesPerNode: number;
  readonly snapshotBytes: number | null;
  /** From the start of the processes: each node's storage recovered (its "node started" log line; ms resolution of two clocks). */
  readonly recoveredMs: Record<string, number>;
  /** From the start of the processes: each node first knowing a leader (its "raft state changed" log line). */
  readonly leaderKnownMs: Record<string, number>;
  /** From the start of the processes: each node's /readyz. */
  readonly readyMs: Record<string, number>;
  /** From the start of the processes to the first successful lock write on the leader (`firstWrite` says which). */
  readonly firstWriteMs: number;
  readonly firstWrite: string;
  readonly memory: readonly NodeMemory[];
  /** Cores used by other processes while the cluster restarted: well above 0, the machine was shared. */
  readonly otherCores: number;
  /** Cores each node used in the quiet time after the start (lease and timer upkeep). */
  readonly idleCores: Record<string, number>;
}

export interface RestartResult {
  readonly baselineMemory: readonly NodeMemory[];
  readonly cases: readonly RestartCase[];
}

/** A lock write the cluster must commit to count as serving; true once it succeeded. */
type Probe = (connection: RespConnection) => Promise<boolean>;

/** An acquire and a release of a lock of its own. */
const cycleProbe: Probe = async (connection) =>
  typeof (await connection.call("LOCK.ACQUIRE", "restart-probe", "probe", 30_000)) === "number" && (await connection.call("LOCK.RELEASE", "restart-probe", "probe")) === 1;

/**
 * The holder of one of the snapshot's locks acquiring it again (an idempotent re-grant, one log write):
 * with more locks than `locksMax` (100,000) held, a new lock is refused with LIMIT, by design.
 */
const regrantProbe: Probe = async (connection) => typeof (await connection.call("LOCK.ACQUIRE", "lock-0", "owner-0", snapshotLockTtlMs)) === "number";

async function firstWrite(cluster: RaftlockCluster, probe: Probe): Promise<void> {
  for (;;) {
    try {
      const leader = await cluster.leader(undefined, restartTimeoutMs);
      const node = cluster.node(leader.id);
      const connection = await RespConnection.open(node.host, node.respPort);
      try {
        if (await probe(connection)) return;
      } finally {
        connection.close();
      }
    } catch {
      // Not up yet: a refused connection or NOLEADER.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts every (stopped) node at once and times what the cluster takes to serve again. */
async function timeRestart(cluster: RaftlockCluster, what: string, size: number, buildMs: number, snapshotBytes: number | null, probe: Probe): Promise<RestartCase> {
  const dataBytesPerNode = Math.max(...cluster.nodes.map((node) => directoryBytes(node.dataDir)));
  const machineBefore = sampleMachineCpu();
  const startedMs = performance.now();
  const startedAtEpochMs = Date.now();
  for (const node of cluster.nodes) {
    node.log.reset();
    // At info level the node logs "node started" once its storage is recovered: the first phase of a start.
    cluster.launch(node.id, ["--log-level", "info"]);
  }
  const readyMs: Record<string, number> = {};
  await Promise.all([
    ...cluster.nodes.map(async (node) => {
      await cluster.waitReady(node.id, restartTimeoutMs);
      readyMs[node.id] = performance.now() - startedMs;
    }),
  ]);
  await firstWrite(cluster, probe);
  const firstWriteMs = performance.now() - startedMs;
  // What the nodes used from their start (their whole CPU time so far) against what the machine used.
  const nodesCpuMs = [...cluster.pids().values()].reduce((sum, pid) => sum + (sampleCpu(pid)?.cpuMs ?? 0), 0);
  const otherCores = Math.max(0, machineCoresUsed(machineBefore, sampleMachineCpu()) - nodesCpuMs / firstWriteMs);
  const before = new Map([...cluster.pids()].map(([id, pid]) => [id, sampleCpu(pid)]));
  await new Promise((resolve) => setTimeout(resolve, idleMeasureMs));
  const idleCores: Record<string, number> = {};
  for (const [id, pid] of cluster.pids()) idleCores[id] = coresUsed(before.get(id) ?? null, sampleCpu(pid));
  const memory = await Promise.all(cluster.nodes.map((node) => nodeMemory(cluster, node.id)));
  const recoveredMs: Record<string, number> = {};
  const leaderKnownMs: Record<string, number> = {};
  for (const node of cluster.nodes) {
    recoveredMs[node.id] = (node.log.firstLoggedAtMs.get("node started") ?? Number.NaN) - startedAtEpochMs;
    leaderKnownMs[node.id] = (node.log.leaderKnownAtMs ?? Number.NaN) - startedAtEpochMs;
  }
  return { what, recoveredMs, leaderKnownMs, otherCores, size, buildMs, dataBytesPerNode, snapshotBytes, readyMs, firstWriteMs, firstWrite: probe === cycleProbe ? "lock cycle" : "re-acquire of a held lock", memory, idleCores };
}

/** A fresh settled cluster, stopped (kill -9 after everything committed is applied everywhere). */
async function stoppedCluster(extraArgs: readonly string[]): Promise<{ cluster: RaftlockCluster; memory: NodeMemory[] }> {
  const cluster = await RaftlockCluster.start(3, extraArgs, inspectableNode);
  await cluster.leader();
  for (const node of cluster.nodes) await cluster.waitReady(node.id);
  await cluster.settled();
  await new Promise((resolve) => setTimeout(resolve, idleMeasureMs));
  const memory = await Promise.all(cluster.nodes.map((node) => nodeMemory(cluster, node.id)));
  for (const node of cluster.nodes) await cluster.kill9(node.id);
  return { cluster, memory };
}

/** Times a full-cluster restart with a long log, then with a large snapshot. */
export async function runRestart(options: BenchOptions, progress: (line: string) => void): Promise<RestartResult> {
  const cases: RestartCase[] = [];
  // A node with defaults snapshots every 10,000 entries and never holds a million; this one is told not to.
  const logArgs = ["--snapshot-every-entries", String(options.logEntries * 2)];
  const { cluster: logCluster, memory: baselineMemory } = await stoppedCluster(logArgs);
  try {
    const builtMs = performance.now();
    await appendCommittedEntries(logCluster.nodes, options.logEntries);
    const buildMs = performance.now() - builtMs;
    progress(`restart: wrote ${options.logEntries} committed entries into each node's log in ${(buildMs / 1000).toFixed(1)} s`);
    const result = await timeRestart(logCluster, `log of ${options.logEntries} entries (--snapshot-every-entries ${options.logEntries * 2})`, options.logEntries, buildMs, null, cycleProbe);
    cases.push(result);
    progress(describeCase(result));
  } finally {
    await logCluster.close();
  }

  const { cluster: snapshotCluster } = await stoppedCluster([]);
  try {
    const builtMs = performance.now();
    const bootstrap = {
      voters: snapshotCluster.nodes.map((node) => node.id),
      learners: [],
      addresses: Object.fromEntries(snapshotCluster.nodes.map((node) => [node.id, `${node.host}:${node.peerDialPort}`])),
    };
    const { snapshotBytes } = await installLockSnapshot(snapshotCluster.nodes, options.snapshotLocks, snapshotLockTtlMs, bootstrap);
    const buildMs = performance.now() - builtMs;
    progress(`restart: built a snapshot of ${options.snapshotLocks} held locks (${mebibytes(snapshotBytes)}) in ${(buildMs / 1000).toFixed(1)} s`);
    const result = await timeRestart(snapshotCluster, `snapshot of ${options.snapshotLocks} held locks`, options.snapshotLocks, buildMs, snapshotBytes, regrantProbe);
    cases.push(result);
    progress(describeCase(result));
  } finally {
    await snapshotCluster.close();
  }
  return { baselineMemory, cases };
}

function seconds(ms: number | undefined): string {
  return `${((ms ?? Number.NaN) / 1000).toFixed(2)} s`;
}

function describeCase(result: RestartCase): string {
  const ready = Object.entries(result.readyMs)
    .map(([id, ms]) => `${id} ${seconds(ms)} (storage recovered at ${seconds(result.recoveredMs[id])}, leader known at ${seconds(result.leaderKnownMs[id])})`)
    .join(", ");
  const memory = result.memory.map((node) => `${node.id} RSS ${mebibytes(node.rssBytes)} (peak ${mebibytes(node.peakRssBytes)}, heap ${mebibytes(node.heapUsedBytes)})`).join(", ");
  const idle = Object.entries(result.idleCores)
    .map(([id, cores]) => `${id} ${(cores * 100).toFixed(0)}%`)
    .join(", ");
  return `restart with ${result.what} (${mebibytes(result.dataBytesPerNode)} on disk per node): ready ${ready}; first ${result.firstWrite} after ${(result.firstWriteMs / 1000).toFixed(2)} s; ${memory}; idle CPU ${idle}; other processes ${((result.otherCores ?? 0) * 100).toFixed(0)}% of a core meanwhile`;
}

/** Resident set and heap above the empty cluster's, per lock of the snapshot (leader and followers alike). */
export function snapshotBytesPerLock(result: RestartResult): { rss: number; heapUsed: number } | null {
  const snapshotCase = result.cases.find((restart) => restart.snapshotBytes !== null);
  if (snapshotCase === undefined) return null;
  const mean = (nodes: readonly NodeMemory[], field: "rssBytes" | "heapUsedBytes"): number => nodes.reduce((sum, node) => sum + node[field], 0) / nodes.length;
  return {
    rss: (mean(snapshotCase.memory, "rssBytes") - mean(result.baselineMemory, "rssBytes")) / snapshotCase.size,
    heapUsed: (mean(snapshotCase.memory, "heapUsedBytes") - mean(result.baselineMemory, "heapUsedBytes")) / snapshotCase.size,
  };
}

/** The restart figures as printed lines. */
export function describeRestart(result: RestartResult): string {
  const perLock = snapshotBytesPerLock(result);
  const lines = result.cases.map(describeCase);
  if (perLock !== null) lines.push(`after the snapshot restart, per held lock above an empty node (mean of the 3): ${perLock.rss.toFixed(0)} B RSS, ${perLock.heapUsed.toFixed(0)} B V8 heap`);
  return lines.join("\n");
}
