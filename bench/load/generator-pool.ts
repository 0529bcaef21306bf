// Generator processes that run a workload's clients between them: separate processes (not worker
// threads) so that the generator's CPU use is measured like any node's and a busy generator cannot slow
// the benchmark's own bookkeeping. Clients are dealt round-robin.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LatencyHistogram } from "../latency-histogram.js";
import type { FromGenerator, GeneratorResult, ToGenerator } from "./messages.js";
import type { WorkloadSpec } from "./workloads.js";
import { trackChild } from "../child-registry.js";

const generatorPath = fileURLToPath(new URL("./generator.ts", import.meta.url));
/** Longest a generator may take to connect its clients. */
const prepareTimeoutMs = 60_000;
/** Beyond the run's own length: time for the last operations in flight (a blocked acquire waits up to its WAIT). */
const runSlackMs = 60_000;

export interface PoolRunResult {
  readonly histogram: LatencyHistogram;
  readonly errors: Record<string, number>;
  readonly windowMs: number;
  /** Per generator process: cores used and event loop utilization in the window. */
  readonly generators: readonly { readonly cores: number; readonly eventLoopUtilization: number }[];
}

class GeneratorProcess {
  private readonly waiting: ((message: FromGenerator) => void)[] = [];

  constructor(readonly child: ChildProcess) {
    child.on("message", (message: FromGenerator) => this.waiting.shift()?.(message));
    child.on("exit", (code) => {
      for (const waiter of this.waiting.splice(0)) waiter({ type: "failed", message: `generator exited (${code})` });
    });
  }

  ask(message: ToGenerator, timeoutMs: number): Promise<FromGenerator> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`generator did not answer "${message.type}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.child.send(message);
    });
  }
}

export class GeneratorPool {
  private constructor(private readonly processes: GeneratorProcess[]) {}

  static start(count: number): GeneratorPool {
    const processes = Array.from({ length: count }, () => new GeneratorProcess(trackChild(fork(generatorPath, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] }))));
    return new GeneratorPool(processes);
  }

  get size(): number {
    return this.processes.length;
  }

  pids(): Map<string, number> {
    return new Map(this.processes.flatMap((generator, k) => (generator.child.pid === undefined ? [] : [[`generator${k + 1}`, generator.child.pid] as [string, number]])));
  }

  /**
   * Runs `clients` clients of `spec` for `warmupMs` + `durationMs`; `window` is called when the measured
   * window opens and closes (for CPU samples of the servers), and the result covers that window only.
   */
  async run(spec: WorkloadSpec, clients: number, warmupMs: number, durationMs: number, window: { opened(): void; closed(): void }): Promise<PoolRunResult> {
    const used = this.processes.slice(0, Math.min(this.processes.length, clients));
    const prepared = await Promise.all(
      used.map((generator, k) => {
        const clientIndexes = Array.from({ length: clients }, (_, index) => index).filter((index) => index % used.length === k);
        return generator.ask({ type: "prepare", spec, clientIndexes }, prepareTimeoutMs);
      }),
    );
    const failure = prepared.find((answer) => answer.type === "failed");
    if (failure?.type === "failed") throw new Error(`a generator could not prepare ${spec.kind}: ${failure.message}`);

    const answers = Promise.all(used.map((generator) => generator.ask({ type: "run", warmupMs, durationMs }, warmupMs + durationMs + runSlackMs)));
    let opened = false;
    let closed = false;
    const openedTimer = setTimeout(() => {
      opened = true;
      window.opened();
    }, warmupMs);
    const closedTimer = setTimeout(() => {
      closed = true;
      window.closed();
    }, warmupMs + durationMs);
    const results: GeneratorResult[] = [];
    try {
      for (const answer of await answers) {
        if (answer.type !== "result") throw new Error(`a generator failed running ${spec.kind}: ${answer.type === "failed" ? answer.message : answer.type}`);
        results.push(answer.result);
      }
    } finally {
      clearTimeout(openedTimer);
      clearTimeout(closedTimer);
      // Generators answer after their window closes; a parent timer late by a few ms must still close ours.
      if (opened && !closed) window.closed();
    }
    const histogram = new LatencyHistogram();
    const errors: Record<string, number> = {};
    for (const result of results) {
      histogram.merge(result.histogram);
      for (const [code, count] of Object.entries(result.errors)) errors[code] = (errors[code] ?? 0) + count;
    }
    return { histogram, errors, windowMs: durationMs, generators: results.map(({ cores, eventLoopUtilization }) => ({ cores, eventLoopUtilization })) };
  }

  async close(): Promise<void> {
    await Promise.all(
      this.processes.map(async (generator) => {
        if (generator.child.exitCode !== null) return;
        const exited = new Promise((resolve) => generator.child.once("exit", resolve));
        generator.child.send({ type: "exit" } satisfies ToGenerator);
        await exited;
      }),
    );
  }
}
