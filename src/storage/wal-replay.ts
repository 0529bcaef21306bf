// Replaying WAL records into the log they describe: the last hard state wins, an entries record starting at
// index i drops stored entries >= i (a Raft conflict truncation), and a snapshot-installed record drops them
// all. Replay may start at any segment: each one begins with a checkpoint of the log's last index and the hard
// state, so deleting old segments loses neither.

import type { Entry, HardState } from "../raft/types.js";
import { StorageCorruptError } from "./errors.js";
import type { SegmentScan } from "./wal-scan.js";

export const emptyHardState: HardState = { currentTerm: 0, votedFor: null, commitIndex: 0 };

/** What the in-memory index keeps of each segment. */
export interface SegmentInfo {
  readonly seq: number;
  readonly path: string;
  /**
   * Highest index among this segment's entries that no later record truncated or discarded (0 if none).
   * A segment whose live entries all lie below the retained index holds nothing replay still needs.
   */
  liveIndexMax: number;
}

export interface ReplayedLog {
  readonly hardState: HardState;
  /** Contiguous entries; they may start above 1 when older segments were deleted. */
  readonly entries: Entry[];
  /** Index of the log's last entry, also when `entries` is empty (a checkpoint or a snapshot set it). */
  readonly lastIndex: number;
  readonly segments: SegmentInfo[];
}

/** Replays scanned segments, oldest first. Throws StorageCorruptError when the records do not fit together. */
export function replaySegments(scans: readonly SegmentScan[]): ReplayedLog {
  let hardState = emptyHardState;
  let entries: Entry[] = [];
  let lastIndex = 0;
  const segments: SegmentInfo[] = [];

  for (const [position, scan] of scans.entries()) {
    const segment: SegmentInfo = { seq: scan.seq, path: scan.path, liveIndexMax: 0 };
    segments.push(segment);
    for (const { offsetBytes, record } of scan.records) {
      const refuse = (problem: string): never => {
        throw new StorageCorruptError(scan.path, offsetBytes, problem);
      };
      switch (record.kind) {
        case "checkpoint":
          if (position === 0) {
            lastIndex = record.logLastIndex;
          } else if (record.logLastIndex !== lastIndex) {
            refuse(`the segment's checkpoint says the log ended at index ${record.logLastIndex}, but the segments before it end at ${lastIndex}`);
          }
          hardState = record.hardState;
          break;
        case "vote":
          hardState = { currentTerm: record.currentTerm, votedFor: record.votedFor, commitIndex: hardState.commitIndex };
          break;
        case "hard-state":
          hardState = record.hardState;
          break;
        case "snapshot-installed":
          entries = [];
          lastIndex = record.index;
          for (const each of segments) each.liveIndexMax = 0;
          break;
        case "entries": {
          const first = record.entries[0]!;
          const last = record.entries[record.entries.length - 1]!;
          if (first.index > lastIndex + 1) refuse(`entries start at index ${first.index} but the log ends at ${lastIndex} (a gap)`);
          const heldFirstIndex = entries[0]?.index ?? first.index;
          if (first.index > heldFirstIndex) {
            entries.length = first.index - heldFirstIndex;
            const previous = entries[entries.length - 1]!;
            if (previous.term > first.term) refuse(`entry ${first.index} has term ${first.term}, below the term ${previous.term} of the entry before it`);
          } else {
            entries = [];
          }
          for (const entry of record.entries) entries.push(entry);
          lastIndex = last.index;
          for (const each of segments) each.liveIndexMax = Math.min(each.liveIndexMax, first.index - 1);
          segment.liveIndexMax = last.index;
          break;
        }
      }
    }
  }
  return { hardState, entries, lastIndex, segments };
}
