// One process per data directory: a second node on the same directory is refused at start, and a lock
// left by a process that died (kill -9) is taken over.
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { lockFileName } from "../../src/storage/dir-lock.js";
import { StorageError } from "../../src/storage/storage.js";
import { open, tempDir } from "./helpers.js";

describe("the data directory lock", () => {
  it("refuses a second open in this process until the first one closes", async () => {
    const dir = await tempDir();
    const { storage } = await open(dir);
    await expect(open(dir)).rejects.toThrow(`the data directory ${path.resolve(dir)} is already open in this process`);
    await storage.close();
    await expect(fs.stat(path.join(dir, lockFileName))).rejects.toMatchObject({ code: "ENOENT" });
    await (await open(dir)).storage.close();
  });

  it("refuses a directory another live process holds, and takes over once that process is gone", async () => {
    const dir = await tempDir();
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await fs.writeFile(path.join(dir, lockFileName), `${other.pid}\n`);
      const refused = await open(dir).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(StorageError);
      expect((refused as Error).message).toBe(
        `the data directory ${path.resolve(dir)} is in use by process ${other.pid}: two nodes must never share one. Stop that process, or, if no raftlock runs on this directory, remove ${path.join(path.resolve(dir), lockFileName)}`,
      );
    } finally {
      other.kill("SIGKILL");
      await new Promise((resolve) => other.once("exit", resolve));
    }
    // Its holder died without unlocking (as after kill -9): the lock is stale.
    const { storage } = await open(dir);
    expect((await fs.readFile(path.join(dir, lockFileName), "utf8")).trim()).toBe(String(process.pid));
    await storage.close();
  });

  it("takes over a lock file it cannot read as a pid", async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, lockFileName), "garbage");
    await (await open(dir)).storage.close();
  });
});
