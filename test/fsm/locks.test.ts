import { describe, expect, it } from "vitest";
import { FsmHarness, tokenOf, ttlMs } from "./harness.js";

describe("locks", () => {
  it("grants a free lock with the next token and reports its lease", () => {
    const h = new FsmHarness();
    const result = h.acquire("orders", "alice");
    expect(result).toEqual({ kind: "granted", token: 1, ttlMs, sessionId: 1 });
    expect(h.fsm.lockInfo("orders")).toEqual({ owner: "alice", token: 1, ttlMs, sessionId: 1, implicitLease: true, waiters: 0 });
    expect(h.acquire("billing", "bob")).toMatchObject({ kind: "granted", token: 2 });
  });

  it("a try-once acquire of a held lock is not granted and changes nothing", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    const before = h.fsm.snapshot();
    const mark = h.events.length;
    expect(h.acquire("orders", "bob")).toEqual({ kind: "not-granted" });
    expect(h.eventsAfter(mark)).toEqual([]);
    expect(h.fsm.lockInfo("orders")).toMatchObject({ owner: "alice", waiters: 0 });
    // Only the applied index moved.
    expect(h.fsm.snapshot().subarray(9)).toEqual(before.subarray(9));
  });

  it("queues five waiters and grants them first in, first out, one per release, in the releasing entry", () => {
    const h = new FsmHarness();
    const first = tokenOf(h.acquire("orders", "holder"));
    const owners = ["w1", "w2", "w3", "w4", "w5"];
    owners.forEach((owner, i) => expect(h.acquire("orders", owner, { wait: true, waiterId: `id-${owner}` })).toEqual({ kind: "queued", position: i + 1 }));
    expect(h.fsm.lockInfo("orders")?.waiters).toBe(5);

    let previousOwner = "holder";
    let previousToken = first;
    for (const owner of owners) {
      const mark = h.events.length;
      expect(h.run({ type: "lock-release", name: "orders", owner: previousOwner })).toEqual({ kind: "released", released: true });
      const granted = h.eventsAfter(mark).find((event) => event.type === "lock-granted");
      expect(granted).toMatchObject({ owner, waiterId: `id-${owner}`, index: h.lastIndex, channel: "lock:orders" });
      const info = h.fsm.lockInfo("orders");
      expect(info?.owner).toBe(owner);
      expect(info!.token).toBeGreaterThan(previousToken);
      previousOwner = owner;
      previousToken = info!.token;
    }
    expect(h.run({ type: "lock-release", name: "orders", owner: "w5" })).toEqual({ kind: "released", released: true });
    expect(h.fsm.lockInfo("orders")).toBeUndefined();
  });

  it("a waiter without a session gets its own lease when granted, with the TTL it asked for", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    const waiterIndex = h.nextIndex;
    h.acquire("orders", "bob", { wait: true, ttlMs: 20_000, waiterId: "bob-1" });
    h.run({ type: "lock-release", name: "orders", owner: "alice" });
    expect(h.fsm.lockInfo("orders")).toMatchObject({ owner: "bob", ttlMs: 20_000, sessionId: waiterIndex, implicitLease: true });
    expect(h.fsm.sessionInfo(1)).toBeUndefined(); // alice's lease ended with her lock
  });

  it("re-acquiring by the same owner returns the same token and restarts the lease with the new TTL", () => {
    const h = new FsmHarness();
    const token = tokenOf(h.acquire("orders", "alice"));
    const mark = h.events.length;
    expect(h.acquire("orders", "alice", { ttlMs: 30_000 })).toEqual({ kind: "granted", token, ttlMs: 30_000, sessionId: 1 });
    expect(h.eventsAfter(mark)).toEqual([{ type: "session-refreshed", sessionId: 1, ttlMs: 30_000, index: h.lastIndex, channel: "session:1" }]);
    expect(h.fsm.lastTokenIssued).toBe(token);
  });

  it("re-acquiring a session lock is idempotent only from the same session", () => {
    const h = new FsmHarness();
    const s1 = h.openSession();
    const s2 = h.openSession();
    const token = tokenOf(h.acquire("orders", "alice", { sessionId: s1 }));
    expect(h.acquire("orders", "alice", { sessionId: s1, ttlMs: 50_000 })).toEqual({ kind: "granted", token, ttlMs, sessionId: s1 });
    expect(h.acquire("orders", "alice", { sessionId: s2 })).toEqual({ kind: "not-granted" });
    expect(h.acquire("orders", "alice")).toEqual({ kind: "not-granted" });
  });

  it("release is keyed on the holder: a non-holder gets false, not an error, and the holder keeps the lock", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    expect(h.run({ type: "lock-release", name: "orders", owner: "mallory" })).toEqual({ kind: "released", released: false });
    expect(h.run({ type: "lock-release", name: "nothing-here", owner: "alice" })).toEqual({ kind: "released", released: false });
    expect(h.fsm.lockInfo("orders")?.owner).toBe("alice");
  });

  it("a stale retry of a release cannot release a newer holder (etcd #22082)", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    h.acquire("orders", "bob", { wait: true });
    h.run({ type: "lock-release", name: "orders", owner: "alice" });
    expect(h.run({ type: "lock-release", name: "orders", owner: "alice" })).toEqual({ kind: "released", released: false });
    expect(h.fsm.lockInfo("orders")?.owner).toBe("bob");
  });

  it("refresh restarts the holder's lease; a non-holder's refresh answers null", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    expect(h.run({ type: "lock-refresh", name: "orders", owner: "alice", ttlMs: 60_000 })).toEqual({ kind: "refreshed", lease: { sessionId: 1, ttlMs: 60_000 } });
    expect(h.fsm.lockInfo("orders")?.ttlMs).toBe(60_000);
    expect(h.run({ type: "lock-refresh", name: "orders", owner: "bob", ttlMs: 60_000 })).toEqual({ kind: "refreshed", lease: null });
    // A session lock keeps its session's TTL: the refresh is a keepalive.
    const session = h.openSession(5_000);
    h.acquire("billing", "carol", { sessionId: session });
    expect(h.run({ type: "lock-refresh", name: "billing", owner: "carol", ttlMs: 60_000 })).toEqual({ kind: "refreshed", lease: { sessionId: session, ttlMs: 5_000 } });
  });

  it("FENCE.CHECK is true only for the current grant", () => {
    const h = new FsmHarness();
    const first = tokenOf(h.acquire("orders", "alice"));
    h.acquire("orders", "bob", { wait: true });
    expect(h.fsm.fenceCheck("orders", first)).toBe(true);
    h.run({ type: "lock-release", name: "orders", owner: "alice" });
    const second = h.fsm.lockInfo("orders")!.token;
    expect(h.fsm.fenceCheck("orders", first)).toBe(false);
    expect(h.fsm.fenceCheck("orders", second)).toBe(true);
    expect(h.fsm.fenceCheck("other", second)).toBe(false);
  });

  it("force release (DEL) frees the lock whoever holds it and grants the next waiter", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    h.acquire("orders", "bob", { wait: true, waiterId: "bob-1" });
    const mark = h.events.length;
    expect(h.run({ type: "lock-force-release", name: "orders" })).toEqual({ kind: "released", released: true });
    expect(h.eventsAfter(mark).map((event) => event.type)).toEqual(["lock-released", "session-ended", "session-opened", "lock-granted"]);
    expect(h.eventsAfter(mark)[0]).toMatchObject({ owner: "alice", reason: "forced" });
    expect(h.fsm.lockInfo("orders")?.owner).toBe("bob");
    expect(h.run({ type: "lock-force-release", name: "free" })).toEqual({ kind: "released", released: false });
  });

  describe("cancel: apply order decides", () => {
    it("a cancel applied before the grant removes the waiter, and the next one is granted instead", () => {
      const h = new FsmHarness();
      h.acquire("orders", "alice");
      h.acquire("orders", "bob", { wait: true, waiterId: "bob-1" });
      h.acquire("orders", "carol", { wait: true, waiterId: "carol-1" });
      expect(h.run({ type: "lock-cancel", name: "orders", waiterId: "bob-1" })).toEqual({ kind: "cancelled" });
      expect(h.fsm.waiterStatus("lock", "orders", "bob-1")).toEqual({ state: "gone" });
      expect(h.fsm.waiterStatus("lock", "orders", "carol-1")).toEqual({ state: "queued", position: 1 });
      h.run({ type: "lock-release", name: "orders", owner: "alice" });
      expect(h.fsm.lockInfo("orders")?.owner).toBe("carol");
    });

    it("a cancel applied after the grant answers the token, so the client is told it holds the lock", () => {
      const h = new FsmHarness();
      h.acquire("orders", "alice");
      h.acquire("orders", "bob", { wait: true, waiterId: "bob-1" });
      h.run({ type: "lock-release", name: "orders", owner: "alice" });
      const token = h.fsm.lockInfo("orders")!.token;
      expect(h.run({ type: "lock-cancel", name: "orders", waiterId: "bob-1" })).toEqual({ kind: "already-granted", token });
      expect(h.fsm.lockInfo("orders")).toMatchObject({ owner: "bob", token });
    });

    it("a cancel applied after the grant was released answers the token too, also after a snapshot restore", () => {
      // Found by the chaos linearizability check: a follower cut off while its client waited sent the
      // cancel late; the grant had come and gone (readers saw it), yet the client was told "not acquired".
      const h = new FsmHarness();
      h.acquire("orders", "alice");
      h.acquire("orders", "bob", { wait: true, waiterId: "bob-1" });
      h.run({ type: "lock-release", name: "orders", owner: "alice" });
      const token = h.fsm.lockInfo("orders")!.token;
      h.run({ type: "lock-release", name: "orders", owner: "bob" });
      expect(h.fsm.lockInfo("orders")).toBeUndefined();
      const restored = new FsmHarness();
      restored.fsm.restore(h.fsm.snapshot());
      restored.skip(h.lastIndex);
      for (const harness of [h, restored]) {
        expect(harness.run({ type: "lock-cancel", name: "orders", waiterId: "bob-1" })).toEqual({ kind: "already-granted", token });
      }
    });

    it("a cancel of an unknown waiter answers not-waiting", () => {
      const h = new FsmHarness();
      expect(h.run({ type: "lock-cancel", name: "orders", waiterId: "ghost" })).toEqual({ kind: "not-waiting" });
      h.acquire("orders", "alice");
      expect(h.run({ type: "lock-cancel", name: "orders", waiterId: "ghost" })).toEqual({ kind: "not-waiting" });
    });
  });

  it("a retried blocked acquire of the same owner keeps one place in the queue, under the newest waiter id", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    h.acquire("orders", "bob", { wait: true, waiterId: "bob-1" });
    h.acquire("orders", "carol", { wait: true, waiterId: "carol-1" });
    const mark = h.events.length;
    expect(h.acquire("orders", "bob", { wait: true, waiterId: "bob-2" })).toEqual({ kind: "queued", position: 1 });
    expect(h.eventsAfter(mark)).toMatchObject([{ type: "lock-dropped", waiterId: "bob-1", reason: "replaced" }]);
    expect(h.fsm.lockInfo("orders")?.waiters).toBe(2);
    expect(h.run({ type: "lock-cancel", name: "orders", waiterId: "bob-1" })).toEqual({ kind: "not-waiting" });
  });

  it("refuses a waiter id already in use on the lock", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice", { waiterId: "same" });
    expect(h.acquire("orders", "bob", { wait: true, waiterId: "same" })).toMatchObject({ kind: "error", code: "ERR" });
    h.acquire("orders", "carol", { wait: true, waiterId: "carol-1" });
    expect(h.acquire("orders", "dave", { wait: true, waiterId: "carol-1" })).toMatchObject({ kind: "error", code: "ERR" });
  });
});
