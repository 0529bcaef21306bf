// save() throughput and latency: `npx tsx bench/storage.ts [--dir <parent>]`.
// Each run saves `savesPerRun` batches (hard state + N entries of 100 bytes) into a fresh temporary directory,
// on the same file system as `--dir` (default: the OS temp dir), and removes it afterwards.

import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { EntryType, type Entry } from "../src/raft/types.js";
import { Storage } from "../src/storage/storage.js";

const savesPerRun = 2000;
const entryDataBytes = 100;
const batchSizes = [1, 64] as const;

function parentDirFromArgs(): string {
  const flag = process.argv.indexOf("--dir");
  return flag >= 0 && process.argv[flag + 1] !== undefined ? process.argv[flag + 1]! : os.tmpdir();
}

function percentile(sortedMs: readonly number[], fraction: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction))]!;
}

async function run(parentDir: string, entriesPerSave: number): Promise<void> {
  const dir = await fs.mkdtemp(path.join(parentDir, "raftlock-bench-"));
  try {
    const { storage } = await Storage.open({ dir });
    const data = new Uint8Array(entryDataBytes).fill(7);
    const latenciesMs: number[] = [];
    let nextIndex = 1;
    const started = performance.now();
    for (let save = 0; save < savesPerRun; save++) {
      const entries: Entry[] = [];
      for (let k = 0; k < entriesPerSave; k++) entries.push({ index: nextIndex++, term: 1, type: EntryType.Normal, data });
      const before = performance.now();
      await storage.save({ hardState: { currentTerm: 1, votedFor: "n1", commitIndex: nextIndex - 1 - entriesPerSave }, snapshot: null, entries });
      latenciesMs.push(performance.now() - before);
    }
    const elapsedS = (performance.now() - started) / 1000;
    await storage.close();
    latenciesMs.sort((a, b) => a - b);
    const entryCount = savesPerRun * entriesPerSave;
    console.log(
      `${String(entriesPerSave).padStart(2)} entries/save: ${(savesPerRun / elapsedS).toFixed(0)} saves/s, ` +
        `${(entryCount / elapsedS).toFixed(0)} entries/s, ${((entryCount * entryDataBytes) / elapsedS / 1e6).toFixed(2)} MB/s of entry data; ` +
        `latency median ${percentile(latenciesMs, 0.5).toFixed(2)} ms, p99 ${percentile(latenciesMs, 0.99).toFixed(2)} ms, ` +
        `max ${latenciesMs[latenciesMs.length - 1]!.toFixed(2)} ms`,
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

const parentDir = parentDirFromArgs();
console.log(`save() benchmark: ${savesPerRun} saves per run, ${entryDataBytes}-byte entries, in ${parentDir} (node ${process.version})`);
for (const entriesPerSave of batchSizes) await run(parentDir, entriesPerSave);
