// Opening a data directory: read every segment and snapshot, cut a torn tail, pick the newest snapshot the
// log connects to, and check that the result is a state the consensus core may start from. Every decision
// is made before anything on disk is changed, so a refusal leaves the directory exactly as it was found.

import { promises as fs } from "node:fs";
import path from "node:path";
import type { Entry, HardState, Snapshot } from "../raft/types.js";
import { StorageCorruptError } from "./errors.js";
import { createFileDurably, ensureDirectory, freeBrokenName, removeDurably, syncDirectory } from "./files.js";
import { parseSnapshotFileName, readSnapshotFile, temporarySuffix } from "./snapshot-file.js";
import { encodeSegmentStart, parseSegmentFileName, segmentFileName } from "./wal-format.js";
import { emptyHardState, replaySegments, type ReplayedLog, type SegmentInfo } from "./wal-replay.js";
import { scanSegment, type SegmentScan } from "./wal-scan.js";

export interface RecoveredState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Contiguous; may start at or below snapshot.meta.index + 1 (the retained log). */
  readonly entries: Entry[];
}

/** The torn tail recovery cut from the newest segment; the cut bytes are in `<file>.broken`. */
export interface RepairedTail {
  readonly file: string;
  readonly bytesCut: number;
}

/** A snapshot file recovery did not use, and what became of it. */
export interface IgnoredSnapshot {
  readonly file: string;
  readonly problem: string;
  /** Where a damaged file was moved for diagnosis, or null when it was removed (a save that never finished). */
  readonly keptAs: string | null;
}

export interface Recovery {
  readonly recovered: RecoveredState;
  readonly repairedTail: RepairedTail | null;
  readonly ignoredSnapshots: readonly IgnoredSnapshot[];
  /** Oldest first; the last one is where the next save appends. */
  readonly segments: SegmentInfo[];
  readonly activeSizeBytes: number;
  /** Size of the active segment's header and checkpoint: a segment this small holds no saves yet. */
  readonly activeFloorBytes: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
}

interface SnapshotCandidate {
  readonly path: string;
  readonly index: number;
}

interface SnapshotChoice {
  readonly snapshot: Snapshot | null;
  readonly ignored: readonly { readonly file: string; readonly problem: string; readonly damaged: boolean }[];
}

export async function recoverDirectory(dir: string): Promise<Recovery> {
  await ensureDirectory(dir);
  const names = await fs.readdir(dir);

  const segmentSeqs = names.flatMap((name) => parseSegmentFileName(name) ?? []).sort((a, b) => a - b);
  for (let k = 1; k < segmentSeqs.length; k++) {
    if (segmentSeqs[k] !== segmentSeqs[k - 1]! + 1) {
      throw new StorageCorruptError(
        dir,
        null,
        `WAL segment ${segmentSeqs[k - 1]! + 1} is missing between ${segmentFileName(segmentSeqs[k - 1]!)} and ${segmentFileName(segmentSeqs[k]!)}; only the oldest segments are ever deleted`,
      );
    }
  }
  const snapshotCandidates: SnapshotCandidate[] = names
    .flatMap((name) => {
      const index = parseSnapshotFileName(name);
      return index === null ? [] : [{ path: path.join(dir, name), index }];
    })
    .sort((a, b) => b.index - a.index);
  const temporaryFiles = names.filter((name) => name.endsWith(temporarySuffix) && parseSnapshotFileName(name.slice(0, -temporarySuffix.length)) !== null);

  const scans: SegmentScan[] = [];
  let newestBuffer: Buffer | null = null;
  for (const [position, seq] of segmentSeqs.entries()) {
    const segmentPath = path.join(dir, segmentFileName(seq));
    const buffer = await fs.readFile(segmentPath);
    const isNewest = position === segmentSeqs.length - 1;
    scans.push(scanSegment(buffer, segmentPath, seq, isNewest));
    if (isNewest) newestBuffer = buffer;
  }
  const newest = scans[scans.length - 1];
  const tornWhole = newest !== undefined && newest.tornProblem !== null && newest.validBytes === 0;
  const usable = tornWhole ? scans.slice(0, -1) : scans;
  if (usable.length === 0 && snapshotCandidates.length > 0) {
    throw new StorageCorruptError(
      dir,
      null,
      "the directory holds snapshots but no WAL segment, so the term and vote this node promised are gone",
    );
  }

  const log = replaySegments(usable);
  const choice = await chooseSnapshot(dir, snapshotCandidates, log);
  checkStartable(log, choice.snapshot, usable[usable.length - 1]?.path ?? dir);

  // Decisions are made; from here on, repair.
  let repairedTail: RepairedTail | null = null;
  if (newest !== undefined && newest.tornProblem !== null && newestBuffer !== null) {
    const brokenPath = await freeBrokenName(newest.path);
    await createFileDurably(brokenPath, newestBuffer.subarray(newest.validBytes));
    if (tornWhole) {
      await removeDurably(newest.path);
    } else {
      const handle = await fs.open(newest.path, "r+");
      try {
        await handle.truncate(newest.validBytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    repairedTail = { file: newest.path, bytesCut: newest.sizeBytes - newest.validBytes };
  }
  const ignoredSnapshots = await setAsideSnapshots(choice);
  for (const name of temporaryFiles) await fs.rm(path.join(dir, name), { force: true });
  if (ignoredSnapshots.length > 0 || temporaryFiles.length > 0) await syncDirectory(dir);

  const segments = log.segments;
  let activeSizeBytes: number;
  let activeFloorBytes: number;
  const active = usable[usable.length - 1];
  if (active === undefined) {
    // A fresh directory (or one whose only segment never got past its header): begin the log.
    const seq = newest?.seq ?? 1;
    const segmentPath = path.join(dir, segmentFileName(seq));
    const start = encodeSegmentStart(seq, 0, emptyHardState);
    await createFileDurably(segmentPath, start);
    segments.push({ seq, path: segmentPath, liveIndexMax: 0 });
    activeSizeBytes = start.length;
    activeFloorBytes = start.length;
  } else {
    activeSizeBytes = active.validBytes;
    activeFloorBytes = active.records[0]!.endBytes;
  }

  return {
    recovered: { hardState: log.hardState, snapshot: choice.snapshot, entries: log.entries },
    repairedTail,
    ignoredSnapshots,
    segments,
    activeSizeBytes,
    activeFloorBytes,
    lastIndex: log.lastIndex,
    snapshotIndex: choice.snapshot?.meta.index ?? 0,
  };
}

/**
 * How a snapshot at (index, term) relates to the replayed log:
 * - connects: the log continues it (holds index with that term, starts right after it, or ends exactly at it);
 * - orphan: the log does not reach it or disagrees with it, and holds no record of installing it: the file was
 *   written by a save that never finished (a snapshot from the leader is written before its WAL record);
 * - gap: the log starts after it, so entries in between exist nowhere.
 */
function relate(log: ReplayedLog, index: number, term: number): "connects" | "orphan" | "gap" {
  const first = log.entries[0];
  if (first === undefined) {
    if (log.lastIndex === index) return "connects";
    return log.lastIndex < index ? "orphan" : "gap";
  }
  if (first.index > index + 1) return "gap";
  if (log.lastIndex < index) return "orphan";
  if (index >= first.index) return log.entries[index - first.index]!.term === term ? "connects" : "orphan";
  return "connects";
}

/**
 * The newest readable snapshot the log connects to. A damaged newer one is skipped in favour of an older one
 * only when the log still reaches back to that older one; otherwise the node refuses to start, since the
 * state between would be gone.
 */
async function chooseSnapshot(dir: string, candidates: readonly SnapshotCandidate[], log: ReplayedLog): Promise<SnapshotChoice> {
  const ignored: { file: string; problem: string; damaged: boolean }[] = [];
  const refuseGap = (snapshotWhere: string): never => {
    const logStart = log.entries[0] === undefined ? `continues from index ${log.lastIndex}` : `starts at index ${log.entries[0].index}`;
    const skipped = ignored.map((each) => `; skipped ${path.basename(each.file)}: ${each.problem}`).join("");
    throw new StorageCorruptError(dir, null, `the log ${logStart}, but ${snapshotWhere}, so the entries in between exist nowhere${skipped}`);
  };
  for (const candidate of candidates) {
    const read = await readSnapshotFile(candidate.path, candidate.index);
    if (!read.ok) {
      ignored.push({ file: candidate.path, problem: read.problem, damaged: true });
      continue;
    }
    const { index, term } = read.snapshot.meta;
    const relation = relate(log, index, term);
    if (relation === "connects") return { snapshot: read.snapshot, ignored };
    if (relation === "gap") refuseGap(`the newest readable snapshot is at index ${index}`);
    ignored.push({ file: candidate.path, problem: "the log holds no record of installing it (the save that wrote it did not finish)", damaged: false });
  }
  if (relate(log, 0, 0) === "gap") refuseGap("there is no readable snapshot");
  return { snapshot: null, ignored };
}

/** Checks what the consensus core asserts at start, so that damage shows up as a clear refusal instead. */
function checkStartable(log: ReplayedLog, snapshot: Snapshot | null, file: string): void {
  const { currentTerm, commitIndex } = log.hardState;
  if (commitIndex > log.lastIndex) {
    throw new StorageCorruptError(file, null, `the hard state's commit index ${commitIndex} is past the log's last index ${log.lastIndex}`);
  }
  const lastTerm = log.entries[log.entries.length - 1]?.term ?? snapshot?.meta.term ?? 0;
  if (lastTerm > currentTerm) {
    throw new StorageCorruptError(file, null, `the log's last term ${lastTerm} is above the hard state's current term ${currentTerm}`);
  }
}

async function setAsideSnapshots(choice: SnapshotChoice): Promise<IgnoredSnapshot[]> {
  const result: IgnoredSnapshot[] = [];
  for (const each of choice.ignored) {
    let keptAs: string | null = null;
    if (each.damaged) {
      keptAs = await freeBrokenName(each.file);
      await fs.rename(each.file, keptAs);
    } else {
      await fs.rm(each.file, { force: true });
    }
    result.push({ file: each.file, problem: each.problem, keptAs });
  }
  return result;
}
