import { assert } from "../util/assert.js";
import type { Entry, Snapshot } from "./types.js";

/** Most committed entries handed to the application in one batch, so one batch never stalls the loop for long. */
export const applyBatchEntriesMax = 4096;

/**
 * The in-memory Raft log: a contiguous run of entries `[firstIndex, lastIndex]`, the newest snapshot's
 * position, and the marks that say how much of it is durable (`stableIndex`), committed and applied.
 * Entries below `firstIndex` were compacted; the term of `snapshotIndex` stays known.
 */
export class RaftLog {
  private entries: Entry[];
  /** Index of `entries[0]`; equals lastIndex + 1 when the log holds no entries. */
  private firstEntryIndex: number;
  snapshotIndex: number;
  snapshotTerm: number;
  /** Highest index known durable on this node. */
  stableIndex: number;
  commitIndex: number;
  /** Highest index handed to the application (committed entries, or a snapshot). */
  appliedIndex: number;

  constructor(snapshot: Snapshot | null, entries: readonly Entry[], commitIndex: number) {
    this.snapshotIndex = snapshot?.meta.index ?? 0;
    this.snapshotTerm = snapshot?.meta.term ?? 0;
    // Entries at or below the snapshot are kept when they connect to it (retained log); a run that does
    // not reach past the snapshot is useless and dropped.
    const usable = entries.length > 0 && entries[entries.length - 1]!.index >= this.snapshotIndex ? entries : [];
    if (usable.length > 0) {
      assert(usable[0]!.index <= this.snapshotIndex + 1, "durable log has a gap after the snapshot");
    }
    assertContiguous(usable);
    this.entries = [...usable];
    this.firstEntryIndex = usable.length > 0 ? usable[0]!.index : this.snapshotIndex + 1;
    if (usable.length > 0 && this.snapshotIndex > 0 && this.snapshotIndex >= this.firstEntryIndex) {
      assert(this.termOf(this.snapshotIndex) === this.snapshotTerm, "retained log disagrees with the snapshot");
    }
    this.stableIndex = this.lastIndex;
    assert(commitIndex <= this.lastIndex, `durable commit index ${commitIndex} is past the durable log's end ${this.lastIndex}`);
    this.commitIndex = Math.max(commitIndex, this.snapshotIndex);
    this.appliedIndex = this.snapshotIndex;
  }

  /** First index whose entry is held in memory. */
  get firstIndex(): number {
    return this.firstEntryIndex;
  }

  get lastIndex(): number {
    return this.firstEntryIndex + this.entries.length - 1;
  }

  get lastTerm(): number {
    return this.termOf(this.lastIndex) as number;
  }

  /** Term of the entry at `index`, or undefined when compacted away or past the end. */
  termOf(index: number): number | undefined {
    if (index >= this.firstEntryIndex && index <= this.lastIndex) return this.entries[index - this.firstEntryIndex]!.term;
    if (index === this.snapshotIndex) return this.snapshotTerm;
    // Index 0 is the empty log's sentinel only while nothing was compacted.
    if (index === 0 && this.firstEntryIndex === 1) return 0;
    return undefined;
  }

  entryAt(index: number): Entry | undefined {
    if (index < this.firstEntryIndex || index > this.lastIndex) return undefined;
    return this.entries[index - this.firstEntryIndex];
  }

  matchTerm(index: number, term: number): boolean {
    return this.termOf(index) === term;
  }

  /** Raft's up-to-date check (§5.4.1): compare last terms first, then last indexes. */
  isUpToDate(lastLogIndex: number, lastLogTerm: number): boolean {
    const ownLastTerm = this.lastTerm;
    return lastLogTerm > ownLastTerm || (lastLogTerm === ownLastTerm && lastLogIndex >= this.lastIndex);
  }

  /** Entries `[fromIndex, lastIndex]`, cut at `bytesMax` of data (at least one entry when any exist). */
  slice(fromIndex: number, bytesMax: number): Entry[] {
    assert(fromIndex >= this.firstEntryIndex, "slice below the first retained entry");
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = fromIndex; index <= this.lastIndex; index++) {
      const entry = this.entries[index - this.firstEntryIndex]!;
      if (out.length > 0 && bytes + entry.data.length > bytesMax) break;
      bytes += entry.data.length;
      out.push(entry);
    }
    return out;
  }

  /** Leader append of its own new entry. */
  append(entry: Entry): void {
    assert(entry.index === this.lastIndex + 1, "leader append must extend the log by one");
    assert(entry.term >= this.lastTerm, "leader append must not lower the last term");
    this.entries.push(entry);
  }

  /**
   * Follower side of AppendEntries once `(prevLogIndex, prevLogTerm)` matched: truncate at the first
   * entry whose term differs and append from there. Entries that match are kept, so an old, reordered
   * request can never shorten the log. Returns the index of the last entry the request carried, and the
   * entries actually written (the log was cut back to just before the first of them), if any.
   */
  appendFromLeader(prevLogIndex: number, entries: readonly Entry[]): { lastNewIndex: number; written: readonly Entry[] } {
    assertContiguous(entries);
    if (entries.length > 0) assert(entries[0]!.index === prevLogIndex + 1, "append entries do not follow prevLogIndex");
    const lastNewIndex = prevLogIndex + entries.length;
    let k = 0;
    while (k < entries.length && this.matchTerm(entries[k]!.index, entries[k]!.term)) k++;
    if (k === entries.length) return { lastNewIndex, written: [] };
    const conflictIndex = entries[k]!.index;
    assert(conflictIndex > this.commitIndex, `leader asked to overwrite committed entry ${conflictIndex}`);
    assert(conflictIndex >= this.firstEntryIndex, "conflict below the first retained entry");
    this.entries.length = conflictIndex - this.firstEntryIndex;
    this.stableIndex = Math.min(this.stableIndex, conflictIndex - 1);
    const written = entries.slice(k);
    for (const entry of written) this.entries.push(entry);
    return { lastNewIndex, written };
  }

  /** First index of the run of `term` that ends at `index`, not looking below `floorIndex`. */
  firstIndexOfTerm(index: number, term: number, floorIndex: number): number {
    let first = index;
    while (first - 1 > floorIndex && this.termOf(first - 1) === term) first--;
    return first;
  }

  /** Highest index at or below `index` whose term is `term`, or undefined when the log holds none. */
  lastIndexOfTerm(index: number, term: number): number | undefined {
    for (let at = Math.min(index, this.lastIndex); at >= this.firstEntryIndex - 1; at--) {
      const termAt = this.termOf(at);
      if (termAt === undefined || termAt < term) return undefined;
      if (termAt === term) return at;
    }
    return undefined;
  }

  commitTo(index: number): void {
    assert(index <= this.lastIndex, `commit ${index} past the end of the log ${this.lastIndex}`);
    assert(index >= this.commitIndex, "commit index moved backwards");
    this.commitIndex = index;
  }

  /** Entries not yet handed to storage. */
  unstableEntries(): Entry[] {
    if (this.stableIndex >= this.lastIndex) return [];
    return this.entries.slice(this.stableIndex + 1 - this.firstEntryIndex);
  }

  /** Storage made the log durable up to `(index, term)`; ignored when that entry was overwritten since. */
  stableTo(index: number, term: number): void {
    if (this.matchTerm(index, term) && index > this.stableIndex) this.stableIndex = index;
  }

  /** Committed, locally durable entries that the application has not been given yet. */
  committedToApply(): Entry[] {
    const upTo = Math.min(this.commitIndex, this.stableIndex, this.appliedIndex + applyBatchEntriesMax);
    if (upTo <= this.appliedIndex) return [];
    return this.entries.slice(this.appliedIndex + 1 - this.firstEntryIndex, upTo + 1 - this.firstEntryIndex);
  }

  appliedTo(index: number): void {
    assert(index >= this.appliedIndex, "applied index moved backwards");
    assert(index <= this.commitIndex, "applied past the commit index");
    this.appliedIndex = index;
  }

  /** The application made a durable snapshot at `snapshot.meta.index`; drop entries below `retainFromIndex`. */
  compact(snapshot: Snapshot, retainFromIndex: number): void {
    const index = snapshot.meta.index;
    assert(index <= this.appliedIndex, "snapshot of an index that is not applied yet");
    assert(retainFromIndex <= index + 1, "retained log must reach the snapshot");
    assert(this.termOf(index) === snapshot.meta.term, "snapshot term disagrees with the log");
    if (index > this.snapshotIndex) {
      this.snapshotIndex = index;
      this.snapshotTerm = snapshot.meta.term;
    }
    if (retainFromIndex <= this.firstEntryIndex) return;
    this.entries = this.entries.slice(retainFromIndex - this.firstEntryIndex);
    this.firstEntryIndex = retainFromIndex;
  }

  /** Replace the whole log by a snapshot received from the leader (its log conflicts with or lacks ours). */
  restore(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    assert(index > this.commitIndex, "restoring a snapshot at or below the commit index");
    this.entries = [];
    this.firstEntryIndex = index + 1;
    this.snapshotIndex = index;
    this.snapshotTerm = snapshot.meta.term;
    this.stableIndex = index;
    this.commitIndex = index;
    this.appliedIndex = index;
  }
}

function assertContiguous(entries: readonly Entry[]): void {
  for (let k = 1; k < entries.length; k++) {
    assert(entries[k]!.index === entries[k - 1]!.index + 1, "log entries are not contiguous");
    assert(entries[k]!.term >= entries[k - 1]!.term, "log entry terms go backwards");
  }
}
