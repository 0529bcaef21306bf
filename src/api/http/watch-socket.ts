import type { IncomingMessage, Server } from "node:http";
import { WebSocketServer, type WebSocket } from "ws";
import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import { type FsmEvent, isWatchableChannel, unwatchableChannelMessage } from "../../fsm/events.js";
import { ignoreLimitHits, type LimitHitSink } from "../../limit-hits.js";
import { connectionRefusal, endWithBusy } from "./connection-limit.js";
import { channelBytesMax } from "./coordination-routes.js";
import { deliveredBefore, EventIds, historySince, parseResumePoint, type ResumePoint } from "./event-ids.js";

/** Channels one WebSocket may watch at once. */
export const subscriptionsPerSocketMax = 64;
/** Largest message a watching client may send. */
export const watchMessageBytesMax = 4096;
/** WebSocket watch connections open on this node at once. */
export const watchSocketsMax = 1_000;

/** Limits of the watch WebSocket that a caller may lower (tests do), and where refusals are reported. */
export interface WatchSocketOptions {
  /** Defaults to watchSocketsMax. */
  readonly watchSocketsMax?: number;
  /** Defaults to subscriptionsPerSocketMax. */
  readonly subscriptionsPerSocketMax?: number;
  /** Told of each refusal by watch_sockets, subscriptions_per_connection and watch_message_bytes. */
  readonly limitHits?: LimitHitSink;
}

interface SubscribeMessage {
  readonly subscribe?: unknown;
  readonly unsubscribe?: unknown;
  readonly since?: unknown;
}

/**
 * `GET /v1/ws`: a WebSocket on which a client sends `{"subscribe": "raft:leader", "since": 12}` (or
 * `{"unsubscribe": ...}`) and receives `{"channel", "id", "event"}` messages in log order; history after
 * `since` comes first, as on the SSE endpoint, and `since` may also be an `id` ("12:2") to resume right
 * after that event. `authorize` refuses the upgrade (401) when it returns false. Refusals by the socket's
 * limits are reported to `options.limitHits`.
 */
export function attachWatchSocket(server: Server, fsm: CoordinationStateMachine, authorize: (request: IncomingMessage) => boolean, options: WatchSocketOptions = {}): WebSocketServer {
  const limits = {
    watchSocketsMax: options.watchSocketsMax ?? watchSocketsMax,
    subscriptionsPerSocketMax: options.subscriptionsPerSocketMax ?? subscriptionsPerSocketMax,
    limitHits: options.limitHits ?? ignoreLimitHits,
  };
  const sockets = new WebSocketServer({ noServer: true, maxPayload: watchMessageBytesMax });
  server.on("upgrade", (request, socket, head) => {
    // A connection past httpConnectionsMax (counted when it was accepted) gets the same answer as its requests would.
    const refusal = connectionRefusal(request.socket);
    if (refusal !== undefined) {
      endWithBusy(socket, refusal);
      return;
    }
    if (new URL(request.url ?? "/", "http://x").pathname !== "/v1/ws") {
      socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
      return;
    }
    if (!authorize(request)) {
      socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
      return;
    }
    if (sockets.clients.size >= limits.watchSocketsMax) {
      limits.limitHits("watch_sockets");
      endWithBusy(socket, `this node already serves its most watch WebSockets at once (watchSocketsMax ${limits.watchSocketsMax}); retry later or use another node`);
      return;
    }
    sockets.handleUpgrade(request, socket, head, (webSocket) => serveWatcher(webSocket, fsm, limits));
  });
  return sockets;
}

function serveWatcher(webSocket: WebSocket, fsm: CoordinationStateMachine, limits: { readonly subscriptionsPerSocketMax: number; readonly limitHits: LimitHitSink }): void {
  /** Each watched channel, with the numbering of its events and where the client resumed. */
  const channels = new Map<string, { readonly ids: EventIds; readonly since: ResumePoint }>();
  const send = (body: unknown): void => {
    if (webSocket.readyState === webSocket.OPEN) webSocket.send(JSON.stringify(body));
  };
  const unsubscribeAll = fsm.subscribe((event: FsmEvent) => {
    const watch = channels.get(event.channel);
    if (watch === undefined) return;
    // Numbered as they pass; what the client already has is skipped (this node may be behind `since`).
    const id = watch.ids.next(event);
    if (!deliveredBefore(watch.since, event, id)) send({ channel: event.channel, id, event });
  });
  // Events this node skipped by installing a snapshot are lost to its watchers: say so, as for a late `since`.
  const stopRestoreWatch = fsm.onRestore(({ previousAppliedIndex, eventsMissed }) => {
    if (!eventsMissed) return;
    for (const channel of channels.keys()) {
      send({ channel, error: { code: "COMPACTED", message: `events after ${previousAppliedIndex} are no longer retained; re-read the state, then watch again` } });
    }
    channels.clear();
  });
  const refuse = (message: string): void => send({ error: { code: "BADREQUEST", message } });
  webSocket.on("message", (data, isBinary) => {
    let message: SubscribeMessage;
    try {
      if (isBinary) throw new Error("binary");
      message = JSON.parse(data.toString()) as SubscribeMessage;
    } catch {
      refuse('send JSON text such as {"subscribe": "raft:leader", "since": 0}');
      return;
    }
    if (typeof message.unsubscribe === "string") {
      channels.delete(message.unsubscribe);
      return;
    }
    const channel = message.subscribe;
    if (typeof channel !== "string" || channel === "" || Buffer.byteLength(channel) > channelBytesMax) {
      refuse(`subscribe must name a channel of at most ${channelBytesMax} bytes, e.g. raft:leader, election:<name> or lock:<name>`);
      return;
    }
    if (!isWatchableChannel(channel)) {
      refuse(unwatchableChannelMessage);
      return;
    }
    if (channels.has(channel)) {
      send({ subscribed: channel }); // already watching: replaying history again would repeat events
      return;
    }
    if (channels.size >= limits.subscriptionsPerSocketMax) {
      limits.limitHits("subscriptions_per_connection");
      send({ error: { code: "LIMIT", message: `this connection already watches its most channels (subscriptionsPerSocketMax ${limits.subscriptionsPerSocketMax}); unsubscribe from one first, or open another connection` } });
      return;
    }
    const since = parseResumePoint(String(message.since ?? fsm.appliedIndex));
    if (since === null || (typeof message.since !== "number" && typeof message.since !== "string" && message.since !== undefined)) {
      refuse("since must be a log index (a non-negative integer), or an event id such as \"12:2\"");
      return;
    }
    const history = fsm.eventsSince(channel, historySince(since));
    if (history.kind === "compacted") {
      send({ channel, error: { code: "COMPACTED", message: `events after ${since.index} are no longer retained; re-read the state, then watch from ${history.oldestIndex}` } });
      return;
    }
    // History and the live subscription are taken in one synchronous step: nothing is missed or repeated.
    const ids = new EventIds();
    for (const event of history.events) {
      const id = ids.next(event);
      if (!deliveredBefore(since, event, id)) send({ channel, id, event });
    }
    channels.set(channel, { ids, since });
    send({ subscribed: channel });
  });
  const stop = (): void => {
    unsubscribeAll();
    stopRestoreWatch();
  };
  webSocket.on("close", stop);
  webSocket.on("error", (error: Error & { code?: string }) => {
    // ws has already closed the socket with 1009 (Message Too Big); it sends no reason text with it.
    if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") limits.limitHits("watch_message_bytes");
    stop();
  });
}
