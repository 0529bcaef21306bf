import { describe, expect, it } from "vitest";
import { encodeCommand } from "../../src/fsm/commands.js";
import { AssertionError } from "../../src/util/assert.js";
import { entry, FsmHarness } from "./harness.js";

describe("events and the watch history", () => {
  it("every event carries the log index of the entry that made it", () => {
    const h = new FsmHarness();
    h.skip(9); // a leader's empty entry and others that are not applied
    h.acquire("orders", "alice", { waiterId: "a-1" });
    h.skip(2);
    h.acquire("orders", "bob", { wait: true, waiterId: "b-1" });
    h.run({ type: "lock-release", name: "orders", owner: "alice" });
    expect(h.events.filter((event) => event.channel === "lock:orders")).toEqual([
      { type: "lock-granted", name: "orders", owner: "alice", token: 1, sessionId: 10, ttlMs: 10_000, waiterId: "a-1", index: 10, channel: "lock:orders" },
      { type: "lock-released", name: "orders", owner: "alice", token: 1, reason: "released", index: 14, channel: "lock:orders" },
      { type: "lock-granted", name: "orders", owner: "bob", token: 2, sessionId: 13, ttlMs: 10_000, waiterId: "b-1", index: 14, channel: "lock:orders" },
    ]);
  });

  it("leader-changed entries become raft:leader events in log order; repeats and older terms are ignored", () => {
    const h = new FsmHarness();
    expect(h.run({ type: "leader-changed", leaderId: "n1", term: 2 })).toEqual({ kind: "ok" });
    h.run({ type: "leader-changed", leaderId: "n1", term: 2 });
    h.run({ type: "leader-changed", leaderId: "n3", term: 1 });
    h.run({ type: "leader-changed", leaderId: "n2", term: 3 });
    expect(h.events).toEqual([
      { type: "raft-leader", leaderId: "n1", term: 2, index: 1, channel: "raft:leader" },
      { type: "raft-leader", leaderId: "n2", term: 3, index: 4, channel: "raft:leader" },
    ]);
    expect(h.fsm.raftLeader()).toEqual({ leaderId: "n2", term: 3, index: 4 });
  });

  it("eventsSince returns a channel's events after an index, oldest first", () => {
    const h = new FsmHarness();
    h.acquire("a", "alice"); // 1
    h.acquire("b", "bob"); // 2
    h.run({ type: "lock-release", name: "a", owner: "alice" }); // 3
    h.run({ type: "leader-changed", leaderId: "n1", term: 1 }); // 4
    const since = h.fsm.eventsSince("lock:a", 0);
    expect(since.kind === "events" && since.events.map((event) => [event.type, event.index])).toEqual([
      ["lock-granted", 1],
      ["lock-released", 3],
    ]);
    expect(h.fsm.eventsSince("lock:a", 1)).toMatchObject({ kind: "events", events: [{ type: "lock-released", index: 3 }] });
    expect(h.fsm.eventsSince("lock:a", 3)).toEqual({ kind: "events", events: [] });
    expect(h.fsm.eventsSince("raft:leader", 0)).toMatchObject({ kind: "events", events: [{ leaderId: "n1" }] });
    // Session lifecycle events reach subscribers but are not kept for watchers.
    expect(h.events.some((event) => event.type === "session-opened")).toBe(true);
    expect(h.fsm.eventsSince("session:1", 0)).toEqual({ kind: "events", events: [] });
  });

  it("answers compacted once the window no longer reaches back to the index asked for", () => {
    const h = new FsmHarness({ watchHistoryEventsMax: 3 });
    for (let i = 1; i <= 5; i++) h.run({ type: "leader-changed", leaderId: `n${i}`, term: i }); // one event at each index 1..5
    expect(h.fsm.eventsSince("raft:leader", 1)).toEqual({ kind: "compacted", oldestIndex: 2 });
    expect(h.fsm.eventsSince("raft:leader", 2)).toMatchObject({ kind: "events", events: [{ index: 3 }, { index: 4 }, { index: 5 }] });
    expect(h.fsm.eventsSince("lock:x", 0)).toEqual({ kind: "compacted", oldestIndex: 2 });
  });

  it("drops all events of an index together, so a since at that index never misses one", () => {
    const h = new FsmHarness({ watchHistoryEventsMax: 2 });
    h.acquire("orders", "alice"); // index 1: granted
    h.acquire("orders", "bob", { wait: true }); // index 2: nothing watched
    h.run({ type: "lock-release", name: "orders", owner: "alice" }); // index 3: released + granted; index 1 is dropped
    h.run({ type: "lock-release", name: "orders", owner: "bob" }); // index 4: released; both events of index 3 are dropped
    expect(h.fsm.eventsSince("lock:orders", 2)).toEqual({ kind: "compacted", oldestIndex: 3 });
    expect(h.fsm.eventsSince("lock:orders", 3)).toMatchObject({ kind: "events", events: [{ type: "lock-released", owner: "bob", index: 4 }] });
  });

  it("an unsubscribed listener gets nothing more", () => {
    const h = new FsmHarness();
    const seen: string[] = [];
    const unsubscribe = h.fsm.subscribe((event) => seen.push(event.type));
    h.acquire("a", "alice");
    unsubscribe();
    h.acquire("b", "alice");
    expect(seen).toEqual(["session-opened", "lock-granted"]);
  });

  it("entries apply in log order only, and never from inside a listener", () => {
    const h = new FsmHarness();
    h.acquire("a", "alice");
    expect(() => h.fsm.apply(entry(1, encodeCommand({ type: "lock-force-release", name: "a" })))).toThrow(AssertionError);
    h.fsm.subscribe(() => h.fsm.apply(entry(100, encodeCommand({ type: "lock-force-release", name: "a" }))));
    expect(() => h.acquire("b", "bob")).toThrow(AssertionError);
  });
});
