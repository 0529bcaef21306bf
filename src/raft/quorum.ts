// Majority arithmetic over the voters of one configuration.

/** Smallest number of voters that forms a majority. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** The largest value that at least a majority of `values` (one per voter) has reached. */
export function majorityValue(values: number[]): number {
  if (values.length === 0) return 0;
  values.sort((a, b) => b - a);
  return values[quorumSize(values.length) - 1]!;
}

export const VoteOutcome = { Pending: 0, Won: 1, Lost: 2 } as const;
export type VoteOutcome = (typeof VoteOutcome)[keyof typeof VoteOutcome];

/** Whether the votes received so far decide an election among `voters`. */
export function tallyVotes(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return VoteOutcome.Won;
  if (rejected > voters.length - quorum) return VoteOutcome.Lost;
  return VoteOutcome.Pending;
}
