// Recovery of the write-ahead log after crashes and damage: torn tails are cut and kept aside, anything
// else refuses to start with the file and byte offset, and each repaired log keeps working across restarts.

import { promises as fs } from "node:fs";
import { crc32 } from "node:zlib";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { StorageCorruptError } from "../../src/storage/storage.js";
import { ByteWriter } from "../../src/util/bytes.js";
import { segmentFileName, segmentHeaderBytes, writeRecord, writeSegmentHeader, type WalRecord } from "../../src/storage/wal-format.js";
import {
  directoryContents,
  entries,
  expectEntries,
  fileSize,
  flipBit,
  hardState,
  newestSegment,
  open,
  recordsOf,
  recover,
  segmentPaths,
  tempDir,
} from "./helpers.js";

/** Two saves, then a third whose records (vote, entries 6..8, hard state) the tests tear apart. */
async function writeThreeSaves(dir: string): Promise<{ lastSaveStartBytes: number }> {
  const { storage } = await open(dir);
  await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 3, 1) });
  await storage.save({ hardState: hardState(1, "n1", 3), snapshot: null, entries: entries(4, 5, 1) });
  const lastSaveStartBytes = await fileSize(await newestSegment(dir));
  await storage.save({ hardState: hardState(2, "n2", 6), snapshot: null, entries: entries(6, 8, 2) });
  await storage.close();
  return { lastSaveStartBytes };
}

/** After a repair the log must keep working: append, restart, and find everything. */
async function expectUsableAfterRepair(dir: string, lastIndex: number, term: number): Promise<void> {
  const { storage } = await open(dir);
  await storage.save({ hardState: hardState(term + 1, null, lastIndex), snapshot: null, entries: entries(lastIndex + 1, lastIndex + 2, term + 1) });
  await storage.close();
  const again = await recover(dir);
  expect(again.repairedTail).toBeNull();
  expect(again.recovered.hardState).toEqual(hardState(term + 1, null, lastIndex));
  expect(again.recovered.entries.map((each) => each.index)).toEqual(Array.from({ length: lastIndex + 2 }, (_, k) => k + 1));
}

describe("WAL recovery", () => {
  it("a clean restart recovers entries and hard state with nothing to repair", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const { recovered, repairedTail } = await recover(dir);
    expect(repairedTail).toBeNull();
    expect(recovered.hardState).toEqual(hardState(2, "n2", 6));
    expect(recovered.snapshot).toBeNull();
    expectEntries(recovered.entries, [...entries(1, 5, 1), ...entries(6, 8, 2)]);
  });

  it("a tail torn at any byte of the last save recovers exactly the records before the torn one", async () => {
    const source = await tempDir();
    const { lastSaveStartBytes } = await writeThreeSaves(source);
    const segmentPath = await newestSegment(source);
    const full = await fs.readFile(segmentPath);
    const records = (await recordsOf(segmentPath)).filter((record) => record.offsetBytes >= lastSaveStartBytes);
    expect(records.map((record) => record.record.kind)).toEqual(["vote", "entries", "hard-state"]);
    const [voteRecord, entriesRecord] = records;

    for (let cutBytes = lastSaveStartBytes; cutBytes < full.length; cutBytes++) {
      const dir = await tempDir();
      const torn = path.join(dir, path.basename(segmentPath));
      await fs.writeFile(torn, full.subarray(0, cutBytes));

      const { recovered, repairedTail } = await recover(dir);
      // Records of the torn save survive in order: the vote first, then the entries; the hard state never.
      const keptVote = cutBytes >= voteRecord!.endBytes;
      const keptEntries = cutBytes >= entriesRecord!.endBytes;
      const validBytes = keptEntries ? entriesRecord!.endBytes : keptVote ? voteRecord!.endBytes : lastSaveStartBytes;
      expect(recovered.hardState).toEqual(keptVote ? hardState(2, "n2", 3) : hardState(1, "n1", 3));
      expectEntries(recovered.entries, keptEntries ? [...entries(1, 5, 1), ...entries(6, 8, 2)] : entries(1, 5, 1));
      if (cutBytes === validBytes) {
        expect(repairedTail).toBeNull();
      } else {
        expect(repairedTail).toEqual({ file: torn, bytesCut: cutBytes - validBytes });
        expect(await fs.readFile(`${torn}.broken`)).toEqual(full.subarray(validBytes, cutBytes));
        expect(await fileSize(torn)).toBe(validBytes);
      }
      await expectUsableAfterRepair(dir, keptEntries ? 8 : 5, keptVote ? 2 : 1);
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("a final record that fails its checksum is cut and kept aside in <segment>.broken", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const segmentPath = await newestSegment(dir);
    const records = await recordsOf(segmentPath);
    const last = records[records.length - 1]!;
    await flipBit(segmentPath, last.endBytes - 1, 3);

    const { recovered, repairedTail } = await recover(dir);
    expect(repairedTail).toEqual({ file: segmentPath, bytesCut: last.endBytes - last.offsetBytes });
    expect(recovered.hardState).toEqual(hardState(2, "n2", 3));
    expect(recovered.entries).toHaveLength(8);
    expect(await fileSize(`${segmentPath}.broken`)).toBe(last.endBytes - last.offsetBytes);
    await expectUsableAfterRepair(dir, 8, 2);
  });

  it("a zeroed tail (4 KiB of zeros after a power loss) is cut and recovery carries on", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const segmentPath = await newestSegment(dir);
    const sizeBytes = await fileSize(segmentPath);
    await fs.appendFile(segmentPath, Buffer.alloc(4096));

    const { recovered, repairedTail } = await recover(dir);
    expect(repairedTail).toEqual({ file: segmentPath, bytesCut: 4096 });
    expect(await fs.readFile(`${segmentPath}.broken`)).toEqual(Buffer.alloc(4096));
    expect(await fileSize(segmentPath)).toBe(sizeBytes);
    expect(recovered.hardState).toEqual(hardState(2, "n2", 6));
    expect(recovered.entries).toHaveLength(8);
    await expectUsableAfterRepair(dir, 8, 2);
  });

  it("a second repair of the same segment keeps the first .broken copy", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const segmentPath = await newestSegment(dir);
    await fs.appendFile(segmentPath, Buffer.alloc(100));
    await recover(dir);
    await fs.appendFile(segmentPath, Buffer.from([1, 2, 3]));
    const { repairedTail } = await recover(dir);
    expect(repairedTail).toEqual({ file: segmentPath, bytesCut: 3 });
    expect(await fileSize(`${segmentPath}.broken`)).toBe(100);
    expect(await fs.readFile(`${segmentPath}.broken.1`)).toEqual(Buffer.from([1, 2, 3]));
  });

  it("a flipped bit in a middle record refuses to start, naming the file and byte offset, and changes nothing", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const segmentPath = await newestSegment(dir);
    const records = await recordsOf(segmentPath);
    const middle = records[3]!;
    for (const [flipAt, problem] of [
      [middle.endBytes - 2, "checksum does not match its contents"],
      [middle.offsetBytes + 1, "frame (length and checksum) fails its own checksum"],
    ] as const) {
      await flipBit(segmentPath, flipAt);
      const before = await directoryContents(dir);
      const refusal = await open(dir).catch((error: unknown) => error);
      expect(refusal).toBeInstanceOf(StorageCorruptError);
      const corrupt = refusal as StorageCorruptError;
      expect(corrupt.file).toBe(segmentPath);
      expect(corrupt.offsetBytes).toBe(middle.offsetBytes);
      expect(corrupt.message).toContain(`${segmentPath} at byte ${middle.offsetBytes}`);
      expect(corrupt.message).toContain(problem);
      expect(corrupt.message).toContain("restore this node's data directory from a backup");
      expect(await directoryContents(dir)).toEqual(before);
      await flipBit(segmentPath, flipAt);
    }
    expect((await recover(dir)).recovered.entries).toHaveLength(8);
  });

  it("damage at the end of an older segment refuses: only the newest segment can have a torn tail", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir, { segmentBytesMax: 4096 });
    for (let index = 1; index <= 100; index += 5) {
      await storage.save({ hardState: hardState(1, "n1", index - 1), snapshot: null, entries: entries(index, index + 4, 1, 100) });
    }
    await storage.close();
    const paths = await segmentPaths(dir);
    expect(paths.length).toBeGreaterThanOrEqual(3);
    const older = paths[0]!;
    const records = await recordsOf(older);
    const last = records[records.length - 1]!;
    await flipBit(older, last.endBytes - 1);
    const refusal = await open(dir, { segmentBytesMax: 4096 }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(StorageCorruptError);
    expect((refusal as Error).message).toContain(`${older} at byte ${last.offsetBytes}`);
    expect((refusal as Error).message).toContain("not the newest segment");
  });

  it("a new segment torn inside its header is removed, and the previous segment takes the next save", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await storage.save({ hardState: hardState(1, "n1", 2), snapshot: null, entries: entries(1, 4, 1) });
    await storage.close();
    const first = await newestSegment(dir);
    const second = path.join(dir, segmentFileName(2));
    const header = (await fs.readFile(first)).subarray(0, 10);
    await fs.writeFile(second, Buffer.concat([header, Buffer.alloc(500)]));

    const { recovered, repairedTail } = await recover(dir);
    expect(repairedTail).toEqual({ file: second, bytesCut: 510 });
    expect(await segmentPaths(dir)).toEqual([first]);
    expect(recovered.entries).toHaveLength(4);
    await expectUsableAfterRepair(dir, 4, 1);
  });

  it("a segment missing from the middle of the sequence refuses to start", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir, { segmentBytesMax: 4096 });
    for (let index = 1; index <= 100; index += 5) {
      await storage.save({ hardState: hardState(1, null, 0), snapshot: null, entries: entries(index, index + 4, 1, 100) });
    }
    await storage.close();
    const paths = await segmentPaths(dir);
    await fs.rm(paths[1]!);
    await expect(open(dir, { segmentBytesMax: 4096 })).rejects.toThrow(/WAL segment 2 is missing between/);
  });

  it("a segment in a newer format version is refused with a message saying so", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const segmentPath = await newestSegment(dir);
    const buffer = await fs.readFile(segmentPath);
    buffer.writeUInt16LE(2, 4);
    await fs.writeFile(segmentPath, buffer);
    await expect(open(dir)).rejects.toThrow(/WAL format version 2, and this raftlock reads only version 1/);
  });

  // Found by the WAL fuzz target (test/fuzz/wal.ts): the header's DecodeError escaped recovery as is,
  // instead of the StorageCorruptError naming the file that the operator's advice hangs on.
  it("a checksum-valid header whose segment number is not a safe integer is refused as damage, naming the file", async () => {
    const dir = await tempDir();
    await writeThreeSaves(dir);
    const segmentPath = await newestSegment(dir);
    const buffer = await fs.readFile(segmentPath);
    buffer.writeUInt32LE(0xffff_ffff, 12);
    buffer.writeUInt32LE(crc32(buffer.subarray(0, 20)), 20);
    await fs.writeFile(segmentPath, buffer);
    const refusal = open(dir);
    await expect(refusal).rejects.toThrow(StorageCorruptError);
    await expect(refusal).rejects.toThrow(/at byte 0: the segment header does not decode \(segment sequence number is .* above the largest safe integer/);
  });

  it("a file that is not a segment under a segment's name is refused", async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, segmentFileName(1)), "hello, this is not a WAL segment at all");
    await expect(open(dir)).rejects.toThrow(/not a raftlock WAL segment/);
    expect(segmentHeaderBytes).toBe(24);
  });
});

describe("WAL recovery of a save that began a new segment", () => {
  it("a new segment torn at any byte is cut or removed, and the log carries on from the previous segment", async () => {
    const source = await tempDir();
    const options = { segmentBytesMax: 4096 };
    const { storage } = await open(source, options);
    // The first save overfills segment 1 on its own; the second, small one must begin segment 2.
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 34, 1, 100) });
    await storage.save({ hardState: hardState(2, "n2", 30), snapshot: null, entries: entries(35, 36, 2, 20) });
    await storage.close();
    const [firstPath, secondPath, ...more] = await segmentPaths(source);
    expect(secondPath).toBeDefined();
    expect(more).toEqual([]);
    const first = await fs.readFile(firstPath!);
    const second = await fs.readFile(secondPath!);
    const checkpointEndBytes = (await recordsOf(secondPath!))[0]!.endBytes;

    for (let cutBytes = 0; cutBytes < second.length; cutBytes++) {
      const dir = await tempDir();
      await fs.writeFile(path.join(dir, path.basename(firstPath!)), first);
      await fs.writeFile(path.join(dir, path.basename(secondPath!)), second.subarray(0, cutBytes));
      const { recovered, repairedTail } = await recover(dir, options);
      expect(recovered.entries.length === 34 || recovered.entries.length === 36).toBe(true);
      if (cutBytes < checkpointEndBytes) {
        // Without its checkpoint the segment holds nothing: it goes, whole.
        expect(repairedTail).toEqual({ file: path.join(dir, path.basename(secondPath!)), bytesCut: cutBytes });
        expect(await segmentPaths(dir)).toHaveLength(1);
        expect(recovered.hardState).toEqual(hardState(1, "n1", 0));
      }
      await expectUsableAfterRepair(dir, recovered.entries.length, recovered.hardState.currentTerm);
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("WAL recovery of states the consensus core must never see", () => {
  /** A single segment holding exactly `records` after its checkpoint. */
  async function craftSegment(dir: string, records: readonly WalRecord[]): Promise<void> {
    const writer = new ByteWriter();
    writeSegmentHeader(writer, 1);
    writeRecord(writer, { kind: "checkpoint", logLastIndex: 0, hardState: hardState(0, null, 0) });
    for (const record of records) writeRecord(writer, record);
    await fs.writeFile(path.join(dir, segmentFileName(1)), writer.view());
  }

  it("entries of a term above the durable current term are refused, not handed to the core", async () => {
    const dir = await tempDir();
    await craftSegment(dir, [{ kind: "entries", entries: entries(1, 2, 5) }]);
    await expect(open(dir)).rejects.toThrow(/the log's last term 5 is above the hard state's current term 0/);
  });

  it("a commit index past the durable log is refused", async () => {
    const dir = await tempDir();
    await craftSegment(dir, [{ kind: "entries", entries: entries(1, 2, 0) }, { kind: "hard-state", hardState: hardState(1, null, 3) }]);
    await expect(open(dir)).rejects.toThrow(/commit index 3 is past the log's last index 2/);
  });

  it("entries that leave a gap after the stored log are refused", async () => {
    const dir = await tempDir();
    await craftSegment(dir, [
      { kind: "vote", currentTerm: 1, votedFor: null },
      { kind: "entries", entries: entries(1, 2, 1) },
      { kind: "entries", entries: entries(4, 5, 1) },
    ]);
    await expect(open(dir)).rejects.toThrow(/entries start at index 4 but the log ends at 2 \(a gap\)/);
  });
});
