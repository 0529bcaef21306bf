// Saving Ready batches: durability of term and vote, one synchronized write per save, Raft conflict truncation across
// restarts and segment boundaries, segment rollover, and the limits a save enforces.

import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Entry } from "../../src/raft/types.js";
import { Storage, StorageError, entryDataBytesMax, segmentBytesMaxLowest } from "../../src/storage/storage.js";
import { recoverDirectory } from "../../src/storage/recovery.js";
import { AssertionError } from "../../src/util/assert.js";
import { entries, entry, expectEntries, fileSize, hardState, newestSegment, open, recordsOf, recover, segmentPaths, snapshot, tempDir } from "./helpers.js";

afterEach(() => {
  vi.restoreAllMocks();
});

type HandleMethods = { write: (...args: unknown[]) => Promise<unknown>; datasync: () => Promise<void>; sync: () => Promise<void> };

/** The FileHandle class is not exported by node:fs; its prototype is reachable through any handle. */
async function fileHandlePrototype(dir: string): Promise<HandleMethods> {
  const handle = await fs.open(dir, "r");
  const prototype = Object.getPrototypeOf(handle) as HandleMethods;
  await handle.close();
  return prototype;
}

/** Linux's O_DSYNC (octal 010000): a write returns once its data is durable, as write + fdatasync. */
const oDsync = 0o10000;

/** The open flags of this process's descriptors on `filePath`, from /proc (Linux, where CI runs). */
async function openFlagsOf(filePath: string): Promise<number[]> {
  const flags: number[] = [];
  for (const fd of await fs.readdir("/proc/self/fd")) {
    const target = await fs.readlink(`/proc/self/fd/${fd}`).catch(() => null);
    if (target !== path.resolve(filePath)) continue;
    const info = await fs.readFile(`/proc/self/fdinfo/${fd}`, "utf8");
    flags.push(Number.parseInt(/^flags:\s+(\d+)$/m.exec(info)![1]!, 8));
  }
  return flags;
}

describe("save", () => {
  it("term and vote are never lost once save resolved", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir, { segmentBytesMax: segmentBytesMaxLowest });
    let lastIndex = 0;
    for (let term = 1; term <= 30; term++) {
      const votedFor = term % 3 === 0 ? null : `n${term % 3}`;
      // Some saves carry only the hard state (a vote), others entries too.
      const batch = term % 2 === 0 ? entries(lastIndex + 1, lastIndex + 10, term, 100) : [];
      await storage.save({ hardState: hardState(term, votedFor, lastIndex), snapshot: null, entries: batch });
      lastIndex += batch.length;
      // What a crash right now would leave: recovery of the directory as it is (the writer is neither
      // closed nor told; recovery is called directly, as the directory lock keeps a second storage out).
      const seen = await recoverDirectory(path.resolve(dir));
      expect(seen.recovered.hardState).toEqual(hardState(term, votedFor, lastIndex - batch.length));
      expect(seen.recovered.entries).toHaveLength(lastIndex);
    }
    expect((await segmentPaths(dir)).length).toBeGreaterThan(3);
    await storage.close();
  });

  it("term and vote survive compaction of the segments that recorded them", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir, { segmentBytesMax: segmentBytesMaxLowest });
    await storage.save({ hardState: hardState(7, "n3", 0), snapshot: null, entries: [] });
    // Entries only from here on: the vote's record ends up in a segment that compaction deletes.
    for (let index = 1; index <= 200; index += 10) {
      await storage.save({ hardState: null, snapshot: null, entries: entries(index, index + 9, 7, 100) });
    }
    await storage.saveSnapshot(snapshot(190, 7), 181);
    await storage.close();
    const paths = await segmentPaths(dir);
    expect(paths[0]).not.toMatch(/segment-0+1\.wal$/);
    const { recovered } = await recover(dir, { segmentBytesMax: segmentBytesMaxLowest });
    expect(recovered.hardState).toEqual(hardState(7, "n3", 0));
    expect(recovered.snapshot?.meta.index).toBe(190);
    expect(recovered.entries[0]!.index).toBeLessThanOrEqual(181);
    expect(recovered.entries[recovered.entries.length - 1]!.index).toBe(200);
  });

  it("one save is one synchronized write, however many entries it carries (group commit)", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    // The segment is written with O_DSYNC: each write is durable when it returns, so no fsync call follows.
    const flags = await openFlagsOf(await newestSegment(dir));
    expect(flags).toHaveLength(1);
    expect(flags[0]! & oDsync).toBe(oDsync);
    const prototype = await fileHandlePrototype(dir);
    const write = vi.spyOn(prototype, "write");
    const datasync = vi.spyOn(prototype, "datasync");
    const sync = vi.spyOn(prototype, "sync");
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 64, 1, 100) });
    expect(write).toHaveBeenCalledTimes(1);
    // A new term or vote alone is written and synced (pitfall 2).
    expect(await storage.save({ hardState: hardState(2, null, 0), snapshot: null, entries: [] })).toEqual({ synced: true });
    expect(write).toHaveBeenCalledTimes(2);
    // An empty batch has nothing to make durable.
    await storage.save({ hardState: null, snapshot: null, entries: [] });
    expect(write).toHaveBeenCalledTimes(2);
    expect(datasync).not.toHaveBeenCalled();
    expect(sync).not.toHaveBeenCalled();
    await storage.close();
  });

  it("a new segment is created with O_DSYNC too, so the writes after a rollover stay durable on return", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir, { segmentBytesMax: segmentBytesMaxLowest });
    let index = 1;
    while ((await segmentPaths(dir)).length < 2) {
      await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(index, index + 9, 1, 100) });
      index += 10;
    }
    const flags = await openFlagsOf(await newestSegment(dir));
    expect(flags).toHaveLength(1);
    expect(flags[0]! & oDsync).toBe(oDsync);
    await storage.close();
  });

  it("a batch that only advances the commit index waits in memory for the next write, which carries it", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 10, 1, 100) });
    const prototype = await fileHandlePrototype(dir);
    const write = vi.spyOn(prototype, "write");
    const sizeBefore = await fileSize(await newestSegment(dir));
    // Raft's commit index is volatile: a synchronized write for it would lengthen every commit.
    expect(await storage.save({ hardState: hardState(1, "n1", 10), snapshot: null, entries: [] })).toEqual({ synced: false });
    expect(write).not.toHaveBeenCalled();
    expect(await fileSize(await newestSegment(dir))).toBe(sizeBefore);
    // What a crash right now would leave (recovery called directly: the directory lock keeps out a second storage).
    expect((await recoverDirectory(path.resolve(dir))).recovered.hardState.commitIndex).toBe(0);
    expect(await storage.save({ hardState: null, snapshot: null, entries: entries(11, 12, 1, 100) })).toEqual({ synced: true });
    expect(write).toHaveBeenCalledTimes(1);
    expect((await recoverDirectory(path.resolve(dir))).recovered.hardState).toEqual(hardState(1, "n1", 10));
    await storage.close();
  });

  it("a clean close writes a commit index still in memory, so a restart applies as far as before", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 10, 1, 100) });
    await storage.save({ hardState: hardState(1, "n1", 7), snapshot: null, entries: [] });
    await storage.close();
    expect((await recover(dir)).recovered.hardState.commitIndex).toBe(7);
  });

  it("a new segment's checkpoint carries a commit index still in memory", async () => {
    const dir = await tempDir();
    const options = { segmentBytesMax: segmentBytesMaxLowest };
    const { storage } = await open(dir, options);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 30, 1, 100) });
    await storage.save({ hardState: hardState(1, "n1", 30), snapshot: null, entries: [] });
    await storage.save({ hardState: null, snapshot: null, entries: entries(31, 60, 1, 100) });
    expect(await segmentPaths(dir)).toHaveLength(2);
    // The checkpoint stands in for the old segments once they are compacted away.
    const checkpoint = (await recordsOf(await newestSegment(dir))).find((each) => each.record.kind === "checkpoint")!.record;
    expect(checkpoint.kind === "checkpoint" && checkpoint.hardState.commitIndex).toBe(30);
    await storage.close();
  });

  it("a save that starts a new segment adds only the directory sync that makes the new file durable", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir, { segmentBytesMax: segmentBytesMaxLowest });
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 30, 1, 100) });
    const prototype = await fileHandlePrototype(dir);
    const write = vi.spyOn(prototype, "write");
    const datasync = vi.spyOn(prototype, "datasync");
    const sync = vi.spyOn(prototype, "sync");
    await storage.save({ hardState: hardState(1, "n1", 30), snapshot: null, entries: entries(31, 60, 1, 100) });
    expect(await segmentPaths(dir)).toHaveLength(2);
    // The checkpoint and the batch go out in one synchronized write; the directory sync makes the file's name durable.
    expect(write).toHaveBeenCalledTimes(1);
    expect(datasync).not.toHaveBeenCalled();
    expect(sync).toHaveBeenCalledTimes(1);
    await storage.close();
  });

  it("entries overwritten from an index replay correctly across restarts and segment boundaries", async () => {
    const dir = await tempDir();
    const options = { segmentBytesMax: segmentBytesMaxLowest };
    let expected: Entry[] = [];
    const overwrite = (from: Entry[]) => {
      expected = [...expected.filter((each) => each.index < from[0]!.index), ...from];
    };
    let { storage } = await open(dir, options);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: [] });
    for (let index = 1; index <= 120; index += 10) {
      const batch = entries(index, index + 9, 1, 100);
      await storage.save({ hardState: null, snapshot: null, entries: batch });
      overwrite(batch);
    }
    const segmentsBefore = (await segmentPaths(dir)).length;
    expect(segmentsBefore).toBeGreaterThanOrEqual(3);

    // A new leader of term 2 replaces everything from index 15 (back in the first segment).
    const fromLeader2 = entries(15, 40, 2, 60);
    await storage.save({ hardState: hardState(2, "n2", 10), snapshot: null, entries: fromLeader2 });
    overwrite(fromLeader2);
    await storage.close();
    let seen = await recover(dir, options);
    expectEntries(seen.recovered.entries, expected);

    // After a restart: truncate again (into the batch above), then extend past the old end.
    ({ storage } = await open(dir, options));
    const fromLeader3 = entries(30, 35, 3, 60);
    await storage.save({ hardState: hardState(3, "n3", 20), snapshot: null, entries: fromLeader3 });
    overwrite(fromLeader3);
    const appended = entries(36, 150, 3, 100);
    for (let k = 0; k < appended.length; k += 15) {
      const batch = appended.slice(k, k + 15);
      await storage.save({ hardState: null, snapshot: null, entries: batch });
      overwrite(batch);
    }
    // A conflict exactly at the first entry of the newest segment, the truncation crossing the boundary.
    const newestRecords = await recordsOf(await newestSegment(dir));
    const firstInNewest = newestRecords.find((each) => each.record.kind === "entries")!.record;
    const boundaryIndex = firstInNewest.kind === "entries" ? firstInNewest.entries[0]!.index : 0;
    expect(boundaryIndex).toBeGreaterThan(36);
    const fromLeader4 = entries(boundaryIndex, boundaryIndex + 3, 4, 60);
    await storage.save({ hardState: hardState(4, "n1", 20), snapshot: null, entries: fromLeader4 });
    overwrite(fromLeader4);
    await storage.close();
    seen = await recover(dir, options);
    expectEntries(seen.recovered.entries, expected);
    expect(seen.recovered.hardState).toEqual(hardState(4, "n1", 20));
  });

  it("a truncated suffix makes its segments deletable once the retained index passes what is still live there", async () => {
    const dir = await tempDir();
    const options = { segmentBytesMax: segmentBytesMaxLowest };
    const { storage } = await open(dir, options);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: [] });
    for (let index = 1; index <= 200; index += 10) {
      await storage.save({ hardState: null, snapshot: null, entries: entries(index, index + 9, 1, 100) });
    }
    // Term 2 replaces 101..200 with a short run; the segments that held 101..200 now hold nothing live.
    await storage.save({ hardState: hardState(2, "n2", 100), snapshot: null, entries: entries(101, 105, 2, 100) });
    await storage.saveSnapshot(snapshot(105, 2), 104);
    await storage.close();
    expect(await segmentPaths(dir)).toHaveLength(1);
    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta.index).toBe(105);
    expectEntries(recovered.entries, entries(101, 105, 2, 100));
  });

  it("segments roll over at segmentBytesMax, and a batch larger than a segment gets one of its own", async () => {
    const dir = await tempDir();
    const options = { segmentBytesMax: segmentBytesMaxLowest };
    const { storage } = await open(dir, options);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: [] });
    for (let index = 1; index <= 100; index++) await storage.save({ hardState: null, snapshot: null, entries: [entry(index, 1, 100)] });
    const paths = await segmentPaths(dir);
    expect(paths.length).toBeGreaterThanOrEqual(3);
    for (const segmentPath of paths) expect(await fileSize(segmentPath)).toBeLessThanOrEqual(segmentBytesMaxLowest);

    await storage.save({ hardState: null, snapshot: null, entries: entries(101, 200, 1, 100) });
    const after = await segmentPaths(dir);
    expect(after).toHaveLength(paths.length + 1);
    expect(await fileSize(after[after.length - 1]!)).toBeGreaterThan(segmentBytesMaxLowest);
    await storage.close();
    expect((await recover(dir, options)).recovered.entries).toHaveLength(200);
  });

  it("a batch larger than one record is split over several records and replays whole", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    const big = [entry(1, 1, 3 << 20), entry(2, 1, 3 << 20), entry(3, 1, 3 << 20), entry(4, 1, 5)];
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: big });
    await storage.close();
    const kinds = (await recordsOf(await newestSegment(dir))).map((each) => each.record.kind);
    expect(kinds).toEqual(["checkpoint", "vote", "entries", "entries", "hard-state"]);
    expectEntries((await recover(dir)).recovered.entries, big);
  });

  it("an entry larger than one record is refused before anything is written", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: [entry(1, 1)] });
    const sizeBytes = await fileSize(await newestSegment(dir));
    const tooBig = entry(2, 1, entryDataBytesMax + 1);
    await expect(storage.save({ hardState: null, snapshot: null, entries: [tooBig] })).rejects.toThrow(
      new StorageError(`entry 2 carries ${entryDataBytesMax + 1} bytes, above the ${entryDataBytesMax} one WAL record holds; lower the proposal size limit (proposalBytesMax)`),
    );
    expect(await fileSize(await newestSegment(dir))).toBe(sizeBytes);
    // Refusing a batch is not a write failure: the next save goes through.
    await storage.save({ hardState: null, snapshot: null, entries: [entry(2, 1)] });
  });

  it("overlapping saves are a bug in the driver and fail an assertion", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    const first = storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 3, 1) });
    await expect(storage.save({ hardState: null, snapshot: null, entries: entries(4, 4, 1) })).rejects.toThrow(AssertionError);
    await first;
  });

  it("a gap between the stored log and the entries to save fails an assertion", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 3, 1) });
    await expect(storage.save({ hardState: null, snapshot: null, entries: entries(5, 6, 1) })).rejects.toThrow(/a gap/);
  });

  it("after a failed synchronized write every later save is refused until the node restarts", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: entries(1, 3, 1) });
    const prototype = await fileHandlePrototype(dir);
    // With O_DSYNC a failed flush to disk is reported by the write itself (fsyncgate: never retried).
    vi.spyOn(prototype, "write").mockRejectedValueOnce(new Error("EIO: i/o error, write"));
    await expect(storage.save({ hardState: null, snapshot: null, entries: entries(4, 5, 1) })).rejects.toThrow(/accepts no more writes. Restart the node/);
    await expect(storage.save({ hardState: null, snapshot: null, entries: entries(4, 5, 1) })).rejects.toThrow(/EIO/);
    await storage.close();
    // What reached the file is unknown to the writer; recovery reads whatever is intact.
    expect((await recover(dir)).recovered.entries.length).toBeGreaterThanOrEqual(3);
  });

  it("options out of range are refused with a message that says what is allowed", async () => {
    const dir = await tempDir();
    await expect(Storage.open({ dir, segmentBytesMax: 100 })).rejects.toThrow(
      "segmentBytesMax must be an integer between 4096 and 1073741824 (got 100)",
    );
    await expect(Storage.open({ dir: "" })).rejects.toThrow(StorageError);
  });

  it("a fresh directory, created with its missing parents, opens empty", async () => {
    const dir = `${await tempDir()}/a/b/data`;
    const { recovered, repairedTail, ignoredSnapshots } = await recover(dir);
    expect(recovered).toEqual({ hardState: hardState(0, null, 0), snapshot: null, entries: [] });
    expect(repairedTail).toBeNull();
    expect(ignoredSnapshots).toEqual([]);
    expect(await segmentPaths(dir)).toHaveLength(1);
  });
});
