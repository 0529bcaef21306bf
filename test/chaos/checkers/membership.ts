// Membership changes are durable: what the cluster acknowledged stays done. From the harness's own reads
// of GET /v1/members (linearizable) and the answers to the changes it made:
// - once a change was acknowledged (it committed at `committedIndex`), every membership read that began
//   after shows a configuration at least that recent: a committed configuration entry is never lost;
// - once a node's removal was acknowledged, no read that began after lists it (ids are never reused, so
//   nothing may bring it back), and the removal's own answer does not list it either.
// A read may show a configuration that is appended but not yet committed (a configuration is in force
// when appended), which a new leader can still overwrite; so two reads are not compared with each other,
// only with what was acknowledged.

export interface MembershipObservation {
  /** Which request, through which node. */
  readonly what: string;
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly configIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** For an acknowledged change: the index its configuration entry committed at. */
  readonly committedIndex?: number;
  /** For an acknowledged removal: the node removed. */
  readonly removed?: string;
}

/** Timestamps come from one process, but allow a little for the two ends of a request. */
const clockSlackMs = 1;

export function checkMembershipHistory(observations: readonly MembershipObservation[]): string[] {
  const violations: string[] = [];
  const acknowledged = observations.filter((observation) => observation.committedIndex !== undefined);
  for (const change of acknowledged) {
    if (change.removed !== undefined && [...change.voters, ...change.learners].includes(change.removed)) {
      violations.push(`${change.what} was acknowledged, but its answer still lists ${change.removed} (configuration ${change.configIndex})`);
    }
    for (const later of observations) {
      if (later.invokeMs < change.completeMs + clockSlackMs) continue;
      if (later.configIndex < change.committedIndex!) {
        violations.push(`${later.what} showed configuration ${later.configIndex}, older than the ${change.committedIndex} that ${change.what} had committed before it began`);
      }
      if (change.removed !== undefined && [...later.voters, ...later.learners].includes(change.removed)) {
        violations.push(`${later.what} listed ${change.removed} (configuration ${later.configIndex}) after ${change.what} had removed it`);
      }
    }
  }
  return violations;
}
