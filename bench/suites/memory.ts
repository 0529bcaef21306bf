// Memory per held lock: a fresh cluster (default settings) is filled with held locks through the RESP
// API, each with its own lease, and every node's resident set and V8 heap in use are read at checkpoints;
// the per-lock figure is the least-squares slope, which GC timing at any one checkpoint does not decide.
import { encodeCommand, RespConnection } from "../clients/resp-connection.js";
import { RaftlockCluster } from "../clusters/raftlock-cluster.js";
import type { BenchOptions } from "../options.js";
import { inspectableNode, mebibytes, nodeMemory, type NodeMemory } from "./node-memory.js";

/** Checkpoints between none and all the locks. */
const checkpointCount = 5;
/** Connections filling the cluster, each acquiring one lock after another. */
const fillConnections = 64;
/** Quiet time before a checkpoint is read, so that followers have applied and snapshots finished. */
const checkpointSettleMs = 3000;
/** The upper checkpoints start here (a fraction of all the locks): past the 50,000 request results kept. */
const upperFraction = 0.6;
/** TTL of the filled locks: they stay held for the whole run. */
const fillLockTtlMs = 3_600_000;

export interface MemoryCheckpoint {
  readonly locks: number;
  readonly nodes: readonly NodeMemory[];
}

export interface MemoryResult {
  readonly checkpoints: readonly MemoryCheckpoint[];
  /** Per node: slope of resident set and of V8 heap in use against held locks, over every checkpoint. */
  readonly bytesPerLock: Record<string, { readonly rss: number; readonly heapUsed: number }>;
  /**
   * The same over the upper checkpoints only (from `upperFromLocks`), once the fixed-size caches that the
   * first acquires also fill (50,000 request results, 10,000 watch events) are full: the marginal cost.
   */
  readonly bytesPerLockUpper: Record<string, { readonly rss: number; readonly heapUsed: number }>;
  readonly upperFromLocks: number;
  readonly refused: Record<string, number>;
  readonly leader: string;
}

function slope(points: readonly [number, number][]): number {
  const usable = points.filter(([, y]) => Number.isFinite(y));
  const meanX = usable.reduce((sum, [x]) => sum + x, 0) / usable.length;
  const meanY = usable.reduce((sum, [, y]) => sum + y, 0) / usable.length;
  const covariance = usable.reduce((sum, [x, y]) => sum + (x - meanX) * (y - meanY), 0);
  const variance = usable.reduce((sum, [x]) => sum + (x - meanX) ** 2, 0);
  return variance === 0 ? Number.NaN : covariance / variance;
}

/** Acquires locks `from` .. `to` - 1 over `connections`; counts refusals by code. */
async function fill(connections: readonly RespConnection[], from: number, to: number, refused: Record<string, number>): Promise<void> {
  let next = from;
  await Promise.all(
    connections.map(async (connection) => {
      while (next < to) {
        const k = next++;
        try {
          const token = await connection.send(encodeCommand(["LOCK.ACQUIRE", `mem-${k}`, `owner-${k}`, fillLockTtlMs]));
          if (typeof token !== "number") refused.NOTACQUIRED = (refused.NOTACQUIRED ?? 0) + 1;
        } catch (error) {
          const code = (error as { code?: string }).code ?? "OTHER";
          refused[code] = (refused[code] ?? 0) + 1;
        }
      }
    }),
  );
}

/** Fills a fresh cluster with held locks and reads every node's memory at each checkpoint. */
export async function runMemory(options: BenchOptions, progress: (line: string) => void): Promise<MemoryResult> {
  const cluster = await RaftlockCluster.start(3, [], inspectableNode);
  const checkpoints: MemoryCheckpoint[] = [];
  const refused: Record<string, number> = {};
  try {
    const leader = await cluster.leader();
    for (const node of cluster.nodes) await cluster.waitReady(node.id);
    const leaderNode = cluster.node(leader.id);
    const connections = await Promise.all(Array.from({ length: fillConnections }, () => RespConnection.open(leaderNode.host, leaderNode.respPort)));
    try {
      for (let checkpoint = 0; checkpoint <= checkpointCount; checkpoint++) {
        const locks = Math.round((options.memoryLocks * checkpoint) / checkpointCount);
        await fill(connections, checkpoints.at(-1)?.locks ?? 0, locks, refused);
        await cluster.settled();
        await new Promise((resolve) => setTimeout(resolve, checkpointSettleMs));
        const nodes = await Promise.all(cluster.nodes.map((node) => nodeMemory(cluster, node.id)));
        checkpoints.push({ locks, nodes });
        progress(`memory: ${locks} locks held: ${nodes.map((node) => `${node.id} RSS ${mebibytes(node.rssBytes)} heap ${mebibytes(node.heapUsedBytes)}`).join(", ")}`);
      }
    } finally {
      for (const connection of connections) connection.close();
    }
    const upperFromLocks = Math.round(options.memoryLocks * upperFraction);
    const slopes = (fromLocks: number): MemoryResult["bytesPerLock"] => {
      const perNode: MemoryResult["bytesPerLock"] = {};
      for (const node of cluster.nodes) {
        const series = (field: "rssBytes" | "heapUsedBytes"): [number, number][] =>
          checkpoints.filter((checkpoint) => checkpoint.locks >= fromLocks).map((checkpoint) => [checkpoint.locks, checkpoint.nodes.find((candidate) => candidate.id === node.id)![field]]);
        perNode[node.id] = { rss: slope(series("rssBytes")), heapUsed: slope(series("heapUsedBytes")) };
      }
      return perNode;
    };
    return { checkpoints, bytesPerLock: slopes(0), bytesPerLockUpper: slopes(upperFromLocks), upperFromLocks, refused, leader: leader.id };
  } finally {
    await cluster.close();
  }
}

function perNodeLine(result: MemoryResult, bytesPerLock: MemoryResult["bytesPerLock"]): string {
  return Object.entries(bytesPerLock)
    .map(([id, bytes]) => `${id}${id === result.leader ? " (leader)" : ""} ${bytes.rss.toFixed(0)} B RSS, ${bytes.heapUsed.toFixed(0)} B heap`)
    .join("; ");
}

/** The memory figures as printed lines. */
export function describeMemory(result: MemoryResult): string {
  const last = result.checkpoints.at(-1)?.locks ?? 0;
  const refusals = Object.keys(result.refused).length === 0 ? "" : `\n  refused acquires: ${JSON.stringify(result.refused)}`;
  return (
    `memory per held lock (each with its own lease), least-squares slope:\n` +
    `  over 0..${last} locks: ${perNodeLine(result, result.bytesPerLock)}\n` +
    `  over ${result.upperFromLocks}..${last} locks: ${perNodeLine(result, result.bytesPerLockUpper)}${refusals}`
  );
}
