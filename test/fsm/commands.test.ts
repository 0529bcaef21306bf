import { describe, expect, it } from "vitest";
import { decodeCommand, encodeCommand, validateCommand, ttlMsMessage, type Command } from "../../src/fsm/commands.js";
import { nameBytesMax, ownerBytesMax, ttlMsMax, ttlMsMinFor, valueBytesMax, waiterIdBytesMax } from "../../src/fsm/limits.js";
import { decodeResult, encodeResult, type CommandResult } from "../../src/fsm/results.js";
import { FsmHarness, testLimits, ttlMs } from "./harness.js";

const everyCommand: Command[] = [
  { type: "session-open", ttlMs },
  { type: "session-open", ttlMs, label: "worker ✓" },
  { type: "session-close", sessionId: 7 },
  { type: "sessions-expire", sessionIds: [] },
  { type: "sessions-expire", sessionIds: [3, 2 ** 53 - 1] },
  { type: "lock-acquire", name: "orders", owner: "alice", ttlMs, wait: false, waiterId: "n1:1" },
  { type: "lock-acquire", name: "orders", owner: "alice", ttlMs, sessionId: 9, wait: true, waiterId: "n1:2" },
  { type: "lock-release", name: "orders", owner: "alice" },
  { type: "lock-refresh", name: "orders", owner: "alice", ttlMs },
  { type: "lock-cancel", name: "orders", waiterId: "n1:2" },
  { type: "lock-force-release", name: "orders" },
  { type: "elect-campaign", election: "primary", candidate: "n1", ttlMs, wait: true, waiterId: "n1:3" },
  { type: "elect-campaign", election: "primary", candidate: "n1", ttlMs, value: "", sessionId: 4, wait: false, waiterId: "n1:4" },
  { type: "elect-proclaim", election: "primary", candidate: "n1", value: "10.0.0.1" },
  { type: "elect-resign", election: "primary", candidate: "n1" },
  { type: "elect-cancel", election: "primary", waiterId: "n1:3" },
  { type: "leader-changed", leaderId: "n2", term: 12 },
];

const everyResult: CommandResult[] = [
  { kind: "session", sessionId: 5, ttlMs },
  { kind: "closed", closed: true },
  { kind: "expired", sessionIds: [1, 2] },
  { kind: "granted", token: 99, ttlMs, sessionId: 3 },
  { kind: "queued", position: 4 },
  { kind: "not-granted" },
  { kind: "released", released: false },
  { kind: "refreshed", lease: null },
  { kind: "refreshed", lease: { sessionId: 1, ttlMs } },
  { kind: "cancelled" },
  { kind: "already-granted", token: 8 },
  { kind: "not-waiting" },
  { kind: "proclaimed", proclaimed: true },
  { kind: "resigned", resigned: false },
  { kind: "ok" },
  { kind: "error", code: "NOSESSION", message: "session 3 does not exist" },
];

describe("command and result encoding", () => {
  it("every command decodes to what was encoded", () => {
    for (const command of everyCommand) expect(decodeCommand(encodeCommand(command))).toEqual(command);
  });

  it("every result decodes to what was encoded", () => {
    for (const result of everyResult) expect(decodeResult(encodeResult(result))).toEqual(result);
  });

  it("an acquire takes tens of bytes in the log", () => {
    expect(encodeCommand(everyCommand[5]!).length).toBeLessThan(50);
  });

  it("malformed entry bytes give an error result on every node instead of crashing apply", () => {
    const h = new FsmHarness();
    const good = encodeCommand({ type: "lock-release", name: "orders", owner: "alice" });
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([3, 5]), // a format version from the future
      new Uint8Array([1, 200]), // an unknown command
      good.subarray(0, good.length - 1), // truncated
      new Uint8Array([...good, 0]), // trailing bytes
      new Uint8Array([1, 4, 0xff, 0xff]), // a name longer than the entry
      new Uint8Array([1, 5, 2, 0, 0xc3, 0x28, 1, 0, 0x61]), // invalid UTF-8
    ];
    for (const data of cases) expect(h.runBytes(data)).toMatchObject({ kind: "error", code: "ERR", message: expect.stringContaining("malformed command") });
    expect(h.runBytes(new Uint8Array([3, 5]))).toMatchObject({ message: expect.stringContaining("upgrade every member") });
    // The machine goes on.
    expect(h.acquire("orders", "alice")).toMatchObject({ kind: "granted", token: 1 });
  });
});

describe("validation", () => {
  it("the TTL floor is 1.5 x the largest election timeout, never below 500 ms", () => {
    expect(ttlMsMinFor(2000)).toBe(3000);
    expect(ttlMsMinFor(300)).toBe(500);
    expect(ttlMsMinFor(10 ** 9)).toBe(ttlMsMax);
  });

  it("a TTL out of bounds is refused with the api.md text, before and at apply", () => {
    const h = new FsmHarness();
    const expected = { kind: "error", code: "ERR", message: `ttl-ms must be an integer between 3000 and 86400000 (got 100)` };
    expect(h.run({ type: "session-open", ttlMs: 100 })).toEqual(expected);
    expect(h.acquire("orders", "alice", { ttlMs: ttlMsMax + 1 })).toMatchObject({ message: `ttl-ms must be an integer between 3000 and 86400000 (got ${ttlMsMax + 1})` });
    expect(h.run({ type: "lock-refresh", name: "orders", owner: "alice", ttlMs: 0 })).toMatchObject({ code: "ERR" });
    expect(validateCommand({ type: "session-open", ttlMs: 12.5 }, testLimits)?.message).toBe(ttlMsMessage(testLimits, "12.5"));
    expect(ttlMsMessage(testLimits, '"soon"')).toBe('ttl-ms must be an integer between 3000 and 86400000 (got "soon")');
    expect(h.acquire("orders", "alice", { ttlMs: 3000 })).toMatchObject({ kind: "granted" });
  });

  it("names, owners, values and waiter ids have byte limits, counted in UTF-8", () => {
    const h = new FsmHarness();
    expect(h.acquire("", "alice")).toMatchObject({ message: "lock name must be 1 to 256 bytes (got 0)" });
    expect(h.acquire("é".repeat(nameBytesMax / 2 + 1), "alice")).toMatchObject({ message: `lock name must be 1 to ${nameBytesMax} bytes (got ${nameBytesMax + 2})` });
    expect(h.acquire("é".repeat(nameBytesMax / 2), "alice")).toMatchObject({ kind: "granted" });
    expect(h.acquire("orders", "o".repeat(ownerBytesMax + 1))).toMatchObject({ message: `owner must be 1 to ${ownerBytesMax} bytes (got ${ownerBytesMax + 1})` });
    expect(h.acquire("orders", "alice", { waiterId: "w".repeat(waiterIdBytesMax + 1) })).toMatchObject({ message: expect.stringContaining("waiter id must be") });
    expect(h.run({ type: "session-open", ttlMs, label: "l".repeat(257) })).toMatchObject({ message: "label must be at most 256 bytes (got 257)" });
    expect(h.campaign("primary", "n1", { value: "v".repeat(valueBytesMax + 1) })).toMatchObject({ message: expect.stringContaining("value must be at most") });
    expect(h.run({ type: "elect-proclaim", election: "primary", candidate: "", value: "" })).toMatchObject({ message: "candidate must be 1 to 256 bytes (got 0)" });
    expect(h.run({ type: "leader-changed", leaderId: "n".repeat(65), term: 1 })).toMatchObject({ message: "leader id must be 1 to 64 bytes (got 65)" });
    expect(h.run({ type: "session-close", sessionId: 0 })).toMatchObject({ message: "session id must be a positive integer (got 0)" });
  });

  it("refuses an expiry naming more sessions than one entry may", () => {
    const h = new FsmHarness({ expireSessionsMax: 2 });
    expect(h.run({ type: "sessions-expire", sessionIds: [1, 2, 3] })).toMatchObject({ kind: "error", message: "one expiry names at most 2 sessions (got 3)" });
  });
});

describe("limits: a full table refuses the command, never grows past its bound", () => {
  it("sessions", () => {
    const h = new FsmHarness({ sessionsMax: 2 });
    h.openSession();
    h.acquire("orders", "alice");
    expect(h.run({ type: "session-open", ttlMs })).toMatchObject({ kind: "error", code: "LIMIT" });
    expect(h.acquire("billing", "bob")).toMatchObject({ kind: "error", code: "LIMIT" });
    expect(h.fsm.lockInfo("billing")).toBeUndefined();
    expect(h.limitHits).toEqual(["sessions", "sessions"]);
  });

  it("locks and elections", () => {
    const h = new FsmHarness({ locksMax: 1, electionsMax: 1 });
    h.acquire("orders", "alice");
    expect(h.acquire("billing", "bob")).toMatchObject({ kind: "error", code: "LIMIT", message: "too many locks exist (limit 1); release unused ones and retry" });
    h.campaign("primary", "n1");
    expect(h.campaign("secondary", "n1")).toMatchObject({ kind: "error", code: "LIMIT" });
    // The existing lock still takes waiters.
    expect(h.acquire("orders", "bob", { wait: true })).toMatchObject({ kind: "queued" });
    expect(h.limitHits).toEqual(["locks", "elections"]);
  });

  it("waiters per lock and in all", () => {
    const h = new FsmHarness({ waitersPerLockMax: 2, waitersMax: 3 });
    h.acquire("orders", "alice");
    h.acquire("orders", "w1", { wait: true });
    h.acquire("orders", "w2", { wait: true });
    const before = h.fsm.snapshot().subarray(9);
    expect(h.acquire("orders", "w3", { wait: true })).toMatchObject({ kind: "error", code: "LIMIT", message: 'lock "orders" already has 2 waiters (limit 2); retry later' });
    expect(h.fsm.snapshot().subarray(9)).toEqual(before);
    h.campaign("primary", "n1");
    h.campaign("primary", "n2");
    expect(h.campaign("primary", "n3")).toMatchObject({ kind: "error", code: "LIMIT" });
    expect(h.limitHits).toEqual(["waiters_per_lock", "waiters"]);
  });

  it("counts what a session holds and waits for (locks per session is enforced by the serving node)", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    h.acquire("a", "app", { sessionId: session });
    h.campaign("primary", "app", { sessionId: session });
    h.acquire("b", "other");
    h.acquire("b", "app", { sessionId: session, wait: true });
    // A retry of the queued request and a re-acquire of a held lock add nothing.
    h.acquire("b", "app", { sessionId: session, wait: true });
    h.acquire("a", "app", { sessionId: session });
    expect(h.fsm.sessionClaims(session)).toBe(3);
    h.run({ type: "lock-release", name: "other", owner: "other" });
    h.run({ type: "lock-release", name: "b", owner: "other" });
    expect(h.fsm.lockInfo("b")?.owner).toBe("app");
    expect(h.fsm.sessionClaims(session)).toBe(3);
    h.run({ type: "lock-release", name: "a", owner: "app" });
    expect(h.fsm.sessionClaims(session)).toBe(2);
    expect(h.fsm.sessionClaims(424242)).toBe(0);
  });
});
