import { describe, expect, it } from "vitest";
import { LeaseKeeper } from "../../src/fsm/lease-keeper.js";
import { FsmHarness } from "./harness.js";

/** A keeper fed by a state machine's events at a clock the test moves; a leader's unless `leading` is false. */
function keeperOn(h: FsmHarness, clock: { nowMs: number }, leading = true): LeaseKeeper {
  const keeper = new LeaseKeeper(1_000);
  h.fsm.subscribe((event) => keeper.observe(event, clock.nowMs));
  if (leading) keeper.resetAll(clock.nowMs);
  return keeper;
}

describe("LeaseKeeper", () => {
  it("a session is due one TTL after it opened; keepalive moves the deadline and answers the TTL", () => {
    const h = new FsmHarness();
    const clock = { nowMs: 1_000 };
    const keeper = keeperOn(h, clock);
    const session = h.openSession(5_000);
    expect(keeper.deadlineMs(session)).toBe(6_000);
    expect(keeper.expired(5_999)).toEqual([]);
    expect(keeper.keepalive(session, 4_000)).toBe(5_000);
    expect(keeper.remainingMs(session, 4_000)).toBe(5_000);
    // Clocks have sub-millisecond parts; clients see whole milliseconds, never more than the leader gives.
    expect(keeper.remainingMs(session, 4_000.25)).toBe(4_999);
    expect(keeper.expired(8_999)).toEqual([]);
    expect(keeper.expired(9_000)).toEqual([session]);
  });

  it("keepalive refuses unknown sessions, lock leases and sessions already past their deadline", () => {
    const h = new FsmHarness();
    const clock = { nowMs: 0 };
    const keeper = keeperOn(h, clock);
    const session = h.openSession(5_000);
    const lease = h.acquire("orders", "alice");
    expect(keeper.keepalive(999, 0)).toBeUndefined();
    expect(keeper.keepalive(lease.kind === "granted" ? lease.sessionId : 0, 0)).toBeUndefined();
    expect(keeper.keepalive(session, 5_000)).toBeUndefined();
  });

  it("lock refreshes and re-acquires through the log restart the lease; ends forget it", () => {
    const h = new FsmHarness();
    const clock = { nowMs: 0 };
    const keeper = keeperOn(h, clock);
    const lease = h.acquire("orders", "alice", { ttlMs: 5_000 });
    const leaseId = lease.kind === "granted" ? lease.sessionId : 0;
    clock.nowMs = 4_000;
    h.run({ type: "lock-refresh", name: "orders", owner: "alice", ttlMs: 8_000 });
    expect(keeper.deadlineMs(leaseId)).toBe(12_000);
    h.run({ type: "lock-release", name: "orders", owner: "alice" });
    expect(keeper.deadlineMs(leaseId)).toBeUndefined();
    expect(keeper.size).toBe(0);
  });

  it("hands each due session out once, earliest first, then again only after the retry time", () => {
    const h = new FsmHarness();
    const clock = { nowMs: 0 };
    const keeper = keeperOn(h, clock);
    const late = h.openSession(6_000);
    const early = h.openSession(4_000);
    const third = h.openSession(5_000);
    expect(keeper.expired(7_000, 2)).toEqual([early, third]);
    expect(keeper.expired(7_000)).toEqual([late]);
    expect(keeper.expired(7_500)).toEqual([]);
    expect(keeper.expired(8_000)).toEqual([early, third, late]);
    // The expiry applies: the sessions are gone.
    h.run({ type: "sessions-expire", sessionIds: [early, third, late] });
    expect(keeper.expired(100_000)).toEqual([]);
  });

  it("a new leader resets every deadline to now + TTL: a failover never expires a session early", () => {
    const h = new FsmHarness();
    const clock = { nowMs: 0 };
    const keeper = keeperOn(h, clock, false);
    const session = h.openSession(5_000);
    keeper.resetAll(6_000);
    expect(keeper.deadlineMs(session)).toBe(11_000);
    expect(keeper.expired(10_999)).toEqual([]);
    expect(keeper.keepalive(session, 7_000)).toBe(5_000);
  });

  it("loads the sessions of a restored snapshot, each due one TTL from now", () => {
    const h = new FsmHarness();
    const session = h.openSession(5_000);
    h.acquire("orders", "alice", { ttlMs: 7_000 });
    const keeper = new LeaseKeeper(1_000);
    keeper.load(h.fsm.sessionLeases(), 100);
    expect(keeper.deadlineMs(session)).toBe(5_100);
    keeper.resetAll(100);
    expect(keeper.deadlineMs(2)).toBe(7_100);
    expect(keeper.keepalive(2, 200)).toBeUndefined(); // a lock's lease is refreshed through the log
  });

  it("a follower's deadlines are estimates: no keepalive answer and no expiry until it leads and resets them", () => {
    // Found by the chaos run: a new leader answered keepalives from its follower-side deadlines before
    // its first entry applied, and told six healthy sessions at once that they were gone.
    const h = new FsmHarness();
    const clock = { nowMs: 0 };
    const keeper = keeperOn(h, clock, false);
    const session = h.openSession(3_000);
    // The leader kept it alive for a minute; this node saw none of that, and its deadline is long past.
    expect(keeper.keepalive(session, 60_000)).toBeNull();
    expect(keeper.expired(60_000)).toEqual([]);
    keeper.resetAll(60_000);
    expect(keeper.keepalive(session, 60_001)).toBe(3_000);
    keeper.relinquish();
    expect(keeper.keepalive(session, 60_002)).toBeNull();
    expect(keeper.expired(100_000)).toEqual([]);
  });
});
