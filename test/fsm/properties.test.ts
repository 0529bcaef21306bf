// Random operation sequences against the coordination state machine: two instances fed the same entries
// (one of them snapshotted and restored midway) agree byte for byte, no lock ever has two holders, and
// fencing tokens only go up.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCommand, type Command } from "../../src/fsm/commands.js";
import type { FsmEvent } from "../../src/fsm/events.js";
import type { FsmLimits } from "../../src/fsm/limits.js";
import { FsmHarness } from "./harness.js";

/** Small tables, so that sequences reach the limits as well as the common paths. */
const limits: Partial<FsmLimits> = { sessionsMax: 8, locksMax: 3, electionsMax: 2, waitersPerLockMax: 3, waitersMax: 6, expireSessionsMax: 4, watchHistoryEventsMax: 12, requestResultsMax: 2 };
/** Request ids, reused so that sequences contain retries (answered from the record) and evictions. */
const requestId = fc.option(fc.constantFrom("q1", "q2", "q3"), { freq: 3, nil: null });
const lockNames = ["a", "b", "c", "d"];
const electionNames = ["e1", "e2", "e3"];
const owners = ["o1", "o2", "o3"];

const pick = fc.nat(15);
const ttl = fc.constantFrom(3_000, 10_000, 20_000, 86_400_000, 100 /* below the floor */);
const op = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant("open" as const), ttl }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("close" as const), session: pick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("expire" as const), sessions: fc.array(pick, { maxLength: 5 }) }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("acquire" as const), name: fc.constantFrom(...lockNames), owner: fc.constantFrom(...owners), ttl, session: fc.option(pick, { freq: 2 }), wait: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("release" as const), name: fc.constantFrom(...lockNames), owner: fc.constantFrom(...owners) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("refresh" as const), name: fc.constantFrom(...lockNames), owner: fc.constantFrom(...owners), ttl }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("cancel" as const), waiter: pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("force" as const), name: fc.constantFrom(...lockNames) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("campaign" as const),
      name: fc.constantFrom(...electionNames),
      owner: fc.constantFrom(...owners),
      session: fc.option(pick, { freq: 2 }),
      wait: fc.boolean(),
      value: fc.option(fc.constantFrom("x", "y")),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("proclaim" as const), name: fc.constantFrom(...electionNames), owner: fc.constantFrom(...owners), value: fc.constantFrom("p", "q") }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("resign" as const), name: fc.constantFrom(...electionNames), owner: fc.constantFrom(...owners) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("leader" as const), leader: fc.constantFrom("n1", "n2", "n3"), term: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("garbage" as const), bytes: fc.uint8Array({ maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("skip" as const), count: fc.integer({ min: 1, max: 3 }) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** Turns abstract picks into concrete ids, from what the replies so far handed out. */
class CommandBuilder {
  /** Sessions and leases open now, oldest first; a pick beyond them names one that never existed. */
  private readonly sessionIds: number[] = [];
  private readonly waiters: { readonly kind: "lock" | "election"; readonly name: string; readonly waiterId: string }[] = [];
  private waiterCount = 0;

  session(index: number): number {
    return this.sessionIds[index] ?? this.sessionIds[index % 4] ?? 1_000 + index;
  }

  build(next: Op): Command | Uint8Array | number {
    switch (next.op) {
      case "open":
        return { type: "session-open", ttlMs: next.ttl };
      case "close":
        return { type: "session-close", sessionId: this.session(next.session) };
      case "expire":
        return { type: "sessions-expire", sessionIds: next.sessions.map((index) => this.session(index)) };
      case "acquire":
      case "campaign": {
        const waiterId = `w${++this.waiterCount}`;
        const kind = next.op === "acquire" ? "lock" : "election";
        this.waiters.push({ kind, name: next.name, waiterId });
        const sessionId = next.session === null ? {} : { sessionId: this.session(next.session) };
        return next.op === "acquire"
          ? { type: "lock-acquire", name: next.name, owner: next.owner, ttlMs: next.ttl, ...sessionId, wait: next.wait, waiterId }
          : { type: "elect-campaign", election: next.name, candidate: next.owner, ttlMs: 10_000, ...sessionId, ...(next.value === null ? {} : { value: next.value }), wait: next.wait, waiterId };
      }
      case "release":
        return { type: "lock-release", name: next.name, owner: next.owner };
      case "refresh":
        return { type: "lock-refresh", name: next.name, owner: next.owner, ttlMs: next.ttl };
      case "cancel": {
        const waiter = this.waiters[next.waiter % Math.max(1, this.waiters.length)];
        if (waiter === undefined) return { type: "lock-cancel", name: "a", waiterId: "never" };
        return waiter.kind === "lock" ? { type: "lock-cancel", name: waiter.name, waiterId: waiter.waiterId } : { type: "elect-cancel", election: waiter.name, waiterId: waiter.waiterId };
      }
      case "force":
        return { type: "lock-force-release", name: next.name };
      case "proclaim":
        return { type: "elect-proclaim", election: next.name, candidate: next.owner, value: next.value };
      case "resign":
        return { type: "elect-resign", election: next.name, candidate: next.owner };
      case "leader":
        return { type: "leader-changed", leaderId: next.leader, term: next.term };
      case "garbage":
        return next.bytes;
      case "skip":
        return next.count;
    }
  }

  learn(event: FsmEvent): void {
    if (event.type === "session-opened") this.sessionIds.push(event.sessionId);
    if (event.type === "session-ended") this.sessionIds.splice(this.sessionIds.indexOf(event.sessionId), 1);
  }
}

/** Follows holders through the events alone and checks them against the views after each entry. */
class HolderTracker {
  readonly lockHolders = new Map<string, { owner: string; token: number }>();
  readonly leaders = new Map<string, { candidate: string; token: number }>();
  lastToken = 0;

  observe(event: FsmEvent): void {
    switch (event.type) {
      case "lock-granted":
        expect(this.lockHolders.has(event.name), `lock ${event.name} granted while held`).toBe(false);
        this.newToken(event.token);
        this.lockHolders.set(event.name, { owner: event.owner, token: event.token });
        return;
      case "lock-released":
      case "lock-expired":
        expect(this.lockHolders.get(event.name)).toEqual({ owner: event.owner, token: event.token });
        this.lockHolders.delete(event.name);
        return;
      case "election-leader": {
        const current = this.leaders.get(event.name);
        if (current?.token === event.token) expect(current.candidate).toBe(event.candidate);
        else this.newToken(event.token);
        this.leaders.set(event.name, { candidate: event.candidate, token: event.token });
        return;
      }
      case "election-vacant":
        expect(this.leaders.has(event.name)).toBe(true);
        this.leaders.delete(event.name);
        return;
      default:
        return;
    }
  }

  private newToken(token: number): void {
    expect(token, "fencing tokens strictly increase in log order").toBeGreaterThan(this.lastToken);
    this.lastToken = token;
  }

  check(h: FsmHarness): void {
    expect(h.fsm.lastTokenIssued).toBe(this.lastToken);
    for (const name of lockNames) {
      const holder = this.lockHolders.get(name);
      const info = h.fsm.lockInfo(name);
      expect(info === undefined ? undefined : { owner: info.owner, token: info.token }).toEqual(holder);
      if (holder !== undefined) expect(h.fsm.fenceCheck(name, holder.token)).toBe(true);
    }
    for (const name of electionNames) {
      const leader = h.fsm.electionLeader(name);
      expect(leader === undefined ? undefined : { candidate: leader.candidate, token: leader.token }).toEqual(this.leaders.get(name));
    }
  }
}

/** Applies `ops` to two instances; the second is replaced by a restore of its own snapshot every `restoreEvery` ops. */
function runSequence(ops: readonly (readonly [Op, string | null])[], restoreEvery: number): void {
  const reference = new FsmHarness(limits);
  let other = new FsmHarness(limits);
  const builder = new CommandBuilder();
  const tracker = new HolderTracker();
  ops.forEach(([next, id], position) => {
    if (position > 0 && position % restoreEvery === 0) {
      const restored = new FsmHarness(limits);
      restored.fsm.restore(other.fsm.snapshot());
      restored.lastIndex = other.lastIndex;
      other = restored;
    }
    const built = builder.build(next);
    if (typeof built === "number") {
      reference.skip(built);
      other.skip(built);
      return;
    }
    const data = built instanceof Uint8Array ? built : encodeCommand(built, id);
    const mark = reference.events.length;
    const otherMark = other.events.length;
    expect(other.runBytes(data)).toEqual(reference.runBytes(data));
    expect(other.eventsAfter(otherMark)).toEqual(reference.eventsAfter(mark));
    for (const event of reference.eventsAfter(mark)) {
      builder.learn(event);
      tracker.observe(event);
    }
    tracker.check(reference);
  });
  expect(other.fsm.snapshot()).toEqual(reference.fsm.snapshot());
}

describe("properties", () => {
  it("replicas agree byte for byte, also across a snapshot; one holder per lock; tokens only increase", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(op, requestId), { minLength: 10, maxLength: 80, size: "max" }), fc.integer({ min: 3, max: 60 }), (ops, restoreEvery) => runSequence(ops, restoreEvery)),
      { numRuns: 200 },
    );
  }, 60_000);
});
