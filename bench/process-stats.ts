// CPU time and memory of a process from /proc (Linux): how much of a core each node, etcd member or
// generator used during a measured window, and its peak resident set.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ). */
const clockTicksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

export interface CpuSample {
  readonly cpuMs: number;
  readonly atMs: number;
}

/** User plus system CPU time the process has used so far; null once it is gone. */
export function sampleCpu(pid: number): CpuSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { cpuMs: (ticks * 1000) / clockTicksPerSecond, atMs: performance.now() };
  } catch {
    return null;
  }
}

/** Cores used between two samples (1.0 = one core busy all the time). */
export function coresUsed(before: CpuSample | null, after: CpuSample | null): number {
  if (before === null || after === null || after.atMs <= before.atMs) return Number.NaN;
  return (after.cpuMs - before.cpuMs) / (after.atMs - before.atMs);
}

export interface MemorySample {
  /** Resident set now. */
  readonly rssBytes: number;
  /** Peak resident set since start or since the last `resetPeakRss`. */
  readonly peakRssBytes: number;
}

/** Resident set and its peak now; null once the process is gone. */
export function sampleMemory(pid: number): MemorySample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
    return { rssBytes: kib("VmRSS"), peakRssBytes: kib("VmHWM") };
  } catch {
    return null;
  }
}

/** Restarts the peak-RSS count (VmHWM) of a process we started, so each measured window has its own peak. */
export function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // Not permitted (another user's process, or a kernel without it): the peak then counts from the start.
  }
}

export interface MachineCpuSample {
  /** CPU time all processes used (user, nice, system, irq, softirq, steal), in ms. */
  readonly busyMs: number;
  readonly atMs: number;
}

/** Machine-wide busy CPU time from /proc/stat: with the measured processes' own, what everything else used. */
export function sampleMachineCpu(): MachineCpuSample | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    const busyTicks = user! + nice! + system! + irq! + softirq! + steal!;
    return { busyMs: (busyTicks * 1000) / clockTicksPerSecond, atMs: performance.now() };
  } catch {
    return null;
  }
}

/** Cores the whole machine used between two samples. */
export function machineCoresUsed(before: MachineCpuSample | null, after: MachineCpuSample | null): number {
  if (before === null || after === null || after.atMs <= before.atMs) return Number.NaN;
  return (after.busyMs - before.busyMs) / (after.atMs - before.atMs);
}
