// CPU and peak memory of a set of server processes over one measured window.
import type { NodeLog } from "./clusters/node-log.js";
import { coresUsed, machineCoresUsed, resetPeakRss, sampleCpu, sampleMachineCpu, sampleMemory, type CpuSample, type MachineCpuSample } from "./process-stats.js";
import type { ServerUsage } from "./results.js";

/** The processes a scenario runs against: raftlock nodes, etcd members, or redis-server. */
export interface ServerSet {
  pids(): Map<string, number>;
  /** Each server's role at the start of the window ("leader", "follower"), where the system has roles. */
  readonly roles: ReadonlyMap<string, string>;
  readonly logs: ReadonlyMap<string, NodeLog>;
}

export class UsageWindow {
  private readonly before = new Map<string, CpuSample | null>();
  private readonly after = new Map<string, CpuSample | null>();
  private readonly peakRssBytes = new Map<string, number>();
  private machineBefore: MachineCpuSample | null = null;
  private machineAfter: MachineCpuSample | null = null;

  constructor(private readonly servers: ServerSet) {}

  opened(): void {
    this.machineBefore = sampleMachineCpu();
    for (const [name, pid] of this.servers.pids()) {
      resetPeakRss(pid);
      this.before.set(name, sampleCpu(pid));
    }
    for (const log of this.servers.logs.values()) log.resetWarnings();
  }

  closed(): void {
    this.machineAfter = sampleMachineCpu();
    for (const [name, pid] of this.servers.pids()) {
      this.after.set(name, sampleCpu(pid));
      this.peakRssBytes.set(name, sampleMemory(pid)?.peakRssBytes ?? Number.NaN);
    }
  }

  usage(): ServerUsage[] {
    return [...this.before.keys()].map((name) => ({
      name,
      role: this.servers.roles.get(name) ?? null,
      cores: coresUsed(this.before.get(name) ?? null, this.after.get(name) ?? null),
      peakRssBytes: this.peakRssBytes.get(name) ?? Number.NaN,
    }));
  }

  /** Cores the whole machine used in the window: servers, generators and anything else running. */
  machineCores(): number {
    return machineCoresUsed(this.machineBefore, this.machineAfter);
  }

  /** Warnings and errors the servers logged since the window opened, by server and message. */
  warnings(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const [name, log] of this.servers.logs) for (const [message, count] of log.warnings) counts[`${name} ${message}`] = count;
    return counts;
  }
}
