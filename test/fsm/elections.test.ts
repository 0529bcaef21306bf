import { describe, expect, it } from "vitest";
import { FsmHarness, tokenOf } from "./harness.js";

describe("elections", () => {
  it("the first candidate leads with a token from the one grant counter; later ones queue in order", () => {
    const h = new FsmHarness();
    const lockToken = tokenOf(h.acquire("orders", "alice"));
    const leaderToken = tokenOf(h.campaign("primary", "n1", { value: "10.0.0.1:5432", waiterId: "n1-c" }));
    expect(leaderToken).toBe(lockToken + 1);
    expect(h.campaign("primary", "n2", { waiterId: "n2-c" })).toEqual({ kind: "queued", position: 1 });
    expect(h.campaign("primary", "n3", { waiterId: "n3-c" })).toEqual({ kind: "queued", position: 2 });
    expect(h.fsm.electionLeader("primary")).toEqual({ candidate: "n1", value: "10.0.0.1:5432", token: leaderToken, sessionId: h.lastIndex - 2, candidatesWaiting: 2 });
  });

  it("a try-once campaign against a sitting leader is not granted", () => {
    const h = new FsmHarness();
    h.campaign("primary", "n1");
    expect(h.campaign("primary", "n2", { wait: false })).toEqual({ kind: "not-granted" });
    expect(h.fsm.electionLeader("primary")?.candidatesWaiting).toBe(0);
  });

  it("only the leader can proclaim; watchers see the new value with the same token", () => {
    const h = new FsmHarness();
    const token = tokenOf(h.campaign("primary", "n1", { value: "old" }));
    h.campaign("primary", "n2");
    expect(h.run({ type: "elect-proclaim", election: "primary", candidate: "n2", value: "mine" })).toEqual({ kind: "proclaimed", proclaimed: false });
    const mark = h.events.length;
    expect(h.run({ type: "elect-proclaim", election: "primary", candidate: "n1", value: "new" })).toEqual({ kind: "proclaimed", proclaimed: true });
    expect(h.eventsAfter(mark)).toMatchObject([{ type: "election-leader", channel: "election:primary", candidate: "n1", value: "new", token, index: h.lastIndex }]);
    expect(h.run({ type: "elect-proclaim", election: "none", candidate: "n1", value: "x" })).toEqual({ kind: "proclaimed", proclaimed: false });
  });

  it("resign passes leadership to the next candidate in the same entry; the last resign leaves it vacant", () => {
    const h = new FsmHarness();
    const first = tokenOf(h.campaign("primary", "n1"));
    h.campaign("primary", "n2", { value: "v2", waiterId: "n2-c" });
    expect(h.run({ type: "elect-resign", election: "primary", candidate: "n2" })).toEqual({ kind: "resigned", resigned: false });
    let mark = h.events.length;
    expect(h.run({ type: "elect-resign", election: "primary", candidate: "n1" })).toEqual({ kind: "resigned", resigned: true });
    const leader = h.eventsAfter(mark).find((event) => event.type === "election-leader");
    expect(leader).toMatchObject({ candidate: "n2", value: "v2", waiterId: "n2-c", index: h.lastIndex });
    expect(leader?.type === "election-leader" && leader.token).toBeGreaterThan(first);
    mark = h.events.length;
    h.run({ type: "elect-resign", election: "primary", candidate: "n2" });
    expect(h.eventsAfter(mark)).toMatchObject([{ type: "session-ended" }, { type: "election-vacant", name: "primary", index: h.lastIndex }]);
    expect(h.fsm.electionLeader("primary")).toBeUndefined();
  });

  it("the leader's session ending passes leadership on", () => {
    const h = new FsmHarness();
    const session = h.openSession();
    h.campaign("primary", "n1", { sessionId: session });
    h.campaign("primary", "n2", { waiterId: "n2-c" });
    h.run({ type: "sessions-expire", sessionIds: [session] });
    expect(h.fsm.electionLeader("primary")?.candidate).toBe("n2");
  });

  it("campaigning again as the leader keeps the token and proclaims a new value", () => {
    const h = new FsmHarness();
    const token = tokenOf(h.campaign("primary", "n1", { value: "a" }));
    expect(tokenOf(h.campaign("primary", "n1", { value: "b" }))).toBe(token);
    expect(h.fsm.electionLeader("primary")).toMatchObject({ value: "b", token });
  });

  it("a cancelled candidate leaves the queue; a cancel after it became leader answers its token", () => {
    const h = new FsmHarness();
    h.campaign("primary", "n1");
    h.campaign("primary", "n2", { waiterId: "n2-c" });
    h.campaign("primary", "n3", { waiterId: "n3-c" });
    expect(h.run({ type: "elect-cancel", election: "primary", waiterId: "n2-c" })).toEqual({ kind: "cancelled" });
    h.run({ type: "elect-resign", election: "primary", candidate: "n1" });
    const token = h.fsm.electionLeader("primary")!.token;
    expect(h.fsm.electionLeader("primary")?.candidate).toBe("n3");
    expect(h.run({ type: "elect-cancel", election: "primary", waiterId: "n3-c" })).toEqual({ kind: "already-granted", token });
    expect(h.fsm.waiterStatus("election", "primary", "n3-c")).toMatchObject({ state: "granted", token });
  });

  it("locks and elections are separate name spaces", () => {
    const h = new FsmHarness();
    tokenOf(h.acquire("same", "alice"));
    tokenOf(h.campaign("same", "n1"));
    expect(h.fsm.fenceCheck("same", h.fsm.electionLeader("same")!.token)).toBe(false);
  });
});
