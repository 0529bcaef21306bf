// How fast this machine's disk makes a small append durable (write + fdatasync, as every Raft save does),
// in the directory the clusters keep their data in. Every figure of the table rests on it.
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** How long the probe runs. */
const probeMs = 2000;
/** Bytes appended per sync: about one lock command's WAL record. */
const appendBytes = 100;

export interface FsyncProbe {
  readonly syncsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Appends and syncs small records for `probeMs` in the temporary directory's file system. */
export function probeFsync(): FsyncProbe {
  const dir = mkdtempSync(join(tmpdir(), "raftlock-bench-fsync-"));
  const fd = openSync(join(dir, "probe"), "w");
  const latenciesMs: number[] = [];
  const record = Buffer.alloc(appendBytes, 1);
  try {
    const startMs = performance.now();
    while (performance.now() - startMs < probeMs) {
      const beganMs = performance.now();
      writeSync(fd, record);
      fdatasyncSync(fd);
      latenciesMs.push(performance.now() - beganMs);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  latenciesMs.sort((a, b) => a - b);
  const at = (fraction: number): number => latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(latenciesMs.length * fraction))]!;
  return { syncsPerSecond: latenciesMs.length / (probeMs / 1000), p50Ms: at(0.5), p99Ms: at(0.99), maxMs: latenciesMs[latenciesMs.length - 1]! };
}
