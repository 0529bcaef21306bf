import { describe, expect, it } from "vitest";
import { FsmHarness, tokenOf, ttlMs } from "./harness.js";

describe("sessions", () => {
  it("a session's id is the log index of the entry that opened it", () => {
    const h = new FsmHarness();
    h.skip(4);
    expect(h.run({ type: "session-open", ttlMs, label: "worker-7" })).toEqual({ kind: "session", sessionId: 5, ttlMs });
    expect(h.fsm.sessionInfo(5)).toEqual({ sessionId: 5, ttlMs, label: "worker-7", implicit: false });
  });

  it("closing a session releases all its locks, drops its waiters and grants the heads in one entry, with increasing tokens", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    const other = h.openSession();
    tokenOf(h.acquire("b", "app", { sessionId: session }));
    tokenOf(h.acquire("a", "app", { sessionId: session }));
    tokenOf(h.acquire("c", "app", { sessionId: session }));
    h.acquire("b", "next-b", { wait: true, waiterId: "nb" });
    h.acquire("a", "next-a", { wait: true, waiterId: "na" });
    h.acquire("c", "next-c", { wait: true, sessionId: other, waiterId: "nc" });
    // The session also waits on a lock held by someone else.
    h.acquire("d", "someone");
    h.acquire("d", "app", { wait: true, sessionId: session, waiterId: "app-d" });
    h.campaign("e", "app", { sessionId: session });

    const mark = h.events.length;
    expect(h.run({ type: "session-close", sessionId: session })).toEqual({ kind: "closed", closed: true });
    const closeIndex = h.lastIndex;
    const events = h.eventsAfter(mark);
    expect(events.every((event) => event.index === closeIndex)).toBe(true);
    expect(events.find((event) => event.type === "lock-dropped")).toMatchObject({ name: "d", waiterId: "app-d", reason: "session-ended" });
    // Released in the order they were granted (b, a, c), each to the head of its queue.
    const grants = events.filter((event) => event.type === "lock-granted");
    expect(grants.map((event) => event.type === "lock-granted" && [event.name, event.owner])).toEqual([
      ["b", "next-b"],
      ["a", "next-a"],
      ["c", "next-c"],
    ]);
    const tokens = grants.map((event) => (event.type === "lock-granted" ? event.token : 0));
    expect(tokens).toEqual([...tokens].sort((x, y) => x - y));
    expect(new Set(tokens).size).toBe(3);
    expect(events.filter((event) => event.type === "lock-released").every((event) => event.type === "lock-released" && event.reason === "session-closed")).toBe(true);
    expect(events).toContainEqual(expect.objectContaining({ type: "election-vacant", name: "e" }));
    expect(events.at(-1)).toMatchObject({ type: "session-ended", sessionId: session, reason: "closed" });
    expect(h.fsm.lockInfo("c")).toMatchObject({ owner: "next-c", sessionId: other, implicitLease: false });
    expect(h.fsm.lockInfo("d")).toMatchObject({ owner: "someone", waiters: 0 });
    expect(h.fsm.sessionInfo(session)).toBeUndefined();
  });

  it("expiry releases like close but reports the locks as expired, in the order the leader listed the sessions", () => {
    const h = new FsmHarness();
    const s1 = h.openSession();
    const s2 = h.openSession();
    h.acquire("x", "one", { sessionId: s1 });
    h.acquire("y", "two", { sessionId: s2 });
    h.acquire("x", "after-x", { wait: true });
    h.acquire("y", "after-y", { wait: true });
    const mark = h.events.length;
    expect(h.run({ type: "sessions-expire", sessionIds: [s2, 999, s1, s2] })).toEqual({ kind: "expired", sessionIds: [s2, s1] });
    const events = h.eventsAfter(mark);
    expect(events.filter((event) => event.type === "lock-expired").map((event) => event.type === "lock-expired" && event.name)).toEqual(["y", "x"]);
    expect(h.fsm.lockInfo("y")!.token).toBeLessThan(h.fsm.lockInfo("x")!.token);
  });

  it("a lock's TTL expiry is a session expiry: the implicit lease ends with it", () => {
    const h = new FsmHarness();
    const result = h.acquire("orders", "alice");
    const lease = result.kind === "granted" ? result.sessionId : 0;
    h.acquire("orders", "bob", { wait: true, waiterId: "bob-1" });
    const mark = h.events.length;
    expect(h.run({ type: "sessions-expire", sessionIds: [lease] })).toEqual({ kind: "expired", sessionIds: [lease] });
    expect(h.eventsAfter(mark).map((event) => event.type)).toEqual(["lock-expired", "session-opened", "lock-granted", "session-ended"]);
    expect(h.fsm.lockInfo("orders")?.owner).toBe("bob");
  });

  it("SESSION.CLOSE answers false for unknown sessions and for a lock's own lease", () => {
    const h = new FsmHarness();
    expect(h.run({ type: "session-close", sessionId: 42 })).toEqual({ kind: "closed", closed: false });
    h.acquire("orders", "alice");
    expect(h.run({ type: "session-close", sessionId: 1 })).toEqual({ kind: "closed", closed: false });
    expect(h.fsm.lockInfo("orders")?.owner).toBe("alice");
  });

  it("acquiring or campaigning with an unknown, closed or implicit session answers NOSESSION", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    h.run({ type: "session-close", sessionId: session });
    expect(h.acquire("orders", "alice", { sessionId: session })).toMatchObject({ kind: "error", code: "NOSESSION" });
    expect(h.acquire("orders", "alice", { sessionId: 77 })).toMatchObject({ kind: "error", code: "NOSESSION" });
    const lease = h.acquire("billing", "bob");
    expect(h.acquire("orders", "alice", { sessionId: lease.kind === "granted" ? lease.sessionId : 0 })).toMatchObject({ kind: "error", code: "NOSESSION" });
    expect(h.campaign("e", "carol", { sessionId: 77 })).toMatchObject({ kind: "error", code: "NOSESSION" });
    expect(h.fsm.lockInfo("orders")).toBeUndefined();
  });

  it("a waiter's own session never receives a lock its session is giving up", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    h.acquire("orders", "first", { sessionId: session });
    h.acquire("orders", "second", { wait: true, sessionId: session, waiterId: "second-1" });
    h.acquire("orders", "third", { wait: true, waiterId: "third-1" });
    h.run({ type: "sessions-expire", sessionIds: [session] });
    expect(h.fsm.lockInfo("orders")?.owner).toBe("third");
  });
});
