// Watch event ids `index:n`, and resuming from them: a stream broken between two events of one entry
// resumes after the first, without a gap or a repeat.
import { describe, expect, it } from "vitest";
import { deliveredBefore, EventIds, historySince, parseResumePoint } from "../../../src/api/http/event-ids.js";
import type { FsmEvent } from "../../../src/fsm/events.js";

function event(index: number, type: string): FsmEvent {
  return { type: "lock-released", name: "a", owner: type, token: index, reason: "released", index, channel: "lock:a" };
}

describe("watch event ids", () => {
  it("parse an index or an id, and refuse anything else", () => {
    expect(parseResumePoint("12")).toEqual({ index: 12, eventsSeen: 0 });
    expect(parseResumePoint("12:2")).toEqual({ index: 12, eventsSeen: 2 });
    for (const bad of ["", "-1", "12:0", "12:", "x", "1.5", "12:2:3"]) expect(parseResumePoint(bad)).toBeNull();
  });

  it("number the events of one index, and resume between them", () => {
    const events = [event(5, "a"), event(7, "b"), event(7, "c"), event(9, "d")];
    const ids = new EventIds();
    expect(events.map((e) => ids.next(e))).toEqual(["5:1", "7:1", "7:2", "9:1"]);
    // The client got 7:1 and the stream broke: the history from index 6 on, less what it has.
    const point = parseResumePoint("7:1")!;
    expect(historySince(point)).toBe(6);
    const resumed = new EventIds();
    const delivered = events.filter((e) => e.index > historySince(point)).filter((e) => !deliveredBefore(point, e, resumed.next(e)));
    expect(delivered.map((e) => (e.type === "lock-released" ? e.owner : ""))).toEqual(["c", "d"]);
    // A plain index means after all of its events.
    expect(historySince(parseResumePoint("7")!)).toBe(7);
  });

  it("skip what the client has even when it arrives live (a node behind the client's last id)", () => {
    const point = parseResumePoint("7:1")!;
    const ids = new EventIds();
    const live = [event(5, "a"), event(7, "b"), event(7, "c"), event(9, "d")];
    expect(live.filter((e) => !deliveredBefore(point, e, ids.next(e))).map((e) => e.index)).toEqual([7, 9]);
    const afterIndex = parseResumePoint("7")!;
    const fresh = new EventIds();
    expect(live.filter((e) => !deliveredBefore(afterIndex, e, fresh.next(e))).map((e) => e.index)).toEqual([9]);
  });
});
