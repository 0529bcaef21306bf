// Followers that lose the leader's stream (a killed leader's sockets close at once) campaign within
// `leaderLossCampaignWithinMs` instead of an election timeout (issue 8's failover target), and a broken
// link to a live leader still disrupts nothing: the other followers keep shielding it.
import { describe, expect, it } from "vitest";
import { electionMinMs, TestNet, testConfig, freshState } from "./harness.js";
import { Raft } from "../../src/raft/raft.js";

const withinMs = 100;

function clusterWithFastFailover(): TestNet {
  const net = new TestNet(["n1", "n2", "n3"], () => ({ leaderLossCampaignWithinMs: withinMs }));
  net.elect("n1");
  return net;
}

describe("campaigning when the leader's stream is lost", () => {
  it("elects a new leader within the window once the followers lose a dead leader's stream", () => {
    const net = clusterWithFastFailover();
    const termBefore = net.node("n1").status().currentTerm;
    net.isolated.add("n1"); // killed: nothing from or to it any more
    for (const id of ["n2", "n3"]) net.node(id).reportUnreachable("n1", net.nowMs);
    expect(net.node("n2").status().leaderId).toBeNull();
    net.advance(withinMs + 20);
    net.isolated.delete("n1");
    const survivors = ["n2", "n3"].filter((id) => net.node(id).status().role === "leader");
    expect(survivors).toHaveLength(1);
    expect(net.node(survivors[0]!).status().currentTerm).toBe(termBefore + 1);
  });

  it("keeps asking within the window while another follower has not noticed the loss yet", () => {
    const net = clusterWithFastFailover();
    const termBefore = net.node("n1").status().currentTerm;
    net.isolated.add("n1");
    net.node("n2").reportUnreachable("n1", net.nowMs);
    // n3 still trusts n1 and ignores n2's PreVotes; a timer of a whole election timeout would follow.
    net.advance(3 * withinMs);
    expect(net.node("n2").status().role).not.toBe("leader");
    net.node("n3").reportUnreachable("n1", net.nowMs);
    // n2 asks again within its window (a third of it with this PRNG), before n3's own timer (two thirds).
    net.advance(withinMs / 2);
    expect(net.leader()).toBe("n2");
    expect(net.node("n2").status().currentTerm).toBe(termBefore + 1);
  });

  it("without the report, the same time passes without an election", () => {
    const net = clusterWithFastFailover();
    net.isolated.add("n1");
    net.advance(withinMs + 20);
    expect(net.sentOfType("pre-vote").filter((m) => m.from !== "n1")).toHaveLength(0);
    for (const id of ["n2", "n3"]) expect(net.node(id).status().role).toBe("follower");
  });

  it("a follower whose link alone broke cannot unseat a live leader: the others still shield it", () => {
    const net = clusterWithFastFailover();
    const termBefore = net.node("n1").status().currentTerm;
    net.node("n2").reportUnreachable("n1", net.nowMs);
    net.advance(electionMinMs);
    expect(net.leader()).toBe("n1");
    expect(net.node("n1").status().currentTerm).toBe(termBefore);
    expect(net.node("n2").status()).toMatchObject({ role: "follower", leaderId: "n1", currentTerm: termBefore });
  });

  it("is off by default: a lost stream leaves the follower loyal until its election timeout", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n1");
    for (const id of ["n2", "n3"]) net.node(id).reportUnreachable("n1", net.nowMs);
    expect(net.node("n2").status().leaderId).toBe("n1");
    net.advance(withinMs + 20);
    expect(net.sentOfType("pre-vote").filter((m) => m.from !== "n1")).toHaveLength(0);
  });

  it("refuses a lease read when followers may campaign early: the lease would prove nothing", () => {
    const raft = new Raft(testConfig("n1", { leaderLossCampaignWithinMs: withinMs }), freshState(["n1"]), 0);
    expect(() => raft.readIndex("read", 0, true)).toThrow(/lease read/);
  });
});
