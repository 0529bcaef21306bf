import { describe, expect, it } from "vitest";
import { Raft } from "../../src/raft/raft.js";
import type { Message, VoteRequest } from "../../src/raft/types.js";
import { electionMaxMs, electionMinMs, entriesWithTerms, freshState, TestNet, testConfig } from "./harness.js";

function voteRequest(overrides: Partial<VoteRequest>): VoteRequest {
  return { type: "vote", from: "n2", to: "n1", term: 5, lastLogIndex: 0, lastLogTerm: 0, transfer: false, ...overrides };
}

/** A follower at term 3 whose log is terms [1, 1, 3], long past any leader contact. */
function followerWithLog(): Raft {
  const initial = { ...freshState(["n1", "n2", "n3"]), hardState: { currentTerm: 3, votedFor: null, commitIndex: 0 }, entries: entriesWithTerms([1, 1, 3]) };
  const raft = new Raft(testConfig("n1", { random: () => 0.99 }), initial, 0);
  raft.tick(electionMinMs + 1); // past the start-up quiet period, before its own election timeout
  return raft;
}

function votesIn(raft: Raft): Message[] {
  const ready = raft.ready();
  raft.advance(ready);
  return ready.messages.filter((m) => m.type === "vote-response");
}

describe("elections", () => {
  it("elects exactly one leader in a fresh 3-node cluster, with one round of votes", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.advance(electionMaxMs + 500);
    expect(net.leader()).toBe("n1");
    expect(net.sentOfType("pre-vote")).toHaveLength(2);
    expect(net.sentOfType("vote")).toHaveLength(2);
    for (const id of ["n2", "n3"]) expect(net.node(id).status().leaderId).toBe("n1");
  });

  it("grants a vote only to a log at least as up to date, comparing last terms first (pitfall 1)", () => {
    // Longer log with an older last term: refused.
    let raft = followerWithLog();
    raft.step(voteRequest({ lastLogIndex: 10, lastLogTerm: 2 }), electionMinMs + 1);
    expect(votesIn(raft)).toMatchObject([{ granted: false }]);
    // Shorter log with a newer last term: granted.
    raft = followerWithLog();
    raft.step(voteRequest({ lastLogIndex: 1, lastLogTerm: 4 }), electionMinMs + 1);
    expect(votesIn(raft)).toMatchObject([{ granted: true }]);
    // Same last term, shorter: refused; same last term, as long: granted.
    raft = followerWithLog();
    raft.step(voteRequest({ lastLogIndex: 2, lastLogTerm: 3 }), electionMinMs + 1);
    expect(votesIn(raft)).toMatchObject([{ granted: false }]);
    raft = followerWithLog();
    raft.step(voteRequest({ lastLogIndex: 3, lastLogTerm: 3 }), electionMinMs + 1);
    expect(votesIn(raft)).toMatchObject([{ granted: true }]);
  });

  it("hands out a vote only in a batch that also persists that term and vote (pitfall 2)", () => {
    const raft = followerWithLog();
    raft.step(voteRequest({ term: 7, lastLogIndex: 3, lastLogTerm: 3 }), electionMinMs + 1);
    const ready = raft.ready();
    expect(ready.hardState).toMatchObject({ currentTerm: 7, votedFor: "n2" });
    expect(ready.messages).toMatchObject([{ type: "vote-response", granted: true, term: 7 }]);
  });

  it("votes at most once per term, also after a restart from what it persisted", () => {
    const raft = followerWithLog();
    raft.step(voteRequest({ term: 7, lastLogIndex: 3, lastLogTerm: 3 }), electionMinMs + 1);
    const ready = raft.ready();
    raft.advance(ready);
    raft.step(voteRequest({ from: "n3", term: 7, lastLogIndex: 3, lastLogTerm: 3 }), electionMinMs + 2);
    expect(votesIn(raft)).toMatchObject([{ granted: false }]);
    const restarted = new Raft(
      testConfig("n1"),
      { ...freshState(["n1", "n2", "n3"]), hardState: ready.hardState!, entries: entriesWithTerms([1, 1, 3]) },
      10_000,
    );
    restarted.tick(10_000 + electionMinMs); // past its quiet period
    restarted.step(voteRequest({ from: "n3", term: 7, lastLogIndex: 3, lastLogTerm: 3 }), 10_000 + electionMinMs);
    expect(votesIn(restarted)).toMatchObject([{ granted: false }]);
  });

  it("keeps its vote when it steps down within the same term (pitfall 3)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.advance(electionMaxMs + 500);
    const term = net.node("n2").status().currentTerm;
    expect(net.node("n2").status().votedFor).toBe("n1");
    // A competing candidate of the same term is refused: n2 already voted for n1.
    net.node("n2").step(voteRequest({ from: "n3", to: "n2", term, lastLogIndex: 99, lastLogTerm: term, transfer: true }), net.nowMs);
    expect(votesIn(net.node("n2"))).toMatchObject([{ granted: false }]);
    expect(net.node("n2").status().votedFor).toBe("n1");
  });

  it("a rejoining node asks with PreVote and does not raise its term or disturb the leader (pitfall 4)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const term = net.node("n1").status().currentTerm;
    net.isolated.add("n3");
    net.advance(10 * electionMaxMs);
    expect(net.node("n3").status().currentTerm).toBe(term); // PreVote never won, term unchanged
    net.isolated.delete("n3");
    net.advance(3 * electionMaxMs);
    expect(net.leader()).toBe("n1");
    expect(net.node("n1").status().currentTerm).toBe(term);
    expect(net.node("n3").status().leaderId).toBe("n1");
  });

  it("followers that heard from the leader ignore vote requests, unless for a leadership transfer (pitfall 5)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const term = net.node("n2").status().currentTerm;
    const lastIndex = net.node("n2").status().lastIndex;
    net.node("n2").step(voteRequest({ from: "n3", to: "n2", term: term + 1, lastLogIndex: lastIndex, lastLogTerm: term }), net.nowMs);
    expect(net.node("n2").ready().messages).toEqual([]);
    expect(net.node("n2").status().currentTerm).toBe(term);
  });

  it("a leader that cannot hear a majority steps down within an election timeout (CheckQuorum)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n1");
    net.advance(electionMinMs + 100);
    expect(net.node("n1").status().role).toBe("follower");
  });

  it("a pre-candidate forgets its leader, so that it can be overruled (pitfall 6)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    // n3 cannot hear the leader, but n2 can hear n3.
    net.isolated.add("n3");
    net.advance(electionMaxMs + 100);
    expect(net.node("n3").status().role).toBe("pre-candidate");
    expect(net.node("n3").status().leaderId).toBeNull();
  });

  it("never elects a leader without a quorum", () => {
    const net = new TestNet(["n1", "n2", "n3", "n4", "n5"]);
    for (const id of ["n3", "n4", "n5"]) net.isolated.add(id);
    net.advance(20 * electionMaxMs);
    for (const raft of net.nodes.values()) expect(raft.status().role).not.toBe("leader");
    expect(net.node("n1").status().currentTerm).toBe(0); // PreVote kept the minority's terms still
  });
});
