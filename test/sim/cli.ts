// npm run sim -- --seeds N --steps M [--seed S] [--seed-start S0] [--nodes 3|5|7] [--membership W] [--workers K] [--verbose]
// Random exploration of the cluster under faults, one seed per run, on worker threads.

import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { explore, type ExploreSummary } from "./explore.js";

interface CliOptions {
  seeds: number;
  seedStart: number;
  steps: number;
  seed: number | undefined;
  nodes: number | undefined;
  /** Weight of membership changes for every seed (0: none); each seed draws its own when not given. */
  membership: number | undefined;
  workers: number;
  verbose: boolean;
}

interface SeedResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly stack?: string;
  readonly summary?: ExploreSummary;
}

/** The worker protocol: the main thread sends a seed to run, or null to stop. */
interface WorkerJob {
  readonly seed: number | null;
  readonly steps: number;
  readonly nodes: number | undefined;
  readonly membership: number | undefined;
}

const usage = "usage: npm run sim -- [--seeds N] [--seed-start S0] [--steps M] [--seed S] [--nodes 3|5|7] [--membership W] [--workers K] [--verbose]";

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { seeds: 100, seedStart: 1, steps: 20_000, seed: undefined, nodes: undefined, membership: undefined, workers: 2, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--verbose") {
      options.verbose = true;
      continue;
    }
    const raw = argv[++i];
    const value = Number(raw);
    if (raw === undefined || !Number.isSafeInteger(value) || value < 0) {
      throw new Error(`${flag} needs a non-negative integer (got ${raw === undefined ? "nothing" : `"${raw}"`})\n${usage}`);
    }
    switch (flag) {
      case "--seeds": options.seeds = value; break;
      case "--seed-start": options.seedStart = value; break;
      case "--steps": options.steps = value; break;
      case "--seed": options.seed = value; break;
      case "--nodes": options.nodes = value; break;
      case "--membership": options.membership = value; break;
      case "--workers": options.workers = Math.max(1, value); break;
      default: throw new Error(`unknown option ${flag}\n${usage}`);
    }
  }
  return options;
}

function runSeed(seed: number, steps: number, nodes: number | undefined, membershipWeight: number | undefined): SeedResult {
  try {
    return { seed, ok: true, summary: explore({ seed, steps, nodes, membershipWeight }) };
  } catch (error) {
    const err = error instanceof Error ? error : new Error(String(error));
    const cause = err.cause instanceof Error ? `\ncaused by: ${err.cause.stack ?? err.cause.message}` : "";
    return { seed, ok: false, error: err.message, stack: `${err.stack ?? ""}${cause}` };
  }
}

function replayCommand(seed: number, options: CliOptions): string {
  const nodes = options.nodes === undefined ? "" : ` --nodes ${options.nodes}`;
  const membership = options.membership === undefined ? "" : ` --membership ${options.membership}`;
  return `npm run sim -- --seed ${seed} --steps ${options.steps}${nodes}${membership}`;
}

function report(result: SeedResult, options: CliOptions): void {
  if (result.ok) {
    if (options.verbose && result.summary !== undefined) console.log(JSON.stringify(result.summary));
    return;
  }
  console.log(`FAIL seed ${result.seed}: ${result.error ?? "unknown error"}`);
  if (options.verbose) console.log(result.stack);
  console.log(`  replay: ${replayCommand(result.seed, options)}`);
}

async function runOnWorkers(seeds: readonly number[], options: CliOptions): Promise<SeedResult[]> {
  const results: SeedResult[] = [];
  let next = 0;
  const workerCount = Math.min(options.workers, seeds.length);
  const bootstrapUrl = new URL("./worker-bootstrap.mjs", import.meta.url);
  await Promise.all(
    Array.from({ length: workerCount }, () =>
      new Promise<void>((resolve, reject) => {
        const worker = new Worker(bootstrapUrl, { workerData: { entryUrl: import.meta.url } });
        const sendNext = (): void => {
          const seed = next < seeds.length ? (seeds[next++] as number) : null;
          const job: WorkerJob = { seed, steps: options.steps, nodes: options.nodes, membership: options.membership };
          worker.postMessage(job);
          if (seed === null) resolve();
        };
        worker.on("message", (message: SeedResult | "ready") => {
          if (message !== "ready") {
            results.push(message);
            report(message, options);
          }
          sendNext();
        });
        worker.on("error", reject);
        worker.on("exit", (code) => {
          if (code !== 0) reject(new Error(`a simulation worker exited with code ${code}`));
        });
      }),
    ),
  );
  return results;
}

function workerMain(): void {
  const port = parentPort;
  if (port === null) throw new Error("workerMain outside a worker");
  port.on("message", (job: WorkerJob) => {
    if (job.seed === null) {
      port.close();
      return;
    }
    port.postMessage(runSeed(job.seed, job.steps, job.nodes, job.membership));
  });
  port.postMessage("ready");
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  if (options.seed !== undefined) {
    const result = runSeed(options.seed, options.steps, options.nodes, options.membership);
    if (result.ok) {
      console.log(JSON.stringify(result.summary, null, 2));
      console.log("1 passed, 0 failed");
      return 0;
    }
    console.log(`FAIL seed ${result.seed}: ${result.error ?? "unknown error"}`);
    console.log(result.stack);
    console.log(`  replay: ${replayCommand(result.seed, options)}`);
    console.log("0 passed, 1 failed");
    return 1;
  }
  const seeds = Array.from({ length: options.seeds }, (_, i) => options.seedStart + i);
  const startedMs = performance.now();
  const results =
    options.workers > 1 ? await runOnWorkers(seeds, options) : seeds.map((seed) => {
      const result = runSeed(seed, options.steps, options.nodes, options.membership);
      report(result, options);
      return result;
    });
  const elapsedS = (performance.now() - startedMs) / 1000;
  const failed = results.filter((result) => !result.ok).length;
  const rate = elapsedS > 0 ? results.length / elapsedS : 0;
  console.log(`${results.length} seeds of ${options.steps} steps in ${elapsedS.toFixed(1)} s: ${rate.toFixed(2)} seeds/s on ${Math.min(options.workers, seeds.length)} worker(s)`);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(2);
    },
  );
} else {
  workerMain();
}
