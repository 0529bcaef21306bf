// Watch streams under faults: one Server-Sent Events stream per node and channel, which reconnects
// after every break (a killed node, a reset connection) with the last event id it got, as an
// EventSource would. What each stream delivered, and where it broke, goes to the watch checker.

/** Pause before reconnecting a broken stream. */
const reconnectPauseMs = 200;

export interface WatchedEvent {
  /** The SSE id, `index:n`. */
  readonly id: string;
  readonly index: number;
  readonly type: string;
  /** The event's JSON as the node sent it. */
  readonly data: string;
}

/** One stream's deliveries: segments between reconnects; a `compacted` segment start is an allowed gap. */
export interface WatchSegment {
  readonly resumedFrom: string;
  readonly afterCompaction: boolean;
  readonly events: WatchedEvent[];
}

export class Watcher {
  readonly segments: WatchSegment[] = [];
  private lastId: string;
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    readonly nodeId: string,
    private readonly httpPort: () => number,
    readonly channel: string,
  ) {
    this.lastId = "0";
    this.done = this.run();
  }

  private async run(): Promise<void> {
    let afterCompaction = false;
    while (!this.stop.signal.aborted) {
      const segment: WatchSegment = { resumedFrom: this.lastId, afterCompaction, events: [] };
      afterCompaction = false;
      try {
        const url = `http://127.0.0.1:${this.httpPort()}/v1/watch?channel=${encodeURIComponent(this.channel)}&since=${this.lastId}`;
        const response = await fetch(url, { signal: this.stop.signal });
        if (response.status === 410) {
          // Explicitly compacted: start again from now, and say so.
          const body = (await response.json()) as { error: { message: string } };
          const oldest = /watch from (\d+)/.exec(body.error.message)?.[1] ?? "0";
          this.lastId = oldest;
          afterCompaction = true;
          continue;
        }
        if (response.status !== 200 || response.body === null) throw new Error(`status ${response.status}`);
        this.segments.push(segment);
        await this.read(response.body, segment);
      } catch {
        // A broken or refused stream: reconnect below.
      }
      if (!this.stop.signal.aborted) await new Promise((resolve) => setTimeout(resolve, reconnectPauseMs));
    }
  }

  private async read(body: ReadableStream<Uint8Array>, segment: WatchSegment): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          fields.set(line.slice(0, colon), line.slice(colon + 2));
        }
        const id = fields.get("id");
        const data = fields.get("data");
        if (id === undefined || data === undefined) continue;
        segment.events.push({ id, index: Number(id.split(":")[0]), type: fields.get("event") ?? "", data });
        this.lastId = id;
      }
    }
  }

  /** The id of the last event delivered, "0" before any. */
  get lastEventId(): string {
    return this.lastId;
  }

  /** Whether the stream is still followed (not closed). */
  get open(): boolean {
    return !this.stop.signal.aborted;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.done;
  }
}
