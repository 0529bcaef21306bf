// Watches over SUBSCRIBE on a connection of their own (a subscribed connection takes no other commands).
// When the connection ends it is opened again and every channel resubscribed; each watcher is told, so it
// can re-read the state it follows: Redis pub/sub has no resume, and events may have been missed.
import { type ConnectionOptions, RespConnection } from "./connection.js";

/** Pause before opening a lost subscription connection again. */
export const resubscribeDelayMs = 250;
/** Channels one client may watch at once (the server allows 256 per connection). */
export const watchedChannelsMax = 256;

/** What a watcher hears: events as the server's JSON, and that it (re)subscribed and should re-read state. */
export interface ChannelListener {
  onEvent(event: Record<string, unknown>): void;
  onSubscribed(): void;
}

/** One SUBSCRIBE connection shared by a client's watches. */
export class Subscriber {
  private connection: RespConnection | null = null;
  private connecting: Promise<void> | null = null;
  private readonly listeners = new Map<string, Set<ChannelListener>>();
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: ConnectionOptions) {}

  /** Starts delivering `channel`'s events to `listener`; the returned function stops it. */
  watch(channel: string, listener: ChannelListener): () => void {
    let set = this.listeners.get(channel);
    if (set === undefined) {
      if (this.listeners.size >= watchedChannelsMax) throw new Error(`at most ${watchedChannelsMax} channels may be watched by one client`);
      set = new Set();
      this.listeners.set(channel, set);
      if (this.connection !== null && !this.connection.closed) {
        const connection = this.connection;
        connection.call(["SUBSCRIBE", channel], 0).then(
          () => listener.onSubscribed(),
          () => undefined, // the connection ended: reconnecting resubscribes
        );
      } else void this.ensureConnected();
    } else if (this.connection !== null && !this.connection.closed) listener.onSubscribed();
    set.add(listener);
    return () => {
      const current = this.listeners.get(channel);
      if (current === undefined) return;
      current.delete(listener);
      if (current.size === 0) {
        this.listeners.delete(channel);
        this.connection?.call(["UNSUBSCRIBE", channel], 0).catch(() => undefined);
      }
    };
  }

  /** Closes the subscription connection for good. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.connection?.close();
  }

  private ensureConnected(): Promise<void> {
    if (this.connecting !== null) return this.connecting;
    this.connecting = this.connect().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    if (this.closed || this.listeners.size === 0) return;
    let connection: RespConnection;
    try {
      connection = await RespConnection.open(this.options);
    } catch {
      this.retryLater();
      return;
    }
    if (this.closed) {
      connection.close();
      return;
    }
    this.connection = connection;
    connection.onMessage = (channel, payload) => {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(payload) as Record<string, unknown>;
      } catch {
        return;
      }
      for (const listener of this.listeners.get(channel) ?? []) listener.onEvent(event);
    };
    connection.onClose(() => {
      if (this.connection === connection) this.connection = null;
      this.retryLater();
    });
    const channels = [...this.listeners.keys()];
    try {
      // One SUBSCRIBE per channel, so that each confirmation answers its own call.
      await Promise.all(channels.map((channel) => connection.call(["SUBSCRIBE", channel], 0)));
    } catch {
      return; // onClose retries
    }
    for (const channel of channels) for (const listener of this.listeners.get(channel) ?? []) listener.onSubscribed();
  }

  private retryLater(): void {
    if (this.closed || this.listeners.size === 0) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.ensureConnected(), resubscribeDelayMs);
  }
}
