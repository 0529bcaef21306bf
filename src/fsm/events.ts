// What the state machine tells its observers: every state change, stamped with the log index of the
// entry that made it. Watchers (SUBSCRIBE, SSE, WebSocket) read the `lock:`, `election:` and
// `raft:leader` channels; the node serving a blocked client learns the outcome of its waiter from the
// `waiterId` in grant and drop events; the leader's LeaseKeeper follows the `session:` channel.

import { DecodeError, type ByteReader, type ByteSink } from "../util/bytes.js";

/** Why a holder stopped holding a lock without its session expiring. */
export type ReleaseReason = "released" | "forced" | "session-closed";
/** Why a waiter left a queue without being granted. */
export type DropReason = "cancelled" | "session-ended" | "replaced";
/** Why a session ended: closed by its client, expired by the leader, or (an implicit lease) its lock released. */
export type SessionEndReason = "closed" | "expired" | "released";

export type EventBody =
  /** Channel `lock:<name>`. `waiterId` names the acquire request that got it. */
  | {
      readonly type: "lock-granted";
      readonly name: string;
      readonly owner: string;
      readonly token: number;
      readonly sessionId: number;
      readonly ttlMs: number;
      readonly waiterId: string;
    }
  | { readonly type: "lock-released"; readonly name: string; readonly owner: string; readonly token: number; readonly reason: ReleaseReason }
  /** The holder's session (or implicit lease) expired. */
  | { readonly type: "lock-expired"; readonly name: string; readonly owner: string; readonly token: number; readonly sessionId: number }
  | { readonly type: "lock-dropped"; readonly name: string; readonly owner: string; readonly waiterId: string; readonly reason: DropReason }
  /** Channel `election:<name>`: a new leader, or the leader proclaimed a new value (same token). */
  | {
      readonly type: "election-leader";
      readonly name: string;
      readonly candidate: string;
      readonly value: string | null;
      readonly token: number;
      readonly sessionId: number;
      readonly waiterId: string;
    }
  | { readonly type: "election-vacant"; readonly name: string }
  | { readonly type: "election-dropped"; readonly name: string; readonly candidate: string; readonly waiterId: string; readonly reason: DropReason }
  /** Channel `raft:leader`, from `leader-changed` entries. */
  | { readonly type: "raft-leader"; readonly leaderId: string; readonly term: number }
  /** Channel `session:<id>`: delivered to subscribers, not kept in the watch history. */
  | { readonly type: "session-opened"; readonly sessionId: number; readonly ttlMs: number; readonly implicit: boolean }
  /** The lease restarted through the log (a lock refresh or re-acquire): the leader resets its deadline. */
  | { readonly type: "session-refreshed"; readonly sessionId: number; readonly ttlMs: number }
  | { readonly type: "session-ended"; readonly sessionId: number; readonly reason: SessionEndReason };

export type EventType = EventBody["type"];

/** An event as observers get it. */
export type FsmEvent = EventBody & {
  /** Log index of the entry that made this change; several events may share one. */
  readonly index: number;
  readonly channel: string;
};

export const raftLeaderChannel = "raft:leader";

export function lockChannel(name: string): string {
  return `lock:${name}`;
}

export function electionChannel(name: string): string {
  return `election:${name}`;
}

export function sessionChannel(sessionId: number): string {
  return `session:${sessionId}`;
}

/**
 * Whether clients may watch `channel`. `session:` channels carry the leader's lease bookkeeping: they are
 * not kept in the watch history, so a watcher of one could neither resume nor learn of a gap.
 */
export function isWatchableChannel(channel: string): boolean {
  return !channel.startsWith("session:");
}

/** What a client that asked to watch an internal channel is told. */
export const unwatchableChannelMessage = "session: channels are internal; watch raft:leader, lock:<name> or election:<name>";

export function channelOf(body: EventBody): string {
  switch (body.type) {
    case "lock-granted":
    case "lock-released":
    case "lock-expired":
    case "lock-dropped":
      return lockChannel(body.name);
    case "election-leader":
    case "election-vacant":
    case "election-dropped":
      return electionChannel(body.name);
    case "raft-leader":
      return raftLeaderChannel;
    case "session-opened":
    case "session-refreshed":
    case "session-ended":
      return sessionChannel(body.sessionId);
  }
}

/** The event of `body` at `index`. Takes `body` over, which becomes the event: pass a fresh object only. */
export function makeEvent(index: number, body: EventBody): FsmEvent {
  // Two fields added to the caller's fresh object, not a copy by spread: a spread of these many shapes
  // cost about 3 µs per event, and every lock cycle makes four events on every member (bench/PROFILE.md).
  const event = body as EventBody & { index: number; channel: string };
  event.index = index;
  event.channel = channelOf(body);
  return event;
}

/**
 * Whether watchers may ask for this event again after reconnecting. Session lifecycle events are for the
 * leader's lease keeper, which rebuilds from the session table instead; keeping them would let every
 * lock refresh push watch history out of the window.
 */
export function isRetainedInHistory(event: EventBody): boolean {
  return !event.type.startsWith("session-");
}

// ---------------------------------------------------------------------------------------------
// Encoding, for the watch history inside snapshots.

const eventTags: Readonly<Record<EventType, number>> = {
  "lock-granted": 1,
  "lock-released": 2,
  "lock-expired": 3,
  "lock-dropped": 4,
  "election-leader": 5,
  "election-vacant": 6,
  "election-dropped": 7,
  "raft-leader": 8,
  "session-opened": 9,
  "session-refreshed": 10,
  "session-ended": 11,
};
const eventTypesByTag = new Map<number, EventType>(Object.entries(eventTags).map(([type, tag]) => [tag, type as EventType]));

const releaseReasons: readonly ReleaseReason[] = ["released", "forced", "session-closed"];
const dropReasons: readonly DropReason[] = ["cancelled", "session-ended", "replaced"];
const sessionEndReasons: readonly SessionEndReason[] = ["closed", "expired", "released"];
const stringFieldBytesMax = 0xffff;

export function writeEvent(sink: ByteSink, event: FsmEvent): void {
  const text = (value: string): void => sink.string(value, stringFieldBytesMax);
  sink.u53(event.index);
  sink.u8(eventTags[event.type]);
  switch (event.type) {
    case "lock-granted":
      text(event.name);
      text(event.owner);
      sink.u53(event.token);
      sink.u53(event.sessionId);
      sink.u53(event.ttlMs);
      text(event.waiterId);
      return;
    case "lock-released":
      text(event.name);
      text(event.owner);
      sink.u53(event.token);
      sink.u8(releaseReasons.indexOf(event.reason));
      return;
    case "lock-expired":
      text(event.name);
      text(event.owner);
      sink.u53(event.token);
      sink.u53(event.sessionId);
      return;
    case "lock-dropped":
      text(event.name);
      text(event.owner);
      text(event.waiterId);
      sink.u8(dropReasons.indexOf(event.reason));
      return;
    case "election-leader":
      text(event.name);
      text(event.candidate);
      sink.bool(event.value !== null);
      if (event.value !== null) text(event.value);
      sink.u53(event.token);
      sink.u53(event.sessionId);
      text(event.waiterId);
      return;
    case "election-vacant":
      text(event.name);
      return;
    case "election-dropped":
      text(event.name);
      text(event.candidate);
      text(event.waiterId);
      sink.u8(dropReasons.indexOf(event.reason));
      return;
    case "raft-leader":
      text(event.leaderId);
      sink.u53(event.term);
      return;
    case "session-opened":
      sink.u53(event.sessionId);
      sink.u53(event.ttlMs);
      sink.bool(event.implicit);
      return;
    case "session-refreshed":
      sink.u53(event.sessionId);
      sink.u53(event.ttlMs);
      return;
    case "session-ended":
      sink.u53(event.sessionId);
      sink.u8(sessionEndReasons.indexOf(event.reason));
      return;
  }
}

function readChoice<T>(reader: ByteReader, choices: readonly T[], what: string): T {
  const at = reader.position;
  const choice = choices[reader.u8(what)];
  if (choice === undefined) throw new DecodeError(`unknown ${what}`, at);
  return choice;
}

export function readEvent(reader: ByteReader): FsmEvent {
  const text = (what: string): string => reader.string(what, stringFieldBytesMax);
  const index = reader.u53("event index");
  const at = reader.position;
  const type = eventTypesByTag.get(reader.u8("event tag"));
  if (type === undefined) throw new DecodeError("unknown event tag", at);
  return makeEvent(index, readBody(reader, type, text));
}

function readBody(reader: ByteReader, type: EventType, text: (what: string) => string): EventBody {
  switch (type) {
    case "lock-granted":
      return {
        type,
        name: text("lock name"),
        owner: text("owner"),
        token: reader.u53("token"),
        sessionId: reader.u53("session id"),
        ttlMs: reader.u53("ttlMs"),
        waiterId: text("waiter id"),
      };
    case "lock-released":
      return { type, name: text("lock name"), owner: text("owner"), token: reader.u53("token"), reason: readChoice(reader, releaseReasons, "release reason") };
    case "lock-expired":
      return { type, name: text("lock name"), owner: text("owner"), token: reader.u53("token"), sessionId: reader.u53("session id") };
    case "lock-dropped":
      return { type, name: text("lock name"), owner: text("owner"), waiterId: text("waiter id"), reason: readChoice(reader, dropReasons, "drop reason") };
    case "election-leader":
      return {
        type,
        name: text("election name"),
        candidate: text("candidate"),
        value: reader.bool("value present") ? text("value") : null,
        token: reader.u53("token"),
        sessionId: reader.u53("session id"),
        waiterId: text("waiter id"),
      };
    case "election-vacant":
      return { type, name: text("election name") };
    case "election-dropped":
      return { type, name: text("election name"), candidate: text("candidate"), waiterId: text("waiter id"), reason: readChoice(reader, dropReasons, "drop reason") };
    case "raft-leader":
      return { type, leaderId: text("leader id"), term: reader.u53("term") };
    case "session-opened":
      return { type, sessionId: reader.u53("session id"), ttlMs: reader.u53("ttlMs"), implicit: reader.bool("implicit") };
    case "session-refreshed":
      return { type, sessionId: reader.u53("session id"), ttlMs: reader.u53("ttlMs") };
    case "session-ended":
      return { type, sessionId: reader.u53("session id"), reason: readChoice(reader, sessionEndReasons, "session end reason") };
  }
}
