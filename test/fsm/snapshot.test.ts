import { describe, expect, it } from "vitest";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import type { Command } from "../../src/fsm/commands.js";
import { DecodeError } from "../../src/util/bytes.js";
import { FsmHarness, testLimits } from "./harness.js";

/** Small enough that the busy state below has pushed its first events out of the window. */
const windowEventsMax = 4;

/** A state with one of everything: labelled and implicit sessions, queues, elections, a leader, a compacted window. */
function busyHarness(): FsmHarness {
  const h = new FsmHarness({ watchHistoryEventsMax: windowEventsMax });
  h.run({ type: "leader-changed", leaderId: "n1", term: 1 });
  const session = h.openSession(5_000, "worker ✓");
  const other = h.openSession(8_000);
  h.acquire("orders", "alice", { sessionId: session, waiterId: "alice-1" });
  h.acquire("orders", "bob", { wait: true, waiterId: "bob-1", ttlMs: 4_000 });
  h.acquire("orders", "carol", { wait: true, sessionId: other, waiterId: "carol-1" });
  h.acquire("billing", "dave", { waiterId: "dave-1" });
  h.campaign("primary", "n1", { value: "10.0.0.1", sessionId: other, waiterId: "n1-c" });
  h.campaign("primary", "n2", { value: "10.0.0.2", waiterId: "n2-c" });
  h.campaign("secondary", "n3", { waiterId: "n3-c" });
  h.skip(3);
  h.run({ type: "leader-changed", leaderId: "n2", term: 2 });
  return h;
}

/** What can be asked of a state machine, to compare two of them beyond their bytes. */
function views(fsm: CoordinationStateMachine): unknown {
  return {
    applied: fsm.appliedIndex,
    lastToken: fsm.lastTokenIssued,
    locks: ["orders", "billing", "none"].map((name) => fsm.lockInfo(name)),
    elections: ["primary", "secondary"].map((name) => fsm.electionLeader(name)),
    sessions: fsm.sessionLeases(),
    waiters: ["bob-1", "carol-1", "alice-1"].map((id) => fsm.waiterStatus("lock", "orders", id)),
    leader: fsm.raftLeader(),
    watch: ["lock:orders", "election:primary", "raft:leader"].map((channel) => [0, 5, 8, 12].map((since) => fsm.eventsSince(channel, since))),
  };
}

const later: Command[] = [
  { type: "lock-release", name: "orders", owner: "alice" },
  { type: "sessions-expire", sessionIds: [5] }, // bob's lease, opened when he is granted "orders"
  { type: "elect-resign", election: "primary", candidate: "n1" },
  { type: "lock-acquire", name: "orders", owner: "erin", ttlMs: 9_000, wait: true, waiterId: "erin-1" },
  { type: "lock-cancel", name: "orders", waiterId: "carol-1" },
  { type: "session-close", sessionId: 3 },
];

describe("snapshots", () => {
  it("a restored state machine has the same bytes, views and watch window", () => {
    const h = busyHarness();
    const bytes = h.fsm.snapshot();
    const restored = new CoordinationStateMachine({ ...testLimits, watchHistoryEventsMax: windowEventsMax });
    restored.restore(bytes);
    expect(restored.snapshot()).toEqual(bytes);
    expect(views(restored)).toEqual(views(h.fsm));
    expect(h.fsm.eventsSince("lock:orders", 0).kind).toBe("compacted");
  });

  it("restoring and applying the same later entries gives byte-identical snapshots and the same replies", () => {
    const h = busyHarness();
    const copy = new FsmHarness({ watchHistoryEventsMax: windowEventsMax });
    copy.fsm.restore(h.fsm.snapshot());
    const snapshotIndex = h.lastIndex;
    copy.lastIndex = snapshotIndex;
    for (const command of later) {
      expect(copy.run(command)).toEqual(h.run(command));
      expect(copy.fsm.snapshot()).toEqual(h.fsm.snapshot());
    }
    expect(copy.events).toEqual(h.events.filter((event) => event.index > snapshotIndex));
    expect(h.fsm.lockInfo("orders")?.owner).toBe("erin");
    expect(views(copy.fsm)).toEqual(views(h.fsm));
  });

  it("what a session end does does not depend on the order the restored tables were filled in", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    h.acquire("b", "holder-b");
    h.acquire("a", "holder-a");
    // Waits taken in the order b, a; a restored state machine fills its tables sorted by name.
    h.acquire("b", "app", { wait: true, sessionId: session, waiterId: "app-b" });
    h.acquire("a", "app", { wait: true, sessionId: session, waiterId: "app-a" });
    h.acquire("b", "app2", { sessionId: session, wait: true, waiterId: "app2-b" });
    const copy = new FsmHarness();
    copy.fsm.restore(h.fsm.snapshot());
    copy.lastIndex = h.lastIndex;
    const mark = h.events.length;
    const copyMark = copy.events.length; // after the restore's replay of the history
    const expire: Command = { type: "sessions-expire", sessionIds: [session] };
    expect(copy.run(expire)).toEqual(h.run(expire));
    expect(copy.eventsAfter(copyMark)).toEqual(h.eventsAfter(mark));
    expect(h.eventsAfter(mark).map((event) => event.type === "lock-dropped" && event.waiterId)).toEqual(["app-a", "app-b", "app2-b", false]);
    expect(copy.fsm.snapshot()).toEqual(h.fsm.snapshot());
  });

  it("a snapshot of an empty state machine restores to an empty one", () => {
    const empty = new CoordinationStateMachine(testLimits);
    const restored = new CoordinationStateMachine(testLimits);
    restored.restore(empty.snapshot());
    expect(restored.snapshot()).toEqual(empty.snapshot());
  });

  it("refuses bytes that are not a snapshot of ours and keeps its state", () => {
    const h = busyHarness();
    const before = h.fsm.snapshot();
    const truncated = before.subarray(0, before.length - 1);
    const future = new Uint8Array(before);
    future[0] = 3;
    for (const bad of [new Uint8Array(0), truncated, future, new Uint8Array([...before, 0])]) {
      expect(() => h.fsm.restore(bad)).toThrow(DecodeError);
    }
    expect(h.fsm.snapshot()).toEqual(before);
  });

  // Found by the fuzz tests (test/fuzz/snapshot.ts): such a snapshot failed an assertion in reindex, which
  // crashes the node; the bytes come from a file or the leader, so they are refused as input instead.
  it("refuses, as a DecodeError, a well-formed snapshot whose state breaks an invariant, and keeps its state", () => {
    const h = busyHarness();
    const before = h.fsm.snapshot();
    const noTokensIssued = new Uint8Array(before);
    // lastTokenIssued: the u53 after the version byte and the applied index, little-endian.
    noTokensIssued.fill(0, 9, 17);
    expect(() => h.fsm.restore(noTokensIssued)).toThrow(/not a unique one of those issued \(1 to 0\)/);
    expect(() => h.fsm.restore(noTokensIssued)).toThrow(DecodeError);
    const nothingApplied = new Uint8Array(before);
    nothingApplied.fill(0, 1, 9);
    expect(() => h.fsm.restore(nothingApplied)).toThrow(DecodeError);
    expect(h.fsm.snapshot()).toEqual(before);
  });

  it("refuses a snapshot holding a session opened after its last applied entry: the next session would take its id", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    const bytes = new Uint8Array(h.fsm.snapshot());
    // The session table follows the version, two u53s and the leader flag: its count, then the first id.
    expect(new DataView(bytes.buffer).getUint32(18, true)).toBe(1);
    expect(bytes[22]).toBe(session);
    bytes[22] = session + 5;
    const restored = new CoordinationStateMachine(testLimits);
    expect(() => restored.restore(bytes)).toThrow(/session 6 was not opened by an applied entry \(1 to 1\)/);
  });

  it("refuses a snapshot whose watch history starts after its last applied entry: the next entry's events could not be kept", () => {
    const empty = new CoordinationStateMachine(testLimits).snapshot();
    const floorAhead = new Uint8Array(empty);
    // The history's floor index follows the version, two u53s, the leader flag and three u32 counts.
    floorAhead[30] = 127;
    const restored = new CoordinationStateMachine(testLimits);
    expect(() => restored.restore(floorAhead)).toThrow(/the watch history starts after 127, past the last applied entry 0/);
  });

  it("a follower that installs a snapshot delivers the events it skipped, in order, then tells restore listeners", () => {
    const leader = new FsmHarness();
    const follower = new FsmHarness();
    const commands: Command[] = [
      { type: "lock-acquire", name: "orders", owner: "alice", ttlMs: 10_000, wait: false, waiterId: "a1" },
      { type: "lock-acquire", name: "orders", owner: "bob", ttlMs: 10_000, wait: true, waiterId: "b1" },
      { type: "lock-release", name: "orders", owner: "alice" },
      { type: "leader-changed", leaderId: "n2", term: 2 },
    ];
    leader.run(commands[0]!);
    follower.run(commands[0]!);
    for (const command of commands.slice(1)) leader.run(command);
    const restores: unknown[] = [];
    follower.fsm.onRestore((restore) => restores.push(restore));
    const mark = follower.events.length;
    follower.fsm.restore(leader.fsm.snapshot());
    // The watch channels' events after index 1 (session events are not kept in the history).
    const kept = (events: typeof leader.events) => events.filter((event) => !event.channel.startsWith("session:"));
    expect(follower.eventsAfter(mark)).toEqual(kept(leader.events).filter((event) => event.index > 1));
    expect(restores).toEqual([{ previousAppliedIndex: 1, eventsMissed: false }]);
  });

  it("says events were missed when the snapshot's history no longer reaches back to the follower", () => {
    const leader = new FsmHarness({ watchHistoryEventsMax: 2 });
    const follower = new FsmHarness({ watchHistoryEventsMax: 2 });
    for (let k = 0; k < 5; k++) {
      leader.acquire("orders", `owner-${k}`);
      leader.run({ type: "lock-release", name: "orders", owner: `owner-${k}` });
    }
    const restores: unknown[] = [];
    follower.fsm.onRestore((restore) => restores.push(restore));
    follower.fsm.restore(leader.fsm.snapshot());
    expect(restores).toEqual([{ previousAppliedIndex: 0, eventsMissed: true }]);
    expect(follower.events).toEqual([]);
  });
});
