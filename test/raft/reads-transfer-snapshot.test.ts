import { describe, expect, it } from "vitest";
import type { ReadFailure, ReadState, SnapshotRequest } from "../../src/raft/types.js";
import { bytes, electionMaxMs, electionMinMs, heartbeatMs, TestNet } from "./harness.js";

function readsOf(net: TestNet, id: string): { states: ReadState[]; failures: ReadFailure[] } {
  const readies = net.readies.get(id)!;
  return { states: readies.flatMap((r) => r.readStates), failures: readies.flatMap((r) => r.readFailures) };
}

describe("reads", () => {
  it("ReadIndex answers with the commit index after a majority confirms leadership (pitfall 14)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.node("n1").propose(bytes("a"));
    net.deliverAll();
    const commitIndex = net.node("n1").status().commitIndex;
    net.node("n1").readIndex("r1", net.nowMs, false);
    net.flush();
    expect(readsOf(net, "n1").states).toEqual([]); // waits for the heartbeat round
    net.deliverAll();
    expect(readsOf(net, "n1").states).toEqual([{ context: "r1", index: commitIndex }]);
  });

  it("ReadIndex waits while the leader is cut off, and fails when it steps down", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n1");
    net.node("n1").readIndex("r1", net.nowMs, false);
    net.advance(heartbeatMs * 3);
    expect(readsOf(net, "n1").states).toEqual([]);
    net.advance(electionMinMs);
    expect(readsOf(net, "n1").failures).toEqual([{ context: "r1", reason: "not-leader" }]);
  });

  it("a read before the new leader commits an entry of its term waits for that commit (pitfall 14)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.advance(electionMaxMs); // n1 times out first; stop before it hears votes back
    for (let k = 0; k < 50 && net.node("n1").status().role !== "leader"; k++) {
      net.advance(10);
    }
    const leader = net.node("n1");
    expect(leader.status().role).toBe("leader");
    leader.readIndex("early", net.nowMs, false);
    net.deliverAll();
    const [read] = readsOf(net, "n1").states;
    expect(read?.index).toBeGreaterThanOrEqual(1);
    expect(leader.termAt(read!.index)).toBe(leader.status().currentTerm);
  });

  it("a lease read is answered at once while the lease holds, and not after the lease ran out (pitfall 15)", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.advance(heartbeatMs * 2);
    net.node("n1").readIndex("lease", net.nowMs, true);
    net.flush();
    expect(readsOf(net, "n1").states.map((s) => s.context)).toEqual(["lease"]);
    // Cut the leader off: its heartbeats are no longer acknowledged, and the lease runs out.
    net.isolated.add("n1");
    net.advance(electionMinMs - 40); // past start + electionMinMs - leaseDriftBoundMs
    expect(net.node("n1").leaseValid(net.nowMs)).toBe(false);
    net.node("n1").readIndex("late", net.nowMs, true);
    net.flush();
    expect(readsOf(net, "n1").states.map((s) => s.context)).toEqual(["lease"]);
  });

  it("a follower refuses reads: they go to the leader", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.node("n2").readIndex("r", net.nowMs, false);
    net.flush();
    expect(readsOf(net, "n2").failures).toEqual([{ context: "r", reason: "not-leader" }]);
  });
});

describe("leadership transfer (pitfall 21)", () => {
  it("hands leadership to an up-to-date follower, which wins at once", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const term = net.node("n1").status().currentTerm;
    expect(net.node("n1").transferLeadership("n3", net.nowMs)).toEqual({ ok: true });
    net.deliverAll();
    expect(net.leader()).toBe("n3");
    expect(net.node("n3").status().currentTerm).toBe(term + 1);
  });

  it("brings a lagging target up to date first, and refuses proposals meanwhile", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n3");
    for (let k = 0; k < 5; k++) net.node("n1").propose(bytes(`v${k}`));
    net.deliverAll();
    net.isolated.delete("n3");
    net.node("n1").reportUnreachable("n3", net.nowMs);
    net.node("n1").transferLeadership("n3", net.nowMs);
    expect(net.node("n1").propose(bytes("refused"))).toEqual({ ok: false, reason: "transferring" });
    expect(net.node("n1").leaseValid(net.nowMs)).toBe(false);
    net.advance(heartbeatMs * 3);
    expect(net.leader()).toBe("n3");
    expect(net.appliedData("n3")).toEqual(["v0", "v1", "v2", "v3", "v4"]);
  });

  it("gives up after an election timeout when the target does not answer", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n3");
    net.node("n1").transferLeadership("n3", net.nowMs);
    net.advance(electionMinMs + heartbeatMs);
    expect(net.leader()).toBe("n1");
    expect(net.node("n1").propose(bytes("after")).ok).toBe(true);
  });
});

describe("snapshots (pitfall 16)", () => {
  it("sends a snapshot to a follower behind the compacted log, which then catches up", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    net.isolated.add("n3");
    for (let k = 0; k < 20; k++) net.node("n1").propose(bytes(`v${k}`));
    net.deliverAll();
    const leader = net.node("n1");
    const appliedIndex = leader.status().lastApplied;
    const snapshot = { meta: { index: appliedIndex, term: leader.termAt(appliedIndex)!, config: { voters: ["n1", "n2", "n3"], learners: [], addresses: {} } }, data: bytes("state") };
    leader.compact(snapshot, appliedIndex - 2);
    expect(leader.status().firstIndex).toBe(appliedIndex - 2);
    net.isolated.delete("n3");
    leader.reportUnreachable("n3", net.nowMs);
    net.advance(heartbeatMs * 3);
    const sent = net.sent.filter((m): m is SnapshotRequest => m.type === "snapshot" && m.to === "n3");
    expect(sent).toHaveLength(1);
    leader.reportSnapshot("n3", true);
    leader.propose(bytes("after"));
    net.advance(heartbeatMs * 3);
    expect(net.disks.get("n3")!.snapshot?.meta.index).toBe(appliedIndex);
    expect(net.node("n3").status().commitIndex).toBe(leader.status().commitIndex);
    expect(net.appliedData("n3")).toEqual(["after"]);
  });
});

describe("log retention (pitfall 17)", () => {
  it("asks the driver to keep the log a live, slow follower or a snapshot in flight still needs", () => {
    const net = new TestNet(["n1", "n2", "n3"]);
    net.elect("n1");
    const leader = net.node("n1");
    expect(leader.retentionFloor()).toBe(leader.status().lastIndex);
    net.isolated.add("n3");
    for (let k = 0; k < 10; k++) leader.propose(bytes(`v${k}`));
    net.deliverAll();
    const n3Match = leader.status().progress.get("n3")!.matchIndex;
    expect(leader.retentionFloor()).toBe(n3Match);
    // Once n3 has been silent for an election timeout it no longer pins the log.
    net.advance(electionMinMs);
    expect(leader.retentionFloor()).toBe(leader.status().progress.get("n2")!.matchIndex);
  });
});
