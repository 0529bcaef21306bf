import { assert } from "../util/assert.js";

/** Heartbeat rounds whose send time is remembered until a majority acknowledges them. */
export const roundsTrackedMax = 1024;

interface PendingRead {
  readonly context: unknown;
  /** The leader's commit index when the read arrived: the read may be served once applied reaches it. */
  readonly index: number;
  /** The heartbeat round that confirms leadership for this read; 0 until that round is started. */
  round: number;
}

/**
 * A leader's heartbeat rounds (pitfalls 14 and 15). Each round is a broadcast that followers echo. A round
 * acknowledged by a majority proves this node was leader when the round was *sent*, which
 *  - releases every ReadIndex read that was waiting on that round or an earlier one, and
 *  - starts a lease at the round's send time: no follower of that majority votes for anyone else
 *    until a minimum election timeout after it heard the round.
 */
export class ReadRounds {
  /** Last round started in this term. */
  private currentRound = 0;
  /** Highest round acknowledged by a majority. */
  private quorumRound = 0;
  private readonly sentAtMs = new Map<number, number>();
  private leaseStartMs: number | null = null;
  private pending: PendingRead[] = [];
  /** Reads that arrived before this term's first commit: their index is not known yet. */
  private waitingForTermCommit: { context: unknown }[] = [];

  /** Number of reads not yet released. */
  get pendingCount(): number {
    return this.pending.length + this.waitingForTermCommit.length;
  }

  get lastRound(): number {
    return this.currentRound;
  }

  /** Whether some pending read still needs a round to be broadcast. */
  needsRound(): boolean {
    const newest = this.pending[this.pending.length - 1];
    return newest !== undefined && newest.round === 0;
  }

  /** Starts a round at `nowMs`; every read still without a round joins it. Returns the round number. */
  startRound(nowMs: number): number {
    this.currentRound++;
    this.sentAtMs.set(this.currentRound, nowMs);
    if (this.sentAtMs.size > roundsTrackedMax) {
      // Forgetting the oldest send time only costs a lease renewal: never use a later time for an earlier round.
      const oldest = this.sentAtMs.keys().next().value as number;
      this.sentAtMs.delete(oldest);
    }
    for (let k = this.pending.length - 1; k >= 0 && this.pending[k]!.round === 0; k--) {
      this.pending[k]!.round = this.currentRound;
    }
    return this.currentRound;
  }

  addRead(context: unknown, index: number): void {
    this.pending.push({ context, index, round: 0 });
  }

  addReadBeforeTermCommit(context: unknown): void {
    this.waitingForTermCommit.push({ context });
  }

  /** This term's first entry committed at `commitIndex`: reads that waited for it get their index. */
  termCommitted(commitIndex: number): void {
    for (const read of this.waitingForTermCommit) this.addRead(read.context, commitIndex);
    this.waitingForTermCommit = [];
  }

  /**
   * A majority acknowledged `round`. Returns the reads it releases, in arrival order.
   */
  quorumAcked(round: number): { context: unknown; index: number }[] {
    if (round <= this.quorumRound) return [];
    assert(round <= this.currentRound, "acknowledged a heartbeat round that was never sent");
    this.quorumRound = round;
    const sentAt = this.sentAtMs.get(round);
    if (sentAt !== undefined) this.leaseStartMs = Math.max(this.leaseStartMs ?? sentAt, sentAt);
    for (const key of this.sentAtMs.keys()) {
      if (key > round) break;
      this.sentAtMs.delete(key);
    }
    let released = 0;
    while (released < this.pending.length) {
      const read = this.pending[released]!;
      if (read.round === 0 || read.round > round) break;
      released++;
    }
    return this.pending.splice(0, released).map((read) => ({ context: read.context, index: read.index }));
  }

  /** Start of the lease: send time of the newest round a majority acknowledged, or null. */
  get leaseStart(): number | null {
    return this.leaseStartMs;
  }

  /** Leadership ended: every pending read fails; returns their contexts. */
  reset(): unknown[] {
    const contexts = [...this.waitingForTermCommit.map((read) => read.context), ...this.pending.map((read) => read.context)];
    this.currentRound = 0;
    this.quorumRound = 0;
    this.sentAtMs.clear();
    this.leaseStartMs = null;
    this.pending = [];
    this.waitingForTermCommit = [];
    return contexts;
  }
}
