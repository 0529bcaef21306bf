// File-system steps the storage layer makes durable: full writes, directory syncs, keeping damaged bytes aside.

import { promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { StorageError } from "./errors.js";

/** Most `.broken` copies of one file kept side by side before we ask the operator to move them away. */
export const brokenCopiesMax = 100;

/** Writes all of `bytes` at `positionBytes` (a file write may be short; loop until done). */
export async function writeAll(handle: FileHandle, bytes: Uint8Array, positionBytes: number): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, doneBytes, bytes.length - doneBytes, positionBytes + doneBytes);
    doneBytes += bytesWritten;
  }
}

/** Makes the directory's entries (files created, renamed or removed in it) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `dir` (and missing parents) durably: each created directory's parent is synced. */
export async function ensureDirectory(dir: string): Promise<void> {
  const firstCreated = await fs.mkdir(dir, { recursive: true });
  if (firstCreated === undefined) return;
  // Sync from the new leaf up to the parent of the first directory created.
  const stopAt = path.dirname(path.resolve(firstCreated));
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    await syncDirectory(current);
    if (current === stopAt || current === path.dirname(current)) break;
  }
}

/** Creates a new file durably with `bytes` as its content (file synced, then its directory). */
export async function createFileDurably(filePath: string, bytes: Uint8Array): Promise<void> {
  const handle = await fs.open(filePath, "wx");
  try {
    await writeAll(handle, bytes, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await syncDirectory(path.dirname(filePath));
}

/** Picks a free name `<file>.broken`, `<file>.broken.1`, ... for bytes kept aside for diagnosis. */
export async function freeBrokenName(filePath: string): Promise<string> {
  for (let copy = 0; copy < brokenCopiesMax; copy++) {
    const candidate = copy === 0 ? `${filePath}.broken` : `${filePath}.broken.${copy}`;
    if (!(await exists(candidate))) return candidate;
  }
  throw new StorageError(
    `${filePath} already has ${brokenCopiesMax} .broken copies next to it; move them out of the data directory and restart`,
  );
}

export async function exists(filePath: string): Promise<boolean> {
  try {
    await fs.access(filePath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** Removes a file if it exists and syncs its directory. */
export async function removeDurably(filePath: string): Promise<void> {
  await fs.rm(filePath, { force: true });
  await syncDirectory(path.dirname(filePath));
}
