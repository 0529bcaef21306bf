// Reading one segment back: its records up to the first damage, and whether that damage is a torn tail.
//
// Only the newest segment can have a torn tail: a save appends to it and syncs before it resolves, and a new
// segment is begun only after the previous one was synced. In that segment, damage is a torn tail when it
// is what an interrupted append leaves behind and nothing we wrote could follow it:
//   - fewer bytes than a frame, or an intact frame whose payload reaches past the end of the file;
//   - a frame that fails its checksum followed by nothing but zeros (a zeroed tail after a power loss);
//   - an intact frame whose payload fails its checksum, followed by nothing but zeros (the final record).
// Anything else (a bad record followed by data) is corruption, and the node refuses to start: cutting there
// could drop acknowledged votes and entries.
// Limitation: a crash that persisted the final save's pages out of order can leave a bad record followed by a
// later record of the same (unacknowledged) save; that, too, is refused rather than guessed at.

import { DecodeError, lastNonZeroOffset } from "../util/bytes.js";
import { StorageCorruptError } from "./errors.js";
import { checkFrame, checkSegmentHeader, decodeRecord, frameHeaderBytes, segmentHeaderBytes, type FrameCheck, type WalRecord } from "./wal-format.js";

export interface ScannedRecord {
  readonly offsetBytes: number;
  readonly endBytes: number;
  readonly record: WalRecord;
}

export interface SegmentScan {
  readonly seq: number;
  readonly path: string;
  readonly sizeBytes: number;
  readonly records: readonly ScannedRecord[];
  /** Bytes worth keeping: the file is cut here when its tail is torn (0 when the whole file is torn). */
  readonly validBytes: number;
  /** Set when the tail from `validBytes` on is torn and will be cut. */
  readonly tornProblem: string | null;
}

/** Scans one segment; throws StorageCorruptError for damage that is not a torn tail of the newest segment. */
export function scanSegment(buffer: Buffer, path: string, seq: number, isNewest: boolean): SegmentScan {
  const lastNonZero = lastNonZeroOffset(buffer, 0);
  const records: ScannedRecord[] = [];
  const torn = (validBytes: number, problem: string): SegmentScan => {
    if (!isNewest) {
      throw new StorageCorruptError(path, validBytes, `${problem}, but this is not the newest segment, so no crash can explain it`);
    }
    // A segment with no record was never synced with anything in it: the whole file is the torn tail.
    const keptBytes = records.length === 0 ? 0 : validBytes;
    return { seq, path, sizeBytes: buffer.length, records, validBytes: keptBytes, tornProblem: problem };
  };

  const header = checkSegmentHeader(buffer, seq, lastNonZero);
  if (!header.ok) {
    if (header.torn) return torn(0, header.problem);
    throw new StorageCorruptError(path, 0, header.problem);
  }

  let offset = segmentHeaderBytes;
  while (offset < buffer.length) {
    const frame = checkFrame(buffer, offset);
    if (!frame.ok) {
      const tornProblem = tornTailProblem(frame, offset, lastNonZero);
      if (tornProblem !== null) return torn(offset, tornProblem);
      throw new StorageCorruptError(path, offset, corruptFrameProblem(frame));
    }
    let record: WalRecord;
    try {
      record = decodeRecord(buffer, frame.payloadStart, frame.end);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      throw new StorageCorruptError(path, offset, `the record passes its checksum but does not decode (${error.message}): a layout this raftlock did not write`);
    }
    if (records.length === 0 && record.kind !== "checkpoint") {
      throw new StorageCorruptError(path, offset, `the segment's first record is a ${record.kind} record, not the checkpoint every segment begins with`);
    }
    records.push({ offsetBytes: offset, endBytes: frame.end, record });
    offset = frame.end;
  }
  // Header and checkpoint are written together with a segment's first save: a header alone is a torn write.
  if (records.length === 0) return torn(offset, "the segment holds a header but no records");
  return { seq, path, sizeBytes: buffer.length, records, validBytes: buffer.length, tornProblem: null };
}

/** Why the damage at `offset` is a torn tail, or null when it is not one. */
function tornTailProblem(frame: Exclude<FrameCheck, { ok: true }>, offset: number, lastNonZero: number): string | null {
  switch (frame.failure) {
    case "short-frame":
      return "the last record was cut short inside its frame";
    case "past-end":
      return "the last record was cut short inside its payload";
    case "bad-frame":
      // Zeros from here on (or a partial frame and then zeros): a zeroed tail, not a record.
      return lastNonZero < offset + frameHeaderBytes ? "the tail is zeros (or a partial record and then zeros)" : null;
    case "bad-payload":
      return lastNonZero < frame.end ? "the last record's payload does not match its checksum" : null;
    case "bad-length":
      return null;
  }
}

function corruptFrameProblem(frame: Exclude<FrameCheck, { ok: true }>): string {
  switch (frame.failure) {
    case "bad-frame":
      return "the record's frame (length and checksum) fails its own checksum, and data follows it";
    case "bad-payload":
      return "the record's checksum does not match its contents (a flipped bit or a bad write), and data follows it, so it is not a torn tail";
    case "bad-length":
      return `the record claims ${frame.payloadBytes} bytes, outside what raftlock ever writes`;
    case "short-frame":
    case "past-end":
      return "the record was cut short";
  }
}
