import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { formatAddress, type NodeConfig } from "../config.js";
import { type ConfigChange, isMember } from "../raft/cluster-config.js";
import { raftConfigDefaults } from "../raft/config.js";
import { Raft } from "../raft/raft.js";
import { type ClusterConfig, type Entry, EntryType, type Message, type NodeId, type ProposeResult, type Ready, Role, type Snapshot, type SoftState } from "../raft/types.js";
import type { NodeMetrics, RaftGauges } from "../metrics.js";
import { Storage } from "../storage/storage.js";
import type { ReloadableTls } from "../tls.js";
import { PeerUnavailableError, RequestLimitError, Transport } from "../transport/transport.js";
import { assert } from "../util/assert.js";
import {
  decodeBytesReply,
  decodeJsonReply,
  decodeProposalReply,
  encodeBytesReply,
  decodeRequest,
  encodeErrorReply,
  encodeJsonReply,
  encodeProposalReply,
  encodeRequest,
  NodeError,
  type ProposalResult,
  RequestKind,
} from "./forwarding.js";
import { MemberLinks } from "./member-links.js";
import { firstSnapshotAfterEntries } from "./snapshot-schedule.js";
import type { StateMachine } from "./state-machine.js";

/** How long a request waits for a leader to be elected before it is refused. */
export const noLeaderWaitMs = 3_000;
/** How long a status query waits for each peer. */
export const peerStatusTimeoutMs = 500;
/** Proposals waiting to commit on this node at once. */
export const pendingProposalsMax = 100_000;
/** How long a leader that shuts down waits for its transfer to take effect. */
export const shutdownTransferWaitMs = 3_000;
/** How long a linearizable read may wait for its read point to be confirmed and applied. */
export const readTimeoutMs = 5_000;
/** Reads waiting on this node at once (for a read point, or for the state machine to reach it). */
export const pendingReadsMax = 100_000;
/** How long a removed member stays connected after its removal committed, in election timeouts. */
export const removedPeerGraceElectionTimeouts = 2;
/** How long `transferLeadership` waits for the target to take over, in election timeouts. */
export const transferWaitElectionTimeouts = 2;
/** Exit status after a storage failure (EX_SOFTWARE): the operator restarts the node, whose recovery repairs the log. */
const storageFailureExitCode = 70;

/** How linearizable reads confirm leadership: a heartbeat round (ReadIndex) or the leader's lease. */
export type ReadMode = "read-index" | "lease";

interface PendingRead {
  readonly resolve: (index: number) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface PendingProposal {
  readonly term: number;
  readonly resolve: (result: ProposalResult) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** One member's status as reported by `GET /v1/cluster` and `raftlock status`. */
export interface MemberStatus {
  readonly id: NodeId;
  readonly reachable: boolean;
  readonly role?: Role;
  readonly term?: number;
  readonly leader?: NodeId | null;
  readonly commitIndex?: number;
  readonly appliedIndex?: number;
  readonly snapshotIndex?: number;
  readonly lastIndex?: number;
  /** As the leader sees this member's replication, when this node leads. */
  readonly matchIndex?: number;
  readonly replicationState?: string;
  /** Whether this member votes (a learner only replicates), in the configuration this node holds. */
  readonly voter?: boolean;
}

/** The cluster's membership as `GET /v1/members` and `raftlock members list` report it. */
export interface Membership {
  /** Log index of the configuration entry that set it (0: the bootstrap configuration, not yet logged). */
  readonly configIndex: number;
  readonly members: readonly { readonly id: NodeId; readonly voter: boolean; readonly address: string | null }[];
}

/**
 * The driver: ticks the consensus core on a monotonic clock, persists each batch before sending what
 * depends on it, applies committed entries, resolves proposals, forwards requests from followers to the
 * leader, and takes snapshots.
 */
export class RaftNode {
  private readonly raft: Raft;
  private readonly pending = new Map<number, PendingProposal>();
  /** Reads waiting for the core to confirm a read point, by context. */
  private readonly readsAwaitingIndex = new Map<number, PendingRead>();
  /** Read points waiting for the state machine to apply them, lowest index first. */
  private readsAwaitingApply: { readonly index: number; readonly resolve: () => void }[] = [];
  private readContextNext = 1;
  private transport: Transport | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private loopScheduled = false;
  private processing = false;
  private stopping = false;
  private appliedIndex: number;
  private snapshotIndex: number;
  /** Applied entries past `snapshotIndex` that make the next snapshot due: staggered for the first one. */
  private snapshotDueAfterEntries: number;
  /** Settles once the snapshot being written is durable and the core's log compacted to it; null when none is. */
  private snapshotInProgress: Promise<void> | null = null;
  private snapshotSettle: (() => void) | null = null;
  /** A snapshot made durable while a Ready was in flight: the core's log is compacted between Readys. */
  private snapshotDurable: { readonly snapshot: Snapshot; readonly retainFromIndex: number; readonly startedMs: number } | null = null;
  private lastSoftState: SoftState;
  /** The commit index this node learned once a leader was first known: `/readyz` waits to apply it. */
  private startupCommitIndex: number | null = null;
  private readonly leaderWaiters = new Set<() => void>();
  private idleWaiters: (() => void)[] = [];
  private readonly softStateListeners = new Set<(softState: SoftState) => void>();
  private readonly memberLinks: MemberLinks;
  private leaderRequestHandler: ((data: Uint8Array) => Promise<Uint8Array>) | null = null;
  /** Per follower, the last heartbeat round sent and when: its answer gives peer_round_trip_seconds. */
  private readonly heartbeatsSent = new Map<NodeId, { readonly round: number; readonly atMs: number }>();
  /**
   * The commit index this node's storage held at start: entries up to it were applied before, by an
   * earlier run, and are applied again now (so metrics counting their effects skip them).
   */
  readonly recoveredCommitIndex: number;

  private constructor(
    readonly config: NodeConfig,
    private readonly logger: Logger,
    private readonly storage: Storage,
    private readonly stateMachine: StateMachine,
    recovered: Awaited<ReturnType<typeof Storage.open>>["recovered"],
    private readonly metrics: NodeMetrics | null,
  ) {
    this.recoveredCommitIndex = recovered.hardState.commitIndex;
    // The bootstrap configuration: used only until the log or a snapshot holds one.
    const bootstrapConfig: ClusterConfig = { voters: [...config.peers.keys()], learners: [], addresses: Object.fromEntries([...config.peers].map(([id, address]) => [id, formatAddress(address)])) };
    if (recovered.snapshot !== null) stateMachine.restore(recovered.snapshot.data);
    this.raft = new Raft(
      {
        ...raftConfigDefaults,
        id: config.id,
        electionTimeoutMinMs: config.electionTimeoutMinMs,
        electionTimeoutMaxMs: config.electionTimeoutMaxMs,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        // Lease reads trust followers to ignore candidates for an election timeout; only without them may
        // followers campaign as soon as the leader's stream closes (a killed leader: failover in ms).
        leaderLossCampaignWithinMs: config.readMode === "read-index" ? config.heartbeatIntervalMs : null,
        random: () => randomInt(0, 1 << 30) / (1 << 30),
      },
      { hardState: recovered.hardState, snapshot: recovered.snapshot, entries: recovered.entries, config: bootstrapConfig },
      nowMs(),
    );
    const status = this.raft.status();
    const departedGraceMs = config.electionTimeoutMaxMs * removedPeerGraceElectionTimeouts;
    this.memberLinks = new MemberLinks(config.id, config.peers, departedGraceMs, () => this.raft.configNow().config, logger);
    this.appliedIndex = status.lastApplied;
    this.snapshotIndex = status.snapshotIndex;
    this.snapshotDueAfterEntries = firstSnapshotAfterEntries(config.id, config.snapshotEveryEntries);
    this.lastSoftState = { role: status.role, leaderId: status.leaderId, currentTerm: status.currentTerm };
  }

  /** Opens storage, recovers, joins the peer network (over mutual TLS with `peerTls`) and starts ticking. */
  static async start(config: NodeConfig, logger: Logger, stateMachine: StateMachine, metrics?: NodeMetrics, peerTls?: ReloadableTls): Promise<RaftNode> {
    const { storage, recovered, repairedTail } = await Storage.open({ dir: config.dataDir });
    if (repairedTail !== null) {
      logger.warn({ file: repairedTail.file, bytesCut: repairedTail.bytesCut }, "cut a torn tail off the write-ahead log");
    }
    const node = new RaftNode(config, logger, storage, stateMachine, recovered, metrics ?? null);
    metrics?.watchRaft(() => node.raftGauges());
    // The log's configuration knows members added since bootstrap; --peers fills in the rest at first start.
    const peers = new Map([...config.peers].filter(([id]) => id !== config.id));
    for (const [id, address] of node.memberLinks.addresses(node.raft.configNow().config)) peers.set(id, address);
    node.transport = await Transport.start({
      nodeId: config.id,
      clusterId: config.clusterId,
      listen: config.peerListen,
      peers,
      ...(config.clusterToken === undefined ? {} : { clusterToken: config.clusterToken }),
      ...(peerTls === undefined ? {} : { tls: peerTls }),
      logger,
      onMessage: (message) => {
        node.observeHeartbeatAnswer(message);
        node.raft.step(message, nowMs());
        node.kick();
      },
      onUnreachable: (peerId) => {
        node.raft.reportUnreachable(peerId, nowMs());
        node.kick();
      },
      onSnapshotStatus: (peerId, delivered) => {
        node.raft.reportSnapshot(peerId, delivered);
        node.kick();
      },
      onRequest: (fromPeerId, payload) => node.handlePeerRequest(fromPeerId, payload),
      ...(metrics === undefined ? {} : { onLimitHit: metrics.limitHit }),
    });
    node.memberLinks.attach(node.transport);
    const transport = node.transport;
    metrics?.countConnections("peer", () => transport.connectedPeers().length);
    metrics?.watchPeerTraffic(() => transport.peerTraffic());
    node.followConfig();
    const tickIntervalMs = Math.max(5, Math.floor(config.heartbeatIntervalMs / 5));
    node.tickTimer = setInterval(() => {
      node.raft.tick(nowMs());
      node.kick();
    }, tickIntervalMs);
    logger.info(
      { term: recovered.hardState.currentTerm, commitIndex: recovered.hardState.commitIndex, lastIndex: node.raft.status().lastIndex },
      "node started",
    );
    node.kick();
    return node;
  }

  // ------------------------------------------------------------------------------------------
  // Requests

  /** Commits `data` through the log (at the leader, forwarding if need be) and returns its result. */
  async propose(data: Uint8Array): Promise<ProposalResult> {
    if (this.stopping) throw new NodeError("SHUTTINGDOWN", "this node is shutting down; retry on another node");
    const leaderId = await this.waitForLeader();
    if (leaderId === this.config.id) return this.proposeLocally(data);
    try {
      const reply = await this.requestWhileLeading(leaderId, encodeRequest({ kind: RequestKind.Propose, data }), this.config.commitTimeoutMs);
      return decodeProposalReply(reply);
    } catch (error) {
      if (error instanceof NodeError) throw error;
      // The stream to the leader broke or timed out: the proposal may or may not have been appended.
      if (error instanceof PeerUnavailableError) throw new NodeError("LEADERLOST", "the connection to the leader closed before the proposal committed; outcome unknown");
      throw new NodeError("TIMEOUT", "the leader did not answer before the proposal committed; outcome unknown");
    }
  }

  /**
   * Runs `query` on the state machine at a linearizable point: it sees every write acknowledged before
   * `read` was called. The leader confirms its leadership (ReadIndex, or its lease in lease mode); a
   * follower asks the leader for the read point and answers from its own state once it applied it.
   */
  async read<T>(query: (stateMachine: StateMachine) => T): Promise<T> {
    if (this.stopping) throw new NodeError("SHUTTINGDOWN", "this node is shutting down; retry on another node");
    const leaderId = await this.waitForLeader();
    let readIndex: number;
    if (leaderId === this.config.id) {
      readIndex = await this.readIndexLocally();
    } else {
      try {
        const reply = await this.requestWhileLeading(leaderId, encodeRequest({ kind: RequestKind.ReadIndex }), readTimeoutMs);
        readIndex = decodeJsonReply<{ index: number }>(reply).index;
      } catch (error) {
        if (error instanceof NodeError) throw error;
        throw new NodeError("NOLEADER", "the leader did not confirm a read point; retry");
      }
    }
    await this.appliedUpTo(readIndex);
    return query(this.stateMachine);
  }

  /**
   * A request to `leaderId` that fails with LEADERLOST as soon as this node knows another leader, or none:
   * behind a silent partition the stream to a deposed leader stays open, and the request would wait out
   * its whole timeout (10 s for a proposal) although a new leader was elected in about an election
   * timeout. The outcome is unknown (the old leader may have replicated it); callers retry where safe.
   */
  private requestWhileLeading(leaderId: NodeId, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const request = this.transport!.request(leaderId, payload, timeoutMs);
    return new Promise<Uint8Array>((resolve, reject) => {
      const stopWatching = this.onSoftStateChange((soft) => {
        if (soft.leaderId === leaderId) return;
        stopWatching();
        reject(new NodeError("LEADERLOST", `the leader changed from ${leaderId} to ${soft.leaderId ?? "none"} with the request in flight; outcome unknown`));
      });
      request.then(
        (reply) => {
          stopWatching();
          resolve(reply);
        },
        (error: unknown) => {
          stopWatching();
          reject(notForwarded(error));
        },
      );
    });
  }

  /** Calls `listener` whenever this node's role, known leader or term changes; returns how to stop. */
  onSoftStateChange(listener: (softState: SoftState) => void): () => void {
    this.softStateListeners.add(listener);
    return () => this.softStateListeners.delete(listener);
  }

  /** The membership as of a linearizable point: every change acknowledged before the call is in it. */
  async members(): Promise<Membership> {
    await this.read(() => undefined);
    return this.localMembership();
  }

  /**
   * Makes one membership change through the leader (forwarding if need be) and resolves once it
   * committed. Errors: MEMBERSHIP (does not apply), CHANGEPENDING and NOTCAUGHTUP (retry later).
   */
  async changeMembership(change: ConfigChange): Promise<{ index: number; term: number }> {
    if (this.stopping) throw new NodeError("SHUTTINGDOWN", "this node is shutting down; retry on another node");
    const leaderId = await this.waitForLeader();
    if (leaderId === this.config.id) return this.changeMembershipLocally(change);
    const payload = encodeRequest({ kind: RequestKind.ConfigChange, data: Buffer.from(JSON.stringify(change)) });
    let committed: ProposalResult;
    try {
      committed = decodeProposalReply(await this.transport!.request(leaderId, payload, this.config.commitTimeoutMs));
    } catch (error) {
      const refused = notForwarded(error);
      if (refused instanceof NodeError) throw refused;
      throw new NodeError("LEADERLOST", "the leader did not answer before the membership change committed; outcome unknown, check the member list");
    }
    // So that `localMembership()` here shows the change once this resolves. A node that removed itself
    // is not sent the entry that removes it: it cannot wait for it.
    if (!(change.type === "remove" && change.nodeId === this.config.id)) await this.appliedUpTo(committed.index);
    return committed;
  }

  /** Hands leadership to voter `targetId` and resolves with the new leader once the old one stepped down. */
  async transferLeadership(targetId: NodeId): Promise<{ id: NodeId; term: number } | null> {
    if (this.stopping) throw new NodeError("SHUTTINGDOWN", "this node is shutting down; retry on another node");
    const leaderId = await this.waitForLeader();
    if (leaderId === this.config.id) return this.transferLocally(targetId);
    const payload = encodeRequest({ kind: RequestKind.Transfer, data: Buffer.from(JSON.stringify({ targetId })) });
    const waitMs = this.config.electionTimeoutMaxMs * (transferWaitElectionTimeouts + 1);
    let reply: Uint8Array;
    try {
      reply = await this.transport!.request(leaderId, payload, waitMs);
    } catch (error) {
      const refused = notForwarded(error);
      if (refused instanceof NodeError) throw refused;
      throw new NodeError("LEADERLOST", "the leader did not answer the transfer request; check who leads now");
    }
    // The old leader's view of its successor: this node may not have heard from the new one yet.
    return decodeJsonReply<{ id: NodeId; term: number } | null>(reply);
  }

  /** The membership in the configuration this node holds now (no round trip; may trail the leader's). */
  localMembership(): Membership {
    const { config, configIndex } = this.raft.configNow();
    const members = [...config.voters.map((id) => ({ id, voter: true })), ...config.learners.map((id) => ({ id, voter: false }))];
    return { configIndex, members: members.map((member) => ({ ...member, address: config.addresses[member.id] ?? null })) };
  }

  /** Serves `Leader` requests (work only the leader does, writing nothing to the log). */
  setLeaderRequestHandler(handler: (data: Uint8Array) => Promise<Uint8Array>): void {
    this.leaderRequestHandler = handler;
  }

  /** Runs `data` through the leader's `Leader` request handler, here or over the peer stream. */
  async requestLeader(data: Uint8Array): Promise<Uint8Array> {
    const leaderId = await this.waitForLeader();
    const handler = this.leaderRequestHandler;
    assert(handler !== null, "requestLeader before setLeaderRequestHandler");
    if (leaderId === this.config.id) return handler(data);
    try {
      return decodeBytesReply(await this.requestWhileLeading(leaderId, encodeRequest({ kind: RequestKind.Leader, data }), readTimeoutMs));
    } catch (error) {
      if (error instanceof NodeError) throw error;
      throw new NodeError("NOLEADER", "the leader did not answer; retry");
    }
  }

  /** Whether this node leads and heard from a majority recently enough to act on its own clock. */
  leadershipFresh(): boolean {
    return this.raft.leaseValid(nowMs());
  }

  /**
   * Whether a fresh lease alone proves that no newer leader exists: true while followers stay loyal for an
   * election timeout (lease read mode); false when they campaign as soon as they lose the leader's stream.
   */
  leaseProvesLeadership(): boolean {
    return this.raft.config.leaderLossCampaignWithinMs === null;
  }

  /** Resolves once a majority confirmed, after the call, that this node still leads (a ReadIndex round). */
  async confirmLeadership(): Promise<void> {
    await this.readIndexLocally();
  }

  isLeader(): boolean {
    return this.raft.softStateNow().role === Role.Leader;
  }

  /** This node's status, and every other member's as it answers (unreachable ones say so). */
  async clusterStatus(): Promise<MemberStatus[]> {
    const config = this.raft.configNow().config;
    const ids = [...config.voters, ...config.learners];
    if (!ids.includes(this.config.id)) ids.unshift(this.config.id); // a joining or removed node still reports itself
    const members = ids.map(async (id): Promise<MemberStatus> => {
      const voter = config.voters.includes(id);
      if (id === this.config.id) return { ...this.localStatus(), voter };
      try {
        const reply = await this.transport!.request(id, encodeRequest({ kind: RequestKind.Status }), peerStatusTimeoutMs);
        return { ...decodeJsonReply<MemberStatus>(reply), ...this.replicationOf(id), voter };
      } catch {
        return { id, reachable: false, ...this.replicationOf(id), voter };
      }
    });
    return Promise.all(members);
  }

  /** Dials the members a join reply named, before their configuration reaches this node through the log. */
  learnPeers(membership: Membership): void {
    this.memberLinks.learn(membership.members);
  }

  /** Whether the configuration this node holds lists it as a voter. */
  isVoter(): boolean {
    return this.raft.configNow().config.voters.includes(this.config.id);
  }

  /** Whether the configuration this node holds lists it at all (a joining node is not listed yet). */
  isMember(): boolean {
    return isMember(this.raft.configNow().config, this.config.id);
  }

  localStatus(): MemberStatus {
    const status = this.raft.status();
    return {
      id: status.id,
      reachable: true,
      role: status.role,
      term: status.currentTerm,
      leader: status.leaderId,
      commitIndex: status.commitIndex,
      appliedIndex: this.appliedIndex,
      snapshotIndex: status.snapshotIndex,
      lastIndex: status.lastIndex,
    };
  }

  /** What `GET /metrics` reports of the consensus state, read at scrape time. */
  raftGauges(): RaftGauges {
    const status = this.raft.status();
    const followerLagEntries = new Map<NodeId, number>();
    if (status.role === Role.Leader) {
      for (const [peerId, progress] of status.progress) if (peerId !== this.config.id) followerLagEntries.set(peerId, Math.max(0, status.lastIndex - progress.matchIndex));
    }
    return {
      isLeader: status.role === Role.Leader,
      hasLeader: status.leaderId !== null,
      term: status.currentTerm,
      commitIndex: status.commitIndex,
      appliedIndex: this.appliedIndex,
      proposalsPending: this.pending.size,
      followerLagEntries,
    };
  }

  /** The leader this node knows of, with its term, or null. */
  leader(): { id: NodeId; term: number } | null {
    const soft = this.raft.softStateNow();
    return soft.leaderId === null ? null : { id: soft.leaderId, term: soft.currentTerm };
  }

  /** `/readyz`: a leader is known and this node applied what was committed when it first learned of one. */
  isReady(): boolean {
    return !this.stopping && !this.memberLinks.removed && this.startupCommitIndex !== null && this.appliedIndex >= this.startupCommitIndex && this.leader() !== null;
  }

  /** Takes a snapshot now (it also happens every `snapshotEveryEntries` applied entries). */
  async snapshotNow(): Promise<number> {
    // Between Readys, with none in progress (the loop may start one while this waits for the other).
    do {
      while (this.snapshotInProgress !== null) await this.snapshotInProgress;
      await this.whenIdle();
    } while (this.snapshotInProgress !== null);
    this.startSnapshot();
    if (this.snapshotInProgress !== null) await this.snapshotInProgress;
    return this.snapshotIndex;
  }

  /** Graceful stop: refuse new requests, hand leadership over, flush, close. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const status = this.raft.status();
    if (status.role === Role.Leader) await this.transferBeforeStop();
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    await this.whenIdle();
    // storage.close() waits for a snapshot still being written; its compaction of the core no longer matters.
    for (const [, proposal] of this.pending) {
      clearTimeout(proposal.timer);
      proposal.reject(new NodeError("SHUTTINGDOWN", "the node shut down before the proposal committed; outcome unknown"));
    }
    this.pending.clear();
    for (const [, read] of this.readsAwaitingIndex) {
      clearTimeout(read.timer);
      read.reject(new NodeError("SHUTTINGDOWN", "the node shut down before the read was served; retry"));
    }
    this.readsAwaitingIndex.clear();
    await this.transport?.close();
    await this.storage.close();
    this.logger.info({ term: this.raft.status().currentTerm }, "node stopped");
  }

  // ------------------------------------------------------------------------------------------
  // The loop: one Ready at a time, persisted before anything that depends on it.

  private kick(): void {
    if (this.loopScheduled) return;
    this.loopScheduled = true;
    // setImmediate lets every proposal and message of this event-loop turn join one batch.
    setImmediate(() => {
      this.loopScheduled = false;
      void this.processReady();
    });
  }

  private async processReady(): Promise<void> {
    if (this.processing) return;
    this.compactToDurableSnapshot();
    if (!this.raft.hasReady()) {
      this.notifyIdle();
      return;
    }
    this.processing = true;
    try {
      const ready = this.raft.ready();
      for (const message of ready.leaderMessages) this.send(message);
      if (ready.hardState !== null || ready.snapshot !== null || ready.entries.length > 0) {
        const startedMs = nowMs();
        const { synced } = await this.storage.save({ hardState: ready.hardState, snapshot: ready.snapshot, entries: ready.entries });
        if (synced) this.metrics?.walSaved((nowMs() - startedMs) / 1000);
      }
      for (const message of ready.messages) this.send(message);
      if (ready.snapshot !== null) this.restoreSnapshot(ready.snapshot);
      for (const entry of ready.committedEntries) this.apply(entry);
      this.settleReads(ready);
      this.raft.advance(ready);
      this.observeSoftState(ready);
      this.followConfig();
      if (this.snapshotInProgress === null && this.appliedIndex - this.snapshotIndex >= this.snapshotDueAfterEntries) this.startSnapshot();
    } catch (error) {
      this.stopOnStorageFailure(error, "storage failed; stopping the node to protect replicated state");
    } finally {
      this.processing = false;
    }
    this.kick();
  }

  private send(message: Message): void {
    if (message.type === "append") this.metrics?.appendEntriesSent(message.entries.length);
    if (message.type === "heartbeat" && this.metrics !== null) this.probeRoundTrip(message.to, message.round);
    this.transport!.send(message);
  }

  /**
   * Times one heartbeat per follower at a time: a new probe starts only once the last was answered or
   * given up (after an election timeout), so round trips longer than the heartbeat interval are measured
   * too instead of being replaced by the next heartbeat.
   */
  private probeRoundTrip(peerId: NodeId, round: number): void {
    const atMs = nowMs();
    const outstanding = this.heartbeatsSent.get(peerId);
    if (outstanding !== undefined && atMs - outstanding.atMs < this.config.electionTimeoutMaxMs) return;
    this.heartbeatsSent.set(peerId, { round, atMs });
  }

  private observeHeartbeatAnswer(message: Message): void {
    if (message.type !== "heartbeat-response" || this.metrics === null) return;
    const sent = this.heartbeatsSent.get(message.from);
    if (sent === undefined || sent.round !== message.round) return; // an older round's answer, or none asked
    this.heartbeatsSent.delete(message.from);
    this.metrics.peerRoundTrip(message.from, (nowMs() - sent.atMs) / 1000);
  }

  private apply(entry: Entry): void {
    assert(entry.index === this.appliedIndex + 1, `applied ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    const result = entry.type === EntryType.Normal ? this.stateMachine.apply(entry) : new Uint8Array(0);
    const proposal = this.pending.get(entry.index);
    if (proposal === undefined) return;
    this.pending.delete(entry.index);
    clearTimeout(proposal.timer);
    if (proposal.term === entry.term) proposal.resolve({ index: entry.index, term: entry.term, result });
    else proposal.reject(new NodeError("NOTCOMMITTED", "leadership changed and another entry took this proposal's place; it did not commit, retry"));
  }

  /** Hands confirmed read points to their readers, and releases reads whose point is now applied. */
  private settleReads(ready: Ready): void {
    for (const state of ready.readStates) {
      const read = this.readsAwaitingIndex.get(state.context as number);
      if (read === undefined) continue;
      this.readsAwaitingIndex.delete(state.context as number);
      clearTimeout(read.timer);
      read.resolve(state.index);
    }
    for (const failure of ready.readFailures) {
      const read = this.readsAwaitingIndex.get(failure.context as number);
      if (read === undefined) continue;
      this.readsAwaitingIndex.delete(failure.context as number);
      clearTimeout(read.timer);
      read.reject(new NodeError("NOLEADER", `this node could not confirm its leadership for the read (${failure.reason}); retry`));
    }
    let released = 0;
    while (released < this.readsAwaitingApply.length && this.readsAwaitingApply[released]!.index <= this.appliedIndex) {
      this.readsAwaitingApply[released]!.resolve();
      released++;
    }
    if (released > 0) this.readsAwaitingApply = this.readsAwaitingApply.slice(released);
  }

  private readIndexLocally(): Promise<number> {
    if (this.readsAwaitingIndex.size >= pendingReadsMax) return this.tooManyReads();
    const context = this.readContextNext++;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readsAwaitingIndex.delete(context);
        reject(new NodeError("TIMEOUT", `leadership was not confirmed within ${readTimeoutMs} ms; retry`));
      }, readTimeoutMs);
      this.readsAwaitingIndex.set(context, { resolve, reject, timer });
      // Measured now, when the read is served, not when it was scheduled (pitfall 15).
      this.raft.readIndex(context, nowMs(), this.config.readMode === "lease");
      this.kick();
    });
  }

  /** Resolves once the state machine applied `index`. */
  private appliedUpTo(index: number): Promise<void> {
    if (this.appliedIndex >= index) return Promise.resolve();
    if (this.readsAwaitingApply.length >= pendingReadsMax) return this.tooManyReads();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readsAwaitingApply = this.readsAwaitingApply.filter((read) => read.resolve !== done);
        reject(new NodeError("TIMEOUT", `this node did not apply the read point ${index} within ${readTimeoutMs} ms; retry`));
      }, readTimeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const position = this.readsAwaitingApply.findIndex((read) => read.index > index);
      const entry = { index, resolve: done };
      if (position < 0) this.readsAwaitingApply.push(entry);
      else this.readsAwaitingApply.splice(position, 0, entry);
    });
  }

  private restoreSnapshot(snapshot: Snapshot): void {
    this.stateMachine.restore(snapshot.data);
    this.appliedIndex = snapshot.meta.index;
    this.snapshotIndex = snapshot.meta.index;
    // Counting from the leader's snapshot index would put this member in step with it again.
    this.snapshotDueAfterEntries = firstSnapshotAfterEntries(this.config.id, this.config.snapshotEveryEntries);
    // Proposals at or below the snapshot were decided without this node seeing them.
    for (const [index, proposal] of this.pending) {
      if (index > snapshot.meta.index) continue;
      this.pending.delete(index);
      clearTimeout(proposal.timer);
      proposal.reject(new NodeError("TIMEOUT", "this node caught up by snapshot past the proposal; outcome unknown"));
    }
    this.logger.info({ index: snapshot.meta.index, term: snapshot.meta.term }, "installed a snapshot from the leader");
  }

  /**
   * Encodes the state at the applied index (the one part that must run on the loop: the state moves on
   * with the next entry) and writes it in the background while Readys go on; the core's log is compacted
   * to it between two Readys once it is durable (bench/PROFILE.md: a snapshot written on the loop stalled
   * every write behind it). One at a time.
   */
  private startSnapshot(): void {
    assert(this.snapshotInProgress === null, "a snapshot started while another is in progress");
    const index = this.appliedIndex;
    const term = this.raft.termAt(index);
    if (index <= this.snapshotIndex || term === undefined) return;
    const startedMs = nowMs();
    const snapshot: Snapshot = { meta: { index, term, config: this.raft.configAt(index) }, data: this.stateMachine.snapshot() };
    const wantedFromIndex = Math.min(index + 1 - this.config.retainedEntries, this.raft.retentionFloor());
    const retainFromIndex = Math.max(1, this.raft.status().firstIndex, Math.min(index + 1, wantedFromIndex));
    this.snapshotInProgress = new Promise((resolve) => {
      this.snapshotSettle = resolve;
    });
    this.storage.saveSnapshot(snapshot, retainFromIndex).then(
      () => {
        // A stopping node's storage is closing: its log needs no compaction any more.
        if (this.stopping) return this.settleSnapshot();
        this.snapshotDurable = { snapshot, retainFromIndex, startedMs };
        this.kick();
      },
      (error: unknown) => {
        this.stopOnStorageFailure(error, "writing a snapshot failed; stopping the node to protect replicated state", { index });
      },
    );
  }

  /** A failed write or sync leaves the disk in an unknown state (fsyncgate): stop rather than guess. */
  private stopOnStorageFailure(error: unknown, message: string, fields: Record<string, unknown> = {}): never {
    this.logger.fatal({ err: error, ...fields }, message);
    process.exit(storageFailureExitCode);
  }

  /** Compacts the core's log to the snapshot that became durable; runs between Readys only. */
  private compactToDurableSnapshot(): void {
    const durable = this.snapshotDurable;
    if (durable === null) return;
    assert(!this.processing, "compacting the log while a Ready is in flight");
    this.snapshotDurable = null;
    const { snapshot, retainFromIndex, startedMs } = durable;
    const { index, term } = snapshot.meta;
    // A snapshot from the leader installed meanwhile replaced the log this one would have compacted.
    if (index > this.snapshotIndex) {
      this.raft.compact(snapshot, retainFromIndex);
      this.snapshotIndex = index;
      this.snapshotDueAfterEntries = this.config.snapshotEveryEntries;
      this.metrics?.snapshotSaved((nowMs() - startedMs) / 1000);
      this.logger.info({ index, term, retainFromIndex }, "took a snapshot");
    }
    this.settleSnapshot();
  }

  private settleSnapshot(): void {
    const settle = this.snapshotSettle;
    this.snapshotInProgress = null;
    this.snapshotSettle = null;
    settle?.();
  }

  private observeSoftState(ready: Ready): void {
    const soft = ready.softState;
    const previous = this.lastSoftState;
    if (soft.leaderId !== null && soft.leaderId !== previous.leaderId) this.metrics?.leaderChanged();
    if (soft.role !== previous.role || soft.leaderId !== previous.leaderId || soft.currentTerm !== previous.currentTerm) {
      this.logger.info({ term: soft.currentTerm, role: soft.role, leader: soft.leaderId }, "raft state changed");
      this.lastSoftState = soft;
      for (const listener of [...this.softStateListeners]) listener(soft);
    }
    if (soft.leaderId !== null) {
      if (this.startupCommitIndex === null) this.startupCommitIndex = this.raft.status().commitIndex;
      for (const wake of this.leaderWaiters) wake();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers

  private proposeLocally(data: Uint8Array): Promise<ProposalResult> {
    return this.counted(this.appendProposal(data));
  }

  /** Counts a proposal made on this node in proposals_committed_total or proposals_failed_total. */
  private counted(proposal: Promise<ProposalResult>): Promise<ProposalResult> {
    const metrics = this.metrics;
    if (metrics === null) return proposal;
    return proposal.then(
      (result) => {
        metrics.proposalCommitted();
        return result;
      },
      (error: unknown) => {
        metrics.proposalFailed(error instanceof NodeError ? error.code : "OTHER");
        throw error;
      },
    );
  }

  private tooManyReads(): Promise<never> {
    this.metrics?.limitHit("pending_reads");
    return Promise.reject(new NodeError("UNAVAILABLE", `${pendingReadsMax} reads are already waiting on this node (limit ${pendingReadsMax}, pendingReadsMax); retry later`));
  }

  private appendProposal(data: Uint8Array): Promise<ProposalResult> {
    if (this.pending.size >= pendingProposalsMax) {
      this.metrics?.limitHit("pending_proposals");
      return Promise.reject(new NodeError("UNAVAILABLE", `${pendingProposalsMax} proposals are already waiting to commit (limit ${pendingProposalsMax}, pendingProposalsMax); retry later`));
    }
    const proposed = this.raft.propose(data);
    if (!proposed.ok) {
      if (proposed.reason === "proposal-too-large") {
        this.metrics?.limitHit("proposal_bytes");
        const bytesMax = this.raft.config.proposalBytesMax;
        return Promise.reject(new NodeError("TOOLARGE", `the request takes ${data.length} bytes, more than one log entry may hold (limit ${bytesMax}, proposalBytesMax)`));
      }
      return Promise.reject(new NodeError("NOLEADER", `this node cannot take proposals right now (${proposed.reason}); retry`));
    }
    return this.awaitCommit(proposed);
  }

  private changeMembershipLocally(change: ConfigChange): Promise<ProposalResult> {
    const proposed = this.raft.proposeConfigChange(change, nowMs());
    if (!proposed.ok) {
      const detail = proposed.detail ?? proposed.reason;
      switch (proposed.reason) {
        case "invalid-config-change":
          return Promise.reject(new NodeError("MEMBERSHIP", `cannot ${change.type} ${change.nodeId}: ${detail}`));
        case "config-change-pending":
          return Promise.reject(new NodeError("CHANGEPENDING", "another membership change is not committed yet; retry shortly"));
        case "learner-behind":
          return Promise.reject(new NodeError("NOTCAUGHTUP", `cannot promote yet: ${detail}; retry once it caught up`));
        default:
          return Promise.reject(new NodeError("NOLEADER", `this leader cannot change the membership right now (${proposed.reason}); retry`));
      }
    }
    this.logger.info({ term: proposed.term, index: proposed.index, change }, "proposed a membership change");
    return this.counted(this.awaitCommit(proposed));
  }

  private async transferLocally(targetId: NodeId): Promise<{ id: NodeId; term: number } | null> {
    if (targetId === this.config.id) return this.leader();
    const started = this.raft.transferLeadership(targetId, nowMs());
    if (!started.ok) {
      if (started.reason === "unknown-node") throw new NodeError("MEMBERSHIP", `${targetId} is not a voter; leadership goes to voters only`);
      throw new NodeError("NOLEADER", `this node cannot hand leadership over right now (${started.reason}); retry`);
    }
    this.kick();
    const waitMs = this.config.electionTimeoutMaxMs * transferWaitElectionTimeouts;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, waitMs);
      // Done once another node is known to lead: the answer names the successor, not "no leader".
      const stopListening = this.onSoftStateChange((softState) => {
        if (softState.role !== Role.Leader && softState.leaderId !== null) finish();
      });
      function finish(): void {
        clearTimeout(timer);
        stopListening();
        resolve();
      }
    });
    if (this.isLeader()) throw new NodeError("TIMEOUT", `${targetId} did not take over within ${waitMs} ms; this node still leads`);
    this.logger.info({ term: this.raft.softStateNow().currentTerm, target: targetId }, "handed leadership over");
    return this.leader();
  }

  /** Resolves when the entry `proposed` appended commits, or rejects when it cannot any more. */
  private awaitCommit(proposed: Extract<ProposeResult, { ok: true }>): Promise<ProposalResult> {
    this.kick();
    const { commitTimeoutMs } = this.config;
    return new Promise<ProposalResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(proposed.index);
        reject(new NodeError("TIMEOUT", `the cluster did not commit within ${commitTimeoutMs} ms; outcome unknown`));
      }, commitTimeoutMs);
      this.pending.set(proposed.index, { term: proposed.term, resolve, reject, timer });
    });
  }

  private async handlePeerRequest(fromPeerId: NodeId, payload: Uint8Array): Promise<Uint8Array> {
    const request = decodeRequest(payload);
    try {
      if (request === undefined) throw new NodeError("UNAVAILABLE", `unknown request kind from ${fromPeerId}`);
      if (request.kind === RequestKind.Status) return encodeJsonReply(this.localStatus());
      // Everything else is leader work: a follower that was asked lost leadership since the peer learned of it.
      if (!this.isLeader()) throw new NodeError("NOLEADER", "this node is no longer the leader; retry");
      if (request.kind === RequestKind.Leader) {
        if (this.leaderRequestHandler === null) throw new NodeError("NOLEADER", "this node serves no leader requests; retry");
        return encodeBytesReply(await this.leaderRequestHandler(request.data));
      }
      if (request.kind === RequestKind.ReadIndex) return encodeJsonReply({ index: await this.readIndexLocally() });
      if (request.kind === RequestKind.ConfigChange) {
        const change = JSON.parse(Buffer.from(request.data).toString()) as ConfigChange;
        return encodeProposalReply(await this.changeMembershipLocally(change));
      }
      if (request.kind === RequestKind.Transfer) {
        const { targetId } = JSON.parse(Buffer.from(request.data).toString()) as { targetId: NodeId };
        return encodeJsonReply(await this.transferLocally(targetId));
      }
      return encodeProposalReply(await this.proposeLocally(request.data));
    } catch (error) {
      if (error instanceof NodeError) return encodeErrorReply(error);
      throw error;
    }
  }

  private replicationOf(peerId: NodeId): Partial<MemberStatus> {
    const progress = this.raft.status().progress.get(peerId);
    return progress === undefined ? {} : { matchIndex: progress.matchIndex, replicationState: progress.state };
  }

  /** Resolves with the leader's id, waiting up to `noLeaderWaitMs` for an election. */
  private waitForLeader(): Promise<NodeId> {
    const known = this.raft.softStateNow().leaderId;
    if (known !== null) return Promise.resolve(known);
    return new Promise<NodeId>((resolve, reject) => {
      const check = (): void => {
        const leaderId = this.raft.softStateNow().leaderId;
        if (leaderId === null) return;
        clearTimeout(timer);
        this.leaderWaiters.delete(check);
        resolve(leaderId);
      };
      const timer = setTimeout(() => {
        this.leaderWaiters.delete(check);
        reject(new NodeError("NOLEADER", "no leader is elected yet; retry"));
      }, noLeaderWaitMs);
      this.leaderWaiters.add(check);
    });
  }

  private async transferBeforeStop(): Promise<void> {
    const status = this.raft.status();
    let targetId: NodeId | undefined;
    let bestMatch = -1;
    for (const [peerId, progress] of status.progress) {
      if (progress.matchIndex > bestMatch) {
        bestMatch = progress.matchIndex;
        targetId = peerId;
      }
    }
    if (targetId === undefined) return;
    this.raft.transferLeadership(targetId, nowMs());
    this.kick();
    // Wait for the role change itself (or give up after a bound): the target campaigns at once.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, shutdownTransferWaitMs);
      const stopListening = this.onSoftStateChange((softState) => {
        if (softState.role === Role.Leader) return;
        clearTimeout(timer);
        stopListening();
        resolve();
      });
    });
    this.logger.info({ term: this.raft.softStateNow().currentTerm, target: targetId, transferred: !this.isLeader() }, "handed leadership over before stopping");
  }

  private followConfig(): void {
    const { config, configIndex, commitIndex, currentTerm } = this.raft.configNow();
    this.memberLinks.follow(config, configIndex, commitIndex, currentTerm);
  }

  private whenIdle(): Promise<void> {
    if (!this.processing && !this.loopScheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** The driver's monotonic clock: immune to wall-clock steps (NTP), unlike Date.now(). */
function nowMs(): number {
  return performance.now();
}

/**
 * A transport limit refused a request to the leader before the leader acted on it (too many in flight,
 * the queue full, the leader busy): the outcome is known, nothing happened, so it is UNAVAILABLE (retry
 * later), never "outcome unknown". Any other error is returned as it is.
 */
function notForwarded(error: unknown): unknown {
  if (!(error instanceof RequestLimitError)) return error;
  return new NodeError("UNAVAILABLE", `the request was not forwarded to the leader: ${error.message}`);
}
