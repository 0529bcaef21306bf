// The whole coordination state as bytes, for Raft snapshots. Canonical: tables are written sorted (sessions
// by id, locks and elections by name), so equal states give equal bytes whatever order their maps were
// filled in; behaviour never depends on map order (session end sorts, expiry follows the entry's list).
// Layout, little-endian, strings as u16 length + UTF-8, optional fields behind a presence byte:
//
//   format version u8 | appliedIndex u53 | lastTokenIssued u53
//   | raft leader? (leaderId, term u53, index u53)
//   | sessions: count u32, each (id u53, ttlMs u53, implicit bool, label?)
//   | locks, then elections: count u32, each (name, holder (owner, token u53, session u53, waiterId, value?),
//       waiters: count u32, each (owner, session? u53, ttlMs u53, waiterId, requestIndex u53, value?))
//   | watch history: floorIndex u53, count u32, events (events.ts)

import { ByteReader, DecodeError, encodeWith, type ByteSink } from "../util/bytes.js";
import { readEvent, writeEvent, type FsmEvent } from "./events.js";
import { CoordinationState, type Holder, type Resource, type ResourceKind, type Session, type Waiter } from "./state.js";
import { WatchHistory } from "./watch-history.js";

export const stateSnapshotFormatVersion = 1;
const stringFieldBytesMax = 0xffff;
/** Fewest bytes a session, resource, waiter or event takes: bounds what a count may claim. */
const itemBytesMin = 8;

export function encodeState(state: CoordinationState): Uint8Array {
  return encodeWith("little-endian", (sink) => {
    sink.u8(stateSnapshotFormatVersion);
    sink.u53(state.appliedIndex);
    sink.u53(state.lastTokenIssued);
    sink.bool(state.raftLeader !== null);
    if (state.raftLeader !== null) {
      sink.string(state.raftLeader.leaderId, stringFieldBytesMax);
      sink.u53(state.raftLeader.term);
      sink.u53(state.raftLeader.index);
    }
    const sessions = [...state.sessions.values()].sort((a, b) => a.sessionId - b.sessionId);
    sink.u32(sessions.length);
    for (const session of sessions) writeSession(sink, session);
    writeResources(sink, state.locks);
    writeResources(sink, state.elections);
    const events = state.history.retained();
    sink.u53(state.history.floorIndex);
    sink.u32(events.length);
    for (const event of events) writeEvent(sink, event);
  });
}

function optionalText(sink: ByteSink, value: string | null): void {
  sink.bool(value !== null);
  if (value !== null) sink.string(value, stringFieldBytesMax);
}

function writeSession(sink: ByteSink, session: Session): void {
  sink.u53(session.sessionId);
  sink.u53(session.ttlMs);
  sink.bool(session.implicit);
  optionalText(sink, session.label);
}

function writeResources(sink: ByteSink, resources: ReadonlyMap<string, Resource>): void {
  const names = [...resources.keys()].sort();
  sink.u32(names.length);
  for (const name of names) {
    const resource = resources.get(name)!;
    sink.string(name, stringFieldBytesMax);
    sink.bool(resource.holder !== null);
    if (resource.holder !== null) writeHolder(sink, resource.holder);
    sink.u32(resource.waiters.length);
    for (const waiter of resource.waiters) writeWaiter(sink, waiter);
  }
}

function writeHolder(sink: ByteSink, holder: Holder): void {
  sink.string(holder.owner, stringFieldBytesMax);
  sink.u53(holder.token);
  sink.u53(holder.sessionId);
  sink.string(holder.waiterId, stringFieldBytesMax);
  optionalText(sink, holder.value);
}

function writeWaiter(sink: ByteSink, waiter: Waiter): void {
  sink.string(waiter.owner, stringFieldBytesMax);
  sink.bool(waiter.sessionId !== null);
  if (waiter.sessionId !== null) sink.u53(waiter.sessionId);
  sink.u53(waiter.ttlMs);
  sink.string(waiter.waiterId, stringFieldBytesMax);
  sink.u53(waiter.requestIndex);
  optionalText(sink, waiter.value);
}

/**
 * The state a snapshot holds. Throws a DecodeError for bytes of another layout, and an AssertionError
 * (from `reindex`) for a well-formed snapshot whose state breaks an invariant: that one was written by a bug.
 */
export function decodeState(data: Uint8Array, watchHistoryEventsMax: number): CoordinationState {
  const reader = new ByteReader(data);
  const version = reader.u8("state snapshot format version");
  if (version !== stateSnapshotFormatVersion) {
    throw new DecodeError(`state snapshot format version ${version} is not known to this node (it knows ${stateSnapshotFormatVersion})`, 0);
  }
  const appliedIndex = reader.u53("applied index");
  const lastTokenIssued = reader.u53("last token issued");
  const raftLeader = reader.bool("raft leader present")
    ? { leaderId: reader.string("leader id", stringFieldBytesMax), term: reader.u53("term"), index: reader.u53("leader index") }
    : null;
  const sessions: Session[] = [];
  const sessionCount = reader.count("session count", itemBytesMin);
  for (let i = 0; i < sessionCount; i++) sessions.push(readSession(reader));
  const locks = readResources(reader, "lock");
  const elections = readResources(reader, "election");
  const floorIndex = reader.u53("watch history floor index");
  const events: FsmEvent[] = [];
  const eventCount = reader.count("watch history event count", itemBytesMin);
  for (let i = 0; i < eventCount; i++) events.push(readEvent(reader));
  reader.expectEnd("state snapshot");

  const state = new CoordinationState(watchHistoryEventsMax, WatchHistory.restore(watchHistoryEventsMax, floorIndex, events));
  state.appliedIndex = appliedIndex;
  state.lastTokenIssued = lastTokenIssued;
  state.raftLeader = raftLeader;
  for (const session of sessions) {
    if (state.sessions.has(session.sessionId)) throw new DecodeError(`session ${session.sessionId} is listed twice`, 0);
    state.sessions.set(session.sessionId, session);
  }
  for (const resource of locks) state.locks.set(resource.name, resource);
  for (const resource of elections) state.elections.set(resource.name, resource);
  if (state.locks.size !== locks.length || state.elections.size !== elections.length) throw new DecodeError("a lock or election is listed twice", 0);
  state.reindex();
  return state;
}

function readOptionalText(reader: ByteReader, what: string): string | null {
  return reader.bool(`${what} present`) ? reader.string(what, stringFieldBytesMax) : null;
}

function readSession(reader: ByteReader): Session {
  return {
    sessionId: reader.u53("session id"),
    ttlMs: reader.u53("session ttlMs"),
    implicit: reader.bool("session implicit"),
    label: readOptionalText(reader, "session label"),
  };
}

function readResources(reader: ByteReader, kind: ResourceKind): Resource[] {
  const resources: Resource[] = [];
  const count = reader.count(`${kind} count`, itemBytesMin);
  for (let i = 0; i < count; i++) {
    const name = reader.string(`${kind} name`, stringFieldBytesMax);
    const holder = reader.bool(`${kind} holder present`) ? readHolder(reader) : null;
    const waiters: Waiter[] = [];
    const waiterCount = reader.count(`${kind} waiter count`, itemBytesMin);
    for (let j = 0; j < waiterCount; j++) waiters.push(readWaiter(reader));
    resources.push({ kind, name, holder, waiters });
  }
  return resources;
}

function readHolder(reader: ByteReader): Holder {
  return {
    owner: reader.string("holder owner", stringFieldBytesMax),
    token: reader.u53("holder token"),
    sessionId: reader.u53("holder session id"),
    waiterId: reader.string("holder waiter id", stringFieldBytesMax),
    value: readOptionalText(reader, "holder value"),
  };
}

function readWaiter(reader: ByteReader): Waiter {
  return {
    owner: reader.string("waiter owner", stringFieldBytesMax),
    sessionId: reader.bool("waiter session present") ? reader.u53("waiter session id") : null,
    ttlMs: reader.u53("waiter ttlMs"),
    waiterId: reader.string("waiter id", stringFieldBytesMax),
    requestIndex: reader.u53("waiter request index"),
    value: readOptionalText(reader, "waiter value"),
  };
}
