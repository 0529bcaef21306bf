import { describe, expect, it } from "vitest";
import { Raft } from "../../src/raft/raft.js";
import { type AppendRequest, type AppendResponse, EntryType, type Message } from "../../src/raft/types.js";
import { bytes, electionMaxMs, electionMinMs, entriesWithTerms, entry, freshState, TestNet, testConfig } from "./harness.js";

/** A follower at term 5 holding a log with the given terms, past its start-up quiet period. */
function follower(terms: number[], commitIndex = 0): Raft {
  const initial = { ...freshState(["n1", "n2", "n3"]), hardState: { currentTerm: 5, votedFor: null, commitIndex }, entries: entriesWithTerms(terms) };
  return new Raft(testConfig("n2", { random: () => 0.99 }), initial, 0);
}

function append(overrides: Partial<AppendRequest>): AppendRequest {
  return { type: "append", from: "n1", to: "n2", term: 5, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, ...overrides };
}

function replies(raft: Raft): readonly Message[] {
  const ready = raft.ready();
  raft.advance(ready);
  return ready.messages;
}

describe("log replication", () => {
  it("commits proposals on every node, in order", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    for (let k = 0; k < 10; k++) expect(net.node("n1").propose(bytes(`v${k}`)).ok).toBe(true);
    net.deliverAll();
    const expected = Array.from({ length: 10 }, (_, k) => `v${k}`);
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(expected);
  });

  it("batches the proposals of one turn into one AppendEntries per follower", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const before = net.sentOfType("append").length;
    for (let k = 0; k < 50; k++) net.node("n1").propose(bytes(`v${k}`));
    net.flush();
    const appends = net.sentOfType("append").slice(before) as AppendRequest[];
    expect(appends).toHaveLength(2);
    for (const request of appends) expect(request.entries).toHaveLength(50);
  });

  it("refuses entries whose predecessor it does not hold, with a hint (consistency check)", () => {
    const raft = follower([1, 1, 2]);
    raft.step(append({ prevLogIndex: 3, prevLogTerm: 3, entries: [entry(4, 5)] }), 10);
    expect(replies(raft)).toMatchObject([{ type: "append-response", success: false, index: 3, conflictTerm: 2, conflictIndex: 3 }]);
    raft.step(append({ prevLogIndex: 7, prevLogTerm: 5, entries: [entry(8, 5)] }), 10);
    expect(replies(raft)).toMatchObject([{ success: false, index: 7, conflictTerm: 0, conflictIndex: 4 }]);
  });

  it("deletes a conflicting entry and everything after it (pitfall 7)", () => {
    const raft = follower([1, 1, 2, 2, 2]);
    raft.step(append({ prevLogIndex: 2, prevLogTerm: 1, entries: [entry(3, 3)] }), 10);
    expect(replies(raft)).toMatchObject([{ success: true, index: 3 }]);
    expect(raft.status().lastIndex).toBe(3);
    expect(raft.termAt(3)).toBe(3);
  });

  it("never shortens its log for an old, reordered AppendEntries whose entries all match (pitfall 7)", () => {
    const raft = follower([1, 1, 2]);
    raft.step(append({ prevLogIndex: 3, prevLogTerm: 2, entries: [entry(4, 5), entry(5, 5)] }), 10);
    replies(raft);
    raft.step(append({ prevLogIndex: 3, prevLogTerm: 2, entries: [entry(4, 5)] }), 10);
    expect(replies(raft)).toMatchObject([{ success: true, index: 4 }]);
    expect(raft.status().lastIndex).toBe(5);
  });

  it("never commits past the entries the leader sent, and never lowers the commit index", () => {
    const raft = follower([1, 1, 2, 2, 2]);
    raft.step(append({ prevLogIndex: 2, prevLogTerm: 1, entries: [], leaderCommit: 10 }), 10);
    replies(raft);
    expect(raft.status().commitIndex).toBe(2);
  });

  it("backs up over a long divergent tail in a few round trips, by term (pitfall 8)", () => {
    // n1 will lead at term 9 with 60 entries of term 8 after a common prefix; n2 holds 60 divergent ones of term 4.
    const prefix = [1, 1, 1];
    const leaderTerms = [...prefix, ...Array<number>(60).fill(8)];
    const followerTerms = [...prefix, ...Array<number>(30).fill(3), ...Array<number>(30).fill(4)];
    const net = new TestNet(["n1", "n2", "n3"], undefined, (id) => ({
      ...freshState(["n1", "n2", "n3"]),
      hardState: { currentTerm: 8, votedFor: null, commitIndex: 3 },
      entries: entriesWithTerms(id === "n2" ? followerTerms : leaderTerms),
    }));
    net.isolated.add("n3");
    net.elect("n1");
    const rejections = net.sent.filter((m) => m.type === "append-response" && !m.success && m.from === "n2");
    expect(rejections.length).toBeLessThanOrEqual(3);
    expect(net.node("n2").status().lastIndex).toBe(64);
    for (let index = 1; index <= 64; index++) expect(net.node("n2").termAt(index)).toBe(net.node("n1").termAt(index));
  });

  it("does not commit an entry of an earlier term by counting replicas (pitfall 9, figure 8)", () => {
    // Figure 8 (c): n1 leads at term 4 with [1:1, 2:2, 3:4]. Index 2 (term 2) reaches a majority of five
    // before index 3 does; committing it then would let n5 (last term 3) win and overwrite it.
    const voters5 = ["n1", "n2", "n3", "n4", "n5"];
    const initial = { ...freshState(voters5), hardState: { currentTerm: 3, votedFor: null, commitIndex: 1 }, entries: entriesWithTerms([1, 2]) };
    const leader = new Raft(testConfig("n1"), initial, 0);
    leader.tick(electionMinMs * 3); // pre-campaign at term 4
    for (const from of ["n2", "n3"]) leader.step({ type: "pre-vote-response", from, to: "n1", term: 4, granted: true }, electionMinMs * 3);
    for (const from of ["n2", "n3"]) leader.step({ type: "vote-response", from, to: "n1", term: 4, granted: true }, electionMinMs * 3);
    expect(leader.status()).toMatchObject({ role: "leader", currentTerm: 4, lastIndex: 3 });
    leader.advance(leader.ready()); // its own log is durable
    const ack = (from: string, index: number) =>
      leader.step({ type: "append-response", from, to: "n1", term: 4, success: true, index, conflictTerm: 0, conflictIndex: 0 }, electionMinMs * 3);
    ack("n2", 2);
    ack("n3", 2);
    expect(leader.status().commitIndex).toBe(1);
    ack("n2", 3);
    expect(leader.status().commitIndex).toBe(1);
    ack("n3", 3);
    expect(leader.status().commitIndex).toBe(3); // index 2 commits indirectly, with the term-4 entry
  });

  it("starts each term with an empty entry of that term (pitfall 10)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    // The very first leader's entry records the bootstrap configuration instead (membership.test.ts).
    expect(net.node("n1").entryAt(1)!.type).toBe(EntryType.Config);
    net.isolated.add("n1");
    net.advance(electionMaxMs * 3);
    const next = net.leader();
    const first = net.node(next).entryAt(2)!;
    expect(first.term).toBe(net.node(next).status().currentTerm);
    expect(first.type).toBe(EntryType.Empty);
    expect(first.data.length).toBe(0);
    expect(net.appliedData(next === "n2" ? "n3" : "n2")).toEqual([]); // never handed to the application as data
  });

  it("the leader counts itself toward a majority only after its own write is durable (pitfall 11)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n3");
    const leader = net.node("n1");
    const proposal = leader.propose(bytes("x"));
    expect(proposal.ok).toBe(true);
    const ready = leader.ready(); // handed to storage, not yet durable
    const index = (proposal as { index: number }).index;
    // n2 acknowledges before the leader's own write completes: one of three is not a majority.
    leader.step({ type: "append-response", from: "n2", to: "n1", term: ready.softState.currentTerm, success: true, index, conflictTerm: 0, conflictIndex: 0 }, net.nowMs);
    expect(leader.status().commitIndex).toBeLessThan(index);
    leader.advance(ready);
    expect(leader.status().commitIndex).toBe(index);
  });

  it("keeps at most the in-flight window of appends to a silent follower (pitfall 12)", () => {
    const net = new TestNet(["n1", "n2", "n3"], () => ({ inflightMessagesMax: 4 }));
    net.elect("n1");
    net.isolated.add("n3");
    const before = net.sent.filter((m) => m.type === "append" && m.to === "n3").length;
    for (let k = 0; k < 20; k++) {
      net.node("n1").propose(bytes(`v${k}`));
      net.flush();
    }
    const after = net.sent.filter((m) => m.type === "append" && m.to === "n3").length;
    expect(after - before).toBeLessThanOrEqual(4);
  });

  it("cuts AppendEntries at the byte limit, sending an oversized entry alone", () => {
    const net = new TestNet(["n1", "n2", "n3"], () => ({ appendBytesMax: 100, inflightBytesMax: 10_000 }));
    net.elect("n1");
    const before = net.sent.length;
    net.node("n1").propose(new Uint8Array(60));
    net.node("n1").propose(new Uint8Array(60));
    net.node("n1").propose(new Uint8Array(300));
    net.flush();
    const toN2 = net.sent.slice(before).filter((m): m is AppendRequest => m.type === "append" && m.to === "n2");
    expect(toN2.map((m) => m.entries.length)).toEqual([1, 1, 1]);
  });

  it("ignores responses of older terms and acknowledgements for truncated indexes (pitfall 13)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const leader = net.node("n1");
    const term = leader.status().currentTerm;
    const stale: AppendResponse = { type: "append-response", from: "n2", to: "n1", term: term - 1, success: true, index: 1000, conflictTerm: 0, conflictIndex: 0 };
    leader.step(stale, net.nowMs);
    expect(leader.status().progress.get("n2")!.matchIndex).toBeLessThan(1000);
    expect(leader.status().role).toBe("leader");
  });

  it("an isolated node's uncommitted entries are replaced by the new leader's", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n1");
    net.node("n1").propose(bytes("lost"));
    net.flush();
    net.advance(3 * electionMinMs);
    const newLeader = net.leader();
    expect(newLeader).not.toBe("n1");
    net.node(newLeader).propose(bytes("kept"));
    net.deliverAll();
    net.isolated.delete("n1");
    net.advance(3 * electionMinMs);
    expect(net.appliedData("n1")).toEqual(["kept"]);
  });
});

describe("a leader's own write (pitfall 11)", () => {
  it("lets the driver send a leader's appends before its write, but a candidate's vote requests only after", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const leader = net.node("n1");
    leader.propose(bytes("x"));
    const ready = leader.ready();
    expect(ready.entries).toHaveLength(1);
    expect(ready.leaderMessages.filter((m) => m.type === "append")).toHaveLength(2);
    expect(ready.messages).toEqual([]);
    leader.advance(ready);
    const candidate = new Raft(testConfig("n2"), freshState(["n1", "n2", "n3"]), 0);
    candidate.tick(5000);
    const preVote = candidate.ready();
    expect(preVote.leaderMessages).toEqual([]);
    expect(preVote.messages.map((m) => m.type)).toEqual(["pre-vote", "pre-vote"]);
  });
});
