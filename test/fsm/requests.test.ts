// Retries of non-idempotent commands: a command carrying a request id is applied at most once; a retry
// with the same id (sent again to a new leader after the first attempt's outcome was unknown) gets the
// first answer, even after a snapshot restore, as long as the id is among the last `requestResultsMax`.
import { describe, expect, it } from "vitest";
import { decodeCommandEntry, encodeCommand, type Command } from "../../src/fsm/commands.js";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { requestIdBytesMax } from "../../src/fsm/limits.js";
import { FsmHarness, testLimits, ttlMs } from "./harness.js";

const open: Command = { type: "session-open", ttlMs, label: "worker" };

describe("requests with an id", () => {
  it("round-trip through the entry codec; entries without an id decode with null", () => {
    expect(decodeCommandEntry(encodeCommand(open, "n1.abc.r7"))).toEqual({ command: open, requestId: "n1.abc.r7" });
    expect(decodeCommandEntry(encodeCommand(open))).toEqual({ command: open, requestId: null });
  });

  it("writes a command without a request id in the first layout, which members of the previous version read", () => {
    const bytes = encodeCommand(open);
    expect(bytes[0]).toBe(1);
    const withId = encodeCommand(open, "r1");
    expect(withId[0]).toBe(2);
    // Version 2 is version 1 with the request-id presence byte (and the id) after the tag.
    expect(decodeCommandEntry(Uint8Array.of(2, bytes[1]!, 0, ...bytes.subarray(2)))).toEqual({ command: open, requestId: null });
  });

  it("a retried SESSION.OPEN gets the same session and opens nothing more", () => {
    const h = new FsmHarness();
    const first = h.runBytes(encodeCommand(open, "n1.abc.r1"));
    const eventsAfterFirst = h.events.length;
    const retry = h.runBytes(encodeCommand(open, "n1.abc.r1"));
    expect(retry).toEqual(first);
    expect(h.fsm.sessionLeases()).toHaveLength(1);
    expect(h.events.length).toBe(eventsAfterFirst);
    // Another request is another session.
    const other = h.runBytes(encodeCommand(open, "n1.abc.r2"));
    expect(other.kind === "session" && first.kind === "session" && other.sessionId !== first.sessionId).toBe(true);
    expect(h.fsm.sessionLeases()).toHaveLength(2);
  });

  it("a retried DEL does not release the holder who acquired after the first attempt", () => {
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    const del: Command = { type: "lock-force-release", name: "orders" };
    expect(h.runBytes(encodeCommand(del, "n2.def.r1"))).toEqual({ kind: "released", released: true });
    h.acquire("orders", "bob");
    expect(h.runBytes(encodeCommand(del, "n2.def.r1"))).toEqual({ kind: "released", released: true });
    expect(h.fsm.lockInfo("orders")?.owner).toBe("bob");
  });

  it("an acquire retried after its first attempt was queued, granted and expired is not granted again", () => {
    // The chaos run's phantom grant (5 nodes, seed 203): the retry must get the first answer, and the
    // grant the client hears of is the waiter's own (its event names the waiter id).
    const h = new FsmHarness();
    h.acquire("orders", "alice");
    const acquire: Command = { type: "lock-acquire", name: "orders", owner: "bob", ttlMs, wait: true, waiterId: "bob-w1" };
    const first = h.runBytes(encodeCommand(acquire, "n3.boot.r7"));
    expect(first).toEqual({ kind: "queued", position: 1 });
    h.run({ type: "lock-release", name: "orders", owner: "alice" });
    const grant = h.events.find((event) => event.type === "lock-granted" && event.waiterId === "bob-w1");
    expect(grant).toBeDefined();
    const bobLease = h.fsm.lockInfo("orders")!.sessionId;
    h.run({ type: "sessions-expire", sessionIds: [bobLease] });
    const mark = h.events.length;
    expect(h.runBytes(encodeCommand(acquire, "n3.boot.r7"))).toEqual(first);
    expect(h.eventsAfter(mark)).toEqual([]);
    expect(h.fsm.lockInfo("orders")).toBeUndefined();
  });

  it("a refused request is answered the same refusal on retry, even when it would now succeed", () => {
    const h = new FsmHarness({ sessionsMax: 1 });
    h.openSession();
    const refused = h.runBytes(encodeCommand(open, "r-full"));
    expect(refused.kind).toBe("error");
    h.run({ type: "session-close", sessionId: 1 });
    expect(h.runBytes(encodeCommand(open, "r-full"))).toEqual(refused);
    expect(h.fsm.sessionLeases()).toHaveLength(0);
  });

  it("forgets the least recently used id beyond requestResultsMax, the same way on every member", () => {
    const h = new FsmHarness({ requestResultsMax: 2 });
    h.runBytes(encodeCommand(open, "a"));
    h.runBytes(encodeCommand(open, "b"));
    h.runBytes(encodeCommand(open, "a")); // a retry: "a" is now the most recently used
    h.runBytes(encodeCommand(open, "c")); // evicts "b"
    expect(h.fsm.sessionLeases()).toHaveLength(3);
    h.runBytes(encodeCommand(open, "a"));
    expect(h.fsm.sessionLeases()).toHaveLength(3);
    h.runBytes(encodeCommand(open, "b")); // forgotten: applied again
    expect(h.fsm.sessionLeases()).toHaveLength(4);
  });

  it("a snapshot keeps the ids and their recency: a retry after restore is still answered, not applied", () => {
    const h = new FsmHarness({ requestResultsMax: 2 });
    const first = h.runBytes(encodeCommand(open, "a"));
    h.runBytes(encodeCommand(open, "b"));
    h.runBytes(encodeCommand(open, "a"));
    const restored = new CoordinationStateMachine({ ...testLimits, requestResultsMax: 2 });
    restored.restore(h.fsm.snapshot());
    expect(restored.snapshot()).toEqual(h.fsm.snapshot());
    const replica = new FsmHarness({}, restored);
    replica.lastIndex = h.lastIndex;
    for (const member of [h, replica]) {
      expect(member.runBytes(encodeCommand(open, "a"))).toEqual(first);
      // "b" is the least recently used in both: a new id evicts it in both, and "b" is applied anew.
      member.runBytes(encodeCommand(open, "c"));
      member.runBytes(encodeCommand(open, "b"));
    }
    expect(replica.fsm.sessionLeases()).toHaveLength(4);
    expect(replica.fsm.snapshot()).toEqual(h.fsm.snapshot());
  });

  it("refuses an entry whose request id is over the limit, changing nothing", () => {
    const h = new FsmHarness();
    const result = h.runBytes(encodeCommand(open, "x".repeat(requestIdBytesMax + 1)));
    expect(result).toEqual({ kind: "error", code: "ERR", message: `request id must be 1 to ${requestIdBytesMax} bytes (got ${requestIdBytesMax + 1})` });
    expect(h.fsm.sessionLeases()).toHaveLength(0);
  });
});
