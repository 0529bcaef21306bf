// One process per data directory. Two nodes started on the same directory (a copy-pasted command, a
// misconfigured volume) would interleave their writes into one WAL and corrupt it; the second one is
// refused at start instead. The lock is a file holding the owner's pid, so a process killed with -9 leaves
// a lock that the next start recognises as stale (no such process) and takes over.
import { promises as fs } from "node:fs";
import path from "node:path";
import { StorageError } from "./errors.js";

export const lockFileName = "LOCK";

/** Directories this process holds; a pid check cannot tell two opens in one process apart. */
const heldHere = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Locks `dir` (created if missing) for this process; resolves to the function that unlocks it. */
export async function lockDirectory(dir: string): Promise<() => Promise<void>> {
  await fs.mkdir(dir, { recursive: true });
  if (heldHere.has(dir)) throw new StorageError(`the data directory ${dir} is already open in this process`);
  const lockPath = path.join(dir, lockFileName);
  // Two tries: the second after removing a stale lock.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(lockPath, `${process.pid}\n`, { flag: "wx" });
      heldHere.add(dir);
      return async () => {
        heldHere.delete(dir);
        await fs.rm(lockPath, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw new StorageError(`cannot create ${lockPath}: ${(error as Error).message}`, { cause: error });
      const holder = Number((await fs.readFile(lockPath, "utf8").catch(() => "")).trim());
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new StorageError(
          `the data directory ${dir} is in use by process ${holder}: two nodes must never share one. Stop that process, or, if no raftlock runs on this directory, remove ${lockPath}`,
        );
      }
      await fs.rm(lockPath, { force: true }); // stale: its process is gone
    }
  }
  throw new StorageError(`could not lock ${dir}: ${lockPath} came back at once; is another node starting on this directory?`);
}
