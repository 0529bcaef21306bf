import { describe, expect, it } from "vitest";
import { Raft } from "../../src/raft/raft.js";
import type { Message } from "../../src/raft/types.js";
import { bytes, electionMinMs, entriesWithTerms, freshState, heartbeatMs, TestNet, testConfig } from "./harness.js";

const voters = ["n1", "n2", "n3"];

describe("replication recovers from what the network and disks do", () => {
  it("a leader that compacted sends a snapshot to a follower with an empty log instead of crashing", () => {
    const net = new TestNet(voters);
    net.isolated.add("n3"); // partitioned since boot: its log is empty
    net.elect("n1");
    const leader = net.node("n1");
    for (let k = 0; k < 5; k++) leader.propose(bytes(`v${k}`));
    net.deliverAll();
    const applied = leader.status().lastApplied;
    leader.compact({ meta: { index: applied, term: leader.termAt(applied)!, config: { voters, learners: [], addresses: {} } }, data: bytes("s") }, applied + 1);
    net.isolated.delete("n3");
    leader.reportUnreachable("n3", net.nowMs);
    net.advance(heartbeatMs * 3);
    expect(net.sent.some((m) => m.type === "snapshot" && m.to === "n3")).toBe(true);
    leader.reportSnapshot("n3", true);
    net.advance(heartbeatMs * 3);
    expect(net.node("n3").status().commitIndex).toBe(leader.status().commitIndex);
  });

  it("a snapshot installed while a batch is being written does not move applied backwards", () => {
    const raft = new Raft(testConfig("n2"), { ...freshState(voters), hardState: { currentTerm: 2, votedFor: null, commitIndex: 0 }, entries: entriesWithTerms([1, 1, 2]) }, 0);
    raft.step({ type: "append", from: "n1", to: "n2", term: 2, prevLogIndex: 3, prevLogTerm: 2, entries: [], leaderCommit: 3 }, 10);
    const first = raft.ready();
    expect(first.committedEntries).toHaveLength(3);
    const snapshot = { meta: { index: 10, term: 2, config: { voters, learners: [], addresses: {} } }, data: bytes("s") };
    raft.step({ type: "snapshot", from: "n1", to: "n2", term: 2, snapshot }, 11);
    raft.advance(first);
    const second = raft.ready();
    expect(second.snapshot?.meta.index).toBe(10);
    raft.advance(second);
    expect(raft.status().lastApplied).toBe(10);
  });

  it("a caught-up follower put back into probe returns to replicate instead of ping-ponging probes", () => {
    const net = new TestNet(voters);
    net.elect("n1");
    net.node("n1").reportUnreachable("n2", net.nowMs);
    const before = net.sentOfType("append").length;
    net.deliverAll();
    expect(net.sentOfType("append").length - before).toBeLessThanOrEqual(1);
    expect(net.node("n1").status().progress.get("n2")!.state).toBe("replicate");
  });

  it("a follower whose appends were lost unnoticed catches up within a few heartbeats", () => {
    const net = new TestNet(voters, () => ({ inflightMessagesMax: 4 }));
    net.elect("n1");
    const lost = (message: Message) => !(message.type === "append" && message.to === "n3");
    for (let k = 0; k < 8; k++) {
      net.node("n1").propose(bytes(`v${k}`));
      net.deliverAll(lost);
    }
    expect(net.node("n3").status().lastIndex).toBeLessThan(net.node("n1").status().lastIndex);
    net.advance(heartbeatMs * 5);
    expect(net.node("n3").status().lastIndex).toBe(net.node("n1").status().lastIndex);
    expect(net.appliedData("n3")).toHaveLength(8);
  });

  it("a transfer whose target missed an append still completes", () => {
    const net = new TestNet(voters);
    net.elect("n1");
    net.node("n1").propose(bytes("x"));
    net.deliverAll((message) => !(message.type === "append" && message.to === "n3"));
    net.node("n1").transferLeadership("n3", net.nowMs);
    net.advance(electionMinMs / 2);
    expect(net.leader()).toBe("n3");
  });
});
