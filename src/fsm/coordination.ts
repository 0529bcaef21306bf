// The coordination state machine the node applies committed entries to: sessions, locks with fencing
// tokens, elections and the watch history (coordination.md). Pure and deterministic: no clock, no
// randomness, no I/O; the same entries give byte-identical snapshots on every node.

import { ignoreLimitHits, type LimitHitSink } from "../limit-hits.js";
import { EntryType, type Entry } from "../raft/types.js";
import type { StateMachine } from "../node/state-machine.js";
import { assert } from "../util/assert.js";
import { DecodeError } from "../util/bytes.js";
import { applyCommand } from "./apply-command.js";
import { decodeCommandEntry, validateCommand, validateRequestId, type CommandEntry } from "./commands.js";
import { isRetainedInHistory, type FsmEvent } from "./events.js";
import { checkFsmLimits, fsmLimitsDefaults, type FsmLimits } from "./limits.js";
import { encodeResult, errorResult, type CommandResult } from "./results.js";
import { decodeState, encodeState } from "./snapshot.js";
import { CoordinationState, type RaftLeader, type Resource, type ResourceKind } from "./state.js";
import type { EventsSince } from "./watch-history.js";

/** Gets every event, in log order, right after the entry that made it is applied. Must not throw or apply entries. */
export type EventListener = (event: FsmEvent) => void;

/**
 * Told after a snapshot replaced the state (a follower that fell behind installs the leader's). Event
 * listeners were first given the snapshot's retained events after `previousAppliedIndex`; when the
 * history no longer reached back that far (`eventsMissed`), some events were never delivered, and a
 * watcher must say so to its client (a compacted error) rather than go on with a gap.
 */
export type RestoreListener = (restore: { readonly previousAppliedIndex: number; readonly eventsMissed: boolean }) => void;

/** A held lock as the status page lists it; `sessionId` is null for a lock's own implicit lease. */
export interface HeldLockView {
  readonly name: string;
  readonly owner: string;
  readonly token: number;
  readonly sessionId: number | null;
  readonly ttlMs: number;
  readonly waiterCount: number;
  readonly waiters: readonly { readonly owner: string; readonly sessionId: number | null }[];
}

/** `LOCK.INFO`: the configured TTL, not the remaining time (that is the leader's LeaseKeeper.remainingMs). */
export interface LockView {
  readonly owner: string;
  readonly token: number;
  readonly ttlMs: number;
  readonly sessionId: number;
  /** True when the lock has its own lease (acquired without SESSION). */
  readonly implicitLease: boolean;
  readonly waiters: number;
}

/** `ELECT.LEADER`: [candidate, value, token], plus what the leader's lease is. */
export interface ElectionLeaderView {
  readonly candidate: string;
  readonly value: string | null;
  readonly token: number;
  readonly sessionId: number;
  readonly candidatesWaiting: number;
}

export interface SessionView {
  readonly sessionId: number;
  readonly ttlMs: number;
  readonly label: string | null;
  readonly implicit: boolean;
}

/** Where a request stands, for a node that lost track (it installed a snapshot while its client waited). */
export type WaiterStatus =
  | { readonly state: "granted"; readonly token: number; readonly sessionId: number; readonly ttlMs: number }
  | { readonly state: "queued"; readonly position: number }
  /** Cancelled, replaced, dropped with its session, or granted and released since. */
  | { readonly state: "gone" };

export class CoordinationStateMachine implements StateMachine {
  private state: CoordinationState;
  private readonly listeners = new Set<EventListener>();
  private readonly restoreListeners = new Set<RestoreListener>();
  private applying = false;
  private onLimitHit: LimitHitSink = ignoreLimitHits;

  /** `limits` must be the same on every member: replicated decisions depend on them. */
  constructor(readonly limits: FsmLimits = fsmLimitsDefaults) {
    checkFsmLimits(limits);
    this.state = new CoordinationState(limits);
  }

  /** Where refusals by the state machine's limits are reported (metrics); every member reports its own. */
  reportLimitHits(sink: LimitHitSink): void {
    this.onLimitHit = sink;
  }

  apply(entry: Entry): Uint8Array {
    assert(entry.type === EntryType.Normal, `entry ${entry.index} is not a normal entry: empty entries are not applied`);
    assert(entry.index > this.state.appliedIndex, `entry ${entry.index} applied after entry ${this.state.appliedIndex}`);
    assert(!this.applying, "an event listener applied an entry");
    this.applying = true;
    try {
      this.state.appliedIndex = entry.index;
      const decoded = this.decodeData(entry);
      if ("kind" in decoded) return encodeResult(decoded);
      const { command, requestId } = decoded;
      // A retry of a request that was applied already: the first answer, and nothing changes.
      const earlier = requestId === null ? undefined : this.state.requestResults.get(requestId);
      if (earlier !== undefined) return earlier.slice(); // a copy: the record is replicated state
      const result = encodeResult(applyCommand(this.state, command, this.limits, this.onLimitHit));
      if (requestId !== null) this.state.requestResults.set(requestId, result);
      const events = this.state.takeEvents();
      for (const event of events) if (isRetainedInHistory(event)) this.state.history.append(event);
      for (const event of events) for (const listener of this.listeners) listener(event);
      return result;
    } finally {
      this.applying = false;
    }
  }

  /** The entry's command, or the error result that refuses it (changing nothing). */
  private decodeData(entry: Entry): CommandEntry | CommandResult {
    let decoded: CommandEntry;
    try {
      decoded = decodeCommandEntry(entry.data);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      // Every node refuses the same bytes the same way: a malformed entry is an answer, not a crash.
      return errorResult("ERR", `malformed command at index ${entry.index}: ${error.message}`);
    }
    const problem = validateRequestId(decoded.requestId) ?? validateCommand(decoded.command, this.limits);
    return problem === null ? decoded : errorResult(problem.code, problem.message);
  }

  snapshot(): Uint8Array {
    return encodeState(this.state);
  }

  /**
   * Replaces the state. The entries the snapshot covers were never applied here, so their events are
   * delivered now from the snapshot's watch history, in log order; then restore listeners are told.
   */
  restore(data: Uint8Array): void {
    assert(!this.applying, "an event listener restored a snapshot");
    const previousAppliedIndex = this.state.appliedIndex;
    this.state = decodeState(data, this.limits);
    const missed = this.state.history.eventsSince(null, previousAppliedIndex);
    this.applying = true;
    try {
      if (missed.kind === "events") for (const event of missed.events) for (const listener of this.listeners) listener(event);
      for (const listener of this.restoreListeners) listener({ previousAppliedIndex, eventsMissed: missed.kind === "compacted" });
    } finally {
      this.applying = false;
    }
  }

  /** Adds a restore listener; returns the function that removes it. */
  onRestore(listener: RestoreListener): () => void {
    this.restoreListeners.add(listener);
    return () => this.restoreListeners.delete(listener);
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---------------------------------------------------------------------------------------------
  // Views of the applied state

  get appliedIndex(): number {
    return this.state.appliedIndex;
  }

  /** The last fencing token issued (0 before the first grant). */
  get lastTokenIssued(): number {
    return this.state.lastTokenIssued;
  }

  lockInfo(name: string): LockView | undefined {
    const lock = this.state.locks.get(name);
    const holder = lock?.holder;
    if (lock === undefined || holder === undefined || holder === null) return undefined;
    const session = this.sessionOf(holder.sessionId);
    return { owner: holder.owner, token: holder.token, ttlMs: session.ttlMs, sessionId: holder.sessionId, implicitLease: session.implicit, waiters: lock.waiters.length };
  }

  /**
   * Held locks sorted by name, at most `locksMax` (`truncated` when there were more), each with its first
   * `waitersMax` waiters: for the status page.
   */
  heldLocks(locksMax: number, waitersMax: number): { locks: HeldLockView[]; truncated: boolean } {
    const held = [...this.state.locks.values()].filter((lock) => lock.holder !== null);
    held.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const locks = held.slice(0, locksMax).map((lock): HeldLockView => {
      const holder = lock.holder!;
      const session = this.sessionOf(holder.sessionId);
      return {
        name: lock.name,
        owner: holder.owner,
        token: holder.token,
        sessionId: session.implicit ? null : holder.sessionId,
        ttlMs: session.ttlMs,
        waiterCount: lock.waiters.length,
        waiters: lock.waiters.slice(0, waitersMax).map((waiter) => ({ owner: waiter.owner, sessionId: waiter.sessionId })),
      };
    });
    return { locks, truncated: held.length > locks.length };
  }

  /** `FENCE.CHECK`: whether `token` is the current grant of lock `name` (Chubby's CheckSequencer). */
  fenceCheck(name: string, token: number): boolean {
    return this.state.locks.get(name)?.holder?.token === token;
  }

  electionLeader(name: string): ElectionLeaderView | undefined {
    const election = this.state.elections.get(name);
    const holder = election?.holder;
    if (election === undefined || holder === undefined || holder === null) return undefined;
    return { candidate: holder.owner, value: holder.value, token: holder.token, sessionId: holder.sessionId, candidatesWaiting: election.waiters.length };
  }

  sessionInfo(sessionId: number): SessionView | undefined {
    const session = this.state.sessions.get(sessionId);
    return session === undefined ? undefined : { sessionId, ttlMs: session.ttlMs, label: session.label, implicit: session.implicit };
  }

  /** Every open session and lock lease with its TTL: what a LeaseKeeper loads after a restore. */
  sessionLeases(): SessionView[] {
    return [...this.state.sessions.values()].map((session) => ({ sessionId: session.sessionId, ttlMs: session.ttlMs, label: session.label, implicit: session.implicit }));
  }

  waiterStatus(kind: ResourceKind, name: string, waiterId: string): WaiterStatus {
    const resource: Resource | undefined = this.state.resources(kind).get(name);
    const holder = resource?.holder;
    if (holder !== undefined && holder !== null && holder.waiterId === waiterId) {
      return { state: "granted", token: holder.token, sessionId: holder.sessionId, ttlMs: this.sessionOf(holder.sessionId).ttlMs };
    }
    const position = resource === undefined ? -1 : resource.waiters.findIndex((waiter) => waiter.waiterId === waiterId);
    return position < 0 ? { state: "gone" } : { state: "queued", position: position + 1 };
  }

  /**
   * Locks and elections the session holds, plus its requests queued for others (0 when it is not open):
   * what the serving node checks against `locksPerSessionMax`.
   */
  sessionClaims(sessionId: number): number {
    return this.state.claimsOf(sessionId);
  }

  /** Whether `owner` holds lock or election `name` under an implicit lease (a retry of its acquire opens none). */
  holdsUnderImplicitLease(kind: ResourceKind, name: string, owner: string): boolean {
    const holder = this.state.resources(kind).get(name)?.holder;
    if (holder === null || holder === undefined || holder.owner !== owner) return false;
    return this.state.sessions.get(holder.sessionId)?.implicit === true;
  }

  /** Whether the session already holds, or waits for, lock or election `name` (a retry adds no claim). */
  sessionClaimsResource(sessionId: number, kind: ResourceKind, name: string): boolean {
    const resource = this.state.resources(kind).get(name);
    return resource !== undefined && this.state.claims(sessionId, resource);
  }

  /** How much the applied state holds, for `GET /metrics` (walks the tables: call it per scrape, not per request). */
  census(): { sessions: number; locksHeld: number; lockWaiters: number; electionLeaders: number } {
    let locksHeld = 0;
    let lockWaiters = 0;
    for (const lock of this.state.locks.values()) {
      if (lock.holder !== null) locksHeld++;
      lockWaiters += lock.waiters.length;
    }
    let electionLeaders = 0;
    for (const election of this.state.elections.values()) if (election.holder !== null) electionLeaders++;
    return { sessions: this.state.sessions.size, locksHeld, lockWaiters, electionLeaders };
  }

  /** The Raft leader as last recorded by a `leader-changed` entry. */
  raftLeader(): RaftLeader | null {
    return this.state.raftLeader;
  }

  /** Events of `channel` after log index `since`, or "compacted" when the window no longer reaches back that far. */
  eventsSince(channel: string, since: number): EventsSince {
    return this.state.history.eventsSince(channel, since);
  }

  private sessionOf(sessionId: number): { readonly ttlMs: number; readonly implicit: boolean } {
    const session = this.state.sessions.get(sessionId);
    assert(session !== undefined, `a holder's session ${sessionId} is not open`);
    return session;
  }
}
