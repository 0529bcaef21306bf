// Small helpers that keep the named scenarios reading like protocol traces.
import type { NodeId } from "../../src/raft/types.js";
import type { Cluster, Proposal } from "./cluster.js";

/** Election timeouts of the simulated clusters (see simRaftDefaults). */
export const electionMinMs = 150;
export const electionMaxMs = 300;
export const heartbeatMs = 30;

/** Runs until a leader is elected that every running node follows; returns it. */
export function settledLeader(cluster: Cluster, withinMs = 5_000): NodeId {
  cluster.runUntil(
    () => {
      const leaderId = cluster.leader();
      if (leaderId === undefined || cluster.leaders().length !== 1) return false;
      return cluster.ids.every((id) => cluster.isCrashed(id) || cluster.status(id)!.leaderId === leaderId);
    },
    withinMs,
    "a leader that every running node follows",
  );
  return cluster.leader()!;
}

export function termOf(cluster: Cluster, id: NodeId): number {
  return cluster.status(id)!.currentTerm;
}

/** Proposes each value at the current leader and runs until all are acknowledged. */
export function commitAll(cluster: Cluster, values: string[], withinMs = 5_000): Proposal[] {
  const proposals = values.map((value) => cluster.propose(value));
  cluster.runUntil(() => proposals.every((p) => p.status === "acked"), withinMs, `${values.length} proposals acknowledged`);
  return proposals;
}

export function valuesFrom(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, k) => `${prefix}${k}`);
}

/** Runs until every running node has applied each of `values`. */
export function appliedEverywhere(cluster: Cluster, values: string[], withinMs = 10_000): void {
  cluster.runUntil(
    () => cluster.ids.every((id) => cluster.isCrashed(id) || values.every((value) => cluster.node(id).stateMachine.has(value))),
    withinMs,
    "every running node applied the values",
  );
}

/** The nodes other than `ids`. */
export function othersThan(cluster: Cluster, ...ids: NodeId[]): NodeId[] {
  return cluster.ids.filter((id) => !ids.includes(id));
}
