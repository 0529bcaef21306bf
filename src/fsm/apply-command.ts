// What each command does to the coordination state. Every handler checks all that can refuse the
// command before it changes anything, so that an error result leaves the state exactly as it was.

import type { LimitHitSink, LimitName } from "../limit-hits.js";
import { assert } from "../util/assert.js";
import type { Command } from "./commands.js";
import type { FsmLimits } from "./limits.js";
import { decodeResult, errorResult, type CommandResult } from "./results.js";
import { type CoordinationState, grantedWaiterKey, type Resource, type ResourceKind, type Session, type Waiter } from "./state.js";

/** An acquire or a campaign: the same request against a lock or an election. */
interface AcquireRequest {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly owner: string;
  readonly ttlMs: number;
  readonly sessionId: number | undefined;
  readonly wait: boolean;
  readonly waiterId: string;
  readonly value: string | null;
}

/** Applies a validated command at `state.appliedIndex`; each refusal by a limit is also told to `onLimitHit`. */
export function applyCommand(state: CoordinationState, command: Command, limits: FsmLimits, onLimitHit: LimitHitSink): CommandResult {
  const result = applyWithinLimits(state, command, limits);
  if (result instanceof LimitRefusal) {
    onLimitHit(result.limit);
    return result.result;
  }
  return result;
}

/** A refusal by a named limit: the error result every member gives, and which limit it was (for metrics only). */
class LimitRefusal {
  readonly result: CommandResult;
  constructor(
    readonly limit: LimitName,
    message: string,
  ) {
    this.result = errorResult("LIMIT", message);
  }
}

type Outcome = CommandResult | LimitRefusal;

function applyWithinLimits(state: CoordinationState, command: Command, limits: FsmLimits): Outcome {
  switch (command.type) {
    case "session-open":
      return openSession(state, command.ttlMs, command.label ?? null, limits);
    case "session-close":
      return closeSession(state, command.sessionId);
    case "sessions-expire":
      return expireSessions(state, command.sessionIds);
    case "lock-acquire":
      // Field by field, not a spread of the command: spreading these objects cost microseconds per entry.
      return acquire(
        state,
        {
          kind: "lock",
          name: command.name,
          owner: command.owner,
          ttlMs: command.ttlMs,
          sessionId: command.sessionId,
          wait: command.wait,
          waiterId: command.waiterId,
          value: null,
        },
        limits,
      );
    case "lock-release":
      return { kind: "released", released: releaseByHolder(state, "lock", command.name, command.owner) };
    case "lock-refresh":
      return refreshLock(state, command.name, command.owner, command.ttlMs);
    case "lock-cancel":
      return cancelWaiter(state, "lock", command.name, command.waiterId);
    case "lock-force-release":
      return forceRelease(state, command.name);
    case "elect-campaign":
      return acquire(
        state,
        {
          kind: "election",
          name: command.election,
          owner: command.candidate,
          ttlMs: command.ttlMs,
          sessionId: command.sessionId,
          wait: command.wait,
          waiterId: command.waiterId,
          value: command.value ?? null,
        },
        limits,
      );
    case "elect-proclaim":
      return proclaim(state, command.election, command.candidate, command.value);
    case "elect-resign":
      return { kind: "resigned", resigned: releaseByHolder(state, "election", command.election, command.candidate) };
    case "elect-cancel":
      return cancelWaiter(state, "election", command.election, command.waiterId);
    case "leader-changed":
      return recordRaftLeader(state, command.leaderId, command.term);
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions

function openSession(state: CoordinationState, ttlMs: number, label: string | null, limits: FsmLimits): Outcome {
  if (state.sessions.size >= limits.sessionsMax) return tooManySessions(limits);
  const session = state.openSession(state.appliedIndex, ttlMs, label, false);
  return { kind: "session", sessionId: session.sessionId, ttlMs: session.ttlMs };
}

function closeSession(state: CoordinationState, sessionId: number): CommandResult {
  const session = state.sessions.get(sessionId);
  // A lock's implicit lease ends with LOCK.RELEASE, not SESSION.CLOSE.
  if (session === undefined || session.implicit) return { kind: "closed", closed: false };
  state.endSession(session, "closed");
  return { kind: "closed", closed: true };
}

function expireSessions(state: CoordinationState, sessionIds: readonly number[]): CommandResult {
  const ended: number[] = [];
  // In the order the leader listed them: the tokens granted on the way follow that order.
  for (const sessionId of sessionIds) {
    const session = state.sessions.get(sessionId);
    if (session === undefined) continue;
    state.endSession(session, "expired");
    ended.push(sessionId);
  }
  return { kind: "expired", sessionIds: ended };
}

/** The explicit session a request names, or the NOSESSION error for it. */
function explicitSession(state: CoordinationState, sessionId: number): Session | CommandResult {
  const session = state.sessions.get(sessionId);
  if (session !== undefined && !session.implicit) return session;
  return errorResult("NOSESSION", `session ${sessionId} does not exist: it expired, was closed or was never opened; open a new one`);
}

function tooManySessions(limits: FsmLimits): LimitRefusal {
  return new LimitRefusal("sessions", `too many sessions and lock leases are open (limit ${limits.sessionsMax}); close unused ones and retry`);
}

// ---------------------------------------------------------------------------------------------
// Locks and elections

function acquire(state: CoordinationState, request: AcquireRequest, limits: FsmLimits): Outcome {
  let session: Session | null = null;
  if (request.sessionId !== undefined) {
    const found = explicitSession(state, request.sessionId);
    if ("kind" in found) return found;
    session = found;
  }
  const resources = state.resources(request.kind);
  const existing = resources.get(request.name);
  if (existing === undefined) {
    const resourcesMax = request.kind === "lock" ? limits.locksMax : limits.electionsMax;
    if (resources.size >= resourcesMax) {
      return new LimitRefusal(request.kind === "lock" ? "locks" : "elections", `too many ${request.kind}s exist (limit ${resourcesMax}); release unused ones and retry`);
    }
    if (session === null && state.sessions.size >= limits.sessionsMax) return tooManySessions(limits);
    const resource: Resource = { kind: request.kind, name: request.name, holder: null, waiters: [] };
    resources.set(request.name, resource);
    return grantNow(state, resource, request, session);
  }

  const holder = existing.holder;
  assert(holder !== null, `${request.kind} "${request.name}" is kept while nobody holds it`);
  const holderSession = state.sessions.get(holder.sessionId);
  assert(holderSession !== undefined, `holder of ${request.kind} "${request.name}" has no session`);
  const sameHolder = holder.owner === request.owner && (session === null ? holderSession.implicit : holder.sessionId === session.sessionId);
  if (sameHolder) {
    // Idempotent: a client that timed out and retries gets its own grant back, lease restarted.
    const ttlMs = holderSession.implicit ? request.ttlMs : holderSession.ttlMs;
    state.refreshSession(holderSession, ttlMs);
    if (request.kind === "election" && request.value !== null && request.value !== holder.value) {
      holder.value = request.value;
      state.emitLeader(existing, holder);
    }
    return { kind: "granted", token: holder.token, ttlMs, sessionId: holder.sessionId };
  }
  if (!request.wait) return { kind: "not-granted" };

  const waiter: Waiter = {
    owner: request.owner,
    sessionId: session === null ? null : session.sessionId,
    ttlMs: request.ttlMs,
    waiterId: request.waiterId,
    requestIndex: state.appliedIndex,
    value: request.value,
  };
  const retriedAt = existing.waiters.findIndex((queued) => queued.owner === waiter.owner && queued.sessionId === waiter.sessionId);
  if (holder.waiterId === request.waiterId || existing.waiters.some((queued, position) => queued.waiterId === request.waiterId && position !== retriedAt)) {
    return errorResult("ERR", `waiter id "${request.waiterId}" is already in use on ${request.kind} "${request.name}"; every request needs its own`);
  }
  if (retriedAt >= 0) {
    // The same holder asking again (a retry after a lost reply): one place in the queue, the newest request.
    state.replaceWaiter(existing, retriedAt, waiter);
    return { kind: "queued", position: retriedAt + 1 };
  }
  if (existing.waiters.length >= limits.waitersPerLockMax) {
    return new LimitRefusal("waiters_per_lock", `${request.kind} "${request.name}" already has ${existing.waiters.length} waiters (limit ${limits.waitersPerLockMax}); retry later`);
  }
  if (state.waiterCount >= limits.waitersMax) {
    return new LimitRefusal("waiters", `too many requests are waiting for locks and elections (limit ${limits.waitersMax}); retry later`);
  }
  return { kind: "queued", position: state.enqueue(existing, waiter) };
}

function grantNow(state: CoordinationState, resource: Resource, request: AcquireRequest, session: Session | null): CommandResult {
  const lease = session ?? state.openSession(state.appliedIndex, request.ttlMs, null, true);
  const holder = state.grant(resource, request.owner, lease.sessionId, request.waiterId, request.value);
  return { kind: "granted", token: holder.token, ttlMs: lease.ttlMs, sessionId: lease.sessionId };
}

/** Release keyed on the holder: a stale retry can never release a newer holder (etcd #22082). */
function releaseByHolder(state: CoordinationState, kind: ResourceKind, name: string, owner: string): boolean {
  const resource = state.resources(kind).get(name);
  if (resource?.holder?.owner !== owner) return false;
  state.release(resource, "released");
  return true;
}

function forceRelease(state: CoordinationState, name: string): CommandResult {
  const resource = state.locks.get(name);
  if (resource === undefined) return { kind: "released", released: false };
  state.release(resource, "forced");
  return { kind: "released", released: true };
}

function refreshLock(state: CoordinationState, name: string, owner: string, ttlMs: number): CommandResult {
  const holder = state.locks.get(name)?.holder;
  if (holder?.owner !== owner) return { kind: "refreshed", lease: null };
  const session = state.sessions.get(holder.sessionId);
  assert(session !== undefined, `holder of lock "${name}" has no session`);
  // A session lock lives as long as its session: refreshing it is a keepalive, its TTL stays the session's.
  const leaseTtlMs = session.implicit ? ttlMs : session.ttlMs;
  state.refreshSession(session, leaseTtlMs);
  return { kind: "refreshed", lease: { sessionId: session.sessionId, ttlMs: leaseTtlMs } };
}

/** Apply order decides: a waiter granted before its cancel applied keeps the grant, and its client gets the token. */
function cancelWaiter(state: CoordinationState, kind: ResourceKind, name: string, waiterId: string): CommandResult {
  const resource = state.resources(kind).get(name);
  if (resource === undefined) return cancelledTooLate(state, waiterId);
  if (resource.holder?.waiterId === waiterId) return { kind: "already-granted", token: resource.holder.token };
  const position = resource.waiters.findIndex((waiter) => waiter.waiterId === waiterId);
  if (position < 0) return cancelledTooLate(state, waiterId);
  state.dropWaiter(resource, position, "cancelled");
  return { kind: "cancelled" };
}

/** A cancel of `waiterId` whose waiter is no longer queued: granted earlier (perhaps expired since), or not. */
function cancelledTooLate(state: CoordinationState, waiterId: string): CommandResult {
  const granted = state.requestResults.get(grantedWaiterKey(waiterId));
  return granted === undefined ? { kind: "not-waiting" } : decodeResult(granted);
}

function proclaim(state: CoordinationState, election: string, candidate: string, value: string): CommandResult {
  const resource = state.elections.get(election);
  const holder = resource?.holder;
  if (resource === undefined || holder?.owner !== candidate) return { kind: "proclaimed", proclaimed: false };
  holder.value = value;
  state.emitLeader(resource, holder);
  return { kind: "proclaimed", proclaimed: true };
}

// ---------------------------------------------------------------------------------------------
// Raft leadership, for the `raft:leader` watch channel

function recordRaftLeader(state: CoordinationState, leaderId: string, term: number): CommandResult {
  const previous = state.raftLeader;
  // A repeat, or an entry of an older term committed behind a newer one: nothing new to tell watchers.
  if (previous !== null && (term < previous.term || (term === previous.term && leaderId === previous.leaderId))) return { kind: "ok" };
  state.raftLeader = { leaderId, term, index: state.appliedIndex };
  state.emit({ type: "raft-leader", leaderId, term });
  return { kind: "ok" };
}
