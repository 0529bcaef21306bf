// The figures the default table holds: which system, which workload, what one operation is.

import type { WorkloadKind } from "./load/workloads.js";

export type SystemName = "raftlock" | "etcd" | "redis";
export type ScenarioId =
  | "resp-cycle"
  | "http-cycle"
  | "resp-contended"
  | "http-contended"
  | "resp-keepalive"
  | "read-linearizable"
  | "read-lease"
  | "read-serializable"
  | "resp-acquire-only"
  | "redis-benchmark-acquire"
  | "etcd-cycle"
  | "redis-cycle";

export interface Scenario {
  readonly id: ScenarioId;
  readonly system: SystemName;
  /** Null: not run by the Node generator (redis-benchmark). */
  readonly workload: WorkloadKind | null;
  readonly unit: "cycles/s" | "ops/s";
  /** The raftlock cluster it needs: `lease` is started with `--read-mode lease`. */
  readonly cluster: "read-index" | "lease" | null;
  readonly consistency: "linearizable" | "serializable";
  readonly description: string;
}

export const scenarios: readonly Scenario[] = [
  { id: "resp-cycle", system: "raftlock", workload: "resp-cycle", unit: "cycles/s", cluster: "read-index", consistency: "linearizable", description: "LOCK.ACQUIRE then LOCK.RELEASE over RESP, each client on its own lock" },
  { id: "http-cycle", system: "raftlock", workload: "http-cycle", unit: "cycles/s", cluster: "read-index", consistency: "linearizable", description: "POST .../acquire then .../release over HTTP keep-alive, each client on its own lock" },
  { id: "resp-contended", system: "raftlock", workload: "resp-contended", unit: "cycles/s", cluster: "read-index", consistency: "linearizable", description: "acquire (WAIT, FIFO queue) then release over RESP, all clients on a few shared locks" },
  { id: "http-contended", system: "raftlock", workload: "http-contended", unit: "cycles/s", cluster: "read-index", consistency: "linearizable", description: "acquire (waitMs, FIFO queue) then release over HTTP, all clients on a few shared locks" },
  { id: "resp-keepalive", system: "raftlock", workload: "resp-keepalive", unit: "ops/s", cluster: "read-index", consistency: "linearizable", description: "SESSION.KEEPALIVE of the client's own session (the leader's clock, no log write)" },
  { id: "read-linearizable", system: "raftlock", workload: "resp-read", unit: "ops/s", cluster: "read-index", consistency: "linearizable", description: "LOCK.INFO of a held lock, linearizable (read index: a heartbeat round per batch of reads)" },
  { id: "read-lease", system: "raftlock", workload: "resp-read", unit: "ops/s", cluster: "lease", consistency: "linearizable", description: "LOCK.INFO of a held lock, linearizable on a --read-mode lease cluster (leader lease, no round)" },
  { id: "read-serializable", system: "raftlock", workload: "resp-read", unit: "ops/s", cluster: "read-index", consistency: "serializable", description: "LOCK.INFO of a held lock, CONSISTENCY serializable (the node's own state)" },
  { id: "resp-acquire-only", system: "raftlock", workload: "resp-acquire-only", unit: "ops/s", cluster: "read-index", consistency: "linearizable", description: "LOCK.ACQUIRE of one of 1000 locks by one owner (a grant or an idempotent re-grant: one log write each), Node generator" },
  { id: "redis-benchmark-acquire", system: "raftlock", workload: null, unit: "ops/s", cluster: "read-index", consistency: "linearizable", description: "the same LOCK.ACQUIRE command from redis-benchmark (C), to check the Node generator is not the limit" },
  { id: "etcd-cycle", system: "etcd", workload: "etcd-cycle", unit: "cycles/s", cluster: null, consistency: "linearizable", description: "txn (create_revision == 0 ? put with the client's lease) then deleterange, JSON gateway over HTTP keep-alive" },
  { id: "redis-cycle", system: "redis", workload: "redis-cycle", unit: "cycles/s", cluster: null, consistency: "linearizable", description: "SET NX PX then EVALSHA compare-and-delete, one redis-server with appendfsync always" },
];

/** The scenario named `id`; throws, listing the known ones, for another. */
export function scenarioById(id: string): Scenario {
  const scenario = scenarios.find((candidate) => candidate.id === id);
  if (scenario === undefined) throw new Error(`unknown scenario "${id}"; one of ${scenarios.map((candidate) => candidate.id).join(", ")}`);
  return scenario;
}
