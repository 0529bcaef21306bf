// Durable storage of one node: a segmented write-ahead log of entries and hard state, and snapshot files.
//
// One `save` is one Ready batch and costs one synchronized write (group commit): segments are opened with
// O_DSYNC, so a write returns once its data is durable, as write + fdatasync would, in one thread-pool
// round trip instead of two. Its WAL bytes are, in order:
//   vote (term and vote)  |  snapshot-installed  |  entries...  |  hard state (term, vote, commit index)
// each present only when the batch has it (the vote only ahead of entries or a snapshot),
// and written with one write, after the received snapshot's own file (if any) is durable. Recovery keeps a
// prefix of those records: it cuts a torn tail at its first bad record, and refuses to start when valid data
// follows a bad record. Hence:
//   - term and vote are durable before any entry that carries their term (the log's last term never exceeds
//     the durable current term), and they survive even when the rest of the batch is lost;
//   - the commit index can be lost only together with a suffix of the batch's entries, so it never points
//     past the durable log;
//   - a received snapshot counts only once its installed record is durable: a snapshot file without one is
//     left over from an unfinished save, and recovery removes it.
// Raft pitfall 2 (term and vote durable before any reply) holds because `save` resolves only after the sync.

import { constants as fsConstants, promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { EntryType, mustSync, type Entry, type HardState, type Snapshot } from "../raft/types.js";
import { assert } from "../util/assert.js";
import { ByteWriter } from "../util/bytes.js";
import { lockDirectory } from "./dir-lock.js";
import { StorageError } from "./errors.js";
import { syncDirectory, writeAll } from "./files.js";
import { recoverDirectory, type IgnoredSnapshot, type RecoveredState, type Recovery, type RepairedTail } from "./recovery.js";
import { checkSnapshotFits, parseSnapshotFileName, writeSnapshotFile } from "./snapshot-file.js";
import { encodeSegmentStart, entryDataBytesMax, nodeIdBytesMax, segmentFileName, writeEntriesRecords, writeRecord } from "./wal-format.js";
import type { SegmentInfo } from "./wal-replay.js";

/** The active segment: every write is durable when it returns (O_DSYNC), which is what acknowledges a save. */
const activeSegmentOpenFlags = fsConstants.O_RDWR | fsConstants.O_DSYNC;
/** A new segment: created, never an existing file, and synchronized like the active one. */
const newSegmentOpenFlags = activeSegmentOpenFlags | fsConstants.O_CREAT | fsConstants.O_EXCL;

export { StorageCorruptError, StorageError } from "./errors.js";
export type { IgnoredSnapshot, RecoveredState, RepairedTail } from "./recovery.js";
export { configMembersMax, snapshotBytesMax, snapshotFileName } from "./snapshot-file.js";
export { entryDataBytesMax, nodeIdBytesMax, recordBytesMax, segmentFileName } from "./wal-format.js";

/** Size at which the WAL moves on to a new segment. A single save larger than this gets a segment of its own. */
export const segmentBytesMaxDefault = 64 << 20;
/** Smallest `segmentBytesMax` accepted: small enough for tests to cross many segment boundaries. */
export const segmentBytesMaxLowest = 4 << 10;
/** Largest `segmentBytesMax` accepted: a whole segment is read into memory at start. */
export const segmentBytesMaxHighest = 1 << 30;

export interface StorageOptions {
  /** Data directory, created (durably) if missing. */
  readonly dir: string;
  /** Defaults to segmentBytesMaxDefault; between segmentBytesMaxLowest and segmentBytesMaxHighest. */
  readonly segmentBytesMax?: number;
}

/** One Ready batch to persist. */
export interface SaveBatch {
  readonly hardState: HardState | null;
  /** A snapshot received from the leader: every stored entry is discarded before `entries` are appended. */
  readonly snapshot: Snapshot | null;
  /** Contiguous; the first one's index may be at or below the last stored index, replacing that suffix. */
  readonly entries: readonly Entry[];
}

export interface OpenedStorage {
  readonly storage: Storage;
  readonly recovered: RecoveredState;
  /** Set when a torn tail was cut from the newest segment; its bytes are kept in `<file>.broken`. */
  readonly repairedTail: RepairedTail | null;
  /** Snapshot files not used: damaged ones (moved to `.broken`) and ones left by an unfinished save (removed). */
  readonly ignoredSnapshots: readonly IgnoredSnapshot[];
}

export class Storage {
  private readonly dir: string;
  private readonly segmentBytesMax: number;
  /** Oldest first; the last one is the active segment that saves append to. */
  private readonly segments: SegmentInfo[];
  private active: FileHandle;
  private activeSizeBytes: number;
  /** Size of the active segment's header and checkpoint: below or at it, the segment holds no save yet. */
  private activeFloorBytes: number;
  /** Durable state the next segment's checkpoint repeats. */
  private lastIndex: number;
  private hardState: HardState;
  /** Index of the newest durable snapshot file (0 when none). */
  private snapshotIndex: number;
  /** Serializes save, saveSnapshot and close: each reads and changes the segment list. */
  private queue: Promise<void> = Promise.resolve();
  private saveInFlight = false;
  /** The snapshot being written beside the WAL's saves and then compacted, for close() to wait for. */
  private snapshotSave: Promise<void> | null = null;
  /** `hardState` holds a commit index from a commit-only batch that is not in the WAL yet. */
  private commitUnwritten = false;
  private closed = false;
  /** A failed WAL write or sync leaves the file in an unknown state: every later save is refused. */
  private failure: StorageError | null = null;

  private constructor(
    dir: string,
    segmentBytesMax: number,
    active: FileHandle,
    recovery: Recovery,
    /** Releases the data directory's lock (dir-lock.ts). */
    private readonly unlock: () => Promise<void>,
  ) {
    this.dir = dir;
    this.segmentBytesMax = segmentBytesMax;
    this.segments = recovery.segments;
    this.active = active;
    this.activeSizeBytes = recovery.activeSizeBytes;
    this.activeFloorBytes = recovery.activeFloorBytes;
    this.lastIndex = recovery.lastIndex;
    this.hardState = recovery.recovered.hardState;
    this.snapshotIndex = recovery.snapshotIndex;
  }

  /**
   * Opens (or creates) a data directory and recovers its durable state: cuts a torn tail of the newest
   * segment, loads the newest valid snapshot the log connects to, and replays the log. Throws
   * StorageCorruptError, changing nothing on disk, when the state cannot be trusted.
   */
  static async open(options: StorageOptions): Promise<OpenedStorage> {
    const segmentBytesMax = options.segmentBytesMax ?? segmentBytesMaxDefault;
    if (!Number.isInteger(segmentBytesMax) || segmentBytesMax < segmentBytesMaxLowest || segmentBytesMax > segmentBytesMaxHighest) {
      throw new StorageError(
        `segmentBytesMax must be an integer between ${segmentBytesMaxLowest} and ${segmentBytesMaxHighest} (got ${segmentBytesMax})`,
      );
    }
    if (typeof options.dir !== "string" || options.dir.length === 0) throw new StorageError("the storage directory must be a non-empty path");
    const dir = path.resolve(options.dir);
    const unlock = await lockDirectory(dir);
    let recovery: Recovery;
    let active: FileHandle;
    try {
      recovery = await recoverDirectory(dir);
      active = await fs.open(recovery.segments[recovery.segments.length - 1]!.path, activeSegmentOpenFlags);
    } catch (error) {
      await unlock();
      throw error;
    }
    const storage = new Storage(dir, segmentBytesMax, active, recovery, unlock);
    return { storage, recovered: recovery.recovered, repairedTail: recovery.repairedTail, ignoredSnapshots: recovery.ignoredSnapshots };
  }

  /**
   * Persists one Ready batch with one synchronized write: the received snapshot's file first (when set), then one
   * WAL write with its entries and hard state. Resolves once durable, and says whether it wrote: a batch
   * that only advances the commit index (`mustSync` false) is kept in memory and written with the next
   * batch (or at close), so a crash may lose it; a restarted node learns its commit index again from the
   * leader. Calls must not overlap.
   */
  async save(batch: SaveBatch): Promise<{ synced: boolean }> {
    assert(!this.closed, "save() after close()");
    assert(!this.saveInFlight, "save() called while the previous save() is still in flight");
    this.saveInFlight = true;
    try {
      const sync = mustSync(batch, this.hardState);
      await this.exclusive(async () => {
        if (sync) return this.persist(batch);
        this.throwIfFailed();
        this.checkBatch(batch);
        if (batch.hardState === null) return;
        this.hardState = batch.hardState;
        this.commitUnwritten = true;
      });
      return { synced: sync };
    } finally {
      this.saveInFlight = false;
    }
  }

  /**
   * The application made a snapshot at an applied index: persist it (temporary file, sync, rename, directory
   * sync), then delete older snapshot files and the log segments wholly below `retainFromIndex`. The file is
   * written beside the WAL's saves, which go on meanwhile: it is a file of its own, and the log it connects
   * to is durable once the save in flight when it was called is. Only that and the compaction wait their turn. A snapshot older than the newest
   * stored one (a snapshot from the leader installed meanwhile) is left for compaction to remove. One at a time.
   */
  async saveSnapshot(snapshot: Snapshot, retainFromIndex: number): Promise<void> {
    assert(!this.closed, "saveSnapshot() after close()");
    assert(this.snapshotSave === null, "saveSnapshot() called while the previous one is still in flight");
    const index = snapshot.meta.index;
    assert(Number.isSafeInteger(retainFromIndex) && retainFromIndex >= 1, `retainFromIndex must be a positive index (got ${retainFromIndex})`);
    assert(retainFromIndex <= index + 1, "the retained log must reach the snapshot");
    const saved = (async () => {
      // Behind a save in flight: the entries it is making durable may be the ones this snapshot covers.
      const newer = await this.exclusive(async () => {
        this.throwIfFailed();
        assert(index <= this.lastIndex, `snapshot at index ${index} is past the durable log's end ${this.lastIndex}`);
        return index > this.snapshotIndex;
      });
      if (newer) await this.writeSnapshot(snapshot);
      await this.exclusive(async () => {
        this.throwIfFailed();
        if (index > this.snapshotIndex) this.snapshotIndex = index;
        await this.compact(retainFromIndex);
      });
    })();
    this.snapshotSave = saved.then(
      () => undefined,
      () => undefined,
    );
    try {
      await saved;
    } finally {
      this.snapshotSave = null;
    }
  }

  private async writeSnapshot(snapshot: Snapshot): Promise<void> {
    try {
      await writeSnapshotFile(this.dir, snapshot);
    } catch (error) {
      // The WAL is untouched: the node carries on with its older snapshot and a longer log.
      throw new StorageError(`writing the snapshot at index ${snapshot.meta.index} to ${this.dir} failed: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Waits for the save or snapshot in progress, then closes the active segment. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.snapshotSave;
    await this.exclusive(async () => {
      // A clean stop keeps the newest commit index, so a restart applies as far as before.
      if (this.commitUnwritten && this.failure === null) await this.persist({ hardState: this.hardState, snapshot: null, entries: [] });
      await this.active.close();
    });
    await this.unlock();
  }

  // ------------------------------------------------------------------------------------------

  private async persist(batch: SaveBatch): Promise<void> {
    this.throwIfFailed();
    this.checkBatch(batch);
    const writer = new ByteWriter(4096);
    // Alone, the hard state record is atomic; the vote record matters only ahead of what a tear could keep without it.
    if (batch.hardState !== null && (batch.entries.length > 0 || batch.snapshot !== null)) {
      writeRecord(writer, { kind: "vote", currentTerm: batch.hardState.currentTerm, votedFor: batch.hardState.votedFor });
    }
    if (batch.snapshot !== null) writeRecord(writer, { kind: "snapshot-installed", index: batch.snapshot.meta.index, term: batch.snapshot.meta.term });
    writeEntriesRecords(writer, batch.entries);
    // A commit index kept from a commit-only batch rides along; the batch's own hard state supersedes it.
    const hardStateToWrite = batch.hardState ?? (this.commitUnwritten ? this.hardState : null);
    if (hardStateToWrite !== null) writeRecord(writer, { kind: "hard-state", hardState: hardStateToWrite });
    if (writer.length === 0) return;

    // The snapshot file is not part of the WAL's failure state: a failure there leaves the WAL untouched.
    if (batch.snapshot !== null) {
      try {
        await writeSnapshotFile(this.dir, batch.snapshot);
      } catch (error) {
        throw new StorageError(`writing the received snapshot at index ${batch.snapshot.meta.index} to ${this.dir} failed: ${(error as Error).message}`, { cause: error });
      }
    }
    try {
      await this.append(writer.view());
    } catch (error) {
      this.failure = new StorageError(
        `writing the WAL in ${this.dir} failed (${(error as Error).message}); what reached the disk is unknown, so this storage ` +
          "accepts no more writes. Restart the node: recovery cuts any partly written record.",
        { cause: error },
      );
      throw this.failure;
    }

    if (batch.snapshot !== null) {
      for (const segment of this.segments) segment.liveIndexMax = 0;
      this.lastIndex = batch.snapshot.meta.index;
      this.snapshotIndex = batch.snapshot.meta.index;
    }
    const first = batch.entries[0];
    const last = batch.entries[batch.entries.length - 1];
    if (first !== undefined && last !== undefined) {
      for (const segment of this.segments) segment.liveIndexMax = Math.min(segment.liveIndexMax, first.index - 1);
      this.segments[this.segments.length - 1]!.liveIndexMax = last.index;
      this.lastIndex = last.index;
    }
    if (batch.hardState !== null) this.hardState = batch.hardState;
    this.commitUnwritten = false;
    // Every stored entry is now superseded by the snapshot: older snapshots and segments can go.
    if (batch.snapshot !== null) await this.compact(batch.snapshot.meta.index + 1);
  }

  /** What only a bug in the caller can get wrong is asserted; what a limit refuses is a StorageError. */
  private checkBatch(batch: SaveBatch): void {
    const { hardState, snapshot, entries } = batch;
    if (hardState !== null) {
      assert(Number.isSafeInteger(hardState.currentTerm) && hardState.currentTerm >= this.hardState.currentTerm, "current term moved backwards");
      assert(Number.isSafeInteger(hardState.commitIndex) && hardState.commitIndex >= 0, "commit index is not an index");
      assert(hardState.votedFor === null || Buffer.byteLength(hardState.votedFor) <= nodeIdBytesMax, "votedFor is longer than nodeIdBytesMax");
    }
    const currentTerm = hardState?.currentTerm ?? this.hardState.currentTerm;
    if (snapshot !== null) {
      checkSnapshotFits(snapshot);
      assert(snapshot.meta.index >= this.snapshotIndex, "received snapshot is older than the newest stored one");
      assert(snapshot.meta.term <= currentTerm, "received snapshot's term is above the current term");
    }
    const logEndIndex = snapshot?.meta.index ?? this.lastIndex;
    const commitEndIndex = entries[entries.length - 1]?.index ?? logEndIndex;
    assert(hardState === null || hardState.commitIndex <= commitEndIndex, "commit index past the log this batch leaves");
    for (const [k, entry] of entries.entries()) {
      assert(Number.isSafeInteger(entry.index) && entry.index >= 1, `entry index ${entry.index} is not an index`);
      assert(Number.isSafeInteger(entry.term) && entry.term <= currentTerm, `entry ${entry.index} has term ${entry.term}, above the current term`);
      assert(Object.values(EntryType).includes(entry.type), `entry ${entry.index} has unknown type ${entry.type}`);
      const previous = entries[k - 1];
      if (previous === undefined) {
        assert(entry.index <= logEndIndex + 1, `entries start at index ${entry.index} but the log ends at ${logEndIndex} (a gap)`);
      } else {
        assert(entry.index === previous.index + 1 && entry.term >= previous.term, "entries to save are not contiguous");
      }
      if (entry.data.length > entryDataBytesMax) {
        throw new StorageError(
          `entry ${entry.index} carries ${entry.data.length} bytes, above the ${entryDataBytesMax} one WAL record holds; ` +
            "lower the proposal size limit (proposalBytesMax)",
        );
      }
    }
  }

  /** Appends WAL bytes and syncs them, moving on to a new segment first when the active one is full. */
  private async append(bytes: Buffer): Promise<void> {
    const full = this.activeSizeBytes + bytes.length > this.segmentBytesMax && this.activeSizeBytes > this.activeFloorBytes;
    if (!full) {
      await writeAll(this.active, bytes, this.activeSizeBytes);
      this.activeSizeBytes += bytes.length;
      return;
    }
    // The previous segment was synced by the save that wrote it. The new one starts with a checkpoint of the
    // state before this batch, so that it can be replayed on its own once older segments are deleted.
    const seq = this.segments[this.segments.length - 1]!.seq + 1;
    const segmentPath = path.join(this.dir, segmentFileName(seq));
    const start = encodeSegmentStart(seq, this.lastIndex, this.hardState);
    const handle = await fs.open(segmentPath, newSegmentOpenFlags);
    try {
      await writeAll(handle, Buffer.concat([start, bytes]), 0);
      await syncDirectory(this.dir);
    } catch (error) {
      await handle.close();
      throw error;
    }
    const previous = this.active;
    this.active = handle;
    this.activeSizeBytes = start.length + bytes.length;
    this.activeFloorBytes = start.length;
    this.segments.push({ seq, path: segmentPath, liveIndexMax: 0 });
    await previous.close();
  }

  /** Deletes snapshot files older than the newest, then the oldest segments whose live entries all lie below `retainFromIndex`. */
  private async compact(retainFromIndex: number): Promise<void> {
    let removedSnapshots = false;
    for (const name of await fs.readdir(this.dir)) {
      const index = parseSnapshotFileName(name);
      if (index === null || index >= this.snapshotIndex) continue;
      await fs.rm(path.join(this.dir, name), { force: true });
      removedSnapshots = true;
    }
    if (removedSnapshots) await syncDirectory(this.dir);
    // Only a prefix, never the active segment, and one durable unlink at a time: recovery refuses a gap
    // in the sequence, so a crash must never leave an older segment behind a deleted newer one.
    while (this.segments.length > 1 && this.segments[0]!.liveIndexMax < retainFromIndex) {
      await fs.rm(this.segments[0]!.path, { force: true });
      await syncDirectory(this.dir);
      this.segments.shift();
    }
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
