import { assert } from "../util/assert.js";
import { type RaftConfig, validateRaftConfig } from "./config.js";
import { applyConfigChange, type ConfigChange, configChangeProblem, encodeClusterConfig } from "./cluster-config.js";
import { ConfigHistory } from "./config-history.js";
import { Leader, type LeaderHost, type ProgressView } from "./leader.js";
import { RaftLog } from "./log.js";
import { tallyVotes, VoteOutcome } from "./quorum.js";
import {
  type AppendRequest,
  type ClusterConfig,
  type Entry,
  EntryType,
  type HardState,
  type HeartbeatRequest,
  type Message,
  type NodeId,
  type ProposeResult,
  type Ready,
  type ReadFailure,
  type ReadState,
  type RejectReason,
  Role,
  type SoftState,
  type Snapshot,
  type SnapshotRequest,
  type VoteRequest,
  type VoteResponse,
} from "./types.js";

/** What a node had on disk when it started. */
export interface RaftInitialState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Durable log entries, contiguous; they may start below the snapshot (retained log). */
  readonly entries: readonly Entry[];
  /** Bootstrap configuration; a snapshot's configuration takes precedence. */
  readonly config: ClusterConfig;
}

/** A point-in-time view of one core, for status pages, metrics and tests. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly currentTerm: number;
  readonly votedFor: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly transferTarget: NodeId | null;
  readonly progress: ReadonlyMap<NodeId, ProgressView>;
  /** The configuration in force (the last one appended), and the index of the entry that set it. */
  readonly config: ClusterConfig;
  readonly configIndex: number;
}

/**
 * The Raft consensus core. Pure: no I/O, timers, clocks or randomness of its own. The driver feeds it
 * time (`tick`), messages (`step`) and requests (`propose`, `readIndex`, `transferLeadership`), and takes
 * back batches of work (`ready`) that it persists, sends and applies before calling `advance`.
 */
export class Raft implements LeaderHost {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  private readonly configs: ConfigHistory;
  private snapshotLatest: Snapshot | null;

  private currentTerm: number;
  private votedFor: NodeId | null;
  private role: Role = Role.Follower;
  private leaderId: NodeId | null = null;

  private nowMs: number;
  private electionDeadlineMs = 0;
  /**
   * Until when this node ignores (Pre)Vote requests (pitfall 5): a minimum election timeout after it last
   * heard from its leader, and after it started, since a restarted node forgot when it last heard one.
   */
  private stickyUntilMs: number;
  /** Until when elections retry within `leaderLossCampaignWithinMs`: set when the leader's stream was lost. */
  private leaderLostUntilMs = Number.NEGATIVE_INFINITY;

  private readonly votes = new Map<NodeId, boolean>();
  /** Present exactly while this node leads. */
  private leader: Leader | null = null;

  // The batch being assembled for the next `ready()`.
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  private readFailures: ReadFailure[] = [];
  private receivedSnapshot: Snapshot | null = null;
  private lastHardState: HardState;
  private lastSoftState: SoftState;
  private readyInFlight = false;

  constructor(config: RaftConfig, initial: RaftInitialState, nowMs: number) {
    validateRaftConfig(config);
    this.id = config.id;
    this.config = config;
    this.nowMs = nowMs;
    this.currentTerm = initial.hardState.currentTerm;
    this.votedFor = initial.hardState.votedFor;
    this.log = new RaftLog(initial.snapshot, initial.entries, initial.hardState.commitIndex);
    this.snapshotLatest = initial.snapshot;
    const snapshotMeta = initial.snapshot?.meta;
    this.configs = new ConfigHistory(snapshotMeta?.config ?? initial.config, snapshotMeta?.index ?? 0, snapshotMeta?.term ?? 0, initial.entries);
    assert(this.log.lastTerm <= this.currentTerm, "durable log holds a term above the durable current term");
    this.lastHardState = this.hardState();
    this.lastSoftState = this.softState();
    this.stickyUntilMs = nowMs + config.electionTimeoutMinMs;
    this.resetElectionDeadline();
  }

  // ------------------------------------------------------------------------------------------
  // Inputs

  /** Advances time: elections for followers, heartbeats, CheckQuorum and transfer timeouts for leaders. */
  tick(nowMs: number): void {
    this.advanceClock(nowMs);
    if (this.leader !== null) {
      // CheckQuorum (pitfall 5): a leader cut off from a majority steps down instead of serving stale reads.
      if (!this.leader.tick(nowMs)) this.becomeFollower(this.currentTerm, null);
      return;
    }
    if (nowMs >= this.electionDeadlineMs && this.mayCampaign()) this.preCampaign();
  }

  /** Handles one message addressed to this node. */
  step(message: Message, nowMs: number): void {
    this.advanceClock(nowMs);
    assert(message.to === this.id, "message delivered to the wrong node");
    if (message.term > this.currentTerm) {
      if (!this.stepHigherTerm(message)) return;
    } else if (message.term < this.currentTerm) {
      this.stepLowerTerm(message);
      return;
    }
    switch (message.type) {
      case "pre-vote":
      case "vote":
        return this.handleVoteRequest(message);
      case "pre-vote-response":
      case "vote-response":
        return this.handleVoteResponse(message);
      case "append":
        return this.handleAppend(message);
      case "heartbeat":
        return this.handleHeartbeat(message);
      case "snapshot":
        return this.handleSnapshot(message);
      case "append-response":
        this.leader?.handleAppendResponse(message, nowMs);
        return this.stepDownIfRemoved();
      case "heartbeat-response":
        return this.leader?.handleHeartbeatResponse(message, nowMs);
      case "timeout-now":
        return this.handleTimeoutNow();
    }
  }

  /** Appends `data` as a new entry if this node leads and is not handing leadership over. */
  propose(data: Uint8Array): ProposeResult {
    if (this.leader === null) return { ok: false, reason: "not-leader" };
    const refused = this.leader.refusesProposals();
    if (refused !== null) return { ok: false, reason: refused };
    if (data.length > this.config.proposalBytesMax) return { ok: false, reason: "proposal-too-large" };
    // A leader that removed itself takes nothing new: once its removal commits, the voters that
    // committed it hold its whole log, so one of them can take over at once (pitfall 20).
    if (!this.isVoter(this.id)) return { ok: false, reason: "transferring" };
    return this.appendOwn(EntryType.Normal, data);
  }

  /**
   * Appends a configuration change if this node leads (pitfalls 18 and 19): one change in flight, only
   * once an entry of this term committed, and a learner is promoted only when it is caught up. The new
   * configuration is in force from here on; the result says where its entry will commit.
   */
  proposeConfigChange(change: ConfigChange, nowMs: number): ProposeResult {
    this.advanceClock(nowMs);
    if (this.leader === null) return { ok: false, reason: "not-leader" };
    const refused = this.leader.refusesProposals();
    if (refused !== null) return { ok: false, reason: refused };
    if (!this.leader.committedInTerm()) return { ok: false, reason: "term-not-committed" };
    if (this.configs.currentIndex > this.log.commitIndex) return { ok: false, reason: "config-change-pending" };
    const config = this.configs.current;
    const problem = change.nodeId === this.id && change.type !== "remove" ? `${change.nodeId} is this leader` : configChangeProblem(config, change);
    if (problem !== null) return { ok: false, reason: "invalid-config-change", detail: problem };
    if (change.type === "promote" && !this.leader.caughtUp(change.nodeId, nowMs, this.config.promoteLagEntriesMax)) {
      return { ok: false, reason: "learner-behind", detail: `${change.nodeId} is more than ${this.config.promoteLagEntriesMax} entries behind or not answering` };
    }
    return this.appendOwn(EntryType.Config, encodeClusterConfig(applyConfigChange(config, change)));
  }

  /**
   * Asks for a linearizable read point. The answer comes back in a later `ready()` as a ReadState (serve
   * once applied ≥ index) or a ReadFailure with the same context. With `useLease`, a leader whose lease
   * is valid at `nowMs` answers at once; otherwise, or when the lease has run out, one heartbeat round
   * acknowledged by a majority confirms leadership (ReadIndex).
   */
  readIndex(context: unknown, nowMs: number, useLease: boolean): void {
    this.advanceClock(nowMs);
    assert(!useLease || this.config.leaderLossCampaignWithinMs === null, "lease read while followers campaign as soon as they lose the leader");
    const refused = this.leader === null ? "not-leader" : this.leader.readIndex(context, nowMs, useLease);
    if (refused !== null) this.failRead(context, refused);
  }

  /** Hands leadership to `targetId` (pitfall 21); proposals are refused until it completes or times out. */
  transferLeadership(targetId: NodeId, nowMs: number): { ok: true } | { ok: false; reason: RejectReason } {
    this.advanceClock(nowMs);
    if (this.leader === null) return { ok: false, reason: "not-leader" };
    if (targetId === this.id) return { ok: true };
    const refused = this.leader.transferLeadership(targetId, nowMs);
    return refused === null ? { ok: true } : { ok: false, reason: refused };
  }

  /** The application persisted a snapshot at an applied index; the log before `retainFromIndex` is dropped. */
  compact(snapshot: Snapshot, retainFromIndex: number): void {
    this.log.compact(snapshot, retainFromIndex);
    this.configs.compacted(this.log.snapshotIndex, this.log.snapshotTerm);
    if (this.snapshotLatest === null || snapshot.meta.index > this.snapshotLatest.meta.index) this.snapshotLatest = snapshot;
  }

  /**
   * The transport lost its stream to `peerId`: messages in flight to it may be gone. When that is this
   * follower's leader and `leaderLossCampaignWithinMs` is set, it forgets the leader and campaigns soon.
   */
  reportUnreachable(peerId: NodeId, nowMs: number): void {
    this.advanceClock(nowMs);
    this.leader?.reportUnreachable(peerId);
    const withinMs = this.config.leaderLossCampaignWithinMs;
    if (withinMs === null || this.role !== Role.Follower || this.leaderId !== peerId) return;
    // Other followers lose the same stream when the leader dies; forgetting it lets us grant their
    // PreVotes, and a random point in the window keeps two of us from splitting the vote. Until a
    // minimum election timeout passed, a vote that does not conclude is retried within the window too:
    // a follower that has not noticed the loss yet ignores our PreVote rather than refusing it.
    this.leaderId = null;
    this.stickyUntilMs = Number.NEGATIVE_INFINITY;
    this.leaderLostUntilMs = this.nowMs + this.config.electionTimeoutMinMs;
    this.electionDeadlineMs = Math.min(this.electionDeadlineMs, this.nowMs + Math.floor(this.config.random() * withinMs));
  }

  /** The transport finished (or gave up) sending a snapshot to `peerId`. */
  reportSnapshot(peerId: NodeId, delivered: boolean): void {
    this.leader?.reportSnapshot(peerId, delivered);
  }

  // ------------------------------------------------------------------------------------------
  // Output

  /** Whether `ready()` would return any work. */
  hasReady(): boolean {
    if (this.readyInFlight) return false;
    this.leader?.flush();
    return (
      !sameSoftState(this.softState(), this.lastSoftState) ||
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.readFailures.length > 0 ||
      this.receivedSnapshot !== null ||
      !sameHardState(this.hardState(), this.lastHardState) ||
      this.log.stableIndex < this.log.lastIndex ||
      (this.log.commitIndex > this.log.appliedIndex && this.log.stableIndex > this.log.appliedIndex)
    );
  }

  /** Takes the next batch of work; the driver must `advance` it before asking for another. */
  ready(): Ready {
    assert(!this.readyInFlight, "ready() called again before advance()");
    this.leader?.flush();
    const hardState = this.hardState();
    const softState = this.softState();
    // A leader's term was made durable before its first vote request left, so its replication traffic
    // depends on nothing in this batch; everything else waits for the write.
    const termDurable = this.lastHardState.currentTerm === this.currentTerm;
    const leaderMessages = this.leader !== null && termDurable ? this.messages.filter(isLeaderTraffic) : [];
    const messages = leaderMessages.length > 0 ? this.messages.filter((message) => !isLeaderTraffic(message)) : this.messages;
    const ready: Ready = {
      softState,
      hardState: sameHardState(hardState, this.lastHardState) ? null : hardState,
      snapshot: this.receivedSnapshot,
      entries: this.log.unstableEntries(),
      leaderMessages,
      messages,
      committedEntries: this.log.committedToApply(),
      readStates: this.readStates,
      readFailures: this.readFailures,
    };
    this.lastHardState = hardState;
    this.lastSoftState = softState;
    this.receivedSnapshot = null;
    this.messages = [];
    this.readStates = [];
    this.readFailures = [];
    this.readyInFlight = true;
    return ready;
  }

  /** The driver made `ready` durable and processed it. */
  advance(ready: Ready): void {
    assert(this.readyInFlight, "advance() without a ready() in flight");
    this.readyInFlight = false;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) this.log.stableTo(lastEntry.index, lastEntry.term);
    const lastApplied = ready.committedEntries[ready.committedEntries.length - 1];
    // A snapshot installed while this batch was being written has already moved the applied index past it.
    if (lastApplied !== undefined && lastApplied.index > this.log.appliedIndex) this.log.appliedTo(lastApplied.index);
    // Pitfall 11: the leader counts its own log towards a majority only once it is durable.
    if (lastEntry !== undefined) this.leader?.maybeCommit();
    this.stepDownIfRemoved();
  }

  // ------------------------------------------------------------------------------------------
  // Queries

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      currentTerm: this.currentTerm,
      votedFor: this.votedFor,
      leaderId: this.leaderId,
      commitIndex: this.log.commitIndex,
      lastApplied: this.log.appliedIndex,
      firstIndex: this.log.firstIndex,
      lastIndex: this.log.lastIndex,
      snapshotIndex: this.log.snapshotIndex,
      transferTarget: this.leader?.transferTarget ?? null,
      progress: this.leader?.progressView() ?? new Map(),
      config: this.configs.current,
      configIndex: this.configs.currentIndex,
    };
  }

  /** Role, known leader and term: what the driver checks on every request, without `status()`'s copies. */
  softStateNow(): SoftState {
    return this.softState();
  }

  /** The in-memory entry at `index`, durable or not; undefined when compacted or absent. */
  entryAt(index: number): Entry | undefined {
    return this.log.entryAt(index);
  }

  termAt(index: number): number | undefined {
    return this.log.termOf(index);
  }

  /** The configuration in force with what decides whether it committed: cheap enough for every batch. */
  configNow(): { config: ClusterConfig; configIndex: number; commitIndex: number; currentTerm: number } {
    return { config: this.configs.current, configIndex: this.configs.currentIndex, commitIndex: this.log.commitIndex, currentTerm: this.currentTerm };
  }

  /** The configuration in force at `index` (at or above the snapshot): what a snapshot taken there records. */
  configAt(index: number): ClusterConfig {
    return this.configs.at(index);
  }

  /**
   * Lowest log index this leader still needs for live followers (a slow one's match index, or the index
   * of a snapshot in flight). A driver that keeps its log from here on spares them a (new) snapshot
   * (pitfall 17); it should still cap how much it retains. Infinity when nothing needs keeping.
   */
  retentionFloor(): number {
    return this.leader?.retentionFloor(this.nowMs) ?? Number.POSITIVE_INFINITY;
  }

  /** Whether a lease read at `nowMs` may be served without a heartbeat round (pitfall 15). */
  leaseValid(nowMs: number): boolean {
    this.advanceClock(nowMs);
    return this.leader?.leaseValid(nowMs) ?? false;
  }

  // ------------------------------------------------------------------------------------------
  // Terms and roles

  /** A message from a higher term. Returns whether to go on handling it. */
  private stepHigherTerm(message: Message): boolean {
    const isVoteRequest = message.type === "vote" || message.type === "pre-vote";
    if (isVoteRequest && !message.transfer && this.heardFromLeaderRecently()) {
      // Stickiness (pitfall 5): a live leader exists; a disruptive candidate is ignored, term unchanged.
      return false;
    }
    if (message.type === "pre-vote") return true; // a PreVote never changes anyone's term (pitfall 4)
    if (message.type === "pre-vote-response" && message.granted) return true; // granted at our future term
    const fromLeader = message.type === "append" || message.type === "heartbeat" || message.type === "snapshot";
    this.becomeFollower(message.term, fromLeader ? message.from : null);
    return true;
  }

  private stepLowerTerm(message: Message): void {
    if (message.type === "append" || message.type === "heartbeat") {
      // A deposed leader that cannot hear the new one would keep going; our higher term tells it to stop.
      // Without this, a node whose term was raised in a partition could never rejoin (etcd's CheckQuorum case).
      this.send({ type: "append-response", from: this.id, to: message.from, term: this.currentTerm, success: false, index: 0, conflictTerm: 0, conflictIndex: 0 });
    } else if (message.type === "pre-vote") {
      this.send({ type: "pre-vote-response", from: this.id, to: message.from, term: this.currentTerm, granted: false });
    }
  }

  private heardFromLeaderRecently(): boolean {
    if (this.role === Role.Leader) return true; // CheckQuorum deposes a leader that lost its majority
    return this.nowMs < this.stickyUntilMs;
  }

  private heardFromLeader(leaderId: NodeId): void {
    this.leaderId = leaderId;
    this.stickyUntilMs = this.nowMs + this.config.electionTimeoutMinMs;
    this.leaderLostUntilMs = Number.NEGATIVE_INFINITY;
  }

  private becomeFollower(term: number, leaderId: NodeId | null): void {
    assert(term >= this.currentTerm, "term moved backwards");
    if (term > this.currentTerm) {
      this.currentTerm = term;
      this.votedFor = null; // pitfall 3: only a higher term clears the vote
    }
    if (this.leader !== null) {
      for (const context of this.leader.end()) this.failRead(context, "not-leader");
      this.leader = null;
    }
    this.role = Role.Follower;
    this.leaderId = null;
    if (leaderId !== null) this.heardFromLeader(leaderId);
    this.resetElectionDeadline();
  }

  /** PreVote (pitfall 4): ask for votes at term + 1 without raising our own term. */
  private preCampaign(): void {
    this.role = Role.PreCandidate;
    this.leaderId = null; // pitfall 6: a pre-candidate forgets its leader, and stops shielding it
    this.stickyUntilMs = Number.NEGATIVE_INFINITY;
    this.startVote("pre-vote", this.currentTerm + 1, false);
  }

  private campaign(transfer: boolean): void {
    this.currentTerm += 1;
    this.votedFor = this.id;
    this.role = Role.Candidate;
    this.leaderId = null;
    this.stickyUntilMs = Number.NEGATIVE_INFINITY;
    this.startVote("vote", this.currentTerm, transfer);
  }

  private startVote(type: "vote" | "pre-vote", term: number, transfer: boolean): void {
    this.votes.clear();
    this.votes.set(this.id, true);
    this.resetElectionDeadline();
    if (this.concludeVote()) return;
    for (const voterId of this.voters()) {
      if (voterId === this.id) continue;
      this.send({ type, from: this.id, to: voterId, term, lastLogIndex: this.log.lastIndex, lastLogTerm: this.log.lastTerm, transfer });
    }
  }

  /** Acts on a decided vote; returns whether it was decided. */
  private concludeVote(): boolean {
    const outcome = tallyVotes(this.voters(), this.votes);
    if (outcome === VoteOutcome.Pending) return false;
    if (outcome === VoteOutcome.Lost) {
      this.becomeFollower(this.currentTerm, null);
    } else if (this.role === Role.PreCandidate) {
      this.campaign(false);
    } else {
      this.becomeLeader();
    }
    return true;
  }

  private becomeLeader(): void {
    assert(this.role === Role.Candidate, "only a candidate becomes leader");
    this.role = Role.Leader;
    this.leaderId = this.id;
    this.leaderLostUntilMs = Number.NEGATIVE_INFINITY;
    this.leader = new Leader(this, this.currentTerm, this.peers(), this.nowMs);
    // Pitfall 10: an entry of the new term commits the entries of earlier terms and enables reads. The
    // first leader of a cluster writes the bootstrap configuration (from the command line) into the log
    // as that entry, so that from then on the membership is durable and replicated, not a flag.
    if (this.configs.isBootstrap) this.appendOwn(EntryType.Config, encodeClusterConfig(this.configs.current));
    else this.appendOwn(EntryType.Empty, new Uint8Array(0));
    this.leader.broadcastHeartbeat();
  }

  // ------------------------------------------------------------------------------------------
  // Votes

  private handleVoteRequest(request: VoteRequest): void {
    const isPreVote = request.type === "pre-vote";
    const canVote = isPreVote
      ? request.term > this.currentTerm
      : this.votedFor === request.from || (this.votedFor === null && this.leaderId === null);
    // Pitfall 1: (lastLogTerm, lastLogIndex) compared term first.
    const granted = canVote && this.log.isUpToDate(request.lastLogIndex, request.lastLogTerm);
    if (granted && !isPreVote) {
      this.votedFor = request.from; // durable before the reply leaves (pitfall 2): replies go out after persist
      this.resetElectionDeadline();
    }
    this.send({
      type: isPreVote ? "pre-vote-response" : "vote-response",
      from: this.id,
      to: request.from,
      // A granted PreVote answers at the asked term, so the pre-candidate does not drop it as stale.
      term: granted && isPreVote ? request.term : this.currentTerm,
      granted,
    });
  }

  private handleVoteResponse(response: VoteResponse): void {
    const isPreVote = response.type === "pre-vote-response";
    if (this.role !== (isPreVote ? Role.PreCandidate : Role.Candidate)) return;
    // A grant from an earlier pre-campaign at our current term is stale; ours asks for currentTerm + 1.
    if (isPreVote && response.granted && response.term !== this.currentTerm + 1) return;
    this.votes.set(response.from, response.granted);
    this.concludeVote();
  }

  // ------------------------------------------------------------------------------------------
  // Follower side of replication

  /** A message of the current term from the leader: it is alive, and it leads. */
  private acknowledgeLeader(leaderId: NodeId): void {
    assert(this.role !== Role.Leader, `two leaders in term ${this.currentTerm}`);
    if (this.role !== Role.Follower) this.becomeFollower(this.currentTerm, leaderId);
    assert(this.leaderId === null || this.leaderId === leaderId, `two leaders in term ${this.currentTerm}`);
    this.heardFromLeader(leaderId);
    this.resetElectionDeadline();
  }

  private handleAppend(request: AppendRequest): void {
    this.acknowledgeLeader(request.from);
    if (request.prevLogIndex < this.log.commitIndex) {
      // Everything up to our commit index already matches; say so, and the leader resumes from there.
      return this.replyAppend(request.from, true, this.log.commitIndex);
    }
    if (!this.log.matchTerm(request.prevLogIndex, request.prevLogTerm)) return this.rejectAppend(request);
    const { lastNewIndex, written } = this.log.appendFromLeader(request.prevLogIndex, request.entries);
    if (written.length > 0) {
      // Pitfall 18: configurations take effect when appended, so a cut-back suffix takes its own with it.
      this.configs.truncated(written[0]!.index);
      this.configs.appended(written);
    }
    const commitIndex = Math.min(request.leaderCommit, lastNewIndex);
    if (commitIndex > this.log.commitIndex) this.log.commitTo(commitIndex);
    this.replyAppend(request.from, true, lastNewIndex);
  }

  /** Rejection with the fast-backtracking hint (pitfall 8): the conflicting term and where it starts. */
  private rejectAppend(request: AppendRequest): void {
    const prevLogIndex = request.prevLogIndex;
    let conflictTerm = 0;
    let conflictIndex = this.log.lastIndex + 1;
    if (prevLogIndex <= this.log.lastIndex) {
      conflictTerm = this.log.termOf(prevLogIndex) as number;
      assert(conflictTerm !== undefined, "rejected an append at an index whose term is unknown");
      conflictIndex = this.log.firstIndexOfTerm(prevLogIndex, conflictTerm, this.log.commitIndex);
    }
    this.send({ type: "append-response", from: this.id, to: request.from, term: this.currentTerm, success: false, index: prevLogIndex, conflictTerm, conflictIndex });
  }

  private replyAppend(leaderId: NodeId, success: boolean, index: number): void {
    this.send({ type: "append-response", from: this.id, to: leaderId, term: this.currentTerm, success, index, conflictTerm: 0, conflictIndex: 0 });
  }

  private handleHeartbeat(request: HeartbeatRequest): void {
    this.acknowledgeLeader(request.from);
    // The leader sends min(our match, its commit), so this never reaches past entries we hold from it.
    if (request.leaderCommit > this.log.commitIndex) this.log.commitTo(request.leaderCommit);
    this.send({ type: "heartbeat-response", from: this.id, to: request.from, term: this.currentTerm, round: request.round });
  }

  private handleSnapshot(request: SnapshotRequest): void {
    this.acknowledgeLeader(request.from);
    const meta = request.snapshot.meta;
    if (meta.index <= this.log.commitIndex) return this.replyAppend(request.from, true, this.log.commitIndex);
    if (this.log.matchTerm(meta.index, meta.term)) {
      // Pitfall 16: our log already holds the snapshot's last entry; keep the matching suffix, commit to it.
      this.log.commitTo(meta.index);
      return this.replyAppend(request.from, true, meta.index);
    }
    this.log.restore(request.snapshot);
    this.snapshotLatest = request.snapshot;
    this.receivedSnapshot = request.snapshot;
    this.configs.restored(meta.config, meta.index, meta.term);
    this.replyAppend(request.from, true, meta.index);
  }

  private handleTimeoutNow(): void {
    if (this.role === Role.Leader || !this.mayCampaign()) return;
    this.campaign(true); // a transfer skips PreVote: the old leader asked for it
  }

  // ------------------------------------------------------------------------------------------
  // Helpers

  /** Queues `message` for the next batch (LeaderHost). */
  send(message: Message): void {
    this.messages.push(message);
  }

  /** A read may be served once applied reaches its index (LeaderHost). */
  readReady(read: ReadState): void {
    this.readStates.push(read);
  }

  latestSnapshot(): Snapshot | null {
    return this.snapshotLatest;
  }

  private failRead(context: unknown, reason: RejectReason): void {
    this.readFailures.push({ context, reason });
  }

  private advanceClock(nowMs: number): void {
    assert(nowMs >= this.nowMs, "monotonic clock went backwards");
    this.nowMs = nowMs;
  }

  private resetElectionDeadline(): void {
    const withinMs = this.config.leaderLossCampaignWithinMs;
    if (withinMs !== null && this.nowMs < this.leaderLostUntilMs) {
      this.electionDeadlineMs = this.nowMs + Math.floor(this.config.random() * withinMs);
      return;
    }
    const spanMs = this.config.electionTimeoutMaxMs - this.config.electionTimeoutMinMs;
    this.electionDeadlineMs = this.nowMs + this.config.electionTimeoutMinMs + Math.floor(this.config.random() * spanMs);
  }

  voters(): readonly NodeId[] {
    return this.configs.current.voters;
  }

  isVoter(nodeId: NodeId): boolean {
    return this.configs.current.voters.includes(nodeId);
  }

  /**
   * Whether this node may start an election: it is a voter in its latest configuration, or it still is
   * in the committed one and only an uncommitted entry removes it. Thesis §4.2.2: such a node may hold
   * the only copy of its removal and must be able to lead long enough to commit it (it counts votes by
   * its latest configuration, without its own, and steps down once the removal commits). Learners never
   * campaign.
   */
  private mayCampaign(): boolean {
    return this.isVoter(this.id) || this.configs.at(this.log.commitIndex).voters.includes(this.id);
  }

  /** Every member this node would replicate to if it led: voters and learners but itself. */
  private peers(): NodeId[] {
    const config = this.configs.current;
    return [...config.voters, ...config.learners].filter((nodeId) => nodeId !== this.id);
  }

  /** Appends an entry of this leader's term and starts replicating it to the members it names. */
  private appendOwn(type: EntryType, data: Uint8Array): ProposeResult {
    assert(this.leader !== null, "only a leader appends its own entries");
    const entry: Entry = { index: this.log.lastIndex + 1, term: this.currentTerm, type, data };
    this.log.append(entry);
    if (type === EntryType.Config) {
      this.configs.appended([entry]);
      this.leader.setPeers(this.peers(), this.nowMs);
    }
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Pitfall 20: a leader that removed itself keeps leading until that change commits (without counting
   * itself), then hands over to the most up-to-date voter at once and steps down.
   */
  private stepDownIfRemoved(): void {
    if (this.leader === null || this.isVoter(this.id) || this.configs.currentIndex > this.log.commitIndex) return;
    this.leader.handOver();
    this.becomeFollower(this.currentTerm, null);
  }

  private softState(): SoftState {
    return { role: this.role, leaderId: this.leaderId, currentTerm: this.currentTerm };
  }

  private hardState(): HardState {
    return { currentTerm: this.currentTerm, votedFor: this.votedFor, commitIndex: this.log.commitIndex };
  }
}

function isLeaderTraffic(message: Message): boolean {
  return message.type === "append" || message.type === "heartbeat" || message.type === "snapshot" || message.type === "timeout-now";
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.currentTerm === b.currentTerm && a.votedFor === b.votedFor && a.commitIndex === b.commitIndex;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leaderId === b.leaderId && a.currentTerm === b.currentTerm;
}
