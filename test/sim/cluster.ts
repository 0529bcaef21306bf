// A whole raftlock cluster in one process on virtual time: nodes, network, disks, clients, and the
// invariant checker after every event. Scenarios read like protocol traces:
//   const cluster = Cluster.create({ nodes: 3, seed: 7 });
//   cluster.runUntil(() => cluster.leader() !== undefined, 5_000);
//   cluster.isolate(cluster.leader()!); ...

import type { Raft } from "../../src/raft/raft.js";
import type { ConfigChange } from "../../src/raft/cluster-config.js";
import {
  Role,
  type ClusterConfig,
  type Entry,
  type Message,
  type MessageType,
  type NodeId,
  type ProposeResult,
  type RejectReason,
} from "../../src/raft/types.js";
import { Clients, type ClientRejectReason, type Proposal, type ReadRequest } from "./clients.js";
import { diskDefaults, type CrashOutcome, type DiskOptions } from "./disk.js";
import { InvariantViolation, Invariants } from "./invariants.js";
import { Network, networkDefaults, type NetworkOptions } from "./network.js";
import { Prng } from "./prng.js";
import { EventQueue } from "./queue.js";
import { SimNode, type NodeHost, type RaftTunables } from "./sim-node.js";
import { encodeValue } from "./state-machine.js";

export type { ClientRejectReason, Proposal, ReadRequest } from "./clients.js";

export type RaftStatus = ReturnType<Raft["status"]>;

export interface ClusterOptions {
  readonly nodes?: number;
  readonly seed?: number;
  /** How often each node's tick() runs, in virtual ms (each node at its own phase). */
  readonly tickIntervalMs?: number;
  readonly raft?: Partial<RaftTunables>;
  readonly network?: Partial<NetworkOptions>;
  readonly disk?: Partial<DiskOptions>;
  /** Snapshot every this many applied entries; 0 never compacts. */
  readonly compactEveryEntries?: number;
  readonly retainedEntries?: number;
  /** Cap on the entries kept below a snapshot for slow followers; at least retainedEntries. */
  readonly retainedEntriesMax?: number;
  /**
   * Each node's clock runs at a rate drawn from [1 - clockDriftMax, 1 + clockDriftMax] of virtual time,
   * from its own offset. Lease reads stay safe only while the drift over one lease is below leaseDriftBoundMs.
   */
  readonly clockDriftMax?: number;
  /** Fixed clock rates for some nodes (e.g. `{ n1: 0.9 }`: n1's clock runs 10% slow); overrides the drawn rate. */
  readonly clockRates?: Readonly<Record<NodeId, number>>;
}

/** Simulation-sized tunables: the paper's 150-300 ms timeouts, and small batches so flow control engages. */
export const simRaftDefaults: RaftTunables = {
  electionTimeoutMinMs: 150,
  electionTimeoutMaxMs: 300,
  heartbeatIntervalMs: 30,
  leaseDriftBoundMs: 10,
  appendBytesMax: 1024,
  inflightMessagesMax: 8,
  inflightBytesMax: 8192,
  pendingReadsMax: 1000,
  proposalBytesMax: 4096,
  promoteLagEntriesMax: 20,
  leaderLossCampaignWithinMs: null,
};

type SimEvent =
  | { readonly kind: "tick"; readonly nodeId: NodeId; readonly incarnation: number }
  | { readonly kind: "sync"; readonly nodeId: NodeId; readonly incarnation: number }
  | { readonly kind: "deliver"; readonly message: Message; readonly reportSnapshotIncarnation: number | null }
  | { readonly kind: "unreachable"; readonly nodeId: NodeId; readonly incarnation: number; readonly peerId: NodeId }
  | { readonly kind: "snapshot-status"; readonly nodeId: NodeId; readonly incarnation: number; readonly peerId: NodeId; readonly ok: boolean }
  | { readonly kind: "call"; readonly action: () => void };

/** A safety or liveness failure, with everything needed to replay it. */
export class SimulationError extends Error {
  override name = "SimulationError";
  constructor(
    readonly seed: number,
    readonly step: number,
    readonly atMs: number,
    message: string,
    options?: { cause: unknown },
  ) {
    super(`seed ${seed}, step ${step}, t=${atMs} ms: ${message}`, options);
  }
}

/** Nodes' clocks start this far apart at most: no node may compare its clock with another's. */
const clockOffsetMaxMs = 100_000;

/** A node reports a lost peer to its core at most this often, like a transport's reconnect backoff. */
const unreachableReportIntervalMs = 50;

/** What a machine that joins knows before it hears from a leader: no members at all, so it never campaigns. */
const joinerBootstrapConfig: ClusterConfig = { voters: [], learners: [], addresses: {} };

/** A change proposed at one node: the core's answer, or why the node could not answer. */
export type ConfigChangeResult = ProposeResult | { readonly ok: false; readonly reason: "node-down" | "node-paused"; readonly detail?: string };

export class Cluster implements NodeHost {
  readonly seed: number;
  /** The nodes present at creation; `ids` adds the nodes started since and drops the discarded ones. */
  readonly initialIds: readonly NodeId[];
  readonly invariants = new Invariants((nodeId, index, term) => this.durablyHolds(nodeId, index, term));
  readonly network: Network;
  readonly clients: Clients;
  readonly crashOutcomes = new Map<CrashOutcome, number>();
  nowMs = 0;
  /** Events processed so far; an error names the step it happened at. */
  steps = 0;
  private readonly tickIntervalMs: number;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clientRandom: Prng;
  private readonly nodeRandom: Prng;
  private readonly unreachableReportedMs = new Map<string, number>();
  /** Per link `from>to`: when the last message sent on it is delivered (a stream closes after its data). */
  private readonly lastDeliveryMs = new Map<string, number>();
  /** A scenario's message filter: messages it rejects are lost, checked at send and at delivery. */
  private keepMessage: ((message: Message) => boolean) | null = null;
  /** Every node not discarded, in the order they were started. */
  private liveIds: NodeId[] = [];
  private readonly discardedIds = new Set<NodeId>();
  private readonly options: ClusterOptions;
  /** Streams for nodes started after creation; forked last, so existing seeds replay as before. */
  private readonly joinRandom: Prng;
  private nodeNumberNext: number;
  private committedConfigSeen: { readonly commitIndex: number; readonly config: ClusterConfig } | null = null;

  static create(options: ClusterOptions = {}): Cluster {
    return new Cluster(options);
  }

  private constructor(options: ClusterOptions) {
    this.seed = options.seed ?? 1;
    this.options = options;
    this.clients = new Clients(this.invariants);
    const root = new Prng(this.seed);
    this.clientRandom = root.fork("client");
    this.nodeRandom = root.fork("nodes");
    this.network = new Network(root.fork("network"), { ...networkDefaults, ...options.network });
    this.tickIntervalMs = options.tickIntervalMs ?? 10;
    const nodeCount = options.nodes ?? 3;
    const ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
    this.initialIds = ids;
    this.nodeNumberNext = nodeCount + 1;
    for (const id of ids) {
      const clockOffsetMs = this.nodeRandom.next() * clockOffsetMaxMs;
      const clockRate = options.clockRates?.[id] ?? 1 + (this.nodeRandom.next() * 2 - 1) * (options.clockDriftMax ?? 0);
      this.createNode(id, { voters: ids, learners: [], addresses: {} }, root, clockOffsetMs, clockRate);
    }
    this.joinRandom = root.fork("joiners");
    for (const id of ids) this.guard(() => this.startNode(this.node(id)));
  }

  private createNode(id: NodeId, bootstrapConfig: ClusterConfig, random: Prng, clockOffsetMs: number, clockRate: number): SimNode {
    const options = this.options;
    const node = new SimNode(
      id,
      this,
      {
        raftTunables: { ...simRaftDefaults, ...options.raft },
        bootstrapConfig,
        compactEveryEntries: options.compactEveryEntries ?? 0,
        retainedEntries: options.retainedEntries ?? 5,
        retainedEntriesMax: Math.max(options.retainedEntries ?? 5, options.retainedEntriesMax ?? 100),
        disk: { ...diskDefaults, ...options.disk },
      },
      random.fork(`raft-${id}`),
      random.fork(`disk-${id}`),
      clockOffsetMs,
      clockRate,
    );
    this.nodes.set(id, node);
    this.liveIds = [...this.liveIds, id]; // a new array: callers may hold the old one
    return node;
  }

  // ------------------------------------------------------------------------------------------
  // Running

  /** Processes one event; false when nothing is scheduled. */
  step(): boolean {
    const item = this.queue.pop();
    if (item === undefined) return false;
    this.nowMs = item.atMs;
    this.steps++;
    this.guard(() => this.handle(item.event));
    return true;
  }

  runFor(durationMs: number): void {
    const endMs = this.nowMs + durationMs;
    for (let atMs = this.queue.peekTimeMs(); atMs !== undefined && atMs <= endMs; atMs = this.queue.peekTimeMs()) {
      this.step();
    }
    this.nowMs = endMs;
  }

  /**
   * Runs until `condition` holds, checked after every event; throws (with the seed) when `withinMs` of
   * virtual time pass first, or when more than `stepsMax` events happen first (a message storm).
   */
  runUntil(condition: () => boolean, withinMs: number, what = "the condition", stepsMax = Number.POSITIVE_INFINITY): void {
    const deadlineMs = this.nowMs + withinMs;
    const lastStep = this.steps + stepsMax;
    while (!condition()) {
      const atMs = this.queue.peekTimeMs();
      if (atMs === undefined || atMs > deadlineMs) {
        this.nowMs = Math.max(this.nowMs, Math.min(deadlineMs, atMs ?? deadlineMs));
        throw new SimulationError(
          this.seed,
          this.steps,
          this.nowMs,
          `${what} did not happen within ${withinMs} ms (${this.describe()})`,
        );
      }
      if (this.steps >= lastStep) {
        throw new SimulationError(
          this.seed,
          this.steps,
          this.nowMs,
          `${what} did not happen within ${stepsMax} events, a message storm? (sent: ${this.describeMessages()}; ${this.describe()})`,
        );
      }
      this.step();
    }
  }

  /** Runs `action` at `nowMs + delayMs` as an event of its own (scenario faults such as a timed heal). */
  after(delayMs: number, action: () => void): void {
    this.queue.push(this.nowMs + delayMs, { kind: "call", action });
  }

  // ------------------------------------------------------------------------------------------
  // Looking at the cluster

  /** Every node that is not discarded (running or crashed), members or not, in the order they were started. */
  get ids(): readonly NodeId[] {
    return this.liveIds;
  }

  node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id} in this cluster (nodes: ${this.ids.join(", ")})`);
    return node;
  }

  hasNode(id: NodeId): boolean {
    return this.nodes.has(id) && !this.discardedIds.has(id);
  }

  isDiscarded(id: NodeId): boolean {
    return this.discardedIds.has(id);
  }

  /** The core's status, or undefined while the node is crashed. */
  status(id: NodeId): RaftStatus | undefined {
    return this.node(id).raft?.status();
  }

  /** Running nodes that believe they lead. */
  leaders(): NodeId[] {
    return this.ids.filter((id) => this.status(id)?.role === Role.Leader);
  }

  /** The running leader of the highest term, if any. */
  leader(): NodeId | undefined {
    let best: RaftStatus | undefined;
    for (const id of this.ids) {
      const status = this.status(id);
      if (status?.role === Role.Leader && (best === undefined || status.currentTerm > best.currentTerm)) best = status;
    }
    return best?.id;
  }

  appliedIndex(id: NodeId): number {
    return this.node(id).stateMachine.appliedIndex;
  }

  appliedValues(id: NodeId): readonly string[] {
    return this.node(id).stateMachine.appliedValues();
  }

  isCrashed(id: NodeId): boolean {
    return !this.node(id).isUp;
  }

  isPaused(id: NodeId): boolean {
    return this.node(id).isPausedAt(this.nowMs);
  }

  /** One line per node: role, term, leader, log and apply positions; for failure messages. */
  describe(): string {
    const initialVoters = [...this.initialIds].sort().join(",");
    return this.ids
      .map((id) => {
        const status = this.status(id);
        if (status === undefined) return `${id}: crashed`;
        const paused = this.isPaused(id) ? " paused" : "";
        // Membership only once it differs from the initial one, so most failures read as before.
        const { voters, learners } = status.config;
        const config =
          [...voters].sort().join(",") === initialVoters && learners.length === 0
            ? ""
            : ` config@${status.configIndex} voters [${voters.join(",")}]${learners.length > 0 ? ` learners [${learners.join(",")}]` : ""}`;
        return (
          `${id}: ${status.role} term ${status.currentTerm} leader ${status.leaderId ?? "-"} ` +
          `log [${status.firstIndex}, ${status.lastIndex}] snapshot ${status.snapshotIndex} ` +
          `commit ${status.commitIndex} applied ${this.appliedIndex(id)}${config}${paused}`
        );
      })
      .join("; ");
  }

  /** Messages sent so far by type, e.g. "append 120, heartbeat 40". */
  describeMessages(): string {
    return [...this.network.sentByType].map(([type, count]) => `${type} ${count}`).join(", ");
  }

  messagesSent(type?: MessageType): number {
    if (type !== undefined) return this.network.sentByType.get(type) ?? 0;
    let total = 0;
    for (const count of this.network.sentByType.values()) total += count;
    return total;
  }

  // ------------------------------------------------------------------------------------------
  // Faults

  /** Nodes in different groups cannot talk; nodes named in no group form one more group. */
  partition(...groups: NodeId[][]): void {
    const named = new Set(groups.flat());
    const rest = this.ids.filter((id) => !named.has(id));
    this.network.partition(rest.length > 0 ? [...groups, rest] : groups);
  }

  isolate(id: NodeId): void {
    this.partition([id]);
  }

  /** `sourceId` cannot reach `targetId`; the reverse direction still works. Adds to existing cuts. */
  oneWay(sourceId: NodeId, targetId: NodeId): void {
    this.network.cutOneWay(sourceId, targetId);
  }

  /** The two sides cannot reach each other; `bridgeId` reaches both. */
  bridge(sideA: NodeId[], sideB: NodeId[], bridgeId: NodeId): void {
    this.network.bridge(sideA, sideB, bridgeId);
  }

  heal(): void {
    this.network.heal();
  }

  /**
   * Loses every message `keep` rejects (at send and again at delivery) until called with null; for
   * scenarios that need one exact interleaving, e.g. `cluster.filterMessages((m) => m.type !== "append" || m.to !== "n3")`.
   */
  filterMessages(keep: ((message: Message) => boolean) | null): void {
    this.keepMessage = keep;
  }

  setNetwork(options: Partial<NetworkOptions>): void {
    this.network.options = { ...this.network.options, ...options };
  }

  crash(id: NodeId): CrashOutcome {
    const node = this.node(id);
    if (!node.isUp) throw new Error(`${id} is already crashed`);
    const outcome = node.crash();
    this.crashOutcomes.set(outcome, (this.crashOutcomes.get(outcome) ?? 0) + 1);
    this.clients.onCrash(id);
    // A dead process's sockets close at once: every running peer's transport reports its stream lost,
    // after the bytes already on their way (TCP delivers a stream's data before its end).
    for (const other of this.nodes.values()) {
      if (!other.isUp || other.id === id) continue;
      const closedAtMs = Math.max(this.nowMs, this.lastDeliveryMs.get(`${id}>${other.id}`) ?? 0) + 1;
      this.queue.push(closedAtMs, { kind: "unreachable", nodeId: other.id, incarnation: other.incarnation, peerId: id });
    }
    return outcome;
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.isUp) throw new Error(`${id} is running; crash it first`);
    if (this.discardedIds.has(id)) throw new Error(`${id} was discarded; start a new node instead`);
    this.guard(() => this.startNode(node));
  }

  /**
   * Starts a new machine that is in no configuration yet: an empty disk and an empty bootstrap
   * configuration, so it neither campaigns nor replicates until a leader's entries or snapshot reach it.
   * Ids continue the initial numbering and are never reused. Returns the new node's id.
   */
  addNode(): NodeId {
    const id = `n${this.nodeNumberNext++}`;
    const random = this.joinRandom;
    const clockOffsetMs = random.next() * clockOffsetMaxMs;
    const clockRate = this.options.clockRates?.[id] ?? 1 + (random.next() * 2 - 1) * (this.options.clockDriftMax ?? 0);
    const node = this.createNode(id, joinerBootstrapConfig, random, clockOffsetMs, clockRate);
    this.guard(() => this.startNode(node));
    return id;
  }

  /**
   * Stops a node for good and forgets it, as an operator decommissions a removed machine: it leaves
   * `ids`, and messages still addressed to it are lost.
   */
  discard(id: NodeId): void {
    const node = this.node(id);
    if (this.discardedIds.has(id)) return;
    if (node.isUp) this.crash(id);
    this.discardedIds.add(id);
    this.liveIds = this.liveIds.filter((other) => other !== id);
  }

  /** Stalls the node's process (a long GC pause): timers, messages and fsync completions wait. */
  pause(id: NodeId, durationMs: number): void {
    const node = this.node(id);
    node.pausedUntilMs = Math.max(node.pausedUntilMs, this.nowMs + durationMs);
  }

  // ------------------------------------------------------------------------------------------
  // Clients

  /** Proposes `value` at `atNodeId`, else at the leader, else at a random node (which will reject it). */
  propose(value: string, atNodeId?: NodeId): Proposal {
    const nodeId = atNodeId ?? this.leader() ?? this.clientRandom.pick(this.ids);
    const proposal = this.clients.newProposal(nodeId, value, this.nowMs);
    const node = this.node(nodeId);
    const raft = node.raft;
    if (raft === null) proposal.reason = "node-down";
    else if (node.isPausedAt(this.nowMs)) proposal.reason = "node-paused";
    else {
      this.guard(() => {
        this.clients.proposed(proposal, raft.propose(encodeValue(value)));
        this.afterInput(node);
      });
    }
    return proposal;
  }

  /** Issues a linearizable read at `nodeId`: ReadIndex, or a leader-lease read when `useLease`. */
  read(nodeId: NodeId, useLease: boolean): ReadRequest {
    const read = this.clients.newRead(nodeId, useLease, this.nowMs);
    const node = this.node(nodeId);
    const raft = node.raft;
    if (raft === null) read.reason = "node-down";
    else if (node.isPausedAt(this.nowMs)) read.reason = "node-paused";
    else {
      this.clients.readIssued(read);
      this.guard(() => {
        raft.readIndex(read.id, node.clockMs(this.nowMs), useLease);
        this.afterInput(node);
      });
    }
    return read;
  }

  /** Asks the current leader to hand leadership to `targetId`. */
  transfer(targetId: NodeId): { ok: true } | { ok: false; reason: ClientRejectReason } {
    const leaderId = this.leader();
    if (leaderId === undefined) return { ok: false, reason: "not-leader" };
    const node = this.node(leaderId);
    const raft = node.raft;
    if (raft === null) return { ok: false, reason: "node-down" };
    if (node.isPausedAt(this.nowMs)) return { ok: false, reason: "node-paused" };
    let result: { ok: true } | { ok: false; reason: ClientRejectReason } = { ok: false, reason: "not-leader" };
    this.guard(() => {
      result = raft.transferLeadership(targetId, node.clockMs(this.nowMs));
      this.afterInput(node);
    });
    return result;
  }

  /**
   * Proposes one membership change at the current leader (one attempt: a real admin retries, see
   * membership.ts). The leader's clock is the node's own.
   */
  proposeConfigChange(change: ConfigChange): ConfigChangeResult {
    const leaderId = this.leader();
    if (leaderId === undefined) return { ok: false, reason: "not-leader" };
    return this.proposeConfigChangeAt(leaderId, change);
  }

  /** Proposes one membership change at `nodeId`, leader or not. */
  proposeConfigChangeAt(nodeId: NodeId, change: ConfigChange): ConfigChangeResult {
    const node = this.node(nodeId);
    const raft = node.raft;
    if (raft === null) return { ok: false, reason: "node-down" };
    if (node.isPausedAt(this.nowMs)) return { ok: false, reason: "node-paused" };
    let result: ConfigChangeResult = { ok: false, reason: "not-leader" };
    this.guard(() => {
      result = raft.proposeConfigChange(change, node.clockMs(this.nowMs));
      this.afterInput(node);
    });
    return result;
  }

  /**
   * The newest committed configuration known: the one in force at the highest commit index any node
   * has reported to this observer (committed prefixes agree, so it is the latest). Remembered across
   * calls, since the node that knew it may crash; an admin that asked only the node it thinks leads could
   * be answered by a deposed leader with an older view. Undefined until some node committed an entry.
   */
  committedConfig(): ClusterConfig | undefined {
    for (const id of this.liveIds) {
      const raft = this.node(id).raft;
      if (raft === null) continue;
      const commitIndex = raft.status().commitIndex;
      if (commitIndex > (this.committedConfigSeen?.commitIndex ?? 0)) {
        this.committedConfigSeen = { commitIndex, config: raft.configAt(commitIndex) };
      }
    }
    return this.committedConfigSeen?.config;
  }

  get proposals(): readonly Proposal[] {
    return this.clients.proposals;
  }

  get reads(): readonly ReadRequest[] {
    return this.clients.reads;
  }

  acknowledgedProposals(): Proposal[] {
    return this.clients.acknowledged();
  }

  // ------------------------------------------------------------------------------------------
  // NodeHost: what the nodes call back

  scheduleSync(node: SimNode, delayMs: number): void {
    this.queue.push(this.nowMs + delayMs, { kind: "sync", nodeId: node.id, incarnation: node.incarnation });
  }

  send(message: Message): void {
    this.invariants.onMessageSent(message);
    this.network.recordSent(message);
    const target = this.nodes.get(message.to);
    if (target === undefined || message.to === message.from) {
      throw new InvariantViolation(`${message.from} sent a ${message.type} to ${message.to}`);
    }
    const sender = this.node(message.from);
    const isSnapshot = message.type === "snapshot";
    if (this.keepMessage !== null && !this.keepMessage(message)) {
      this.network.droppedCount++;
      if (isSnapshot) this.reportSnapshot(sender, message.to, false, 1);
      return;
    }
    if (!this.network.canReach(message.from, message.to) || !target.isUp) {
      this.network.droppedCount++;
      this.reportUnreachable(sender, message.to);
      if (isSnapshot) this.reportSnapshot(sender, message.to, false, 1);
      return;
    }
    const delaysMs = this.network.deliveryDelaysMs(isSnapshot ? message.snapshot.data.length : 0);
    if (delaysMs.length === 0 && isSnapshot) this.reportSnapshot(sender, message.to, false, 1);
    for (const [i, delayMs] of delaysMs.entries()) {
      // Only the first copy of a snapshot reports its outcome: the transport sent one stream.
      const reportSnapshotIncarnation = isSnapshot && i === 0 ? sender.incarnation : null;
      this.queue.push(this.nowMs + delayMs, { kind: "deliver", message, reportSnapshotIncarnation });
      const link = `${message.from}>${message.to}`;
      this.lastDeliveryMs.set(link, Math.max(this.lastDeliveryMs.get(link) ?? 0, this.nowMs + delayMs));
    }
  }

  onApplied(node: SimNode, entry: Entry): void {
    this.clients.onApplied(node.id, entry, this.nowMs);
  }

  onRestored(node: SimNode, snapshotIndex: number): void {
    this.clients.onRestored(node.id, snapshotIndex);
  }

  onReadServed(node: SimNode, context: unknown, appliedIndex: number): void {
    this.clients.onReadServed(node.id, context, appliedIndex, node.stateMachine.count);
  }

  onReadFailed(node: SimNode, context: unknown, reason: RejectReason): void {
    this.clients.onReadFailed(node.id, context, reason);
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  private handle(event: SimEvent): void {
    if (event.kind === "call") {
      event.action();
      return;
    }
    if (event.kind === "deliver") {
      this.deliver(event.message, event.reportSnapshotIncarnation);
      return;
    }
    const node = this.node(event.nodeId);
    const raft = node.raft;
    if (raft === null || node.incarnation !== event.incarnation) return;
    if (node.isPausedAt(this.nowMs)) {
      this.queue.push(node.pausedUntilMs, event);
      return;
    }
    switch (event.kind) {
      case "tick":
        raft.tick(node.clockMs(this.nowMs));
        this.queue.push(this.nowMs + this.tickIntervalMs, event);
        break;
      case "sync":
        node.completeSync();
        break;
      case "unreachable":
        raft.reportUnreachable(event.peerId, node.clockMs(this.nowMs));
        break;
      case "snapshot-status":
        raft.reportSnapshot(event.peerId, event.ok);
        break;
    }
    this.afterInput(node);
  }

  private deliver(message: Message, reportSnapshotIncarnation: number | null): void {
    const target = this.node(message.to);
    const raft = target.raft;
    const sender = this.node(message.from);
    const reportTo = reportSnapshotIncarnation === sender.incarnation ? sender : null;
    const kept = this.keepMessage === null || this.keepMessage(message);
    if (raft === null || !kept || !this.network.canReach(message.from, message.to)) {
      this.network.droppedCount++;
      if (reportTo !== null) this.reportSnapshot(reportTo, message.to, false, 1);
      return;
    }
    if (target.isPausedAt(this.nowMs)) {
      this.queue.push(target.pausedUntilMs, { kind: "deliver", message, reportSnapshotIncarnation });
      return;
    }
    this.network.deliveredCount++;
    raft.step(message, target.clockMs(this.nowMs));
    if (reportTo !== null) this.reportSnapshot(reportTo, message.to, true, 1);
    this.afterInput(target);
  }

  /** Whether `nodeId`'s disk holds entry (index, term), or a snapshot covering it: what survives a crash. */
  private durablyHolds(nodeId: NodeId, index: number, term: number): boolean {
    const node = this.nodes.get(nodeId);
    if (node === undefined) return false;
    const durable = node.disk.durable;
    const first = durable.entries[0];
    if (first !== undefined && index >= first.index) return durable.entries[index - first.index]?.term === term;
    // Below its log only a snapshot can hold it; a snapshot covers committed entries only.
    return durable.snapshot !== null && durable.snapshot.meta.index >= index;
  }

  private reportUnreachable(sender: SimNode, peerId: NodeId): void {
    const key = `${sender.id}>${peerId}`;
    const lastMs = this.unreachableReportedMs.get(key);
    if (lastMs !== undefined && this.nowMs - lastMs < unreachableReportIntervalMs) return;
    this.unreachableReportedMs.set(key, this.nowMs);
    this.queue.push(this.nowMs + 1, { kind: "unreachable", nodeId: sender.id, incarnation: sender.incarnation, peerId });
  }

  private reportSnapshot(sender: SimNode, peerId: NodeId, ok: boolean, delayMs: number): void {
    this.queue.push(this.nowMs + delayMs, {
      kind: "snapshot-status",
      nodeId: sender.id,
      incarnation: sender.incarnation,
      peerId,
      ok,
    });
  }

  private startNode(node: SimNode): void {
    node.start();
    this.queue.push(this.nowMs + this.nodeRandom.int(1, this.tickIntervalMs), {
      kind: "tick",
      nodeId: node.id,
      incarnation: node.incarnation,
    });
    this.afterInput(node);
  }

  /** After anything reached a node's core: take its Readies, then check the invariants on its status. */
  private afterInput(node: SimNode): void {
    node.drive();
    const raft = node.raft;
    if (raft !== null) this.invariants.onStatus(node.id, raft);
  }

  /** Runs `action`, turning any failure into a SimulationError that names the seed and step. */
  private guard(action: () => void): void {
    try {
      action();
    } catch (error) {
      if (error instanceof SimulationError) throw error;
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new SimulationError(this.seed, this.steps, this.nowMs, message, { cause: error });
    }
  }
}
