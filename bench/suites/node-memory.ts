// A raftlock node's memory as the OS sees it (resident set, peak) and as V8 does (heap in use, from the
// node's own /metrics), for the restart and memory suites.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { collectGarbage, inspectorUrl } from "../clusters/inspector-gc.js";
import type { RaftlockCluster } from "../clusters/raftlock-cluster.js";
import { sampleMemory } from "../process-stats.js";

/** Node options of the nodes whose memory is read: an inspector on a free port, for `collectGarbage`. */
export const inspectableNode = ["--inspect=127.0.0.1:0"];

export interface NodeMemory {
  readonly id: string;
  readonly rssBytes: number;
  readonly peakRssBytes: number;
  readonly heapUsedBytes: number;
}

async function heapUsedBytes(cluster: RaftlockCluster, id: string): Promise<number> {
  const { status, body } = await cluster.httpClient(id).get("/metrics");
  if (status !== 200 || typeof body !== "string") return Number.NaN;
  const line = body.split("\n").find((candidate) => candidate.startsWith("raftlock_nodejs_heap_size_used_bytes "));
  return line === undefined ? Number.NaN : Number(line.split(" ")[1]);
}

/** `id`'s resident set, peak and V8 heap in use now; after a full collection when it runs with `--inspect`. */
export async function nodeMemory(cluster: RaftlockCluster, id: string): Promise<NodeMemory> {
  const url = inspectorUrl(cluster.node(id).log);
  if (url !== null) await collectGarbage(url);
  const pid = cluster.pids().get(id);
  const memory = pid === undefined ? null : sampleMemory(pid);
  return { id, rssBytes: memory?.rssBytes ?? Number.NaN, peakRssBytes: memory?.peakRssBytes ?? Number.NaN, heapUsedBytes: await heapUsedBytes(cluster, id) };
}

/** Bytes of every file under `dir`. */
export function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? directoryBytes(path) : statSync(path).size;
  }
  return total;
}

/** Bytes as whole MiB, for progress lines. */
export function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}
