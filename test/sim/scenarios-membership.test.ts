import { describe, expect, it } from "vitest";
import { EntryType, type Message, type NodeId } from "../../src/raft/types.js";
import { Cluster } from "./cluster.js";
import { checkLiveness } from "./liveness.js";
import { Admin, changeMembership, joinAsVoter, removeAndDiscard } from "./membership.js";
import { configKey } from "./membership-invariants.js";
import {
  appliedEverywhere,
  commitAll,
  electionMaxMs,
  electionMinMs,
  heartbeatMs,
  keepWriting,
  othersThan,
  settledLeader,
  termOf,
  valuesFrom,
} from "./scenario-helpers.js";

function votersOf(cluster: Cluster, id: NodeId): string[] {
  return [...cluster.status(id)!.config.voters].sort();
}

/** Every running node among `ids` has the same configuration in force, and it is committed there. */
function agreeOnConfig(cluster: Cluster, ids: readonly NodeId[]): string {
  const keys = new Set<string>();
  for (const id of ids) {
    const status = cluster.status(id)!;
    expect(status.configIndex, `${id}'s configuration is committed`).toBeLessThanOrEqual(status.commitIndex);
    keys.add(configKey(status.config));
  }
  expect([...keys]).toHaveLength(1);
  return [...keys][0]!;
}

function carriesConfig(message: Message): boolean {
  return message.type === "append" && message.entries.some((entry) => entry.type === EntryType.Config);
}

describe("membership changes (simulated)", () => {
  it("a learner added under a partition catches up, never counts towards a commit, and is promoted once caught up", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 101 });
    const leaderId = settledLeader(cluster);
    commitAll(cluster, valuesFrom("before", 10));
    const learnerId = cluster.addNode();
    cluster.isolate(learnerId);
    changeMembership(cluster, { type: "add-learner", nodeId: learnerId, address: `${learnerId}.sim:7000` });
    expect(cluster.status(learnerId)!.config.voters).toEqual([]); // it has heard nothing yet

    // Still cut off: the admin's promotion is refused until it gives up.
    const admin = new Admin(cluster, { giveUpAfterMs: 4 * electionMaxMs });
    const early = admin.request({ type: "promote", nodeId: learnerId });
    cluster.runUntil(() => early.status !== "pending", 8 * electionMaxMs, "the early promotion ends");
    expect(early).toMatchObject({ status: "failed" });
    expect(early.lastRefusal).toMatch(/learner-behind/);

    cluster.heal();
    appliedEverywhere(cluster, valuesFrom("before", 10));
    expect(votersOf(cluster, learnerId)).toEqual(["n1", "n2", "n3"]);
    expect(cluster.status(learnerId)!.config.learners).toEqual([learnerId]);

    // The leader and two learners would be three of five nodes, but of the voters only one: nothing
    // commits, whatever the learners store.
    const secondLearnerId = cluster.addNode();
    changeMembership(cluster, { type: "add-learner", nodeId: secondLearnerId, address: `${secondLearnerId}.sim:7000` });
    cluster.runFor(3 * heartbeatMs);
    cluster.partition([leaderId, learnerId, secondLearnerId]);
    const doomed = cluster.propose("leader-and-learners-only", leaderId);
    cluster.runUntil(() => cluster.status(secondLearnerId)!.lastIndex === doomed.index, 2_000, "the learners store the doomed entry");
    cluster.runFor(3 * electionMaxMs);
    expect(doomed.status).not.toBe("acked");
    expect(cluster.leaders().filter((id) => id !== leaderId)).toHaveLength(1);
    cluster.heal();
    settledLeader(cluster);
    removeAndDiscard(cluster, secondLearnerId);

    // A follower crashes; the learner is promoted with two of three voters up, and then counts.
    const crashedId = othersThan(cluster, cluster.leader()!, learnerId)[0]!;
    cluster.crash(crashedId);
    changeMembership(cluster, { type: "promote", nodeId: learnerId });
    commitAll(cluster, valuesFrom("four-voters", 5));
    cluster.restart(crashedId);
    appliedEverywhere(cluster, valuesFrom("four-voters", 5));
    for (const id of cluster.ids) expect(votersOf(cluster, id)).toEqual(["n1", "n2", "n3", learnerId]);
    expect(doomed.status).toBe("lost");
    checkLiveness(cluster);
  });

  it("removes a follower: the others go on without it, and it is sent nothing more", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 102 });
    const leaderId = settledLeader(cluster);
    commitAll(cluster, ["before"]);
    const removedId = othersThan(cluster, leaderId)[1]!;
    changeMembership(cluster, { type: "remove", nodeId: removedId });
    const remaining = othersThan(cluster, removedId);
    cluster.runFor(2 * heartbeatMs);
    agreeOnConfig(cluster, remaining);
    expect(votersOf(cluster, leaderId)).toEqual(remaining.slice().sort());
    const lastIndexOfRemoved = cluster.status(removedId)!.lastIndex;
    let sentToRemoved = 0;
    cluster.filterMessages((message) => {
      if (message.to === removedId) sentToRemoved++;
      return true;
    });
    commitAll(cluster, valuesFrom("after", 5));
    cluster.runFor(10 * electionMaxMs);
    expect(sentToRemoved).toBe(0);
    expect(cluster.status(removedId)!.lastIndex).toBe(lastIndexOfRemoved);
    expect(cluster.leader()).toBe(leaderId);
    cluster.filterMessages(null);
    // Four voters: three are a majority, so one of them may fail.
    cluster.crash(othersThan(cluster, leaderId, removedId)[0]!);
    commitAll(cluster, ["one-down"]);
    cluster.discard(removedId);
    checkLiveness(cluster);
  });

  it("replaces a failed node: a new node joins as a voter, then the dead one is removed", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 103 });
    const leaderId = settledLeader(cluster);
    const deadId = othersThan(cluster, leaderId)[0]!;
    cluster.crash(deadId);
    commitAll(cluster, valuesFrom("while-dead", 10));
    const newId = joinAsVoter(cluster);
    expect(votersOf(cluster, cluster.leader()!)).toEqual([...["n1", "n2", "n3"], newId].sort());
    removeAndDiscard(cluster, deadId);
    expect(cluster.ids).not.toContain(deadId);
    const voters = votersOf(cluster, cluster.leader()!);
    expect(voters).toEqual(othersThan(cluster).slice().sort());
    // With the replacement in place, the cluster again survives one more failure.
    const anotherId = othersThan(cluster, cluster.leader()!)[0]!;
    cluster.crash(anotherId);
    commitAll(cluster, valuesFrom("replaced", 5));
    cluster.restart(anotherId);
    appliedEverywhere(cluster, [...valuesFrom("while-dead", 10), ...valuesFrom("replaced", 5)]);
    checkLiveness(cluster);
  });

  it("removes the leader: it leads until the removal commits, hands over at once, and never campaigns again", () => {
    for (const seed of [104, 105, 106]) {
      const cluster = Cluster.create({ nodes: 5, seed });
      const oldLeaderId = settledLeader(cluster);
      commitAll(cluster, ["before"]);
      const term = termOf(cluster, oldLeaderId);
      const campaignsBy = new Map<NodeId, number>();
      cluster.filterMessages((message) => {
        if (message.type === "pre-vote" || message.type === "vote") campaignsBy.set(message.from, (campaignsBy.get(message.from) ?? 0) + 1);
        return true;
      });
      const pendingWrites = valuesFrom(`s${seed}-during`, 3).map((value) => cluster.propose(value, oldLeaderId));
      const result = cluster.proposeConfigChange({ type: "remove", nodeId: oldLeaderId });
      expect(result).toMatchObject({ ok: true });
      cluster.runUntil(() => cluster.status(oldLeaderId)!.role !== "leader", 2 * electionMaxMs, "the removed leader steps down");
      const steppedDownMs = cluster.nowMs;
      cluster.runUntil(() => cluster.leader() !== undefined, electionMaxMs, "a new leader");
      // TimeoutNow: no election timeout is waited out.
      expect(cluster.nowMs - steppedDownMs).toBeLessThan(electionMinMs);
      const newLeaderId = cluster.leader()!;
      expect(newLeaderId).not.toBe(oldLeaderId);
      expect(termOf(cluster, newLeaderId)).toBe(term + 1);
      cluster.runUntil(() => pendingWrites.every((p) => p.status !== "pending"), 2_000, "the writes before the removal end");
      commitAll(cluster, [`s${seed}-after`]);
      campaignsBy.clear();
      cluster.runFor(20 * electionMaxMs);
      expect(campaignsBy.get(oldLeaderId) ?? 0).toBe(0);
      expect(cluster.leader()).toBe(newLeaderId);
      expect(termOf(cluster, newLeaderId)).toBe(term + 1);
      agreeOnConfig(cluster, othersThan(cluster, oldLeaderId));
      expect(votersOf(cluster, newLeaderId)).not.toContain(oldLeaderId);
      cluster.filterMessages(null);
      checkLiveness(cluster);
    }
  });

  it("a change interrupted by a leader crash is undone everywhere when no follower got it, and the next change works", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 107 });
    const oldLeaderId = settledLeader(cluster);
    commitAll(cluster, ["before"]);
    const targetId = othersThan(cluster, oldLeaderId)[0]!;
    cluster.filterMessages((message) => !carriesConfig(message));
    expect(cluster.proposeConfigChange({ type: "remove", nodeId: targetId })).toMatchObject({ ok: true });
    expect(votersOf(cluster, oldLeaderId)).not.toContain(targetId); // in force on the leader once appended
    cluster.runFor(3 * heartbeatMs);
    cluster.crash(oldLeaderId);
    cluster.filterMessages(null);
    cluster.runUntil(() => cluster.leader() !== undefined, 5_000, "a new leader");
    commitAll(cluster, ["after-crash"]);
    cluster.restart(oldLeaderId);
    appliedEverywhere(cluster, ["before", "after-crash"]);
    // The old leader's appended change was overwritten: its configuration went back with it.
    agreeOnConfig(cluster, cluster.ids);
    expect(votersOf(cluster, oldLeaderId)).toContain(targetId);
    // The next change works, also for the same node.
    changeMembership(cluster, { type: "remove", nodeId: targetId });
    removeAndDiscard(cluster, othersThan(cluster, cluster.leader()!, targetId)[0]!);
    cluster.discard(targetId);
    expect(votersOf(cluster, cluster.leader()!)).toHaveLength(3);
    checkLiveness(cluster);
  });

  it("a change interrupted by a leader crash after it reached a majority is committed by the next leader", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 108 });
    const oldLeaderId = settledLeader(cluster);
    commitAll(cluster, ["before"]);
    const newId = cluster.addNode();
    // The followers store the change, but the leader never hears that they did: it cannot commit it.
    cluster.filterMessages((message) => message.type !== "append-response" || message.to !== oldLeaderId);
    expect(cluster.proposeConfigChange({ type: "add-learner", nodeId: newId, address: `${newId}.sim:7000` })).toMatchObject({ ok: true });
    cluster.runUntil(
      () => othersThan(cluster, oldLeaderId, newId).every((id) => cluster.status(id)!.config.learners.includes(newId)),
      2_000,
      "the followers append the change",
    );
    expect(cluster.status(oldLeaderId)!.configIndex).toBeGreaterThan(cluster.status(oldLeaderId)!.commitIndex);
    cluster.crash(oldLeaderId);
    cluster.filterMessages(null);
    settledLeader(cluster);
    commitAll(cluster, ["after-crash"]);
    cluster.restart(oldLeaderId);
    appliedEverywhere(cluster, ["before", "after-crash"]);
    const key = agreeOnConfig(cluster, othersThan(cluster, newId));
    expect(key).toContain(`learners ${newId}`);
    // The next change works: the learner is promoted.
    changeMembership(cluster, { type: "promote", nodeId: newId });
    expect(votersOf(cluster, cluster.leader()!)).toContain(newId);
    checkLiveness(cluster);
  });

  it("a learner promoted without knowing it still votes, so the others can elect a leader without the old one (pitfall 19)", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 114 });
    const oldLeaderId = settledLeader(cluster);
    const learnerId = cluster.addNode();
    changeMembership(cluster, { type: "add-learner", nodeId: learnerId, address: `${learnerId}.sim:7000` });
    commitAll(cluster, ["learner-caught-up"]);
    appliedEverywhere(cluster, ["learner-caught-up"]);
    // The promotion commits on the three old voters; the learner never hears of it.
    cluster.filterMessages((message) => !(carriesConfig(message) && message.to === learnerId));
    const promotion = cluster.proposeConfigChange({ type: "promote", nodeId: learnerId });
    expect(promotion).toMatchObject({ ok: true });
    const promotionIndex = promotion.ok ? promotion.index : 0;
    cluster.runUntil(() => othersThan(cluster, learnerId).every((id) => cluster.status(id)!.commitIndex >= promotionIndex), 1_000, "the promotion commits");
    expect(cluster.status(learnerId)!.config.voters).not.toContain(learnerId);
    // Four voters, one down: the other two need the learner's vote.
    const grantedBy = new Set<NodeId>();
    const dropConfigToLearner = (message: Message): boolean => !(carriesConfig(message) && message.to === learnerId);
    cluster.filterMessages((message) => {
      if (message.type === "vote-response" && message.granted) grantedBy.add(message.from);
      return dropConfigToLearner(message);
    });
    cluster.crash(oldLeaderId);
    cluster.runUntil(() => cluster.leader() !== undefined, 10 * electionMaxMs, "a leader elected with the learner's vote");
    expect(grantedBy.has(learnerId)).toBe(true);
    expect(cluster.status(learnerId)!.config.voters).not.toContain(learnerId); // it voted while still a learner in its view
    cluster.filterMessages(null);
    commitAll(cluster, ["new-leader"]);
    cluster.restart(oldLeaderId);
    appliedEverywhere(cluster, ["learner-caught-up", "new-leader"]);
    agreeOnConfig(cluster, cluster.ids);
    expect(votersOf(cluster, learnerId)).toEqual(["n1", "n2", "n3", learnerId]);
    checkLiveness(cluster);
  });

  // Regression: a removed leader sent TimeoutNow only to a voter holding its whole log when the removal
  // committed, and while clients kept writing none did, so the cluster waited out an election timeout.
  // A leader that removed itself now refuses new proposals (as during a transfer): the voters that
  // commit its removal hold its whole log.
  it("removing the leader while clients keep writing still hands over at once (TimeoutNow to the most up-to-date voter)", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 116 });
    const oldLeaderId = settledLeader(cluster);
    const stopWriting = keepWriting(cluster, "w", 5);
    cluster.runFor(300);
    expect(cluster.proposeConfigChange({ type: "remove", nodeId: oldLeaderId })).toMatchObject({ ok: true });
    cluster.runUntil(() => cluster.status(oldLeaderId)!.role !== "leader", 2 * electionMaxMs, "the removed leader steps down");
    cluster.runUntil(() => cluster.leader() !== undefined, electionMinMs, "a new leader within a minimum election timeout");
    stopWriting();
    expect(cluster.messagesSent("timeout-now")).toBeGreaterThan(0);
  });

  // Regression (found by `npm run sim -- --seed 5165 --steps 20000 --membership 8`): a node whose latest
  // configuration left it out never campaigned, even while that configuration was uncommitted. A removed
  // leader cut off after appending its own removal and more entries steps down (CheckQuorum) holding the
  // only newest log; the remaining voter still has the committed two-voter configuration, needs its vote,
  // and is refused as less up to date: no leader ever again. The thesis (§4.2.2) has such a node still
  // start elections, not counting its own vote, until the new configuration commits.
  it("a leader cut off after appending its own removal is still elected when it alone holds the newest log (thesis §4.2.2)", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 115 });
    const leaderId = settledLeader(cluster);
    const [followerId, thirdId] = othersThan(cluster, leaderId) as [NodeId, NodeId];
    removeAndDiscard(cluster, thirdId);
    commitAll(cluster, ["two-voters"]);
    expect(cluster.leader()).toBe(leaderId);
    cluster.partition([leaderId], [followerId]);
    expect(cluster.proposeConfigChangeAt(leaderId, { type: "remove", nodeId: leaderId })).toMatchObject({ ok: true });
    cluster.propose("appended-after-the-removal", leaderId);
    cluster.runUntil(() => cluster.leaders().length === 0, 5_000, "the cut-off leader steps down (CheckQuorum)");
    cluster.heal();
    cluster.runUntil(() => cluster.leader() !== undefined, 20 * electionMaxMs, "a leader once the two voters reach each other again");
    cluster.runUntil(() => cluster.leader() === followerId, 5_000, "the removal commits and the follower takes over");
    expect(votersOf(cluster, followerId)).toEqual([followerId]);
    commitAll(cluster, ["one-voter"]);
  });

  it("a new leader changes the configuration only after an entry of its own term committed (the 2015 single-server bug)", () => {
    // Ongaro's trace: leader L of {L, A, B, C} starts promoting E; only E appends it; L crashes. A new
    // leader X that could not commit an entry of its term removes Z with only Y's help. L returns and is
    // elected by Z and E under its five-voter configuration: without the rule, X's committed entries are
    // lost (leader completeness fails at L's election); with it, X's change waits and nothing is lost.
    const cluster = Cluster.create({ nodes: 4, seed: 113 });
    const oldLeaderId = settledLeader(cluster);
    commitAll(cluster, ["before"]);
    const joinerId = cluster.addNode();
    changeMembership(cluster, { type: "add-learner", nodeId: joinerId, address: `${joinerId}.sim:7000` });
    commitAll(cluster, ["learner-caught-up"]);
    appliedEverywhere(cluster, ["before", "learner-caught-up"]);

    cluster.filterMessages((message) => !carriesConfig(message) || message.to === joinerId);
    const promotion = cluster.proposeConfigChange({ type: "promote", nodeId: joinerId });
    expect(promotion).toMatchObject({ ok: true });
    cluster.runUntil(() => cluster.status(joinerId)!.config.voters.includes(joinerId), 1_000, "the joiner appends its promotion");
    cluster.runFor(20); // the old leader's own write of it completes
    cluster.isolate(joinerId);
    cluster.crash(oldLeaderId);
    cluster.filterMessages(null);

    // The cut node Z reaches the others but never campaigns, and hears of the new term only by heartbeats.
    const [a, b, cutId] = othersThan(cluster, oldLeaderId, joinerId) as [NodeId, NodeId, NodeId];
    cluster.filterMessages((message) =>
      message.type === "append" ? message.to !== cutId : !((message.type === "pre-vote" || message.type === "vote") && message.from === cutId),
    );
    cluster.runUntil(() => [a, b].includes(cluster.leader() ?? ""), 5_000, "a leader elected with the cut node's vote");
    const newLeaderId = cluster.leader()!;
    const helperId = newLeaderId === a ? b : a;
    cluster.runFor(5 * heartbeatMs);
    expect(cluster.status(newLeaderId)!.commitIndex).toBeLessThan(cluster.status(newLeaderId)!.lastIndex);
    const removal = cluster.proposeConfigChangeAt(newLeaderId, { type: "remove", nodeId: cutId });
    cluster.runFor(5 * heartbeatMs);

    cluster.partition([newLeaderId, helperId]);
    cluster.filterMessages(null);
    cluster.restart(oldLeaderId);
    cluster.runUntil(() => cluster.leader() === oldLeaderId && cluster.status(oldLeaderId)!.currentTerm > termOf(cluster, newLeaderId), 10_000, "the old leader is elected by the cut node and the joiner");
    expect(removal).toMatchObject({ ok: false, reason: "term-not-committed" });
    cluster.heal();
    commitAll(cluster, ["after"]);
    checkLiveness(cluster);
    expect(votersOf(cluster, cluster.leader()!)).toEqual(["n1", "n2", "n3", "n4", joinerId]);
  });

  it("grows from 3 to 5 voters and shrinks back to 3 while clients keep writing; every acknowledged value survives on every final member", () => {
    for (const seed of [109, 110]) {
      const cluster = Cluster.create({
        nodes: 3,
        seed,
        compactEveryEntries: 25,
        network: { dropProbability: 0.02, duplicateProbability: 0.02 },
        disk: { tornWriteProbability: 0.5 },
      });
      settledLeader(cluster);
      const stopWriting = keepWriting(cluster, `s${seed}-w`);
      cluster.runFor(500);
      const joinedIds = [joinAsVoter(cluster), joinAsVoter(cluster)];
      cluster.runFor(500);
      expect(votersOf(cluster, cluster.leader()!)).toHaveLength(5);
      // Remove two of the original three, the leader first when it is one of them.
      const leaderId = cluster.leader()!;
      const originals = ["n1", "n2", "n3"];
      const leaving = originals.includes(leaderId) ? [leaderId, originals.find((id) => id !== leaderId)!] : originals.slice(0, 2);
      for (const id of leaving) {
        removeAndDiscard(cluster, id);
        cluster.runFor(300);
      }
      stopWriting();
      const finalMembers = [...originals.filter((id) => !leaving.includes(id)), ...joinedIds].sort();
      checkLiveness(cluster);
      expect(votersOf(cluster, cluster.leader()!)).toEqual(finalMembers);
      expect([...cluster.ids].sort()).toEqual(finalMembers);
      const acked = cluster.acknowledgedProposals();
      expect(acked.length).toBeGreaterThan(50);
      for (const id of finalMembers) {
        const missing = acked.filter((p) => !cluster.node(id).stateMachine.has(p.value)).map((p) => p.value);
        expect(missing, `acknowledged values missing on ${id}`).toEqual([]);
      }
    }
  });

  it("a removed node that missed its removal cannot raise the leader's term or take leadership", () => {
    const cluster = Cluster.create({ nodes: 5, seed: 111 });
    const leaderId = settledLeader(cluster);
    const term = termOf(cluster, leaderId);
    const removedId = othersThan(cluster, leaderId)[2]!;
    cluster.isolate(removedId);
    changeMembership(cluster, { type: "remove", nodeId: removedId });
    commitAll(cluster, valuesFrom("without-it", 5));
    // Alone, it times out and asks for votes (PreVote), without raising its own term.
    cluster.runFor(10 * electionMaxMs);
    expect(cluster.status(removedId)!.config.voters).toContain(removedId);
    expect(cluster.status(removedId)!.role).toBe("pre-candidate");
    // Its requests now reach the others, but nothing reaches it back.
    cluster.heal();
    for (const id of othersThan(cluster, removedId)) cluster.oneWay(id, removedId);
    cluster.runFor(10 * electionMaxMs);
    cluster.heal();
    cluster.runFor(20 * electionMaxMs);
    expect(cluster.leader()).toBe(leaderId);
    for (const id of othersThan(cluster, removedId)) expect(termOf(cluster, id)).toBe(term);
    expect(cluster.status(removedId)!.role).not.toBe("leader");
    commitAll(cluster, ["still-leading"]);
    checkLiveness(cluster);
    expect(cluster.leader()).toBe(leaderId);
    expect(termOf(cluster, leaderId)).toBe(term);
  });

  it("a node that joins after the log was compacted learns the configuration from a snapshot", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 112, compactEveryEntries: 10, retainedEntries: 3, retainedEntriesMax: 3 });
    settledLeader(cluster);
    commitAll(cluster, valuesFrom("v", 60), 20_000);
    const newId = joinAsVoter(cluster);
    expect(cluster.messagesSent("snapshot")).toBeGreaterThan(0);
    expect(cluster.status(newId)!.snapshotIndex).toBeGreaterThan(0);
    commitAll(cluster, ["after-join"]);
    appliedEverywhere(cluster, [...valuesFrom("v", 60), "after-join"]);
    agreeOnConfig(cluster, cluster.ids);
    expect(votersOf(cluster, newId)).toEqual(["n1", "n2", "n3", newId]);
    checkLiveness(cluster);
  });
});
