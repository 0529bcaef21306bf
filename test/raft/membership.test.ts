import { describe, expect, it } from "vitest";
import { decodeClusterConfig } from "../../src/raft/cluster-config.js";
import { EntryType, type Message, type VoteResponse } from "../../src/raft/types.js";
import { bytes, electionMaxMs, electionMinMs, freshState, heartbeatMs, TestNet } from "./harness.js";

const voters3 = ["n1", "n2", "n3"];

/** A three-voter cluster led by n1 with n4 started empty (a joining node). */
function clusterWithJoiner(): TestNet {
  const net = new TestNet(voters3);
  net.elect("n1");
  net.addNode("n4");
  return net;
}

function addLearner(net: TestNet, id = "n4"): void {
  const result = net.node("n1").proposeConfigChange({ type: "add-learner", nodeId: id, address: `${id}.local:7000` }, net.nowMs);
  expect(result).toMatchObject({ ok: true });
  net.deliverAll();
}

describe("membership changes through the log (pitfalls 18-20)", () => {
  it("the first leader writes the bootstrap configuration into the log, so every member holds it durably", () => {
    const net = new TestNet(voters3, () => ({}), () => ({ ...freshState(voters3), config: { voters: voters3, learners: [], addresses: { n1: "a:1", n2: "b:2", n3: "c:3" } } }));
    net.elect("n1");
    for (const id of voters3) {
      const first = net.disks.get(id)!.entries[0]!;
      expect(first.type).toBe(EntryType.Config);
      expect(decodeClusterConfig(first.data)).toEqual({ voters: voters3, learners: [], addresses: { n1: "a:1", n2: "b:2", n3: "c:3" } });
    }
    // The next leader has a configuration from the log: it writes an ordinary empty entry.
    net.isolated.add("n1");
    net.advance(electionMaxMs * 3);
    const next = net.leader();
    expect(next).not.toBe("n1");
    expect(net.disks.get(next)!.entries.at(-1)!.type).toBe(EntryType.Empty);
  });

  it("a learner replicates every entry but neither votes nor counts towards a commit", () => {
    const net = clusterWithJoiner();
    addLearner(net);
    const learner = net.node("n4");
    expect(learner.status().config).toEqual({ voters: voters3, learners: ["n4"], addresses: { n4: "n4.local:7000" } });
    net.node("n1").propose(bytes("x"));
    net.deliverAll();
    expect(net.appliedData("n4")).toEqual(["x"]);
    // Two of the three voters cut off: the learner's copy does not make a majority.
    net.isolated.add("n2");
    net.isolated.add("n3");
    const before = net.node("n1").status().commitIndex;
    net.node("n1").propose(bytes("y"));
    net.advance(heartbeatMs * 3);
    expect(net.node("n1").status().commitIndex).toBe(before);
    expect(net.node("n4").status().lastIndex).toBe(net.node("n1").status().lastIndex);
    // Long after the leader stepped down (CheckQuorum), the learner still has not campaigned.
    net.advance(electionMaxMs * 3);
    expect(net.sent.filter((m) => m.from === "n4" && (m.type === "pre-vote" || m.type === "vote"))).toEqual([]);
  });

  it("one change at a time: a second change waits until the first commits", () => {
    const net = clusterWithJoiner();
    net.addNode("n5");
    const leader = net.node("n1");
    expect(leader.proposeConfigChange({ type: "add-learner", nodeId: "n4", address: "n4:1" }, net.nowMs)).toMatchObject({ ok: true });
    expect(leader.proposeConfigChange({ type: "add-learner", nodeId: "n5", address: "n5:1" }, net.nowMs)).toEqual({ ok: false, reason: "config-change-pending" });
    net.deliverAll();
    expect(leader.proposeConfigChange({ type: "add-learner", nodeId: "n5", address: "n5:1" }, net.nowMs)).toMatchObject({ ok: true });
  });

  it("a new leader changes the configuration only after an entry of its own term committed (pitfall 18)", () => {
    const net = new TestNet(voters3);
    // Votes get through, appends do not: n1 wins, and its first entry cannot commit.
    const noAppends = (message: Message): boolean => message.type !== "append" && message.type !== "append-response";
    for (let k = 0; k < 1000 && net.node("n1").status().role !== "leader"; k++) {
      net.nowMs += 10;
      for (const raft of net.nodes.values()) raft.tick(net.nowMs);
      net.deliverAll(noAppends);
    }
    const leader = net.node("n1");
    expect(leader.status().role).toBe("leader");
    expect(leader.proposeConfigChange({ type: "remove", nodeId: "n3" }, net.nowMs)).toEqual({ ok: false, reason: "term-not-committed" });
  });

  it("checks each change against the configuration, and says why it refuses", () => {
    const net = clusterWithJoiner();
    const leader = net.node("n1");
    expect(leader.proposeConfigChange({ type: "promote", nodeId: "n4" }, net.nowMs)).toMatchObject({ ok: false, reason: "invalid-config-change", detail: "n4 is not a learner; add it as a learner first" });
    expect(leader.proposeConfigChange({ type: "remove", nodeId: "n9" }, net.nowMs)).toMatchObject({ ok: false, reason: "invalid-config-change", detail: "n9 is not a member" });
    expect(leader.proposeConfigChange({ type: "add-learner", nodeId: "n2", address: "x:1" }, net.nowMs)).toMatchObject({ ok: false, reason: "invalid-config-change", detail: "n2 is already a voter" });
    expect(net.node("n2").proposeConfigChange({ type: "remove", nodeId: "n3" }, net.nowMs)).toEqual({ ok: false, reason: "not-leader" });
  });

  it("promotes a learner only once it is caught up and answering (pitfall 19), and then counts it", () => {
    const net = clusterWithJoiner();
    net.isolated.add("n4");
    addLearner(net);
    for (let k = 0; k < 5; k++) net.node("n1").propose(bytes(`e${k}`));
    net.deliverAll();
    net.advance(electionMinMs); // silent for an election timeout
    expect(net.node("n1").proposeConfigChange({ type: "promote", nodeId: "n4" }, net.nowMs)).toMatchObject({ ok: false, reason: "learner-behind" });
    net.isolated.delete("n4");
    net.advance(heartbeatMs * 3);
    expect(net.node("n1").proposeConfigChange({ type: "promote", nodeId: "n4" }, net.nowMs)).toMatchObject({ ok: true });
    net.deliverAll();
    expect(net.node("n4").status().config.voters).toEqual([...voters3, "n4"]);
    // Four voters: a majority is three, so the leader and one follower no longer commit.
    net.isolated.add("n3");
    net.isolated.add("n4");
    const before = net.node("n1").status().commitIndex;
    net.node("n1").propose(bytes("needs three"));
    net.advance(heartbeatMs * 3);
    expect(net.node("n1").status().commitIndex).toBe(before);
  });

  it("a node asked to vote answers even while it thinks it is a learner (pitfall 19)", () => {
    const net = clusterWithJoiner();
    addLearner(net);
    const learner = net.node("n4");
    const { lastIndex, currentTerm } = learner.status();
    learner.step({ type: "vote", from: "n2", to: "n4", term: currentTerm + 1, lastLogIndex: lastIndex, lastLogTerm: learner.termAt(lastIndex)!, transfer: true }, net.nowMs);
    const ready = learner.ready();
    const responses = ready.messages.filter((m): m is VoteResponse => m.type === "vote-response");
    expect(responses).toEqual([expect.objectContaining({ to: "n2", granted: true })]);
  });

  it("a removed leader keeps leading until its removal commits, then hands over at once and never campaigns (pitfall 20)", () => {
    const net = new TestNet(voters3);
    net.elect("n1");
    const term = net.node("n1").status().currentTerm;
    const sentBefore = net.sent.length;
    expect(net.node("n1").proposeConfigChange({ type: "remove", nodeId: "n1" }, net.nowMs)).toMatchObject({ ok: true });
    // Leaving, it takes nothing new: the voters that commit its removal then hold its whole log.
    expect(net.node("n1").propose(bytes("late"))).toEqual({ ok: false, reason: "transferring" });
    net.deliverAll();
    expect(net.node("n1").status().role).toBe("follower");
    expect(net.sentOfType("timeout-now")).toHaveLength(1);
    const next = net.leader();
    expect(["n2", "n3"]).toContain(next);
    expect(net.node(next).status().currentTerm).toBe(term + 1);
    for (const id of ["n2", "n3"]) expect(net.node(id).status().config.voters).toEqual(["n2", "n3"]);
    net.node(next).propose(bytes("after"));
    net.advance(electionMaxMs * 3);
    expect(net.appliedData("n2")).toContain("after");
    expect(net.node(next).status().currentTerm).toBe(term + 1);
    expect(net.sent.slice(sentBefore).filter((m) => m.from === "n1" && (m.type === "pre-vote" || m.type === "vote"))).toEqual([]);
  });

  it("a removed node that missed its removal cannot disrupt the cluster (PreVote and stickiness)", () => {
    const net = new TestNet(voters3);
    net.elect("n1");
    net.isolated.add("n3");
    expect(net.node("n1").proposeConfigChange({ type: "remove", nodeId: "n3" }, net.nowMs)).toMatchObject({ ok: true });
    for (let k = 0; k < 3; k++) net.node("n1").propose(bytes(`e${k}`));
    net.deliverAll();
    const term = net.node("n1").status().currentTerm;
    net.advance(electionMaxMs * 2); // n3 times out and pre-campaigns, alone
    net.isolated.delete("n3");
    net.advance(electionMaxMs * 4);
    expect(net.sent.some((m: Message) => m.from === "n3" && m.type === "pre-vote")).toBe(true);
    expect(net.leader()).toBe("n1");
    expect(net.node("n1").status().currentTerm).toBe(term);
  });

  it("a configuration appended but overwritten by a new leader is undone on that follower", () => {
    const net = clusterWithJoiner();
    const original = net.node("n2").status().config;
    net.isolated.add("n1");
    // n1, cut off, appends a change that can never commit.
    expect(net.node("n1").proposeConfigChange({ type: "remove", nodeId: "n3" }, net.nowMs)).toMatchObject({ ok: true });
    expect(net.node("n1").status().config.voters).toEqual(["n1", "n2"]);
    net.advance(electionMaxMs * 3);
    const next = net.leader();
    expect(next).not.toBe("n1");
    net.node(next).propose(bytes("new term"));
    net.isolated.delete("n1");
    net.advance(electionMaxMs);
    expect(net.node("n1").status().config).toEqual(original);
    expect(net.node("n1").status().role).toBe("follower");
  });

  it("the configuration travels in snapshots: compaction keeps it, and a follower restored from one adopts it", () => {
    const net = clusterWithJoiner();
    net.isolated.add("n4");
    addLearner(net);
    for (let k = 0; k < 3; k++) net.node("n1").propose(bytes(`e${k}`));
    net.deliverAll();
    const leader = net.node("n1");
    const applied = leader.status().lastApplied;
    const config = leader.configAt(applied);
    expect(config.learners).toEqual(["n4"]);
    leader.compact({ meta: { index: applied, term: leader.termAt(applied)!, config }, data: bytes("state") }, applied + 1);
    expect(leader.configAt(applied)).toEqual(config);
    net.isolated.delete("n4");
    net.advance(heartbeatMs * 5);
    expect(net.sentOfType("snapshot").map((m) => m.to)).toEqual(["n4"]);
    expect(net.node("n4").status().config).toEqual(config);
  });
});
