// redis-benchmark (C, one thread, epoll) as the RESP load generator, for the figures where the Node
// generator could be the limit. It sends one custom command over and over; it cannot send an acquire and
// then a release of the same lock, so what it measures is single commands, not cycles.
import { execFileSync, spawn } from "node:child_process";
import { coresUsed, sampleCpu, type CpuSample } from "../process-stats.js";
import type { Endpoint } from "./workloads.js";
import { trackChild } from "../child-registry.js";

/** How often its CPU time is sampled: the last sample before it exits is the one used. */
const cpuSampleIntervalMs = 100;

export interface RedisBenchmarkResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly requests: number;
  /** Cores redis-benchmark used while it ran. */
  readonly cores: number;
  readonly output: string;
}

/** The installed redis-benchmark's version line, or null when there is none. */
export function redisBenchmarkVersion(): string | null {
  try {
    return execFileSync("redis-benchmark", ["--version"]).toString().trim();
  } catch {
    return null;
  }
}

/** Runs `command` (`__rand_int__` drawn below `keyspace`) `requests` times from `clients` connections. */
export async function runRedisBenchmark(endpoint: Endpoint, clients: number, requests: number, keyspace: number, command: readonly string[]): Promise<RedisBenchmarkResult> {
  const args = ["-h", endpoint.host, "-p", String(endpoint.port), "-c", String(clients), "-n", String(requests), "-r", String(keyspace), "--precision", "3", "--csv", ...command];
  const child = trackChild(spawn("redis-benchmark", args, { stdio: ["ignore", "pipe", "pipe"] }));
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const first: CpuSample | null = sampleCpu(child.pid!);
  let last = first;
  const sampler = setInterval(() => (last = sampleCpu(child.pid!) ?? last), cpuSampleIntervalMs);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearInterval(sampler);
  const row = output
    .split("\n")
    .find((line) => line.startsWith('"') && !line.startsWith('"test"'))
    ?.split('","')
    .map((cell) => cell.replaceAll('"', ""));
  if (code !== 0 || row === undefined) throw new Error(`redis-benchmark failed (exit ${code}): ${output.slice(-500)}`);
  // Columns: test, rps, avg, min, p50, p95, p99, max (ms).
  return { requestsPerSecond: Number(row[1]), p50Ms: Number(row[4]), p99Ms: Number(row[6]), maxMs: Number(row[7]), requests, cores: coresUsed(first, last), output };
}
