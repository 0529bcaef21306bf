// Watch streams: every stream's events, merged by event id into one history per channel. Two streams
// that disagree on an id, or one stream that skips, repeats or reorders ids relative to that history,
// is a violation. A break the node announced (410 compacted) is the one gap allowed.
import type { WatchedEvent, WatchSegment } from "../watchers.js";

export interface WatchStream {
  readonly nodeId: string;
  readonly channel: string;
  readonly segments: readonly WatchSegment[];
}

/** Orders ids `index:n` as the log does. */
export function compareEventIds(a: string, b: string): number {
  const [ai, an] = a.split(":").map(Number) as [number, number];
  const [bi, bn] = b.split(":").map(Number) as [number, number];
  return ai !== bi ? ai - bi : an - bn;
}

/** Per channel, every event any stream delivered, in log order; violations where streams disagree. */
export function mergeWatchHistories(streams: readonly WatchStream[]): { histories: Map<string, WatchedEvent[]>; violations: string[] } {
  const byChannel = new Map<string, Map<string, { event: WatchedEvent; from: string }>>();
  const violations: string[] = [];
  for (const stream of streams) {
    let known = byChannel.get(stream.channel);
    if (known === undefined) byChannel.set(stream.channel, (known = new Map()));
    for (const segment of stream.segments) {
      for (const event of segment.events) {
        const earlier = known.get(event.id);
        if (earlier === undefined) known.set(event.id, { event, from: stream.nodeId });
        else if (earlier.event.data !== event.data) {
          violations.push(`${stream.channel} event ${event.id}: ${earlier.from} delivered ${earlier.event.data}, ${stream.nodeId} delivered ${event.data}`);
        }
      }
    }
  }
  const histories = new Map<string, WatchedEvent[]>();
  for (const [channel, known] of byChannel) histories.set(channel, [...known.values()].map((entry) => entry.event).sort((a, b) => compareEventIds(a.id, b.id)));
  return { histories, violations };
}

/** Each stream, against the merged history: in order, no duplicates, and no gaps except after an announced compaction. */
export function checkWatchStreams(streams: readonly WatchStream[], histories: ReadonlyMap<string, readonly WatchedEvent[]>): string[] {
  const violations: string[] = [];
  for (const stream of streams) {
    const history = histories.get(stream.channel) ?? [];
    const position = new Map(history.map((event, index) => [event.id, index]));
    // Every stream starts from since=0: its first event must be the channel's first.
    let previous: number | null = -1;
    for (const segment of stream.segments) {
      // A resumed segment continues right after the last event delivered; only a compacted restart may jump.
      if (segment.afterCompaction) previous = null;
      for (const event of segment.events) {
        const at = position.get(event.id)!;
        const where = `${stream.nodeId}'s stream of ${stream.channel}`;
        if (previous !== null && at <= previous) violations.push(`${where} delivered ${event.id} again or out of order`);
        else if (previous !== null && at > previous + 1) {
          violations.push(`${where} skipped ${history.slice(previous + 1, at).map((skipped) => skipped.id).join(", ")} before ${event.id}`);
        }
        previous = at;
      }
    }
  }
  return violations;
}
