import { assert } from "../util/assert.js";
import type { RaftConfig } from "./config.js";
import type { RaftLog } from "./log.js";
import { Progress, ProgressState } from "./progress.js";
import { majorityValue } from "./quorum.js";
import { ReadRounds } from "./read-rounds.js";
import type { AppendResponse, Entry, HeartbeatResponse, Message, NodeId, ReadState, RejectReason, Snapshot } from "./types.js";

/** What a leadership needs from the core that holds it. */
export interface LeaderHost {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  voters(): readonly NodeId[];
  isVoter(nodeId: NodeId): boolean;
  latestSnapshot(): Snapshot | null;
  send(message: Message): void;
  readReady(read: ReadState): void;
}

interface Transfer {
  readonly targetId: NodeId;
  readonly deadlineMs: number;
}

/** A read of a follower's view, for status pages. */
export interface ProgressView {
  readonly state: string;
  readonly matchIndex: number;
  readonly nextIndex: number;
}

const noEntries: readonly Entry[] = [];

/**
 * One term of leadership: the followers' replication progress, the heartbeat rounds that confirm
 * leadership for reads, and a leadership transfer in progress. Created when a node wins an election and
 * dropped when it steps down, so no leader-only state outlives the term it belongs to.
 */
export class Leader {
  private readonly progress = new Map<NodeId, Progress>();
  private readonly rounds = new ReadRounds();
  private transfer: Transfer | null = null;
  /** Set once TimeoutNow went out: a late one may still start a campaign that bypasses stickiness. */
  private timeoutNowSent = false;
  private heartbeatDeadlineMs = 0;
  private nowMs: number;

  constructor(
    private readonly host: LeaderHost,
    readonly term: number,
    peerIds: readonly NodeId[],
    nowMs: number,
  ) {
    this.nowMs = nowMs;
    const { config, log } = host;
    for (const peerId of peerIds) {
      this.progress.set(peerId, new Progress(log.lastIndex + 1, nowMs, config.inflightMessagesMax, config.inflightBytesMax));
    }
  }

  get transferTarget(): NodeId | null {
    return this.transfer?.targetId ?? null;
  }

  /** The configuration changed: replicate to exactly `peerIds` from now on. */
  setPeers(peerIds: readonly NodeId[], nowMs: number): void {
    const { config, log } = this.host;
    for (const peerId of [...this.progress.keys()]) {
      if (!peerIds.includes(peerId)) this.progress.delete(peerId);
    }
    for (const peerId of peerIds) {
      if (this.progress.has(peerId)) continue;
      // A new member's log is unknown: probe from the end, and back off from there (pitfall 8).
      this.progress.set(peerId, new Progress(log.lastIndex + 1, nowMs, config.inflightMessagesMax, config.inflightBytesMax));
    }
    if (this.transfer !== null && !this.host.isVoter(this.transfer.targetId)) this.transfer = null;
  }

  /** Whether `peerId` answered within an election timeout and its log is within `lagEntriesMax` of ours. */
  caughtUp(peerId: NodeId, nowMs: number, lagEntriesMax: number): boolean {
    const peer = this.progress.get(peerId);
    if (peer === undefined || peer.matchIndex === 0) return false;
    const recentlyHeard = nowMs - peer.lastHeardAtMs < this.host.config.electionTimeoutMinMs;
    return recentlyHeard && peer.matchIndex + lagEntriesMax >= this.host.log.lastIndex;
  }

  /**
   * This leader removed itself and the change committed: tell every follower the commit index, and ask
   * the most up-to-date voter to campaign at once, so the cluster does not wait out an election timeout.
   */
  handOver(): void {
    this.broadcastHeartbeat();
    let bestId: NodeId | null = null;
    let bestMatch = -1;
    for (const [peerId, peer] of this.progress) {
      if (!this.host.isVoter(peerId) || peer.matchIndex <= bestMatch) continue;
      bestMatch = peer.matchIndex;
      bestId = peerId;
    }
    if (bestId !== null && bestMatch === this.host.log.lastIndex) this.sendTimeoutNow(bestId);
  }

  /** Time passes. Returns false when CheckQuorum says this leader lost its majority (pitfall 5). */
  tick(nowMs: number): boolean {
    this.nowMs = nowMs;
    if (this.quorumContactAtMs() + this.host.config.electionTimeoutMinMs <= nowMs) return false;
    if (this.transfer !== null && nowMs >= this.transfer.deadlineMs) this.transfer = null;
    if (nowMs >= this.heartbeatDeadlineMs) this.broadcastHeartbeat();
    return true;
  }

  /** Why a proposal cannot be taken now, or null. */
  refusesProposals(): RejectReason | null {
    return this.transfer === null ? null : "transferring";
  }

  /** ReadIndex (pitfall 14) or a lease read (pitfall 15); answers through `host.readReady` or a reason. */
  readIndex(context: unknown, nowMs: number, useLease: boolean): RejectReason | null {
    this.nowMs = nowMs;
    const { config, log } = this.host;
    if (this.transfer !== null) return "transferring";
    if (this.rounds.pendingCount >= config.pendingReadsMax) return "too-many-reads";
    if (!this.committedInTerm()) {
      // Until an entry of this term commits, the leader does not know the true commit index.
      this.rounds.addReadBeforeTermCommit(context);
      return null;
    }
    if (useLease && this.leaseValid(nowMs)) {
      this.host.readReady({ context, index: log.commitIndex });
      return null;
    }
    this.rounds.addRead(context, log.commitIndex);
    if (this.isSoleVoter()) this.releaseReads(this.rounds.startRound(nowMs));
    return null;
  }

  /** Starts handing leadership to `targetId` (pitfall 21). */
  transferLeadership(targetId: NodeId, nowMs: number): RejectReason | null {
    this.nowMs = nowMs;
    const target = this.progress.get(targetId);
    if (target === undefined || !this.host.isVoter(targetId)) return "unknown-node";
    if (this.transfer?.targetId === targetId) return null;
    this.transfer = { targetId, deadlineMs: nowMs + this.host.config.electionTimeoutMinMs };
    if (target.matchIndex === this.host.log.lastIndex) this.sendTimeoutNow(targetId);
    return null;
  }

  /** The transport lost its stream to `peerId`: messages in flight to it may be gone. */
  reportUnreachable(peerId: NodeId): void {
    const peer = this.progress.get(peerId);
    if (peer?.state === ProgressState.Replicate) peer.becomeProbe();
  }

  /** The transport finished (or gave up) sending a snapshot to `peerId`. */
  reportSnapshot(peerId: NodeId, delivered: boolean): void {
    const peer = this.progress.get(peerId);
    if (peer?.state !== ProgressState.Snapshot) return;
    if (!delivered) peer.pendingSnapshotIndex = 0;
    peer.becomeProbe();
    // Wait for the next heartbeat reply before probing, so a failing peer is not hammered.
    peer.probeSent = true;
  }

  handleAppendResponse(response: AppendResponse, nowMs: number): void {
    this.nowMs = nowMs;
    const peer = this.progress.get(response.from);
    if (peer === undefined) return;
    peer.lastHeardAtMs = nowMs;
    if (!response.success) {
      if (peer.maybeDecrease(response.index, this.backtrackHint(response))) this.sendAppend(response.from, peer);
      return;
    }
    const updated = peer.maybeUpdate(response.index);
    // A probe answered at the known match point also proves the follower is in step (etcd does the same).
    const probeConfirmed = peer.state === ProgressState.Probe && response.index === peer.matchIndex;
    if (!updated && !probeConfirmed) return;
    if (peer.state === ProgressState.Probe) peer.becomeReplicate();
    else if (peer.state === ProgressState.Snapshot && this.host.log.termOf(peer.matchIndex) !== undefined) peer.becomeReplicate();
    this.maybeCommit();
    if (this.transfer?.targetId === response.from && peer.matchIndex === this.host.log.lastIndex) this.sendTimeoutNow(response.from);
  }

  handleHeartbeatResponse(response: HeartbeatResponse, nowMs: number): void {
    this.nowMs = nowMs;
    const peer = this.progress.get(response.from);
    if (peer === undefined) return;
    const log = this.host.log;
    peer.lastHeardAtMs = nowMs;
    peer.probeSent = false;
    if (peer.state === ProgressState.Replicate && peer.matchIndex < log.lastIndex) {
      // Appends can be lost without the transport noticing (a full window then never drains, and an idle
      // follower never hears of its gap): an empty append at nextIndex - 1 is accepted when nothing was
      // lost, and otherwise rejected, which drops the follower back to probe. When that point was
      // compacted meanwhile, probe at once: the follower needs a snapshot.
      const prevLogTerm = log.termOf(peer.nextIndex - 1);
      if (prevLogTerm === undefined) peer.becomeProbe();
      else this.sendAppendMessage(response.from, peer.nextIndex - 1, prevLogTerm, noEntries);
    }
    if (response.round > peer.ackedRound) {
      peer.ackedRound = response.round;
      this.releaseReads(this.quorumAckedRound());
    }
  }

  /** Pitfall 9: commit only an index of the current term that a majority stores durably. */
  maybeCommit(): void {
    const log = this.host.log;
    const matchIndexes = this.host
      .voters()
      .map((voterId) => (voterId === this.host.id ? log.stableIndex : (this.progress.get(voterId)?.matchIndex ?? 0)));
    const majorityIndex = majorityValue(matchIndexes);
    if (majorityIndex <= log.commitIndex || log.termOf(majorityIndex) !== this.term) return;
    const firstCommitOfTerm = !this.committedInTerm();
    log.commitTo(majorityIndex);
    if (firstCommitOfTerm) {
      this.rounds.termCommitted(log.commitIndex);
      if (this.isSoleVoter() && this.rounds.needsRound()) this.releaseReads(this.rounds.startRound(this.nowMs));
    }
  }

  /** Sends what each follower may take now: batching happens here, once per `ready()`. */
  flush(): void {
    if (this.rounds.needsRound()) this.broadcastHeartbeat();
    for (const [peerId, peer] of this.progress) {
      while (this.sendAppend(peerId, peer)) {
        if (peer.state !== ProgressState.Replicate) break;
      }
    }
  }

  broadcastHeartbeat(): void {
    const round = this.rounds.startRound(this.nowMs);
    this.heartbeatDeadlineMs = this.nowMs + this.host.config.heartbeatIntervalMs;
    const commitIndex = this.host.log.commitIndex;
    for (const [peerId, peer] of this.progress) {
      // Never more than the follower is known to hold: it cannot check what it does not have.
      const leaderCommit = Math.min(peer.matchIndex, commitIndex);
      this.host.send({ type: "heartbeat", from: this.host.id, to: peerId, term: this.term, leaderCommit, round });
    }
    if (this.isSoleVoter()) this.releaseReads(round);
  }

  /** See `Raft.retentionFloor`. */
  retentionFloor(nowMs: number): number {
    let floorIndex = Number.POSITIVE_INFINITY;
    for (const peer of this.progress.values()) {
      if (nowMs - peer.lastHeardAtMs >= this.host.config.electionTimeoutMinMs) continue;
      const neededIndex = peer.state === ProgressState.Snapshot ? peer.pendingSnapshotIndex : peer.matchIndex;
      floorIndex = Math.min(floorIndex, neededIndex);
    }
    return floorIndex;
  }

  /** Whether a lease read at `nowMs` may be served without a heartbeat round (pitfall 15). */
  leaseValid(nowMs: number): boolean {
    const leaseStartMs = this.rounds.leaseStart;
    const { electionTimeoutMinMs, leaseDriftBoundMs } = this.host.config;
    return (
      this.transfer === null &&
      !this.timeoutNowSent &&
      leaseStartMs !== null &&
      nowMs < leaseStartMs + electionTimeoutMinMs - leaseDriftBoundMs
    );
  }

  progressView(): Map<NodeId, ProgressView> {
    const view = new Map<NodeId, ProgressView>();
    for (const [peerId, peer] of this.progress) view.set(peerId, { state: peer.state, matchIndex: peer.matchIndex, nextIndex: peer.nextIndex });
    return view;
  }

  /** Leadership ends: returns the contexts of reads that can no longer be answered. */
  end(): unknown[] {
    return this.rounds.reset();
  }

  // ------------------------------------------------------------------------------------------

  /** Where to probe next after a rejection (pitfall 8): past our last entry of the follower's conflicting term. */
  private backtrackHint(response: AppendResponse): number {
    if (response.conflictTerm === 0) return response.conflictIndex;
    const lastOfTerm = this.host.log.lastIndexOfTerm(response.index, response.conflictTerm);
    return lastOfTerm === undefined ? response.conflictIndex : lastOfTerm + 1;
  }

  /** Sends one AppendEntries (or a snapshot) to `peerId` if it needs one; returns whether it sent entries. */
  private sendAppend(peerId: NodeId, peer: Progress): boolean {
    if (peer.isPaused()) return false;
    const { log, config } = this.host;
    const prevLogIndex = peer.nextIndex - 1;
    const prevLogTerm = log.termOf(prevLogIndex);
    if (prevLogTerm === undefined || peer.nextIndex < log.firstIndex) return this.sendSnapshot(peerId, peer);
    const entries = prevLogIndex < log.lastIndex ? log.slice(peer.nextIndex, config.appendBytesMax) : noEntries;
    // An empty append goes out to probe, or to tell a follower that is in step about a new commit index.
    const needsCommit = peer.commitSent < log.commitIndex && peer.matchIndex >= log.commitIndex;
    if (entries.length === 0 && peer.state !== ProgressState.Probe && !needsCommit) return false;
    let bytes = 0;
    for (const entry of entries) bytes += entry.data.length;
    peer.sentAppend(prevLogIndex + entries.length, bytes);
    peer.commitSent = log.commitIndex;
    this.sendAppendMessage(peerId, prevLogIndex, prevLogTerm, entries);
    return entries.length > 0;
  }

  private sendAppendMessage(peerId: NodeId, prevLogIndex: number, prevLogTerm: number, entries: readonly Entry[]): void {
    const leaderCommit = this.host.log.commitIndex;
    this.host.send({ type: "append", from: this.host.id, to: peerId, term: this.term, prevLogIndex, prevLogTerm, entries, leaderCommit });
  }

  private sendSnapshot(peerId: NodeId, peer: Progress): boolean {
    const snapshot = this.host.latestSnapshot();
    assert(snapshot !== null, "log compacted without a snapshot");
    peer.becomeSnapshot(snapshot.meta.index);
    this.host.send({ type: "snapshot", from: this.host.id, to: peerId, term: this.term, snapshot });
    return false;
  }

  private sendTimeoutNow(targetId: NodeId): void {
    this.timeoutNowSent = true;
    this.host.send({ type: "timeout-now", from: this.host.id, to: targetId, term: this.term });
  }

  private releaseReads(round: number): void {
    for (const read of this.rounds.quorumAcked(round)) this.host.readReady(read);
  }

  private quorumAckedRound(): number {
    return majorityValue(
      this.host.voters().map((voterId) => (voterId === this.host.id ? this.rounds.lastRound : (this.progress.get(voterId)?.ackedRound ?? 0))),
    );
  }

  /** Latest time by which a majority of voters (counting this leader) had been heard from. */
  private quorumContactAtMs(): number {
    return majorityValue(
      this.host.voters().map((voterId) => (voterId === this.host.id ? this.nowMs : (this.progress.get(voterId)?.lastHeardAtMs ?? 0))),
    );
  }

  /** Whether an entry of this leader's term committed: until then it does not know the true commit index. */
  committedInTerm(): boolean {
    return this.host.log.termOf(this.host.log.commitIndex) === this.term;
  }

  /** A single-voter cluster led by its only voter: a majority is this node alone. */
  private isSoleVoter(): boolean {
    const voters = this.host.voters();
    return voters.length === 1 && voters[0] === this.host.id;
  }
}
