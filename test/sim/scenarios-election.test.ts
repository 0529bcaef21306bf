import { describe, expect, it } from "vitest";
import { Cluster } from "./cluster.js";
import { Prng } from "./prng.js";
import { electionMaxMs, heartbeatMs, othersThan, settledLeader, termOf } from "./scenario-helpers.js";

describe("elections (simulated)", () => {
  it("elects one leader that everyone follows, and the term stays put while the cluster idles", () => {
    for (const nodes of [3, 5, 7]) {
      const cluster = Cluster.create({ nodes, seed: 11 });
      const leaderId = settledLeader(cluster);
      const term = termOf(cluster, leaderId);
      cluster.runFor(50 * electionMaxMs);
      expect(cluster.leader()).toBe(leaderId);
      for (const id of cluster.ids) expect(termOf(cluster, id)).toBe(term);
    }
  });

  it("re-elects when the leader is cut off, and the old leader rejoins as a follower without an election", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 12 });
    const oldLeaderId = settledLeader(cluster);
    cluster.isolate(oldLeaderId);
    cluster.runUntil(() => othersThan(cluster, oldLeaderId).includes(cluster.leader() ?? ""), 5_000, "a new leader");
    const newLeaderId = cluster.leader()!;
    const newTerm = termOf(cluster, newLeaderId);
    cluster.runFor(5 * electionMaxMs);
    expect(termOf(cluster, oldLeaderId)).toBeLessThan(newTerm); // PreVote kept it from raising its term
    cluster.heal();
    cluster.runUntil(() => cluster.status(oldLeaderId)!.leaderId === newLeaderId, 5_000, "the old leader follows");
    expect(cluster.leader()).toBe(newLeaderId);
    expect(termOf(cluster, newLeaderId)).toBe(newTerm);
  });

  it("elects no leader without a quorum, and terms do not climb meanwhile", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 13 });
    settledLeader(cluster);
    const terms = cluster.ids.map((id) => termOf(cluster, id));
    cluster.partition(["n1"], ["n2"], ["n3"]); // n4 and n5 together are two of five
    cluster.runFor(2 * electionMaxMs);
    cluster.runUntil(() => cluster.leaders().length === 0, 5_000, "the old leader steps down");
    for (let k = 0; k < 20; k++) {
      cluster.runFor(electionMaxMs);
      expect(cluster.leaders()).toEqual([]);
    }
    expect(cluster.ids.map((id) => termOf(cluster, id))).toEqual(terms);
    cluster.heal();
    settledLeader(cluster);
  });

  it("keeps electing a leader in a 7-node cluster through many random disconnects of up to three nodes", () => {
    const cluster = Cluster.create({ nodes: 7, seed: 14 });
    settledLeader(cluster);
    const random = new Prng(14);
    for (let round = 0; round < 15; round++) {
      const cut = new Set<string>();
      while (cut.size < 3) cut.add(random.pick(cluster.ids));
      cluster.partition(...[...cut].map((id) => [id]));
      const connected = othersThan(cluster, ...cut);
      cluster.runUntil(
        () => {
          const leaderId = cluster.leader();
          return leaderId !== undefined && connected.includes(leaderId) && cluster.leaders().filter((id) => connected.includes(id)).length === 1;
        },
        5_000,
        `a leader among the connected majority in round ${round}`,
      );
      cluster.heal();
      cluster.runFor(random.int(0, 3) * heartbeatMs);
    }
    settledLeader(cluster);
  });

  it("a node partitioned away for a long time rejoins without raising the term (PreVote)", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 15 });
    const leaderId = settledLeader(cluster);
    const term = termOf(cluster, leaderId);
    const followerId = othersThan(cluster, leaderId)[0]!;
    cluster.isolate(followerId);
    cluster.runFor(30 * electionMaxMs);
    expect(termOf(cluster, followerId)).toBe(term);
    expect(cluster.status(followerId)!.role).toBe("pre-candidate");
    cluster.heal();
    cluster.runUntil(() => cluster.status(followerId)!.leaderId === leaderId, 2_000, "the rejoined node follows");
    expect(cluster.leader()).toBe(leaderId);
    expect(termOf(cluster, leaderId)).toBe(term);
  });

  it("uses a bounded number of messages for an election and for an idle heartbeat period", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 16 });
    settledLeader(cluster);
    const electionMessages = ["pre-vote", "pre-vote-response", "vote", "vote-response"].reduce(
      (sum, type) => sum + cluster.messagesSent(type as "vote"),
      0,
    );
    expect(electionMessages).toBeLessThanOrEqual(12); // one clean round is 8; allow one split
    cluster.runFor(10 * heartbeatMs);
    const before = cluster.messagesSent();
    const periods = 20;
    cluster.runFor(periods * heartbeatMs);
    // Per heartbeat period: one heartbeat and one reply per follower, nothing else.
    expect(cluster.messagesSent() - before).toBeLessThanOrEqual((periods + 1) * 2 * 2);
    expect(cluster.messagesSent("append")).toBeLessThanOrEqual(4);
  });

  it("hands leadership over on request, to an up-to-date node, within an election timeout", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 17 });
    const leaderId = settledLeader(cluster);
    const targetId = othersThan(cluster, leaderId)[2]!;
    const proposals = ["a", "b", "c"].map((value) => cluster.propose(value));
    expect(cluster.transfer(targetId)).toEqual({ ok: true });
    cluster.runUntil(() => cluster.leader() === targetId, electionMaxMs, "the target leads");
    cluster.runUntil(() => proposals.every((p) => p.status === "acked"), 2_000, "proposals made before the transfer commit");
    expect(settledLeader(cluster)).toBe(targetId);
  });
});
