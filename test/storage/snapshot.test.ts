// Snapshots: written atomically, loaded newest-valid-first at start, compaction of older snapshots and
// segments, snapshots received from a leader, and what happens when a snapshot file is damaged.

import { promises as fs } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { StorageCorruptError, segmentBytesMaxLowest, snapshotFileName } from "../../src/storage/storage.js";
import { decodeSnapshotFile } from "../../src/storage/snapshot-file.js";
import { directoryContents, entries, expectEntries, fileSize, flipBit, hardState, open, recover, segmentPaths, snapshot, tempDir } from "./helpers.js";

const options = { segmentBytesMax: segmentBytesMaxLowest };

/** Entries 1..lastIndex of term 1 in batches of 10, 100 bytes each: about 35 entries per 4 KiB segment. */
async function writeLog(dir: string, lastIndex: number): Promise<Awaited<ReturnType<typeof open>>["storage"]> {
  const { storage } = await open(dir, options);
  await storage.save({ hardState: hardState(1, "n1", 0), snapshot: null, entries: [] });
  for (let index = 1; index <= lastIndex; index += 10) {
    await storage.save({ hardState: hardState(1, "n1", index - 1), snapshot: null, entries: entries(index, index + 9, 1, 100) });
  }
  return storage;
}

async function snapshotNames(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((name) => name.startsWith("snapshot-")).sort();
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** Holds the next FileHandle.sync() (a snapshot file's; WAL saves use none) until `release` is called. */
async function holdNextFileSync(dir: string): Promise<{ release: () => void; reached: Promise<void> }> {
  const handle = await fs.open(dir, "r");
  const prototype = Object.getPrototypeOf(handle) as { sync: () => Promise<void> };
  await handle.close();
  const original = prototype.sync;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reachedResolve!: () => void;
  const reached = new Promise<void>((resolve) => {
    reachedResolve = resolve;
  });
  vi.spyOn(prototype, "sync").mockImplementationOnce(async function (this: unknown) {
    reachedResolve();
    await gate;
    return original.call(this);
  });
  return { release, reached };
}

describe("snapshots", () => {
  it("a saved snapshot is loaded at start together with the retained log", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 100);
    await storage.saveSnapshot(snapshot(80, 1, "lock table at 80"), 61);
    await storage.close();
    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta).toEqual({ index: 80, term: 1, config: { voters: ["n1", "n2", "n3"], learners: [], addresses: {} } });
    expect(new TextDecoder().decode(recovered.snapshot?.data)).toBe("lock table at 80");
    // Whole segments are deleted, so the retained log may start a little below retainFromIndex.
    expect(recovered.entries[0]!.index).toBeLessThanOrEqual(61);
    expect(recovered.entries[0]!.index).toBeGreaterThan(1);
    expectEntries(recovered.entries, entries(recovered.entries[0]!.index, 100, 1, 100));
  });

  it("compaction deletes older snapshots and the segments wholly below the retained index, and keeps the rest", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 400);
    await storage.saveSnapshot(snapshot(100, 1), 1);
    expect(await snapshotNames(dir)).toEqual([snapshotFileName(100)]);
    const segmentsBefore = await segmentPaths(dir);

    await storage.saveSnapshot(snapshot(300, 1), 251);
    expect(await snapshotNames(dir)).toEqual([snapshotFileName(300)]);
    const segmentsAfter = await segmentPaths(dir);
    expect(segmentsAfter.length).toBeLessThan(segmentsBefore.length);
    // What is left is a suffix of what was there: only the oldest segments go.
    expect(segmentsAfter).toEqual(segmentsBefore.slice(segmentsBefore.length - segmentsAfter.length));
    await storage.close();

    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta.index).toBe(300);
    expect(recovered.entries[0]!.index).toBeLessThanOrEqual(251);
    // One segment holds about 35 entries: no more than one segment's worth below the retained index is kept.
    expect(recovered.entries[0]!.index).toBeGreaterThan(251 - 40);
    expect(recovered.entries.at(-1)!.index).toBe(400);
    expect(recovered.hardState).toEqual(hardState(1, "n1", 390));
  });

  it("a snapshot received from the leader discards every stored entry, and the log continues from it across restarts", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 200);
    // The leader's log diverged from ours after index 100: its snapshot at 150 has term 3.
    await storage.save({ hardState: hardState(3, "n2", 150), snapshot: snapshot(150, 3), entries: [] });
    expect(await segmentPaths(dir)).toHaveLength(1);
    await storage.save({ hardState: hardState(3, "n2", 155), snapshot: null, entries: entries(151, 160, 3, 100) });
    await storage.close();

    let seen = await recover(dir, options);
    expect(seen.recovered.snapshot?.meta.index).toBe(150);
    expect(seen.recovered.hardState).toEqual(hardState(3, "n2", 155));
    expectEntries(seen.recovered.entries, entries(151, 160, 3, 100));

    const { storage: again } = await open(dir, options);
    for (let index = 161; index <= 300; index += 10) {
      await again.save({ hardState: null, snapshot: null, entries: entries(index, index + 9, 3, 100) });
    }
    await again.close();
    seen = await recover(dir, options);
    expect(seen.recovered.snapshot?.meta.index).toBe(150);
    expectEntries(seen.recovered.entries, entries(151, 300, 3, 100));
  });

  it("a snapshot file whose save never finished (no installed record in the log) is removed and the previous state stands", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 50);
    const walBefore = new Map<string, Buffer>();
    for (const segmentPath of await segmentPaths(dir)) walBefore.set(segmentPath, await fs.readFile(segmentPath));
    await storage.save({ hardState: hardState(2, "n2", 120), snapshot: snapshot(120, 2), entries: [] });
    await storage.close();
    // The crash came after the snapshot file was durable but before the WAL write reached the disk.
    for (const [segmentPath, bytes] of walBefore) await fs.writeFile(segmentPath, bytes);

    const { recovered, ignoredSnapshots } = await recover(dir, options);
    expect(recovered.snapshot).toBeNull();
    expect(recovered.hardState).toEqual(hardState(1, "n1", 40));
    expect(recovered.entries).toHaveLength(50);
    expect(ignoredSnapshots).toEqual([
      { file: path.join(dir, snapshotFileName(120)), problem: expect.stringContaining("no record of installing it"), keptAs: null },
    ]);
    expect(await snapshotNames(dir)).toEqual([]);
  });

  it("a snapshot file with a bad checksum is ignored in favour of the previous valid one when the log reaches back to it", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 100);
    await storage.saveSnapshot(snapshot(50, 1), 1);
    const older = path.join(dir, snapshotFileName(50));
    const olderBytes = await fs.readFile(older);
    await storage.saveSnapshot(snapshot(90, 1), 1);
    await storage.close();
    // A crash before the older snapshot was deleted, then the newer one rots.
    await fs.writeFile(older, olderBytes);
    const newer = path.join(dir, snapshotFileName(90));
    await flipBit(newer, (await fileSize(newer)) - 8);

    const { recovered, ignoredSnapshots } = await recover(dir, options);
    expect(recovered.snapshot?.meta.index).toBe(50);
    expectEntries(recovered.entries, entries(1, 100, 1, 100));
    expect(ignoredSnapshots).toEqual([{ file: newer, problem: "the snapshot's checksum does not match its contents", keptAs: `${newer}.broken` }]);
    expect(await snapshotNames(dir)).toEqual([snapshotFileName(50), `${snapshotFileName(90)}.broken`]);
  });

  it("a damaged snapshot the log cannot do without refuses to start, naming the file, and changes nothing", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 200);
    await storage.saveSnapshot(snapshot(150, 1), 141);
    await storage.close();
    const damaged = path.join(dir, snapshotFileName(150));
    await flipBit(damaged, 40);
    const before = await directoryContents(dir);

    const refusal = await open(dir, options).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(StorageCorruptError);
    const message = (refusal as Error).message;
    expect(message).toMatch(/the log starts at index \d+, but there is no readable snapshot, so the entries in between exist nowhere/);
    expect(message).toContain(`; skipped ${snapshotFileName(150)}: the snapshot's checksum does not match its contents. raftlock will not start`);
    expect(await directoryContents(dir)).toEqual(before);
  });

  it("a received snapshot the log was reset to cannot be skipped: a damaged one refuses to start", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 30);
    await storage.saveSnapshot(snapshot(20, 1), 1);
    const olderBytes = await fs.readFile(path.join(dir, snapshotFileName(20)));
    await storage.save({ hardState: hardState(2, "n2", 100), snapshot: snapshot(100, 2), entries: [] });
    await storage.close();
    await fs.writeFile(path.join(dir, snapshotFileName(20)), olderBytes);
    await flipBit(path.join(dir, snapshotFileName(100)), 30);
    await expect(open(dir, options)).rejects.toThrow(/the log continues from index 100, but the newest readable snapshot is at index 20/);
  });

  it("saveSnapshot waits for a save in flight, so it can snapshot entries that save is making durable", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 10);
    const saving = storage.save({ hardState: hardState(1, "n1", 20), snapshot: null, entries: entries(11, 20, 1, 100) });
    await storage.saveSnapshot(snapshot(20, 1), 16);
    await saving;
    await storage.close();
    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta.index).toBe(20);
    expect(recovered.entries.at(-1)!.index).toBe(20);
  });

  it("WAL saves go on while a snapshot file is being written, and close waits for the snapshot", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 50);
    const held = await holdNextFileSync(dir);
    let snapshotSaved = false;
    const saving = storage.saveSnapshot(snapshot(40, 1, "lock table at 40"), 31).then(() => {
      snapshotSaved = true;
    });
    await held.reached;
    // A slow snapshot write does not hold up commits: this save is durable while the snapshot is not.
    await storage.save({ hardState: hardState(1, "n1", 50), snapshot: null, entries: entries(51, 60, 1, 100) });
    expect(snapshotSaved).toBe(false);
    let closed = false;
    const closing = storage.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    held.release();
    await Promise.all([saving, closing]);
    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta.index).toBe(40);
    expect(recovered.entries[recovered.entries.length - 1]!.index).toBe(60);
  });

  it("a snapshot taken while a newer one arrived from the leader is removed by compaction; the newer one stands", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 50);
    const held = await holdNextFileSync(dir);
    const saving = storage.saveSnapshot(snapshot(40, 1, "ours at 40"), 31);
    await held.reached;
    await storage.save({ hardState: hardState(2, "n2", 100), snapshot: snapshot(100, 2, "the leader's at 100"), entries: [] });
    held.release();
    await saving;
    expect(await snapshotNames(dir)).toEqual([snapshotFileName(100)]);
    await storage.close();
    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta.index).toBe(100);
  });

  it("leftover temporary snapshot files are removed at start", async () => {
    const dir = await tempDir();
    await writeLog(dir, 10).then((storage) => storage.close());
    const temporary = path.join(dir, `${snapshotFileName(7)}.tmp`);
    await fs.writeFile(temporary, "half a snapshot");
    await recover(dir, options);
    expect(await snapshotNames(dir)).toEqual([]);
  });

  it("a snapshot older than the newest stored one is not written, and the newer one stays", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 100);
    await storage.saveSnapshot(snapshot(90, 1), 1);
    await storage.saveSnapshot(snapshot(60, 1), 1);
    await storage.close();
    expect(await snapshotNames(dir)).toEqual([snapshotFileName(90)]);
    expect((await recover(dir, options)).recovered.snapshot?.meta.index).toBe(90);
  });

  it("snapshot files round-trip their configuration and data, and refuse a name that disagrees with the contents", async () => {
    const dir = await tempDir();
    const storage = await writeLog(dir, 10);
    const data = new Uint8Array(70_000).map((_, k) => (k * 13) & 0xff);
    const withLearners = { meta: { index: 10, term: 1, config: { voters: ["n1", "ñ2"], learners: ["learner-é"], addresses: { n1: "127.0.0.1:7001", "learner-é": "[::1]:7009" } } }, data };
    await storage.saveSnapshot(withLearners, 11);
    await storage.close();
    const { recovered } = await recover(dir, options);
    expect(recovered.snapshot?.meta).toEqual(withLearners.meta);
    expect(Buffer.from(recovered.snapshot!.data).equals(Buffer.from(data))).toBe(true);
    const bytes = await fs.readFile(path.join(dir, snapshotFileName(10)));
    expect(decodeSnapshotFile(bytes, 11)).toEqual({ ok: false, problem: "the file holds the snapshot at index 10, but its name says 11" });
  });
});
