// The shapes a run writes to its JSON file, and what the table and the chart read back.
import type { FsyncProbe } from "./fsync-probe.js";
import type { ScenarioId, SystemName } from "./scenarios.js";
import type { FailoverResult } from "./suites/failover.js";
import type { MemoryResult } from "./suites/memory.js";
import type { RestartResult } from "./suites/restart.js";

export interface ServerUsage {
  /** n1, e2, redis, ... */
  readonly name: string;
  /** "leader" / "follower" where the system has roles. */
  readonly role: string | null;
  /** Cores used in the measured window (1.0 = a whole core). */
  readonly cores: number;
  /** Peak resident set in the window (VmHWM after a reset at its start). */
  readonly peakRssBytes: number;
}

export interface ScenarioResult {
  readonly scenario: ScenarioId;
  readonly system: SystemName;
  readonly clients: number;
  /** What produced the load: the Node generator processes, or redis-benchmark. */
  readonly generator: "node" | "redis-benchmark";
  readonly unit: string;
  readonly ratePerSecond: number;
  readonly operations: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** p99.9: where stalls of the whole node (a snapshot, a long GC) show. */
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly errors: Record<string, number>;
  readonly servers: readonly ServerUsage[];
  /** Per generator process; for redis-benchmark its one process. */
  readonly generators: readonly { readonly cores: number; readonly eventLoopUtilization: number | null }[];
  /** A generator process was busy most of the window: the figure may be the generator's limit. */
  readonly generatorSaturated: boolean;
  /** Warnings and errors the servers logged during the run, by message. */
  readonly serverWarnings: Record<string, number>;
  /**
   * Cores used by processes that are neither the servers nor the generators (another job on the machine):
   * well above 0, the figure was taken on a busy machine.
   */
  readonly otherCores: number;
  /** Set when the leader changed during the run (an election under load). */
  readonly leaderChanged: boolean;
}

export interface MachineInfo {
  readonly date: string;
  readonly host: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly kernel: string;
  readonly memoryBytes: number;
  readonly node: string;
  readonly commit: string;
  readonly etcd: string | null;
  readonly redis: string | null;
  readonly redisBenchmark: string | null;
  readonly fsync: FsyncProbe;
}

export interface BenchReport {
  readonly machine: MachineInfo;
  readonly options: Record<string, unknown>;
  cycles?: ScenarioResult[];
  failover?: FailoverResult;
  restart?: RestartResult;
  memory?: MemoryResult;
  /** Suites that failed, with their error. */
  errors?: Record<string, string>;
}
