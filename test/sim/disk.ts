// One node's simulated disk: the durable state a restart sees, and at most one write in flight.
// A write (hardState, snapshot, entries of one Ready) becomes durable only when its simulated fsync
// completes; a crash before that loses it whole, or, when torn writes are on, keeps a prefix of it.

import { assert } from "../../src/util/assert.js";
import type { Entry, HardState, Snapshot } from "../../src/raft/types.js";
import { InvariantViolation } from "./invariants.js";
import type { Prng } from "./prng.js";

export interface DurableState {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Contiguous; may start at or below snapshot.meta.index + 1 (retained log), or at 1. Changed in place. */
  readonly entries: Entry[];
}

export interface DiskWrite {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
}

export interface DiskOptions {
  /** fsync latency is uniform in [syncDelayMinMs, syncDelayMaxMs] ... */
  readonly syncDelayMinMs: number;
  readonly syncDelayMaxMs: number;
  /** ... except for an occasional stall of slowSyncMs (a busy device, a journal commit). */
  readonly slowSyncProbability: number;
  readonly slowSyncMs: number;
  /** Chance that a crash keeps a prefix of the pending write instead of losing all of it. */
  readonly tornWriteProbability: number;
}

export const diskDefaults: DiskOptions = {
  syncDelayMinMs: 1,
  syncDelayMaxMs: 5,
  slowSyncProbability: 0,
  slowSyncMs: 100,
  tornWriteProbability: 0,
};

export const freshHardState: HardState = { currentTerm: 0, votedFor: null, commitIndex: 0 };

export type CrashOutcome = "nothing-pending" | "write-lost" | "write-torn";

export class Disk {
  durable: DurableState = { hardState: freshHardState, snapshot: null, entries: [] };
  private pending: DiskWrite | null = null;

  constructor(
    private readonly prng: Prng,
    readonly options: DiskOptions,
  ) {}

  get hasPendingWrite(): boolean {
    return this.pending !== null;
  }

  /** Starts a write; returns the fsync delay after which `completeWrite` makes it durable. */
  beginWrite(write: DiskWrite): number {
    assert(this.pending === null, "a second disk write began before the first was durable");
    this.pending = { hardState: write.hardState, snapshot: write.snapshot, entries: write.entries.slice() };
    const o = this.options;
    if (this.prng.chance(o.slowSyncProbability)) return o.slowSyncMs;
    return this.prng.int(o.syncDelayMinMs, o.syncDelayMaxMs);
  }

  /** The fsync finished: the pending write is durable. Returns the durable hard state it replaced. */
  completeWrite(): HardState {
    const write = this.pending;
    assert(write !== null, "fsync completed with no write pending");
    this.pending = null;
    const before = this.durable.hardState;
    applyWrite(this.durable, write, write.entries.length);
    return before;
  }

  /**
   * The process dies. A torn write keeps the write's records in their order (hardState, snapshot, then a
   * prefix of the entries) but never so few entries that the durable commit index would point past the
   * durable log: a real log store syncs the entries a commit index covers before that index.
   */
  crash(): CrashOutcome {
    const write = this.pending;
    this.pending = null;
    if (write === null) return "nothing-pending";
    if (write.entries.length < 2 || !this.prng.chance(this.options.tornWriteProbability)) return "write-lost";
    const firstIndex = (write.entries[0] as Entry).index;
    const commitIndex = Math.max(write.hardState?.commitIndex ?? 0, this.durable.hardState.commitIndex);
    const entriesNeeded = Math.max(0, commitIndex - firstIndex + 1);
    if (entriesNeeded >= write.entries.length) return "write-lost";
    const kept = this.prng.int(entriesNeeded, write.entries.length - 1);
    applyWrite(this.durable, write, kept);
    return "write-torn";
  }

  /** The driver made and persisted a snapshot at an applied index; entries below `retainFromIndex` go. */
  compact(snapshot: Snapshot, retainFromIndex: number): void {
    assert(this.pending === null, "compaction while a write is pending");
    const entries = this.durable.entries;
    const dropCount = entries.findIndex((entry) => entry.index >= retainFromIndex);
    entries.splice(0, dropCount === -1 ? entries.length : dropCount);
    this.durable.snapshot = snapshot;
  }
}

function applyWrite(state: DurableState, write: DiskWrite, entryCount: number): void {
  if (write.hardState !== null) state.hardState = write.hardState;
  const entries = state.entries;
  if (write.snapshot !== null) {
    // A snapshot replaces the whole durable log; the core re-sends any suffix it keeps in `entries`.
    state.snapshot = write.snapshot;
    entries.length = 0;
  }
  const first = write.entries[0];
  if (first === undefined || entryCount === 0) return;
  const lastIndex = entries.at(-1)?.index ?? state.snapshot?.meta.index ?? 0;
  if (first.index > lastIndex + 1) {
    throw new InvariantViolation(`entries to persist start at ${first.index} but the durable log ends at ${lastIndex} (a gap)`);
  }
  // Entries are contiguous, so the truncation point is a position, not a search.
  const durableFirstIndex = entries[0]?.index ?? first.index;
  entries.length = Math.max(0, Math.min(entries.length, first.index - durableFirstIndex));
  for (let i = 0; i < entryCount; i++) entries.push(write.entries[i] as Entry);
}
