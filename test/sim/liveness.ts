// The end of every random run: once the faults stop, the cluster must recover and agree.

import type { Cluster } from "./cluster.js";
import { SimulationError } from "./cluster.js";

/** Heals the network, restarts crashed nodes, ends pauses, and quiets the network's noise. */
export function removeFaults(cluster: Cluster): void {
  cluster.heal();
  cluster.setNetwork({ dropProbability: 0, duplicateProbability: 0, longDelayProbability: 0 });
  for (const id of cluster.ids) {
    cluster.node(id).pausedUntilMs = 0;
    if (cluster.isCrashed(id)) cluster.restart(id);
  }
}

/** Members of the configuration the leader has in force: voters and learners. */
export function membersOf(cluster: Cluster, leaderId: string): string[] {
  const config = cluster.status(leaderId)?.config;
  return config === undefined ? [] : [...config.voters, ...config.learners];
}

/**
 * One leader, which every member of its configuration follows in its term, and every member applied
 * everything the leader logged. Nodes outside the configuration (removed, or started and never added)
 * are left alone: nothing replicates to them, but none of them may lead.
 */
export function isConverged(cluster: Cluster): boolean {
  const leaders = cluster.leaders();
  if (leaders.length !== 1) return false;
  const leaderId = leaders[0] as string;
  const leader = cluster.status(leaderId);
  if (leader === undefined || leader.commitIndex !== leader.lastIndex) return false;
  for (const id of membersOf(cluster, leaderId)) {
    const status = cluster.hasNode(id) ? cluster.status(id) : undefined;
    if (status === undefined || status.currentTerm !== leader.currentTerm) return false;
    if (cluster.appliedIndex(id) !== leader.commitIndex) return false;
  }
  return true;
}

/**
 * Events per node per virtual second that recovery may take: ticks, heartbeats and their replies and
 * fsyncs need a few hundred; a core that answers every reply with another message needs far more.
 */
const eventsPerNodeSecondMax = 2000;

/**
 * Liveness: after the faults stop, the cluster converges within `withinMs`, and every value
 * acknowledged to a client during the run is in the state of every member of the final configuration.
 */
export function checkLiveness(cluster: Cluster, withinMs = 60_000): void {
  removeFaults(cluster);
  const stepsMax = Math.ceil((withinMs / 1000) * cluster.ids.length * eventsPerNodeSecondMax);
  cluster.runUntil(
    () => isConverged(cluster),
    withinMs,
    "convergence after healing (one leader, every node applied all it logged)",
    stepsMax,
  );
  const members = membersOf(cluster, cluster.leader() as string);
  for (const proposal of cluster.acknowledgedProposals()) {
    for (const id of members) {
      if (!cluster.node(id).stateMachine.has(proposal.value)) {
        throw new SimulationError(
          cluster.seed,
          cluster.steps,
          cluster.nowMs,
          `durability: ${proposal.value} was acknowledged at (${proposal.index}, term ${proposal.term}) but ${id} does not hold it`,
        );
      }
    }
  }
}
