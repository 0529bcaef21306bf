// Other jobs on the machine (a test suite, a build) take cores from the servers and make figures
// meaningless on 2 cores: before each figure, wait (a bounded time) until nothing else is busy.
import { coresUsed, machineCoresUsed, sampleCpu, sampleMachineCpu } from "./process-stats.js";

/** Other processes may use this much (of one core) and the machine still counts as quiet. */
export const otherCoresQuietMax = 0.15;
/** Each check measures this long. */
const checkMs = 1000;

/** Cores used in the next second by processes other than `ours` (and this one). */
async function otherCores(ours: readonly number[]): Promise<number> {
  const pids = [...ours, process.pid];
  const machineBefore = sampleMachineCpu();
  const before = pids.map(sampleCpu);
  await new Promise((resolve) => setTimeout(resolve, checkMs));
  const machineAfter = sampleMachineCpu();
  const measured = pids.reduce((sum, pid, k) => sum + (coresUsed(before[k] ?? null, sampleCpu(pid)) || 0), 0);
  return machineCoresUsed(machineBefore, machineAfter) - measured;
}

/**
 * Waits until other processes use under `otherCoresQuietMax` of a core, for at most `waitMaxMs`; returns
 * how busy the machine still was (the figure is then taken anyway, and its "other CPU" column says so).
 */
export async function waitForQuietMachine(ours: readonly number[], waitMaxMs: number, progress: (line: string) => void): Promise<number> {
  const deadlineMs = performance.now() + waitMaxMs;
  let told = false;
  for (;;) {
    const others = await otherCores(ours);
    if (others < otherCoresQuietMax || performance.now() >= deadlineMs) return others;
    if (!told) progress(`other processes use ${(others * 100).toFixed(0)}% of a core: waiting up to ${(waitMaxMs / 1000).toFixed(0)} s for a quiet machine`);
    told = true;
  }
}
