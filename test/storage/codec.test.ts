// The binary formats on their own: records and snapshot files round-trip, and bytes we never wrote are
// recognised as such instead of being misread.

import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { EntryType } from "../../src/raft/types.js";
import { ByteReader, ByteWriter, DecodeError } from "../../src/util/bytes.js";
import { decodeSnapshotFile, encodeSnapshotHeader, memberAddressBytesMax } from "../../src/storage/snapshot-file.js";
import { checkFrame, decodeRecord, frameHeaderBytes, nodeIdBytesMax, recordBytesMax, writeRecord, type WalRecord } from "../../src/storage/wal-format.js";

function roundTrip(record: WalRecord): WalRecord {
  const writer = new ByteWriter(16);
  writeRecord(writer, record);
  const bytes = Buffer.from(writer.view());
  const frame = checkFrame(bytes, 0);
  if (!frame.ok) throw new Error(`frame check failed: ${frame.failure}`);
  expect(frame.end).toBe(bytes.length);
  return decodeRecord(bytes, frame.payloadStart, frame.end);
}

describe("WAL record format", () => {
  it("every record kind round-trips, with indexes and terms up to 2^53 - 1 and non-ASCII node ids", () => {
    const top = Number.MAX_SAFE_INTEGER;
    const records: WalRecord[] = [
      { kind: "checkpoint", logLastIndex: top, hardState: { currentTerm: top, votedFor: "nœud-1", commitIndex: top - 1 } },
      { kind: "vote", currentTerm: 2 ** 32, votedFor: null },
      { kind: "snapshot-installed", index: 2 ** 32 + 1, term: 7 },
      {
        kind: "entries",
        entries: [
          { index: top - 1, term: 3, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) },
          { index: top, term: 4, type: EntryType.Empty, data: new Uint8Array(0) },
        ],
      },
      { kind: "hard-state", hardState: { currentTerm: 0, votedFor: "", commitIndex: 0 } },
    ];
    for (const record of records) expect(roundTrip(record)).toEqual(record);
  });

  it("an integer at or above 2^53 on disk is a decode error, not a silently rounded number", () => {
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32LE(0, 0);
    bytes.writeUInt32LE(0x20_0000, 4);
    expect(() => new ByteReader(bytes, 0, 8).u53("index")).toThrow(DecodeError);
  });

  it("a frame claiming more than recordBytesMax is recognised as never written by us", () => {
    const writer = new ByteWriter(16);
    writeRecord(writer, { kind: "vote", currentTerm: 1, votedFor: null });
    const bytes = Buffer.from(writer.view());
    bytes.writeUInt32LE(recordBytesMax + 1, 0);
    // Re-seal the frame so that only the length is wrong.
    bytes.writeUInt32LE(crc32(bytes.subarray(0, 8)), 8);
    expect(checkFrame(bytes, 0)).toEqual({ ok: false, failure: "bad-length", payloadBytes: recordBytesMax + 1 });
  });

  it("entries that are not contiguous inside one record do not decode", () => {
    const writer = new ByteWriter(16);
    writeRecord(writer, {
      kind: "entries",
      entries: [
        { index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) },
        { index: 2, term: 1, type: EntryType.Normal, data: new Uint8Array(0) },
      ],
    });
    const bytes = Buffer.from(writer.view());
    // Second entry's index: frame, kind, count, first entry (8 + 8 + 1 + 4).
    bytes.writeUInt32LE(5, frameHeaderBytes + 1 + 4 + 21);
    expect(() => decodeRecord(bytes, frameHeaderBytes, bytes.length)).toThrow(/entry 5 \(term 1\) does not follow entry 1/);
  });
});

describe("snapshot file format", () => {
  it("files too short, of another kind or of a newer version are told apart", () => {
    expect(decodeSnapshotFile(Buffer.alloc(10), 1)).toEqual({ ok: false, problem: "the file is 10 bytes, shorter than a snapshot header" });
    expect(decodeSnapshotFile(Buffer.alloc(100), 1)).toEqual({ ok: false, problem: "the file does not start with the snapshot magic number" });
    const newer = Buffer.alloc(100);
    newer.writeUInt32LE(0x4e_53_4c_52, 0);
    newer.writeUInt16LE(9, 4);
    expect(decodeSnapshotFile(newer, 1)).toEqual({ ok: false, problem: "the snapshot is in format version 9; this raftlock reads versions 1 and 2" });
  });

  it("reads a version 1 file (before member addresses were stored) as a configuration without addresses", () => {
    // Version 1, hand-assembled: header, voters ["n1"], learners [], 2 bytes of data, CRC.
    const config = Buffer.from([1, 0, 2, 0, ...Buffer.from("n1"), 0, 0]);
    const data = Buffer.from("ok");
    const header = Buffer.alloc(4 + 2 + 2 + 8 + 8 + 4 + 4);
    header.writeUInt32LE(0x4e_53_4c_52, 0);
    header.writeUInt16LE(1, 4);
    header.writeUInt32LE(7, 8); // index, low word of the u53
    header.writeUInt32LE(2, 16); // term
    header.writeUInt32LE(config.length, 24);
    header.writeUInt32LE(data.length, 28);
    const body = Buffer.concat([header, config, data]);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(crc32(body));
    const read = decodeSnapshotFile(Buffer.concat([body, trailer]), 7);
    expect(read).toMatchObject({ ok: true, snapshot: { meta: { index: 7, term: 2, config: { voters: ["n1"], learners: [], addresses: {} } } } });
  });

  // Found by the fuzz tests (test/fuzz/snapshot.ts): addresses were read into a plain object, so a member
  // called "__proto__" lost its address, and a member named twice silently kept the second one.
  it("keeps the address of a member with any id, and refuses a file that names a member's address twice or sets the reserved field", () => {
    const addresses = Object.fromEntries([["__proto__", "10.0.0.9:7000"], ["n1", "10.0.0.1:7000"]]);
    const file = (config: Buffer): Buffer => {
      const header = encodeSnapshotHeader({ meta: { index: 3, term: 1, config: { voters: [], learners: [], addresses: {} } }, data: new Uint8Array(0) });
      header.writeUInt32LE(config.length, 24);
      const body = Buffer.concat([header.subarray(0, 32), config]);
      const trailer = Buffer.alloc(4);
      trailer.writeUInt32LE(crc32(body));
      return Buffer.concat([body, trailer]);
    };
    const configOf = (pairs: [string, string][]): Buffer => {
      const writer = new ByteWriter(256);
      writer.u16(1);
      writer.string("n1", nodeIdBytesMax);
      writer.u16(0);
      writer.u16(pairs.length);
      for (const [id, address] of pairs) {
        writer.string(id, nodeIdBytesMax);
        writer.string(address, memberAddressBytesMax);
      }
      return Buffer.from(writer.view());
    };
    const read = decodeSnapshotFile(file(configOf(Object.entries(addresses))), 3);
    expect(read.ok && Object.entries(read.snapshot.meta.config.addresses)).toEqual([["__proto__", "10.0.0.9:7000"], ["n1", "10.0.0.1:7000"]]);
    expect(read.ok && Object.getPrototypeOf(read.snapshot.meta.config.addresses)).toBe(Object.prototype);
    const reserved = file(configOf([]));
    reserved.writeUInt16LE(1, 6);
    reserved.writeUInt32LE(crc32(reserved.subarray(0, reserved.length - 4)), reserved.length - 4);
    expect(decodeSnapshotFile(reserved, 3)).toEqual({ ok: false, problem: "the snapshot header's reserved field is not zero: a layout this raftlock did not write" });
    const twice = decodeSnapshotFile(file(configOf([["n1", "10.0.0.1:7000"], ["n1", "10.0.0.2:7000"]])), 3);
    expect(twice).toEqual({ ok: false, problem: expect.stringMatching(/does not decode \(the addresses name member "n1" twice\)/) });
  });
});
