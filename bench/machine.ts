// Where and on what a benchmark ran: printed with every table, kept in every JSON file.
import { execFileSync } from "node:child_process";
import os from "node:os";
import { probeFsync } from "./fsync-probe.js";
import { etcdVersion } from "./clusters/etcd-cluster.js";
import { redisServerVersion } from "./clusters/redis-server.js";
import { redisBenchmarkVersion } from "./load/redis-benchmark.js";
import type { MachineInfo } from "./results.js";

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: new URL("..", import.meta.url).pathname }).toString().trim();
  } catch {
    return "";
  }
}

/** The commit, marked when src/ differs from it (dist/ is built from the working tree). */
function commitDescription(): string {
  const commit = git(["rev-parse", "--short", "HEAD"]) || "unknown";
  return git(["status", "--porcelain", "src"]).length > 0 ? `${commit} (+ uncommitted changes in src/)` : commit;
}

/** The machine, software versions and commit of this run (probes fsync for 2 s). */
export function describeMachine(): MachineInfo {
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    kernel: os.release(),
    memoryBytes: os.totalmem(),
    node: process.version,
    commit: commitDescription(),
    etcd: etcdVersion(),
    redis: redisServerVersion(),
    redisBenchmark: redisBenchmarkVersion(),
    fsync: probeFsync(),
  };
}

/** The machine in one line, for the table's heading. */
export function machineLine(machine: MachineInfo): string {
  return `${machine.date.slice(0, 10)}, ${machine.cpus} x ${machine.cpuModel}, ${(machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, Linux ${machine.kernel}, Node ${machine.node}, commit ${machine.commit}; write+fdatasync of 100 B: p50 ${machine.fsync.p50Ms.toFixed(2)} ms, p99 ${machine.fsync.p99Ms.toFixed(2)} ms`;
}
