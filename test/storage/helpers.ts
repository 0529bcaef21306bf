// Shared fixtures for storage tests: a fresh temporary directory per test, entry and state builders, and
// ways to look at and damage the files on disk.

import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect } from "vitest";
import { EntryType, type Entry, type HardState, type Snapshot } from "../../src/raft/types.js";
import { Storage, type OpenedStorage, type StorageOptions } from "../../src/storage/storage.js";
import { parseSegmentFileName } from "../../src/storage/wal-format.js";
import { scanSegment, type ScannedRecord } from "../../src/storage/wal-scan.js";

const createdDirs: string[] = [];
const openedStorages: Storage[] = [];

afterEach(async () => {
  for (const storage of openedStorages.splice(0)) await storage.close();
  for (const dir of createdDirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

/** A fresh, empty directory removed after the test. */
export async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "raftlock-storage-"));
  createdDirs.push(dir);
  return dir;
}

/** Opens storage; it is closed after the test if the test did not close it. */
export async function open(dir: string, options: Omit<StorageOptions, "dir"> = {}): Promise<OpenedStorage> {
  const opened = await Storage.open({ dir, ...options });
  openedStorages.push(opened.storage);
  return opened;
}

/** Opens, hands back what was recovered, and closes again: a restart that only looks. */
export async function recover(dir: string, options: Omit<StorageOptions, "dir"> = {}): Promise<OpenedStorage> {
  const opened = await open(dir, options);
  await opened.storage.close();
  return opened;
}

export function entry(index: number, term: number, dataBytes = 10): Entry {
  const data = new Uint8Array(dataBytes);
  for (let k = 0; k < dataBytes; k++) data[k] = (index * 31 + term * 7 + k) & 0xff;
  return { index, term, type: EntryType.Normal, data };
}

export function entries(firstIndex: number, lastIndex: number, term: number, dataBytes = 10): Entry[] {
  const result: Entry[] = [];
  for (let index = firstIndex; index <= lastIndex; index++) result.push(entry(index, term, dataBytes));
  return result;
}

export function hardState(currentTerm: number, votedFor: string | null, commitIndex: number): HardState {
  return { currentTerm, votedFor, commitIndex };
}

export function snapshot(index: number, term: number, text = `state at ${index}`): Snapshot {
  return { meta: { index, term, config: { voters: ["n1", "n2", "n3"], learners: [], addresses: {} } }, data: new TextEncoder().encode(text) };
}

/** Compares entries by value (the data of recovered entries is a plain Uint8Array copy). */
export function expectEntries(actual: readonly Entry[], expected: readonly Entry[]): void {
  const shape = (list: readonly Entry[]) =>
    list.map((each) => ({ index: each.index, term: each.term, type: each.type, data: Buffer.from(each.data).toString("base64") }));
  expect(shape(actual)).toEqual(shape(expected));
}

/** Segment file paths, oldest first. */
export async function segmentPaths(dir: string): Promise<string[]> {
  const names = (await fs.readdir(dir)).filter((name) => parseSegmentFileName(name) !== null).sort();
  return names.map((name) => path.join(dir, name));
}

export async function newestSegment(dir: string): Promise<string> {
  const paths = await segmentPaths(dir);
  const newest = paths[paths.length - 1];
  if (newest === undefined) throw new Error(`no segment in ${dir}`);
  return newest;
}

export async function fileSize(filePath: string): Promise<number> {
  return (await fs.stat(filePath)).size;
}

/** The records of a segment as the recovery scanner sees them (the file must be undamaged). */
export async function recordsOf(segmentPath: string): Promise<readonly ScannedRecord[]> {
  const buffer = await fs.readFile(segmentPath);
  const seq = parseSegmentFileName(path.basename(segmentPath));
  if (seq === null) throw new Error(`${segmentPath} is not a segment`);
  return scanSegment(buffer, segmentPath, seq, true).records;
}

/** Flips one bit of a file in place. */
export async function flipBit(filePath: string, offsetBytes: number, bit = 0): Promise<void> {
  const buffer = await fs.readFile(filePath);
  buffer[offsetBytes] = buffer[offsetBytes]! ^ (1 << bit);
  await fs.writeFile(filePath, buffer);
}

/** Every file in a directory with its contents, to show that a refusal changed nothing. */
export async function directoryContents(dir: string): Promise<Map<string, string>> {
  const contents = new Map<string, string>();
  for (const name of (await fs.readdir(dir)).sort()) contents.set(name, (await fs.readFile(path.join(dir, name))).toString("base64"));
  return contents;
}
