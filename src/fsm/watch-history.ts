// The last events of the watch channels, so that a watcher that reconnects with `since=<index>` gets
// every event after it, or a clear "compacted, re-read state" answer when they are no longer kept
// (coordination.md, Watches). Part of the replicated state: it is in snapshots, so a node that installed
// one answers the same as the nodes that applied the entries.

import { assert } from "../util/assert.js";
import type { FsmEvent } from "./events.js";

export type EventsSince =
  /** Every event of the channel with an index above `since`, oldest first. */
  | { readonly kind: "events"; readonly events: readonly FsmEvent[] }
  /** Events after `since` were dropped: re-read the state, then watch from `oldestIndex` or later. */
  | { readonly kind: "compacted"; readonly oldestIndex: number };

export class WatchHistory {
  /** Retained events in log order; `events[head]` is the oldest (the prefix before it awaits compaction). */
  private events: FsmEvent[] = [];
  private head = 0;
  /**
   * Every event made at an index above this one is retained, and no retained event is at or below it.
   * Dropping an event raises it to that event's index, dropping the rest of that index with it.
   */
  private floor = 0;

  constructor(private readonly eventsMax: number) {
    assert(Number.isSafeInteger(eventsMax) && eventsMax >= 1, "watch history needs room for at least one event");
  }

  get floorIndex(): number {
    return this.floor;
  }

  get length(): number {
    return this.events.length - this.head;
  }

  append(event: FsmEvent): void {
    const newest = this.events[this.events.length - 1];
    assert(event.index > this.floor && (newest === undefined || event.index >= newest.index), "watch history event out of log order");
    this.events.push(event);
    while (this.length > this.eventsMax) this.dropOldestIndex();
    // Copy the live part down only now and then, so that appending stays O(1) amortized.
    if (this.head > this.eventsMax) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Events of `channel` (of every channel when null) after log index `since`, or "compacted" when some
   * of them are no longer kept.
   */
  eventsSince(channel: string | null, since: number): EventsSince {
    if (since < this.floor) return { kind: "compacted", oldestIndex: this.floor };
    const events: FsmEvent[] = [];
    for (let i = this.firstAfter(since); i < this.events.length; i++) {
      const event = this.events[i]!;
      if (channel === null || event.channel === channel) events.push(event);
    }
    return { kind: "events", events };
  }

  /** Retained events, oldest first (for snapshots). */
  retained(): readonly FsmEvent[] {
    return this.events.slice(this.head);
  }

  /** A history holding `events` above `floorIndex`, as a snapshot recorded it. */
  static restore(eventsMax: number, floorIndex: number, events: readonly FsmEvent[]): WatchHistory {
    const history = new WatchHistory(eventsMax);
    history.floor = floorIndex;
    for (const event of events) history.append(event);
    return history;
  }

  private dropOldestIndex(): void {
    const oldest = this.events[this.head];
    assert(oldest !== undefined, "dropping from an empty watch history");
    this.floor = oldest.index;
    while (this.head < this.events.length && this.events[this.head]!.index === this.floor) this.head++;
  }

  /** Position of the first retained event with an index above `since` (events are sorted by index). */
  private firstAfter(since: number): number {
    let low = this.head;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.events[middle]!.index <= since) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
