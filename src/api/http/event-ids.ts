// Watch event ids, `index:n`: the n-th event of one channel at log index `index`. Several events can share
// an index (a release and the next grant happen in one entry), so the index alone cannot say where a
// broken stream stopped; `index:n` can, and a watcher resumes right after it (SSE Last-Event-ID, or
// `since` on either watch endpoint).
import type { FsmEvent } from "../../fsm/events.js";

/** Where a watcher resumes: every event after the `eventsSeen`-th of `index` (0: after the whole index). */
export interface ResumePoint {
  readonly index: number;
  readonly eventsSeen: number;
}

/** A log index (`12`) or an event id (`12:2`); null for anything else. */
export function parseResumePoint(text: string): ResumePoint | null {
  const match = /^(\d{1,16})(?::(\d{1,6}))?$/.exec(text);
  if (match === null) return null;
  const index = Number(match[1]);
  const eventsSeen = match[2] === undefined ? 0 : Number(match[2]);
  if (!Number.isSafeInteger(index) || (match[2] !== undefined && eventsSeen < 1)) return null;
  return { index, eventsSeen };
}

/** The index to ask the history for: resuming inside an index needs that index's events again. */
export function historySince(point: ResumePoint): number {
  return point.eventsSeen > 0 ? point.index - 1 : point.index;
}

/** Numbers one channel's events in the order they are delivered; events must arrive in log order. */
export class EventIds {
  private lastIndex = -1;
  private eventsAtIndex = 0;

  /** The id of `event`, the next one of its channel. */
  next(event: FsmEvent): string {
    if (event.index === this.lastIndex) this.eventsAtIndex++;
    else {
      this.lastIndex = event.index;
      this.eventsAtIndex = 1;
    }
    return `${event.index}:${this.eventsAtIndex}`;
  }
}

/** Whether the client resuming from `point` already has `event`, whose id is `id` (from `EventIds.next`). */
export function deliveredBefore(point: ResumePoint, event: FsmEvent, id: string): boolean {
  if (event.index !== point.index) return event.index < point.index;
  return Number(id.slice(id.indexOf(":") + 1)) <= point.eventsSeen || point.eventsSeen === 0;
}
