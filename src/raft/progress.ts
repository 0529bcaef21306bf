import { assert } from "../util/assert.js";

/**
 * How the leader replicates to one follower (pitfall 12):
 * - probe: the match point is unknown; one AppendEntries in flight until an answer or a heartbeat reply;
 * - replicate: the follower is in step; `nextIndex` advances optimistically, many messages in flight;
 * - snapshot: an InstallSnapshot is on its way; nothing else is sent until it is reported.
 */
export const ProgressState = { Probe: "probe", Replicate: "replicate", Snapshot: "snapshot" } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

interface Inflight {
  readonly lastIndex: number;
  readonly bytes: number;
}

/** The leader's view of one follower's log. */
export class Progress {
  state: ProgressState = ProgressState.Probe;
  matchIndex = 0;
  nextIndex: number;
  /** In probe: an AppendEntries is out and unanswered. */
  probeSent = false;
  pendingSnapshotIndex = 0;
  /** Last time any reply from this follower arrived, for CheckQuorum. */
  lastHeardAtMs: number;
  /** Newest heartbeat round this follower acknowledged, for ReadIndex and the lease. */
  ackedRound = 0;
  /** Commit index last sent, so that a commit advance reaches idle followers without waiting for a heartbeat. */
  commitSent = 0;
  private readonly inflights: Inflight[] = [];
  private inflightBytes = 0;

  constructor(
    nextIndex: number,
    nowMs: number,
    private readonly inflightMessagesMax: number,
    private readonly inflightBytesMax: number,
  ) {
    this.nextIndex = nextIndex;
    this.lastHeardAtMs = nowMs;
  }

  /** Whether the leader must hold back AppendEntries to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.length >= this.inflightMessagesMax || this.inflightBytes >= this.inflightBytesMax;
      case ProgressState.Snapshot:
        return true;
    }
  }

  becomeProbe(): void {
    // After a snapshot, the follower holds at least the snapshot: probe right after it.
    this.nextIndex =
      this.state === ProgressState.Snapshot
        ? Math.max(this.matchIndex + 1, this.pendingSnapshotIndex + 1)
        : this.matchIndex + 1;
    this.resetState(ProgressState.Probe);
  }

  becomeReplicate(): void {
    this.nextIndex = this.matchIndex + 1;
    this.resetState(ProgressState.Replicate);
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshotIndex = snapshotIndex;
  }

  /** Records an AppendEntries sent with entries up to `lastIndex` carrying `bytes` of data. */
  sentAppend(lastIndex: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      this.nextIndex = Math.max(this.nextIndex, lastIndex + 1);
      this.inflights.push({ lastIndex, bytes });
      this.inflightBytes += bytes;
    } else {
      assert(this.state === ProgressState.Probe, "append sent while a snapshot is in flight");
      this.probeSent = true;
    }
  }

  /** A success reply says the follower holds `index`; returns whether that is news. */
  maybeUpdate(index: number): boolean {
    this.probeSent = false;
    this.freeInflightsTo(index);
    if (index <= this.matchIndex) return false;
    this.matchIndex = index;
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    return true;
  }

  /**
   * A rejection of the append whose prevLogIndex was `rejectedIndex`; `hintNextIndex` is where the
   * leader's term-based backtracking says to try next (pitfall 8). Returns false for a stale reply.
   */
  maybeDecrease(rejectedIndex: number, hintNextIndex: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // A rejection at or below what the follower already matched is an old, reordered reply.
      if (rejectedIndex <= this.matchIndex) return false;
      this.becomeProbe();
      return true;
    }
    // In probe, only the reply to the append just sent counts.
    if (rejectedIndex !== this.nextIndex - 1) return false;
    this.nextIndex = Math.max(this.matchIndex + 1, Math.min(hintNextIndex, rejectedIndex));
    this.probeSent = false;
    return true;
  }

  private freeInflightsTo(index: number): void {
    let freed = 0;
    while (freed < this.inflights.length && this.inflights[freed]!.lastIndex <= index) {
      this.inflightBytes -= this.inflights[freed]!.bytes;
      freed++;
    }
    if (freed > 0) this.inflights.splice(0, freed);
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.inflights.length = 0;
    this.inflightBytes = 0;
  }
}
