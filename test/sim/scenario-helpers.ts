// Small helpers that keep the named scenarios reading like protocol traces.
import type { NodeId } from "../../src/raft/types.js";
import type { Cluster, Proposal } from "./cluster.js";

/** Election timeouts of the simulated clusters (see simRaftDefaults). */
export const electionMinMs = 150;
export const electionMaxMs = 300;
export const heartbeatMs = 30;

/**
 * The nodes of the newest committed configuration (voters and learners) that are not discarded; all
 * nodes until a configuration commits. Removed nodes left running, and nodes never added, are not members.
 */
export function membersNow(cluster: Cluster): NodeId[] {
  const config = cluster.committedConfig();
  if (config === undefined) return [...cluster.ids];
  return [...config.voters, ...config.learners].filter((id) => cluster.hasNode(id));
}

/** Runs until a leader is elected that every running member follows; returns it. */
export function settledLeader(cluster: Cluster, withinMs = 5_000): NodeId {
  cluster.runUntil(
    () => {
      const leaderId = cluster.leader();
      if (leaderId === undefined || cluster.leaders().length !== 1) return false;
      return membersNow(cluster).every((id) => cluster.isCrashed(id) || cluster.status(id)!.leaderId === leaderId);
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

/** Runs until every running member has applied each of `values`. */
export function appliedEverywhere(cluster: Cluster, values: string[], withinMs = 10_000): void {
  cluster.runUntil(
    () => membersNow(cluster).every((id) => cluster.isCrashed(id) || values.every((value) => cluster.node(id).stateMachine.has(value))),
    withinMs,
    "every running member applied the values",
  );
}

/** The nodes other than `ids`. */
export function othersThan(cluster: Cluster, ...ids: NodeId[]): NodeId[] {
  return cluster.ids.filter((id) => !ids.includes(id));
}

/**
 * A client that proposes `prefix0`, `prefix1`, ... at whoever leads every `everyMs`, on timer events,
 * until the returned function is called.
 */
export function keepWriting(cluster: Cluster, prefix: string, everyMs = 15): () => void {
  let stopped = false;
  let next = 0;
  const write = (): void => {
    if (stopped) return;
    if (cluster.leader() !== undefined) cluster.propose(`${prefix}${next++}`);
    cluster.after(everyMs, write);
  };
  write();
  return () => {
    stopped = true;
  };
}
