import { describe, expect, it } from "vitest";
import { Cluster } from "./cluster.js";
import { checkLiveness } from "./liveness.js";
import { Prng } from "./prng.js";
import { commitAll, electionMaxMs, heartbeatMs, othersThan, settledLeader } from "./scenario-helpers.js";

/** The Figure 8 workload: propose at the leader, crash it at random moments, keep a majority mostly up. */
function figure8(cluster: Cluster, random: Prng, iterations: number, crashLeaders: boolean): void {
  let valueNext = 0;
  for (let iteration = 0; iteration < iterations; iteration++) {
    const leaderId = cluster.leader();
    if (leaderId !== undefined) cluster.propose(`f8-${valueNext++}`, leaderId);
    cluster.runFor(random.chance(0.1) ? random.int(0, electionMaxMs * 2) : random.int(0, 13));
    if (leaderId !== undefined && random.chance(0.5)) {
      if (crashLeaders && !cluster.isCrashed(leaderId)) cluster.crash(leaderId);
      else if (!crashLeaders) cluster.isolate(leaderId);
    }
    const up = cluster.ids.filter((id) => !cluster.isCrashed(id));
    if (up.length < 3) cluster.restart(random.pick(cluster.ids.filter((id) => cluster.isCrashed(id))));
    if (!crashLeaders && random.chance(0.3)) cluster.heal();
  }
}

describe("faults (simulated)", () => {
  it("Figure 8: leaders crashing at random moments never lose or change a committed entry", () => {
    for (const seed of [81, 82, 83]) {
      const cluster = Cluster.create({ nodes: 5, seed });
      settledLeader(cluster);
      figure8(cluster, new Prng(seed).fork("figure8"), 300, true);
      checkLiveness(cluster);
      commitAll(cluster, [`final-${seed}`]);
      expect(cluster.acknowledgedProposals().length).toBeGreaterThan(5);
    }
  });

  it("Figure 8 on an unreliable network with long reordering: still safe, and it recovers", () => {
    for (const seed of [84, 85]) {
      const cluster = Cluster.create({
        nodes: 5,
        seed,
        network: { dropProbability: 0.1, duplicateProbability: 0.05, longDelayProbability: 0.05, longDelayMinMs: 200, longDelayMaxMs: 3000 },
      });
      settledLeader(cluster, 20_000);
      figure8(cluster, new Prng(seed).fork("figure8"), 300, false);
      checkLiveness(cluster);
      expect(cluster.acknowledgedProposals().length).toBeGreaterThan(5);
    }
  });

  it("a crashed leader is replaced within a few heartbeats when followers campaign on losing its stream", () => {
    const failoverMs: number[] = [];
    for (let seed = 301; seed <= 311; seed++) {
      const cluster = Cluster.create({ nodes: seed % 2 === 0 ? 3 : 5, seed, raft: { leaderLossCampaignWithinMs: heartbeatMs } });
      const oldLeaderId = settledLeader(cluster);
      commitAll(cluster, ["before"]);
      const crashedAtMs = cluster.nowMs;
      cluster.crash(oldLeaderId);
      cluster.runUntil(() => cluster.leader() !== undefined && cluster.leader() !== oldLeaderId, 5 * electionMaxMs, "a new leader");
      failoverMs.push(cluster.nowMs - crashedAtMs);
      commitAll(cluster, ["after"]);
    }
    failoverMs.sort((a, b) => a - b);
    // Followers would otherwise wait out a whole election timeout (150-300 ms here). Two candidates that
    // drew close points of the window still split the vote and wait one: hence the median.
    expect(failoverMs[Math.floor(failoverMs.length / 2)]).toBeLessThan(3 * heartbeatMs);
  });

  it("a deposed leader cut off by a partition never serves a stale read, by lease or by ReadIndex", () => {
    for (const useLease of [true, false]) {
      const cluster = Cluster.create({ nodes: 5, seed: useLease ? 91 : 92 });
      const oldLeaderId = settledLeader(cluster);
      commitAll(cluster, ["before"]);
      cluster.runFor(3 * heartbeatMs); // a fresh lease
      cluster.isolate(oldLeaderId);
      // Keep reading at the old leader while the majority elects a new leader and commits new values.
      const readsAtOldLeader = [];
      for (let k = 0; k < 40; k++) {
        readsAtOldLeader.push(cluster.read(oldLeaderId, useLease));
        if (k % 5 === 0) {
          const leaderId = cluster.leader();
          if (leaderId !== undefined && leaderId !== oldLeaderId) cluster.propose(`after-${k}`, leaderId);
        }
        cluster.runFor(heartbeatMs);
      }
      const newLeaderId = cluster.leader()!;
      expect(newLeaderId).not.toBe(oldLeaderId);
      expect(cluster.acknowledgedProposals().some((p) => p.value.startsWith("after-"))).toBe(true);
      // The invariant checker already failed any stale read; spell the outcome out for this scenario:
      for (const read of readsAtOldLeader) {
        if (read.status === "served") expect(read.servedIndex!).toBeGreaterThanOrEqual(read.ackedIndexAtIssue);
      }
      const lateReads = readsAtOldLeader.filter((read) => read.issuedAtMs > cluster.nowMs - 10 * heartbeatMs);
      expect(lateReads.every((read) => read.status !== "served")).toBe(true);
      if (useLease) expect(readsAtOldLeader[0]!.status).toBe("served"); // within the lease: served at once
    }
  });

  it("a leader paused past its lease (a long GC) does not serve a stale lease read when it wakes", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 93 });
    const oldLeaderId = settledLeader(cluster);
    commitAll(cluster, ["before"]);
    cluster.pause(oldLeaderId, 4 * electionMaxMs);
    cluster.runUntil(() => othersThan(cluster, oldLeaderId).includes(cluster.leader() ?? ""), 5_000, "a new leader");
    commitAll(cluster, ["while-paused"]);
    cluster.runUntil(() => !cluster.isPaused(oldLeaderId), 5_000, "the old leader wakes");
    const read = cluster.read(oldLeaderId, true);
    cluster.runFor(electionMaxMs);
    expect(read.status === "served" ? read.servedIndex! >= read.ackedIndexAtIssue : true).toBe(true);
    expect(read.status).not.toBe("pending");
  });

  it("serves lease reads at once and ReadIndex reads within a round trip on a healthy cluster", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 94 });
    const leaderId = settledLeader(cluster);
    commitAll(cluster, ["x"]);
    cluster.runFor(3 * heartbeatMs);
    const lease = cluster.read(leaderId, true);
    const readIndex = cluster.read(leaderId, false);
    const followerRead = cluster.read(othersThan(cluster, leaderId)[0]!, false);
    cluster.runFor(heartbeatMs);
    expect(lease.status).toBe("served");
    expect(readIndex.status).toBe("served");
    expect(lease.servedValueCount).toBe(1);
    expect(followerRead.status).toBe("failed"); // followers forward reads; the core refuses them
  });
});
