// One simulated node: a Raft core, its disk and its state machine, driven by the Ready protocol.
// The driver is the part of a real node that the simulation must get exactly right: persist a Ready
// (one write, durable only after fsync), then send, restore, apply, serve reads, and only then advance.

import { Raft } from "../../src/raft/raft.js";
import { mustSync } from "../../src/raft/types.js";
import type { RaftConfig } from "../../src/raft/config.js";
import type {
  ClusterConfig,
  Entry,
  Message,
  NodeId,
  ReadState,
  Ready,
  RejectReason,
  Snapshot,
} from "../../src/raft/types.js";
import { assert } from "../../src/util/assert.js";
import { Disk, type CrashOutcome, type DiskOptions } from "./disk.js";
import { InvariantViolation, type Invariants } from "./invariants.js";
import type { Prng } from "./prng.js";
import { ValueLog } from "./state-machine.js";

/** Every Raft tunable except the two that are per node. */
export type RaftTunables = Omit<RaftConfig, "id" | "random">;

/** What a node needs from the cluster around it. */
export interface NodeHost {
  readonly nowMs: number;
  readonly invariants: Invariants;
  scheduleSync(node: SimNode, delayMs: number): void;
  send(message: Message): void;
  onApplied(node: SimNode, entry: Entry): void;
  onRestored(node: SimNode, snapshotIndex: number): void;
  onReadServed(node: SimNode, context: unknown, appliedIndex: number): void;
  onReadFailed(node: SimNode, context: unknown, reason: RejectReason): void;
}

export interface SimNodeOptions {
  readonly raftTunables: RaftTunables;
  readonly bootstrapConfig: ClusterConfig;
  /** Take a snapshot once this many entries were applied since the last one; 0 never compacts. */
  readonly compactEveryEntries: number;
  /** Entries kept below a new snapshot so that a slightly slow follower needs no InstallSnapshot. */
  readonly retainedEntries: number;
  /** Most entries kept below a new snapshot for slow followers (`Raft.retentionFloor`). */
  readonly retainedEntriesMax: number;
  readonly disk: DiskOptions;
}

export class SimNode {
  /** Null while the node is crashed. */
  raft: Raft | null = null;
  stateMachine = new ValueLog();
  /** Counts starts; events carry it so that a restarted node ignores its previous life's timers and fsyncs. */
  incarnation = 0;
  /** While nowMs < pausedUntilMs the process is stalled (a GC pause): its events wait until then. */
  pausedUntilMs = 0;
  readonly disk: Disk;
  /** The Ready whose write is in flight; no other Ready is taken until it is advanced. */
  private writing: Ready | null = null;
  /** Reads whose ReadIndex is known but not yet applied locally. */
  private waitingReads: ReadState[] = [];

  constructor(
    readonly id: NodeId,
    private readonly host: NodeHost,
    private readonly options: SimNodeOptions,
    private readonly random: Prng,
    diskRandom: Prng,
    private readonly clockOffsetMs: number,
    private readonly clockRate: number,
  ) {
    this.disk = new Disk(diskRandom, options.disk);
  }

  get isUp(): boolean {
    return this.raft !== null;
  }

  /** This node's monotonic clock at virtual time `virtualMs`: its own origin, its own rate. */
  clockMs(virtualMs: number): number {
    return this.clockOffsetMs + virtualMs * this.clockRate;
  }

  isPausedAt(nowMs: number): boolean {
    return nowMs < this.pausedUntilMs;
  }

  /** Builds a new core from the durable state only, as a restarted process would. */
  start(): void {
    assert(this.raft === null, `${this.id} is already running`);
    const durable = this.disk.durable;
    this.incarnation++;
    this.writing = null;
    this.waitingReads = [];
    this.stateMachine = durable.snapshot === null ? new ValueLog() : ValueLog.restore(durable.snapshot.data);
    this.host.invariants.onStart(this.id, durable.snapshot?.meta ?? null, durable.entries);
    if (durable.snapshot !== null) {
      this.host.invariants.onRestored(this.id, durable.snapshot.meta, this.stateMachine.stateHash);
    }
    const config: RaftConfig = { ...this.options.raftTunables, id: this.id, random: () => this.random.next() };
    this.raft = new Raft(
      config,
      {
        hardState: durable.hardState,
        snapshot: durable.snapshot,
        entries: durable.entries.slice(),
        config: this.options.bootstrapConfig,
      },
      this.clockMs(this.host.nowMs),
    );
  }

  /** The process dies: memory is gone, the pending write is lost or torn. */
  crash(): CrashOutcome {
    this.raft = null;
    this.writing = null;
    this.waitingReads = [];
    this.pausedUntilMs = 0;
    return this.disk.crash();
  }

  /** Takes Readies until one needs a disk write (then waits for its fsync) or none is left. */
  drive(): void {
    const raft = this.raft;
    while (raft !== null && raft === this.raft && this.writing === null && raft.hasReady()) {
      const ready = raft.ready();
      this.host.invariants.onEntriesHandedOut(this.id, ready.snapshot?.meta ?? null, ready.entries);
      this.sendAll(ready.leaderMessages); // before the write, as a real leader does
      // A commit-only batch is not synced (as the real storage does): modelled as a write the crash loses.
      if (mustSync(ready, this.disk.durable.hardState)) {
        this.writing = ready;
        this.host.scheduleSync(this, this.disk.beginWrite(ready));
        return;
      }
      this.process(raft, ready);
    }
  }

  /** The fsync of the pending write completed. */
  completeSync(): void {
    const raft = this.raft;
    const ready = this.writing;
    assert(raft !== null && ready !== null, `${this.id} completed a sync it did not start`);
    const hardStateBefore = this.disk.completeWrite();
    if (ready.hardState !== null) {
      this.host.invariants.onDurableHardState(this.id, hardStateBefore, ready.hardState);
    }
    this.process(raft, ready);
    this.writing = null;
    this.drive();
  }

  /** Step 2 of the Ready protocol; the batch's write (if any) is durable. */
  private process(raft: Raft, ready: Ready): void {
    this.sendAll(ready.messages);
    if (ready.snapshot !== null) this.restore(ready.snapshot);
    for (const entry of ready.committedEntries) this.apply(entry);
    this.waitingReads.push(...ready.readStates);
    this.serveReads();
    for (const failure of ready.readFailures) this.host.onReadFailed(this, failure.context, failure.reason);
    raft.advance(ready);
    this.maybeCompact(raft);
  }

  private sendAll(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.from !== this.id) throw new InvariantViolation(`${this.id} sent a message from ${message.from}`);
      this.host.send(message);
    }
  }

  private restore(snapshot: Snapshot): void {
    if (snapshot.meta.index < this.stateMachine.appliedIndex) {
      throw new InvariantViolation(
        `${this.id} was handed a snapshot at ${snapshot.meta.index}, below its applied index ${this.stateMachine.appliedIndex}`,
      );
    }
    this.stateMachine = ValueLog.restore(snapshot.data);
    this.host.invariants.onRestored(this.id, snapshot.meta, this.stateMachine.stateHash);
    this.host.onRestored(this, snapshot.meta.index);
  }

  private apply(entry: Entry): void {
    const expectedIndex = this.stateMachine.appliedIndex + 1;
    if (entry.index !== expectedIndex) {
      throw new InvariantViolation(`${this.id} was handed committed entry ${entry.index} to apply, expected ${expectedIndex}`);
    }
    this.stateMachine.apply(entry);
    this.host.invariants.onApplied(this.id, entry, this.stateMachine.stateHash);
    this.host.onApplied(this, entry);
  }

  /** A read with ReadIndex I is answered once applied >= I, from the state at that moment. */
  private serveReads(): void {
    if (this.waitingReads.length === 0) return;
    const appliedIndex = this.stateMachine.appliedIndex;
    const stillWaiting: ReadState[] = [];
    for (const readState of this.waitingReads) {
      if (readState.index <= appliedIndex) this.host.onReadServed(this, readState.context, appliedIndex);
      else stillWaiting.push(readState);
    }
    this.waitingReads = stillWaiting;
  }

  /** Snapshot at the applied index, persist it, then let the core drop its log below the retained part. */
  private maybeCompact(raft: Raft): void {
    const everyEntries = this.options.compactEveryEntries;
    if (everyEntries <= 0 || this.disk.hasPendingWrite) return;
    const status = raft.status();
    const stateMachine = this.stateMachine;
    const snapshotIndex = Math.max(status.snapshotIndex, this.disk.durable.snapshot?.meta.index ?? 0);
    if (stateMachine.appliedIndex - snapshotIndex < everyEntries) return;
    const index = stateMachine.appliedIndex;
    const coreTerm = raft.termAt(index);
    if (coreTerm !== undefined && coreTerm !== stateMachine.appliedTerm) {
      throw new InvariantViolation(`${this.id} applied term ${stateMachine.appliedTerm} at ${index}, its log says term ${coreTerm}`);
    }
    const snapshot: Snapshot = {
      meta: {
        index,
        term: stateMachine.appliedTerm,
        config: raft.configAt(index),
      },
      data: stateMachine.snapshot(),
    };
    // Keep the configured tail, and further back what a live slow follower still needs (pitfall 17),
    // but never more than the cap: a follower that far behind gets the snapshot instead.
    const wantedFromIndex = Math.min(index + 1 - this.options.retainedEntries, raft.retentionFloor());
    const cappedFromIndex = Math.max(wantedFromIndex, index + 1 - this.options.retainedEntriesMax);
    const retainFromIndex = Math.min(index + 1, Math.max(status.firstIndex, cappedFromIndex));
    this.disk.compact(snapshot, retainFromIndex);
    raft.compact(snapshot, retainFromIndex);
    this.host.invariants.onCompacted(this.id, snapshot.meta, retainFromIndex);
  }
}
