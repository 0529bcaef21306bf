// What the benchmark process and its generator processes say to each other (over the fork IPC channel).
import type { HistogramData } from "../latency-histogram.js";
import type { WorkloadSpec } from "./workloads.js";

export type ToGenerator =
  | { readonly type: "prepare"; readonly spec: WorkloadSpec; readonly clientIndexes: readonly number[] }
  | { readonly type: "run"; readonly warmupMs: number; readonly durationMs: number }
  | { readonly type: "exit" };

export interface GeneratorResult {
  readonly histogram: HistogramData;
  readonly errors: Record<string, number>;
  /** Length of the measured window as this process timed it. */
  readonly windowMs: number;
  /** Cores this generator process used in the window (process.cpuUsage). */
  readonly cores: number;
  /** Fraction of the window its event loop was busy: near 1, the generator itself is the limit. */
  readonly eventLoopUtilization: number;
}

export type FromGenerator =
  | { readonly type: "prepared" }
  | { readonly type: "result"; readonly result: GeneratorResult }
  | { readonly type: "failed"; readonly message: string };
