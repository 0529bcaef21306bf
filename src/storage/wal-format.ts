// The write-ahead log's on-disk format: a segment header, then framed records.
//
//   segment header (24 bytes): magic u32 | format version u16 | header bytes u16 | segment seq u53 | zero u32 | crc32 u32
//   record frame  (12 bytes):  payload bytes u32 | payload crc32 u32 | frame crc32 u32 (over the first 8 bytes)
//   record payload:            kind u8 | fields of that kind
//
// The frame has its own checksum so that recovery can tell a record cut short by a crash (its length is
// trustworthy and reaches past the end of the file) from a flipped bit in a length field.
// Little-endian throughout. Indexes and terms are u53 (8 bytes, below 2^53); strings are a u16 byte length
// and UTF-8 bytes; entries are laid out as in src/util/entry-bytes.ts.

import { crc32 } from "node:zlib";
import { assert } from "../util/assert.js";
import type { Entry, HardState } from "../raft/types.js";
import { ByteReader, ByteWriter, DecodeError } from "../util/bytes.js";
import { entryBytesMin, entryEncodedBytes, readEntry, writeEntry } from "../util/entry-bytes.js";

/** "RLWL" read as a little-endian u32: the first bytes of every segment. */
export const segmentMagic = 0x4c_57_4c_52;
/** Bumped on any change of layout; a reader refuses versions it does not know rather than guess. */
export const segmentFormatVersion = 1;
export const segmentHeaderBytes = 24;
export const frameHeaderBytes = 12;
/**
 * Largest record payload, written or read. A save splits its entries over as many records as needed; one
 * entry must fit in one record (entries are capped far lower by the core's proposalBytesMax). Reading a
 * frame that claims more is corruption: we never wrote one.
 */
export const recordBytesMax = 8 << 20;
/** Longest node id (in UTF-8 bytes) in a vote or a snapshot's configuration. */
export const nodeIdBytesMax = 256;

const RecordKind = {
  /** First record of every segment: the log's last index and the hard state when the segment began. */
  Checkpoint: 1,
  /** Term and vote, written ahead of a save's entries so that no entry is durable with a term above them. */
  Vote: 2,
  /** A snapshot received from the leader was installed: every entry before this record is discarded. */
  SnapshotInstalled: 3,
  /** Contiguous entries; the first one's index truncates the stored log (Raft conflict resolution). */
  Entries: 4,
  /** Term, vote and commit index, written after a save's entries so the commit index never outruns them. */
  HardState: 5,
} as const;

export type WalRecord =
  | { readonly kind: "checkpoint"; readonly logLastIndex: number; readonly hardState: HardState }
  | { readonly kind: "vote"; readonly currentTerm: number; readonly votedFor: string | null }
  | { readonly kind: "snapshot-installed"; readonly index: number; readonly term: number }
  | { readonly kind: "entries"; readonly entries: readonly Entry[] }
  | { readonly kind: "hard-state"; readonly hardState: HardState };

/** Payload bytes of an Entries record before its entries: kind and count. */
const entriesRecordOverheadBytes = 1 + 4;

/** Largest entry data that fits in one record. */
export const entryDataBytesMax = recordBytesMax - entriesRecordOverheadBytes - entryBytesMin;

// ---------------------------------------------------------------------------------------------
// Writing

export function writeSegmentHeader(writer: ByteWriter, seq: number): void {
  const start = writer.length;
  writer.u32(segmentMagic);
  writer.u16(segmentFormatVersion);
  writer.u16(segmentHeaderBytes);
  writer.u53(seq);
  writer.u32(0);
  writer.u32(crc32(writer.view(start, writer.length)));
  assert(writer.length - start === segmentHeaderBytes, "segment header size drifted from segmentHeaderBytes");
}

/** Appends one framed record. */
export function writeRecord(writer: ByteWriter, record: WalRecord): void {
  const frameStart = writer.reserve(frameHeaderBytes);
  const payloadStart = writer.length;
  writePayload(writer, record);
  const payloadBytes = writer.length - payloadStart;
  assert(payloadBytes <= recordBytesMax, `record of ${payloadBytes} bytes is above recordBytesMax`);
  writer.setU32At(frameStart, payloadBytes);
  writer.setU32At(frameStart + 4, crc32(writer.view(payloadStart, writer.length)));
  writer.setU32At(frameStart + 8, crc32(writer.view(frameStart, frameStart + 8)));
}

/** Appends `entries` as as few Entries records as fit under recordBytesMax (each entry must fit alone). */
export function writeEntriesRecords(writer: ByteWriter, entries: readonly Entry[]): void {
  let start = 0;
  while (start < entries.length) {
    let payloadBytes = entriesRecordOverheadBytes + entryEncodedBytes(entries[start]!);
    assert(payloadBytes <= recordBytesMax, `entry ${entries[start]!.index} does not fit in one record`);
    let end = start + 1;
    while (end < entries.length && payloadBytes + entryEncodedBytes(entries[end]!) <= recordBytesMax) {
      payloadBytes += entryEncodedBytes(entries[end]!);
      end++;
    }
    writeRecord(writer, { kind: "entries", entries: entries.slice(start, end) });
    start = end;
  }
}

function writePayload(writer: ByteWriter, record: WalRecord): void {
  switch (record.kind) {
    case "checkpoint":
      writer.u8(RecordKind.Checkpoint);
      writer.u53(record.logLastIndex);
      writeHardState(writer, record.hardState);
      return;
    case "vote":
      writer.u8(RecordKind.Vote);
      writer.u53(record.currentTerm);
      writeVotedFor(writer, record.votedFor);
      return;
    case "snapshot-installed":
      writer.u8(RecordKind.SnapshotInstalled);
      writer.u53(record.index);
      writer.u53(record.term);
      return;
    case "entries":
      assert(record.entries.length > 0, "an entries record must carry at least one entry");
      writer.u8(RecordKind.Entries);
      writer.u32(record.entries.length);
      for (const entry of record.entries) writeEntry(writer, entry);
      return;
    case "hard-state":
      writer.u8(RecordKind.HardState);
      writeHardState(writer, record.hardState);
      return;
  }
}

function writeHardState(writer: ByteWriter, hardState: HardState): void {
  writer.u53(hardState.currentTerm);
  writer.u53(hardState.commitIndex);
  writeVotedFor(writer, hardState.votedFor);
}

function writeVotedFor(writer: ByteWriter, votedFor: string | null): void {
  writer.bool(votedFor !== null);
  if (votedFor !== null) writer.string(votedFor, nodeIdBytesMax);
}

// ---------------------------------------------------------------------------------------------
// Reading

export type SegmentHeaderCheck =
  | { readonly ok: true }
  /** Fewer bytes than a header, or a partial header followed only by zeros: what a crash leaves. */
  | { readonly ok: false; readonly torn: true; readonly problem: string }
  | { readonly ok: false; readonly torn: false; readonly problem: string };

export function checkSegmentHeader(buffer: Buffer, expectedSeq: number, lastNonZero: number): SegmentHeaderCheck {
  const headerIntact = buffer.length >= segmentHeaderBytes && crc32(buffer.subarray(0, 20)) === buffer.readUInt32LE(20);
  if (!headerIntact && lastNonZero < segmentHeaderBytes) {
    return { ok: false, torn: true, problem: "the segment header was only partly written" };
  }
  if (buffer.length < 8 || buffer.readUInt32LE(0) !== segmentMagic) {
    return { ok: false, torn: false, problem: "the file does not start with the WAL magic number, so it is not a raftlock WAL segment (or its first bytes were overwritten)" };
  }
  const version = buffer.readUInt16LE(4);
  if (version !== segmentFormatVersion) {
    return {
      ok: false,
      torn: false,
      problem: `the segment is in WAL format version ${version}, and this raftlock reads only version ${segmentFormatVersion}; run the raftlock release that wrote it`,
    };
  }
  if (!headerIntact) return { ok: false, torn: false, problem: "the segment header's checksum does not match" };
  if (buffer.readUInt16LE(6) !== segmentHeaderBytes) return { ok: false, torn: false, problem: "the segment header has an unknown size" };
  let seq: number;
  try {
    seq = new ByteReader(buffer, 8, 16).u53("segment sequence number");
  } catch (error) {
    // A checksum-valid header we never wrote (no segment number reaches 2^53): a refusal, not a crash.
    if (!(error instanceof DecodeError)) throw error;
    return { ok: false, torn: false, problem: `the segment header does not decode (${error.message})` };
  }
  if (seq !== expectedSeq) {
    return { ok: false, torn: false, problem: `the header says segment ${seq} but the file name says ${expectedSeq} (a renamed or copied file?)` };
  }
  return { ok: true };
}

export type FrameCheck =
  | { readonly ok: true; readonly payloadStart: number; readonly end: number }
  /** Fewer bytes left than a frame header. */
  | { readonly ok: false; readonly failure: "short-frame" }
  /** The frame's own checksum fails: a flipped bit, or a frame only partly written. */
  | { readonly ok: false; readonly failure: "bad-frame" }
  /** An intact frame whose length we would never have written. */
  | { readonly ok: false; readonly failure: "bad-length"; readonly payloadBytes: number }
  /** An intact frame whose payload reaches past the end of the file: a record cut short. */
  | { readonly ok: false; readonly failure: "past-end"; readonly end: number }
  /** An intact frame whose payload does not match its checksum. */
  | { readonly ok: false; readonly failure: "bad-payload"; readonly end: number };

/** Checks the frame at `offset` and its payload's checksum; does not decode the payload. */
export function checkFrame(buffer: Buffer, offset: number): FrameCheck {
  if (buffer.length - offset < frameHeaderBytes) return { ok: false, failure: "short-frame" };
  if (crc32(buffer.subarray(offset, offset + 8)) !== buffer.readUInt32LE(offset + 8)) return { ok: false, failure: "bad-frame" };
  const payloadBytes = buffer.readUInt32LE(offset);
  if (payloadBytes < 1 || payloadBytes > recordBytesMax) return { ok: false, failure: "bad-length", payloadBytes };
  const payloadStart = offset + frameHeaderBytes;
  const end = payloadStart + payloadBytes;
  if (end > buffer.length) return { ok: false, failure: "past-end", end };
  if (crc32(buffer.subarray(payloadStart, end)) !== buffer.readUInt32LE(offset + 4)) return { ok: false, failure: "bad-payload", end };
  return { ok: true, payloadStart, end };
}

/** Decodes a payload whose checksum matched. A DecodeError here means a layout we did not write. */
export function decodeRecord(buffer: Buffer, payloadStart: number, end: number): WalRecord {
  const reader = new ByteReader(buffer, payloadStart, end);
  const kind = reader.u8("record kind");
  let record: WalRecord;
  switch (kind) {
    case RecordKind.Checkpoint:
      record = { kind: "checkpoint", logLastIndex: reader.u53("checkpoint last index"), hardState: readHardState(reader) };
      break;
    case RecordKind.Vote:
      record = { kind: "vote", currentTerm: reader.u53("current term"), votedFor: readVotedFor(reader) };
      break;
    case RecordKind.SnapshotInstalled:
      record = { kind: "snapshot-installed", index: reader.u53("snapshot index"), term: reader.u53("snapshot term") };
      break;
    case RecordKind.Entries:
      record = { kind: "entries", entries: readEntries(reader) };
      break;
    case RecordKind.HardState:
      record = { kind: "hard-state", hardState: readHardState(reader) };
      break;
    default:
      throw new DecodeError(`unknown record kind ${kind} (written by a newer raftlock?)`, payloadStart);
  }
  reader.expectEnd("record");
  return record;
}

function readHardState(reader: ByteReader): HardState {
  const currentTerm = reader.u53("current term");
  const commitIndex = reader.u53("commit index");
  return { currentTerm, votedFor: readVotedFor(reader), commitIndex };
}

function readVotedFor(reader: ByteReader): string | null {
  return reader.bool("vote flag") ? reader.string("votedFor", nodeIdBytesMax) : null;
}

function readEntries(reader: ByteReader): Entry[] {
  const countAt = reader.position;
  const count = reader.count("entry count", entryBytesMin);
  if (count === 0) throw new DecodeError("an entries record with no entries", countAt);
  const entries: Entry[] = [];
  for (let k = 0; k < count; k++) {
    const at = reader.position;
    const entry = readEntry(reader);
    const previous = entries[k - 1];
    if (previous !== undefined && (entry.index !== previous.index + 1 || entry.term < previous.term)) {
      throw new DecodeError(`entry ${entry.index} (term ${entry.term}) does not follow entry ${previous.index} (term ${previous.term})`, at);
    }
    entries.push(entry);
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// File names: `segment-<seq>.wal`, seq counting up from 1 with no gaps among the files present.

const segmentNamePattern = /^segment-(\d{20})\.wal$/;

export function segmentFileName(seq: number): string {
  return `segment-${String(seq).padStart(20, "0")}.wal`;
}

/** The sequence number a segment file name carries, or null when the name is not one of ours. */
export function parseSegmentFileName(name: string): number | null {
  const match = segmentNamePattern.exec(name);
  return match === null ? null : Number(match[1]);
}

/** A new segment's first bytes: header and checkpoint, always written together with its first save. */
export function encodeSegmentStart(seq: number, logLastIndex: number, hardState: HardState): Buffer {
  const writer = new ByteWriter(256);
  writeSegmentHeader(writer, seq);
  writeRecord(writer, { kind: "checkpoint", logLastIndex, hardState });
  return Buffer.from(writer.view());
}
