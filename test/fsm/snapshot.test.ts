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
    const expire: Command = { type: "sessions-expire", sessionIds: [session] };
    expect(copy.run(expire)).toEqual(h.run(expire));
    expect(copy.events).toEqual(h.eventsAfter(mark));
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
});
