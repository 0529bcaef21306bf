// Raft safety from the nodes' own logs: every role change is logged with its term ("raft state changed"),
// and every start with the term it recovered from disk ("node started").
// - At most one leader per term, across all nodes and all their lives.
// - A node that led in term T and restarted recovers a term of at least T: a leader's term (and its vote
//   for itself) was on disk before it asked for votes, so losing it is a durability bug.
// - Within one life, a node's term never goes down.
// - The commit index a node recovers from disk never goes down from one start to the next.
import type { NodeLogEvent } from "../cluster.js";

export function checkRaftLogs(events: readonly NodeLogEvent[]): string[] {
  const violations: string[] = [];
  const leaderOfTerm = new Map<number, string>();
  const ledUpTo = new Map<string, number>();
  const lastTerm = new Map<string, { life: number; term: number }>();
  const startedCommit = new Map<string, number>();
  // A killed process's last lines may be read after its successor's first: order each node by life.
  const ordered = [...events].sort((a, b) => (a.nodeId === b.nodeId ? a.life - b.life : a.nodeId < b.nodeId ? -1 : 1));
  for (const event of ordered) {
    if (event.term === undefined) continue;
    const previous = lastTerm.get(event.nodeId);
    if (event.msg === "node started") {
      const led = ledUpTo.get(event.nodeId) ?? 0;
      if (event.term < led) violations.push(`${event.nodeId} led in term ${led} but restarted (life ${event.life}) with term ${event.term}: its term was not durable`);
      const commit = event.commitIndex ?? 0;
      const before = startedCommit.get(event.nodeId) ?? 0;
      if (commit < before) violations.push(`${event.nodeId} restarted (life ${event.life}) with commit index ${commit}, below the ${before} it had recovered before`);
      startedCommit.set(event.nodeId, Math.max(before, commit));
    } else if (previous !== undefined && previous.life === event.life && event.term < previous.term) {
      violations.push(`${event.nodeId}'s term went from ${previous.term} down to ${event.term} (life ${event.life})`);
    }
    lastTerm.set(event.nodeId, { life: event.life, term: event.term });
    if (event.role !== "leader") continue;
    const other = leaderOfTerm.get(event.term);
    if (other !== undefined && other !== event.nodeId) violations.push(`two leaders in term ${event.term}: ${other} and ${event.nodeId}`);
    leaderOfTerm.set(event.term, event.nodeId);
    ledUpTo.set(event.nodeId, Math.max(ledUpTo.get(event.nodeId) ?? 0, event.term));
  }
  return violations;
}

/** How many distinct leaders (term, node) the logs show: the run's count of elections won. */
export function leadersSeen(events: readonly NodeLogEvent[]): number {
  return new Set(events.filter((event) => event.role === "leader").map((event) => event.term)).size;
}
