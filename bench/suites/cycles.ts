// The default table: every selected scenario at every client count, raftlock first (its read-index
// cluster, then a lease cluster for lease reads), then etcd and redis, each system alone on the machine.
import { EtcdCluster, etcdVersion } from "../clusters/etcd-cluster.js";
import { RedisServer, redisServerVersion } from "../clusters/redis-server.js";
import type { GeneratorPool, PoolRunResult } from "../load/generator-pool.js";
import { redisBenchmarkVersion, runRedisBenchmark } from "../load/redis-benchmark.js";
import { acquireOnlyCommand, acquireOnlyLocks, type Endpoint, type WorkloadSpec } from "../load/workloads.js";
import type { BenchOptions } from "../options.js";
import type { ScenarioResult } from "../results.js";
import { scenarioById, type Scenario } from "../scenarios.js";
import { otherCoresQuietMax, waitForQuietMachine } from "../quiet-machine.js";
import { UsageWindow, type ServerSet } from "../usage-window.js";
import { RaftlockTarget } from "./raftlock-target.js";

/** A generator process busier than this (event loop or CPU) may be what limits the figure. */
const generatorSaturatedAt = 0.9;
/** Measurements of a figure taken again when another job was busy during it; the last one stands. */
const busyRetriesMax = 3;
/** TTL of the lock the read scenarios read: held for the whole run. */
const readLockTtlMs = 3_600_000;

type Progress = (line: string) => void;

function baseSpec(options: BenchOptions, scenario: Scenario, clients: number, endpoints: readonly Endpoint[], readLock: string): WorkloadSpec {
  return {
    kind: scenario.workload!,
    endpoints,
    runId: `b${Date.now().toString(36)}-${scenario.id}-${clients}`,
    lockTtlMs: options.lockTtlMs,
    contendedLocks: options.contendedLocks,
    waitMs: options.waitMs,
    consistency: scenario.consistency,
    readLock,
  };
}

/** What the machine used beyond the servers and generators in the window (the benchmark process is idle). */
function otherCores(window: UsageWindow, generators: readonly { readonly cores: number }[]): number {
  const measured = window.usage().reduce((sum, server) => sum + server.cores, 0) + generators.reduce((sum, generator) => sum + generator.cores, 0);
  return Math.max(0, window.machineCores() - measured);
}

function fromPool(scenario: Scenario, clients: number, run: PoolRunResult, window: UsageWindow, leaderChanged: boolean): ScenarioResult {
  const { histogram } = run;
  return {
    scenario: scenario.id,
    system: scenario.system,
    clients,
    generator: "node",
    unit: scenario.unit,
    ratePerSecond: histogram.count / (run.windowMs / 1000),
    operations: histogram.count,
    p50Ms: histogram.percentileMs(0.5),
    p90Ms: histogram.percentileMs(0.9),
    p99Ms: histogram.percentileMs(0.99),
    p999Ms: histogram.percentileMs(0.999),
    maxMs: histogram.maxUs / 1000,
    errors: run.errors,
    servers: window.usage(),
    generators: run.generators,
    generatorSaturated: run.generators.some((generator) => generator.eventLoopUtilization >= generatorSaturatedAt || generator.cores >= generatorSaturatedAt),
    serverWarnings: window.warnings(),
    otherCores: otherCores(window, run.generators),
    leaderChanged,
  };
}

/** One figure as a progress line. */
export function summaryLine(result: ScenarioResult): string {
  const errors = Object.values(result.errors).reduce((sum, count) => sum + count, 0);
  return `${result.scenario} x${result.clients}: ${result.ratePerSecond.toFixed(0)} ${result.unit}, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms${errors > 0 ? `, ${errors} errors` : ""}${result.generatorSaturated ? " (generator saturated)" : ""}`;
}

/** Measures a figure again while another job took more than `otherCoresQuietMax` of a core during it. */
async function retriedWhileBusy(scenario: Scenario, clients: number, progress: Progress, measure: () => Promise<ScenarioResult>): Promise<ScenarioResult> {
  let result = await measure();
  for (let attempt = 1; attempt <= busyRetriesMax && result.otherCores > otherCoresQuietMax; attempt++) {
    progress(`${scenario.id} x${clients}: other processes used ${(result.otherCores * 100).toFixed(0)}% of a core meanwhile; measuring again`);
    result = await measure();
  }
  return result;
}

async function runWithPool(pool: GeneratorPool, options: BenchOptions, scenario: Scenario, spec: WorkloadSpec, clients: number, servers: ServerSet, leaderTerm: () => Promise<string>, progress: Progress): Promise<ScenarioResult> {
  return retriedWhileBusy(scenario, clients, progress, async () => {
    await waitForQuietMachine([...servers.pids().values(), ...pool.pids().values()], options.quietWaitS * 1000, progress);
    const window = new UsageWindow(servers);
    const before = await leaderTerm();
    const run = await pool.run(spec, clients, options.warmupS * 1000, options.durationS * 1000, window);
    return fromPool(scenario, clients, run, window, (await leaderTerm()) !== before);
  });
}

async function raftlockScenarios(pool: GeneratorPool, options: BenchOptions, target: RaftlockTarget, chosen: readonly Scenario[], progress: Progress): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  const leader = await target.leader();
  const leaderTerm = async (): Promise<string> => {
    const now = await target.leader();
    return `${now.id}@${now.term}`;
  };
  const readLock = `b${Date.now().toString(36)}-read`;
  if (chosen.some((scenario) => scenario.workload === "resp-read")) await target.call(leader.id, "LOCK.ACQUIRE", readLock, "reader", readLockTtlMs);
  for (const scenario of chosen) {
    for (const clients of options.clients) {
      await target.settled();
      // The leader of this figure: an election during an earlier one may have moved it.
      const current = await target.leader();
      const leaderMember = target.member(current.id);
      const servers = target.servers(current.id);
      let result: ScenarioResult;
      if (scenario.workload === null) {
        result = await retriedWhileBusy(scenario, clients, progress, () => redisBenchmarkAcquire(options, scenario, clients, leaderMember.resp, servers, results, target, current.id, progress));
      } else {
        const endpoints = scenario.workload.startsWith("http") ? [leaderMember.http] : [leaderMember.resp];
        const spec = baseSpec(options, scenario, clients, endpoints, readLock);
        result = await runWithPool(pool, options, scenario, spec, clients, servers, leaderTerm, progress);
        if (scenario.workload === "resp-acquire-only") await releaseAcquireOnlyLocks(target, (await target.leader()).id, spec);
      }
      results.push(result);
      progress(summaryLine(result));
    }
  }
  return results;
}

async function releaseAcquireOnlyLocks(target: RaftlockTarget, leaderId: string, spec: Pick<WorkloadSpec, "runId" | "lockTtlMs">): Promise<void> {
  const pattern = acquireOnlyCommand(spec)[1]!;
  const names = Array.from({ length: acquireOnlyLocks }, (_, k) => pattern.replace("__rand_int__", String(k).padStart(12, "0")));
  await target.call(leaderId, "DEL", ...names);
}

/**
 * redis-benchmark sending the acquire-only command for about as long as the Node generator ran it (its
 * request count is the Node figure's rate x duration). Its CPU use is its own process's.
 */
async function redisBenchmarkAcquire(options: BenchOptions, scenario: Scenario, clients: number, endpoint: Endpoint, servers: ServerSet, earlier: readonly ScenarioResult[], target: RaftlockTarget, leaderId: string, progress: Progress): Promise<ScenarioResult> {
  const nodeFigure = earlier.find((result) => result.scenario === "resp-acquire-only" && result.clients === clients);
  const requests = Math.max(2000, Math.round((nodeFigure?.ratePerSecond ?? 1000) * options.durationS));
  const spec = { runId: `b${Date.now().toString(36)}-rb-${clients}`, lockTtlMs: options.lockTtlMs };
  await waitForQuietMachine([...servers.pids().values()], options.quietWaitS * 1000, progress);
  const termBefore = await target.leader();
  const window = new UsageWindow(servers);
  window.opened();
  const run = await runRedisBenchmark(endpoint, clients, requests, acquireOnlyLocks, acquireOnlyCommand(spec));
  window.closed();
  const termAfter = await target.leader();
  await releaseAcquireOnlyLocks(target, leaderId, spec);
  return {
    scenario: scenario.id,
    system: "raftlock",
    clients,
    generator: "redis-benchmark",
    unit: scenario.unit,
    ratePerSecond: run.requestsPerSecond,
    operations: run.requests,
    p50Ms: run.p50Ms,
    p90Ms: Number.NaN,
    p99Ms: run.p99Ms,
    p999Ms: Number.NaN,
    maxMs: run.maxMs,
    errors: {},
    servers: window.usage(),
    generators: [{ cores: run.cores, eventLoopUtilization: null }],
    generatorSaturated: run.cores >= generatorSaturatedAt,
    serverWarnings: window.warnings(),
    otherCores: otherCores(window, [{ cores: run.cores }]),
    leaderChanged: termBefore.id !== termAfter.id || termBefore.term !== termAfter.term,
  };
}

async function etcdScenarios(pool: GeneratorPool, options: BenchOptions, progress: Progress): Promise<ScenarioResult[]> {
  const scenario = scenarioById("etcd-cycle");
  const cluster = await EtcdCluster.start();
  const results: ScenarioResult[] = [];
  try {
    for (const clients of options.clients) {
      const leader = await cluster.leader();
      const roles = new Map(cluster.members.map((member) => [member.name, member === leader ? "leader" : "follower"]));
      const servers: ServerSet = { pids: () => cluster.pids(), roles, logs: new Map(cluster.members.map((member) => [member.name, member.log])) };
      const spec = baseSpec(options, scenario, clients, [{ host: leader.host, port: leader.clientPort }], "");
      const result = await runWithPool(pool, options, scenario, spec, clients, servers, async () => (await cluster.leader()).name, progress);
      results.push(result);
      progress(summaryLine(result));
    }
  } finally {
    await cluster.close();
  }
  return results;
}

async function redisScenarios(pool: GeneratorPool, options: BenchOptions, progress: Progress): Promise<ScenarioResult[]> {
  const scenario = scenarioById("redis-cycle");
  const server = await RedisServer.start();
  const results: ScenarioResult[] = [];
  try {
    for (const clients of options.clients) {
      const servers: ServerSet = { pids: () => server.pids(), roles: new Map(), logs: new Map() };
      const spec = baseSpec(options, scenario, clients, [{ host: server.host, port: server.port }], "");
      const result = await runWithPool(pool, options, scenario, spec, clients, servers, async () => "redis", progress);
      results.push(result);
      progress(summaryLine(result));
    }
  } finally {
    await server.close();
  }
  return results;
}

/** Every selected scenario at every client count, each system alone on the machine. */
export async function runCycles(pool: GeneratorPool, options: BenchOptions, progress: Progress): Promise<ScenarioResult[]> {
  const chosen = options.scenarios.map(scenarioById);
  const results: ScenarioResult[] = [];
  const external = options.httpEndpoints.length > 0;
  let readIndex = chosen.filter((scenario) => scenario.cluster === "read-index");
  if (readIndex.some((scenario) => scenario.workload === null) && redisBenchmarkVersion() === null) {
    progress("redis-benchmark is not installed: skipping redis-benchmark-acquire");
    readIndex = readIndex.filter((scenario) => scenario.workload !== null);
  }
  if (readIndex.length > 0) {
    const target = external ? await RaftlockTarget.external(options.httpEndpoints, options.respEndpoints) : await RaftlockTarget.local("read-index");
    try {
      results.push(...(await raftlockScenarios(pool, options, target, readIndex, progress)));
    } finally {
      await target.close();
    }
  }
  const lease = chosen.filter((scenario) => scenario.cluster === "lease");
  if (lease.length > 0 && external) progress("read-lease needs a cluster started with --read-mode lease: skipped with --endpoints");
  if (lease.length > 0 && !external) {
    const target = await RaftlockTarget.local("lease");
    try {
      results.push(...(await raftlockScenarios(pool, options, target, lease, progress)));
    } finally {
      await target.close();
    }
  }
  if (chosen.some((scenario) => scenario.id === "etcd-cycle")) {
    if (etcdVersion() === null) progress("etcd is not installed: --compare etcd skipped");
    else results.push(...(await etcdScenarios(pool, options, progress)));
  }
  if (chosen.some((scenario) => scenario.id === "redis-cycle")) {
    if (redisServerVersion() === null) progress("redis-server is not installed: --compare redis skipped");
    else results.push(...(await redisScenarios(pool, options, progress)));
  }
  return results;
}
