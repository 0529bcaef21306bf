// The per-client session bookkeeping behind sessionsPerClientMax, on its own: admissions, what a settled
// request opened, sessions ending, and a snapshot that skipped their end.
import { describe, expect, it } from "vitest";
import { ClientSessions, clientKey } from "../../src/node/client-sessions.js";

describe("ClientSessions", () => {
  it("counts admitted requests and opened sessions against the limit, and frees a place when one ends", () => {
    const open = new Set<number>();
    const sessions = new ClientSessions(2, (id) => open.has(id));
    expect(sessions.admit("10.0.0.7")).toBe(true);
    expect(sessions.admit("10.0.0.7")).toBe(true);
    // Two requests in flight fill the quota before either is answered.
    expect(sessions.admit("10.0.0.7")).toBe(false);
    expect(sessions.admit("10.0.0.8")).toBe(true);
    open.add(5);
    sessions.settle("10.0.0.7", 5);
    sessions.settle("10.0.0.7", null); // opened nothing (not granted, or refused)
    sessions.settle("10.0.0.8", null);
    expect(sessions.sessionsOf("10.0.0.7")).toBe(1);
    expect(sessions.admit("10.0.0.7")).toBe(true);
    open.add(9);
    sessions.settle("10.0.0.7", 9);
    expect(sessions.admit("10.0.0.7")).toBe(false);
    sessions.ended(5);
    expect(sessions.admit("10.0.0.7")).toBe(true);
  });

  it("does not count a session that ended before its answer arrived, nor one twice", () => {
    const open = new Set<number>([3]);
    const sessions = new ClientSessions(5, (id) => open.has(id));
    sessions.admit("10.0.0.7");
    sessions.settle("10.0.0.7", 4); // closed already
    sessions.admit("10.0.0.7");
    sessions.settle("10.0.0.7", 3);
    sessions.admit("10.0.0.7");
    sessions.settle("10.0.0.7", 3); // a retry answered with the same lease
    expect(sessions.sessionsOf("10.0.0.7")).toBe(1);
  });

  it("after a snapshot, forgets the sessions that are no longer open", () => {
    const open = new Set<number>([1, 2]);
    const sessions = new ClientSessions(5, (id) => open.has(id));
    for (const id of [1, 2]) {
      sessions.admit("10.0.0.7");
      sessions.settle("10.0.0.7", id);
    }
    open.delete(1);
    sessions.restored();
    expect(sessions.sessionsOf("10.0.0.7")).toBe(1);
  });

  it("takes an IPv4 client on an IPv6 socket for the same client", () => {
    expect(clientKey("::ffff:10.0.0.7")).toBe("10.0.0.7");
    expect(clientKey("10.0.0.7")).toBe("10.0.0.7");
    expect(clientKey("fd00::7")).toBe("fd00::7");
    const sessions = new ClientSessions(1, () => true);
    expect(sessions.admit("::ffff:10.0.0.7")).toBe(true);
    expect(sessions.admit("10.0.0.7")).toBe(false);
  });
});
