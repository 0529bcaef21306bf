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
//   | request results (version 2): count u32, each (requestId, result as u32 length + bytes), least
//       recently used first, so that a restore rebuilds the same eviction order

import { assert } from "../util/assert.js";
import { ByteReader, ByteWriter, DecodeError, type ByteSink } from "../util/bytes.js";
import { readEvent, writeEvent, type FsmEvent } from "./events.js";
import type { FsmLimits } from "./limits.js";
import { errorMessageBytesMax } from "./results.js";
import { CoordinationState, type Holder, type Resource, type ResourceKind, type Session, type Waiter } from "./state.js";
import { WatchHistory } from "./watch-history.js";

export const stateSnapshotFormatVersion = 2;
/** The first layout, without request results; still read. */
const stateSnapshotFormatVersionWithoutRequests = 1;
/** Bytes of a result besides an error's message: version, tag, code and lengths, with room to spare. */
const resultFixedBytesMax = 64;
/** Largest encoded result a snapshot may claim: an error result is the largest kind. */
const resultBytesMax = resultFixedBytesMax + errorMessageBytesMax;
const stringFieldBytesMax = 0xffff;
/** Fewest bytes a session, resource, waiter or event takes: bounds what a count may claim. */
const itemBytesMin = 8;

/** Where a snapshot's encoding starts; the writer doubles as it needs, so a large state costs a few copies. */
const snapshotInitialBytes = 64 * 1024;

export function encodeState(state: CoordinationState): Uint8Array {
  // One pass into a growing buffer, not encodeWith's count-then-write: a snapshot is encoded on the
  // node's loop while commits wait, and its request results and events would be walked twice.
  const sink = new ByteWriter(snapshotInitialBytes, "little-endian");
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
  // rforEach walks from the least recently used without touching recency, and hands over each result with
  // its id: one walk of the cache instead of a key iterator plus a lookup per id.
  const countAt = sink.reserve(4);
  let count = 0;
  state.requestResults.rforEach((result, requestId) => {
    sink.string(requestId, stringFieldBytesMax);
    sink.bytes(result);
    count++;
  });
  assert(count === state.requestResults.size, `request results walked ${count} of ${state.requestResults.size}`);
  sink.setU32At(countAt, count);
  // A copy at the exact size: the snapshot is kept (and sent to followers) long after this buffer's slack.
  return new Uint8Array(sink.view());
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
 * The state a snapshot holds. Throws a DecodeError for bytes of another layout, and for a well-formed
 * snapshot whose state breaks an invariant: the bytes come from a file or from the leader, so they are
 * input, checked before `reindex` asserts the same invariants on the state built from them.
 */
export function decodeState(data: Uint8Array, limits: Pick<FsmLimits, "watchHistoryEventsMax" | "requestResultsMax">): CoordinationState {
  const reader = new ByteReader(data);
  const version = reader.u8("state snapshot format version");
  if (version !== stateSnapshotFormatVersion && version !== stateSnapshotFormatVersionWithoutRequests) {
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
  const requests: [string, Uint8Array][] = [];
  const requestCount = version === stateSnapshotFormatVersionWithoutRequests ? 0 : reader.count("request result count", itemBytesMin);
  for (let i = 0; i < requestCount; i++) {
    const requestId = reader.string("request id", stringFieldBytesMax);
    const result = reader.bytes("request result", true);
    if (result.length > resultBytesMax) throw new DecodeError(`request result of ${result.length} bytes is over ${resultBytesMax}`, 0);
    requests.push([requestId, result]);
  }
  reader.expectEnd("state snapshot");

  const history = restoreHistory(limits.watchHistoryEventsMax, floorIndex, events);
  const problem = invariantProblem({ appliedIndex, lastTokenIssued, raftLeader, sessions, resources: [...locks, ...elections], historyFloorIndex: history.floorIndex, newestEventIndex: history.retained().at(-1)?.index ?? null });
  if (problem !== null) throw new DecodeError(`the snapshot holds a state no sequence of entries makes: ${problem}`, 0);
  const state = new CoordinationState(limits, history);
  for (const [requestId, result] of requests) state.requestResults.set(requestId, result);
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

/** The watch history as WatchHistory.restore builds it, refusing (instead of asserting on) events out of log order. */
function restoreHistory(eventsMax: number, floorIndex: number, events: readonly FsmEvent[]): WatchHistory {
  const history = WatchHistory.restore(eventsMax, floorIndex, []);
  let previousIndex = 0;
  for (const event of events) {
    // Appending may raise the floor (a full history drops its oldest index), so it is read each time.
    if (event.index <= history.floorIndex || event.index < previousIndex) {
      throw new DecodeError(`watch history event at index ${event.index} is out of log order (floor ${history.floorIndex}, previous event at ${previousIndex})`, 0);
    }
    history.append(event);
    previousIndex = event.index;
  }
  return history;
}

interface DecodedTables {
  readonly appliedIndex: number;
  readonly lastTokenIssued: number;
  readonly raftLeader: { readonly index: number } | null;
  readonly sessions: readonly Session[];
  readonly resources: readonly Resource[];
  readonly historyFloorIndex: number;
  readonly newestEventIndex: number | null;
}

/** Which invariant of `CoordinationState.reindex` the decoded tables break, or null when they hold. */
function invariantProblem(tables: DecodedTables): string | null {
  const sessions = new Map(tables.sessions.map((session) => [session.sessionId, session]));
  const tokens = new Set<number>();
  const resourcesHeld = new Map<number, number>();
  for (const resource of tables.resources) {
    const { kind, name, holder } = resource;
    if (holder === null) return `${kind} "${name}" is kept while nobody holds it`;
    if (holder.token < 1 || holder.token > tables.lastTokenIssued || tokens.has(holder.token)) {
      return `${kind} "${name}" has token ${holder.token}, not a unique one of those issued (1 to ${tables.lastTokenIssued})`;
    }
    tokens.add(holder.token);
    if (kind === "lock" && (holder.value !== null || resource.waiters.some((waiter) => waiter.value !== null))) return `lock "${name}" carries a value`;
    if (!sessions.has(holder.sessionId)) return `the holder of ${kind} "${name}" has no session ${holder.sessionId}`;
    resourcesHeld.set(holder.sessionId, (resourcesHeld.get(holder.sessionId) ?? 0) + 1);
    for (const waiter of resource.waiters) {
      if (waiter.sessionId !== null && sessions.get(waiter.sessionId)?.implicit !== false) return `a waiter on "${name}" has no session ${waiter.sessionId} of its own`;
    }
  }
  for (const session of tables.sessions) {
    if (session.implicit && resourcesHeld.get(session.sessionId) !== 1) return `implicit lease ${session.sessionId} does not hold exactly one lock`;
    // A session's id is the index of the entry that opened it: a later one would collide with a new session.
    if (session.sessionId < 1 || session.sessionId > tables.appliedIndex) return `session ${session.sessionId} was not opened by an applied entry (1 to ${tables.appliedIndex})`;
  }
  // The next entry's events must land above the floor, or appending them fails an assertion.
  if (tables.historyFloorIndex > tables.appliedIndex) return `the watch history starts after ${tables.historyFloorIndex}, past the last applied entry ${tables.appliedIndex}`;
  if (tables.newestEventIndex !== null && tables.newestEventIndex > tables.appliedIndex) return `the watch history has an event at ${tables.newestEventIndex}, after the last applied entry ${tables.appliedIndex}`;
  if (tables.raftLeader !== null && tables.raftLeader.index > tables.appliedIndex) return `the raft leader was recorded at ${tables.raftLeader.index}, after the last applied entry ${tables.appliedIndex}`;
  return null;
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
