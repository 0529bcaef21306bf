// The chaos checkers on hand-made records: each catches the violation it exists for and passes a clean run.
import { describe, expect, it } from "vitest";
import type { NodeLogEvent } from "../cluster.js";
import type { ClientRecord } from "../history.js";
import type { WatchedEvent, WatchSegment } from "../watchers.js";
import { checkClientsAgainstHistory, checkLockHistories } from "./locks.js";
import { checkMembershipHistory, type MembershipObservation } from "./membership.js";
import { checkRaftLogs } from "./raft-logs.js";
import { checkSessions } from "./sessions.js";
import { checkWatchStreams, mergeWatchHistories } from "./watch.js";

function lockEvent(index: number, n: number, type: string, owner: string, token: number, name = "a"): WatchedEvent {
  return { id: `${index}:${n}`, index, type, data: JSON.stringify({ type, name, owner, token, index, channel: `lock:${name}` }) };
}

function segment(events: WatchedEvent[], resumedFrom = "0", afterCompaction = false): WatchSegment {
  return { resumedFrom, afterCompaction, events };
}

const cleanHistory = [
  lockEvent(3, 1, "lock-granted", "c1", 3),
  lockEvent(5, 1, "lock-released", "c1", 3),
  lockEvent(5, 2, "lock-granted", "c2", 5),
  lockEvent(9, 1, "lock-expired", "c2", 5),
];

describe("the lock history checker", () => {
  it("passes alternating grants and ends with increasing tokens", () => {
    const { violations, grants } = checkLockHistories(new Map([["lock:a", cleanHistory]]));
    expect(violations).toEqual([]);
    expect(grants.get("a")).toEqual(new Map([[3, "c1"], [5, "c2"]]));
  });

  it("catches a second holder, a token that goes down, and a token granted on two locks", () => {
    const overlapping = [lockEvent(3, 1, "lock-granted", "c1", 3), lockEvent(4, 1, "lock-granted", "c2", 2)];
    const { violations } = checkLockHistories(new Map([["lock:a", overlapping], ["lock:b", [lockEvent(7, 1, "lock-granted", "c3", 3, "b")]]]));
    expect(violations.join("\n")).toContain("c2 granted token 2 at index 4 while c1 held token 3");
    expect(violations.join("\n")).toContain("token 2 at index 4 is not above the previous grant's 3");
    expect(violations.join("\n")).toContain("token 3 granted twice");
  });

  it("catches an acknowledged grant the cluster does not have, and a resource write with a token never granted", () => {
    const { grants } = checkLockHistories(new Map([["lock:a", cleanHistory]]));
    const acquire = (client: string, token: number): ClientRecord => ({ client, seq: 1, key: "a", kind: "acquire", invokeMs: 0, completeMs: 1, outcome: { type: "ok", value: token }, port: 1 });
    expect(checkClientsAgainstHistory([acquire("c1", 3), acquire("c2", 5)], [], grants)).toEqual([]);
    expect(checkClientsAgainstHistory([acquire("c1", 5)], [], grants)).toEqual(["c1 was told it holds a with token 5, but the cluster's history granted it to c2"]);
    const writes = [{ lock: "a", token: 7, client: "c1", atMs: 0, accepted: true }];
    expect(checkClientsAgainstHistory([], writes, grants)).toEqual(["the resource accepted c1's write to a with token 7, which the cluster granted to nobody"]);
  });
});

describe("the watch stream checker", () => {
  const stream = (nodeId: string, segments: WatchSegment[]) => ({ nodeId, channel: "lock:a", segments });

  it("passes streams that resume exactly where they broke", () => {
    const streams = [stream("n1", [segment(cleanHistory)]), stream("n2", [segment(cleanHistory.slice(0, 2)), segment(cleanHistory.slice(2), "5:1")])];
    const merged = mergeWatchHistories(streams);
    expect(merged.violations).toEqual([]);
    expect(checkWatchStreams(streams, merged.histories)).toEqual([]);
  });

  it("catches a gap, a repeat, and two nodes that disagree on an event", () => {
    const streams = [
      stream("n1", [segment(cleanHistory)]),
      stream("n2", [segment([cleanHistory[0]!]), segment(cleanHistory.slice(2), "5:1")]),
      stream("n3", [segment(cleanHistory.slice(0, 2)), segment(cleanHistory.slice(1), "3:1")]),
      stream("n4", [segment([{ ...cleanHistory[0]!, data: "{}" }])]),
    ];
    const merged = mergeWatchHistories(streams);
    expect(merged.violations).toEqual([`lock:a event 3:1: n1 delivered ${cleanHistory[0]!.data}, n4 delivered {}`]);
    expect(checkWatchStreams(streams, merged.histories)).toEqual(["n2's stream of lock:a skipped 5:1 before 5:2", "n3's stream of lock:a delivered 5:1 again or out of order"]);
  });

  it("allows the gap a node announced as compacted", () => {
    const streams = [stream("n1", [segment(cleanHistory)]), stream("n2", [segment([cleanHistory[0]!]), segment(cleanHistory.slice(3), "8", true)])];
    expect(checkWatchStreams(streams, mergeWatchHistories(streams).histories)).toEqual([]);
  });
});

describe("the Raft log checker", () => {
  const event = (nodeId: string, life: number, msg: string, term: number, role?: string, commitIndex?: number): NodeLogEvent => ({
    nodeId,
    life,
    msg,
    term,
    ...(role === undefined ? {} : { role }),
    ...(commitIndex === undefined ? {} : { commitIndex }),
  });

  it("passes one leader per term and terms that survive restarts", () => {
    const events = [event("n1", 0, "node started", 0), event("n1", 0, "raft state changed", 2, "leader"), event("n1", 1, "node started", 2), event("n2", 0, "raft state changed", 3, "leader")];
    expect(checkRaftLogs(events)).toEqual([]);
  });

  it("reads nodes that came and went on their own: a removed leader's terms do not bind the node that joined after it", () => {
    const events = [
      event("n3", 0, "node started", 0),
      event("n3", 0, "raft state changed", 2, "leader"),
      // n3 removed and discarded; n4 joins with an empty disk, so it starts at term 0.
      event("n4", 0, "node started", 0, undefined, 0),
      event("n4", 0, "raft state changed", 2, "follower"),
      event("n4", 0, "raft state changed", 3, "leader"),
      event("n4", 1, "node started", 3, undefined, 40),
    ];
    expect(checkRaftLogs(events)).toEqual([]);
  });

  it("catches two leaders in a term, a leader term lost across a restart, and a term going down", () => {
    const events = [
      event("n1", 0, "raft state changed", 4, "leader"),
      event("n2", 0, "raft state changed", 4, "leader"),
      event("n1", 1, "node started", 3),
      event("n3", 0, "raft state changed", 6, "follower"),
      event("n3", 0, "raft state changed", 5, "follower"),
      event("n2", 1, "node started", 4, undefined, 40),
      event("n2", 2, "node started", 4, undefined, 35),
    ];
    expect(checkRaftLogs(events)).toEqual([
      "n1 led in term 4 but restarted (life 1) with term 3: its term was not durable",
      "two leaders in term 4: n1 and n2",
      "n2 restarted (life 2) with commit index 35, below the 40 it had recovered before",
      "n3's term went from 6 down to 5 (life 0)",
    ]);
  });
});

describe("the session checker", () => {
  const record = (seq: number, kind: "session-open" | "keepalive", invokeMs: number, outcome: ClientRecord["outcome"]): ClientRecord => ({
    client: "c1",
    seq,
    key: "session",
    kind,
    invokeMs,
    completeMs: invokeMs + 2,
    outcome,
    port: 1,
  });
  const ok = { type: "ok", value: 1 } as const;
  const noSession = { type: "fail", error: "NOSESSION the session expired or never existed; open a new one" } as const;

  it("passes expiries a TTL after the last keepalive that got through", () => {
    const records = [record(1, "session-open", 0, ok), record(2, "keepalive", 1_000, ok), record(3, "keepalive", 2_000, { type: "unknown", error: "timeout" }), record(4, "keepalive", 4_100, noSession)];
    expect(checkSessions(records, 3_000)).toEqual([]);
  });

  it("catches a session that expired sooner than a TTL after a successful keepalive was sent", () => {
    const records = [record(1, "session-open", 0, ok), record(2, "keepalive", 1_000, ok), record(3, "keepalive", 2_500, noSession)];
    expect(checkSessions(records, 3_000)).toEqual(["c1's session expired early: NOSESSION at +1502 ms after the keepalive that kept it alive was sent (TTL 3000 ms)"]);
  });
});


describe("the membership history checker", () => {
  const observation = (what: string, invokeMs: number, configIndex: number, voters: string[], change?: { committedIndex: number; removed?: string }): MembershipObservation => ({
    what,
    invokeMs,
    completeMs: invokeMs + 10,
    configIndex,
    voters,
    learners: [],
    ...change,
  });

  it("passes reads that follow acknowledged changes, and an uncommitted configuration a new leader overwrote", () => {
    const history = [
      observation("GET via n1", 0, 3, ["n1", "n2", "n3"]),
      observation("DELETE n3 via n1", 20, 9, ["n1", "n2", "n4"], { committedIndex: 9, removed: "n3" }),
      observation("GET via n2", 40, 12, ["n1", "n2", "n4", "n5"]),
      // Overlaps nothing acknowledged: an older configuration is fine once the later one was never committed.
      observation("GET via n4", 60, 9, ["n1", "n2", "n4"]),
    ];
    expect(checkMembershipHistory(history)).toEqual([]);
  });

  it("catches a committed configuration lost, a removed node listed again, and a removal whose answer still lists it", () => {
    const history = [
      observation("DELETE n3 via n1", 0, 9, ["n1", "n2", "n3"], { committedIndex: 9, removed: "n3" }),
      observation("GET via n2", 40, 7, ["n1", "n2", "n3"]),
    ];
    expect(checkMembershipHistory(history)).toEqual([
      "DELETE n3 via n1 was acknowledged, but its answer still lists n3 (configuration 9)",
      "GET via n2 showed configuration 7, older than the 9 that DELETE n3 via n1 had committed before it began",
      "GET via n2 listed n3 (configuration 7) after DELETE n3 via n1 had removed it",
    ]);
  });
});
