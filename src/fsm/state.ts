// The replicated coordination state, and the few transitions every command is made of: open and end a
// session, grant a lock or election to a holder (taking the next fencing token), release it to the head
// of its queue, queue and drop waiters. Each transition emits its events at the index of the entry
// being applied. Commands (apply-command.ts) decide which transitions to make; this file keeps the
// tables and their cross-references consistent.

import { LRUCache } from "lru-cache";
import { assert } from "../util/assert.js";
import { makeEvent, type DropReason, type EventBody, type FsmEvent, type ReleaseReason } from "./events.js";
import { encodeResult } from "./results.js";
import type { FsmLimits } from "./limits.js";
import { WatchHistory } from "./watch-history.js";

/** Locks and elections share one shape: an election is a lock whose holder (the leader) carries a value. */
export type ResourceKind = "lock" | "election";

export interface Session {
  /** The log index of the entry that opened it (for an implicit lease: the acquire that was granted). */
  readonly sessionId: number;
  ttlMs: number;
  readonly label: string | null;
  /** A one-lock lease made for an acquire or campaign without SESSION (the Redis `SET NX PX` shape). */
  readonly implicit: boolean;
}

export interface Holder {
  /** Lock owner, or election candidate. */
  readonly owner: string;
  readonly token: number;
  readonly sessionId: number;
  /** The request that was granted: a cancel naming it after the grant is answered with the token. */
  readonly waiterId: string;
  /** Elections only: the leader's value (`VALUE v`, `ELECT.PROCLAIM`). Always null for locks. */
  value: string | null;
}

export interface Waiter {
  readonly owner: string;
  /** null: no session; an implicit lease with `ttlMs` is opened when it is granted. */
  readonly sessionId: number | null;
  readonly ttlMs: number;
  readonly waiterId: string;
  /** Log index of the acquire or campaign: the id of its implicit lease if it gets one. */
  readonly requestIndex: number;
  readonly value: string | null;
}

export interface Resource {
  readonly kind: ResourceKind;
  readonly name: string;
  holder: Holder | null;
  /** FIFO: `waiters[0]` is granted next. Never non-empty while `holder` is null. */
  readonly waiters: Waiter[];
}

export interface RaftLeader {
  readonly leaderId: string;
  readonly term: number;
  /** Index of the `leader-changed` entry. */
  readonly index: number;
}

/** What one session holds and waits for; derived from the tables, rebuilt after a restore. */
interface SessionLinks {
  readonly held: Set<Resource>;
  /** Resource → how many of this session's waiters are queued on it. */
  readonly waiting: Map<Resource, number>;
  /** The sum of `waiting`'s counts, kept so that the per-session limit is checked in O(1). */
  waiterCount: number;
}

/** How a holder lets go: the first three keep its session (unless an implicit lease), "expired" is its session's expiry. */
type Letting = ReleaseReason | "expired";

export class CoordinationState {
  /** The grant counter: the last fencing token issued. Tokens of locks and elections come from it alike. */
  lastTokenIssued = 0;
  /** Index of the last entry applied. */
  appliedIndex = 0;
  raftLeader: RaftLeader | null = null;
  readonly sessions = new Map<number, Session>();
  readonly locks = new Map<string, Resource>();
  readonly elections = new Map<string, Resource>();
  readonly history: WatchHistory;
  /**
   * Request id → the encoded result it got, for retries of non-idempotent commands. Replicated: every
   * member applies the same sets and gets in the same order, so every member evicts the same entries.
   */
  readonly requestResults: LRUCache<string, Uint8Array>;
  /** Waiters of all resources together. */
  waiterCount = 0;

  private readonly links = new Map<number, SessionLinks>();
  private pendingEvents: FsmEvent[] = [];

  constructor(limits: Pick<FsmLimits, "watchHistoryEventsMax" | "requestResultsMax">, history?: WatchHistory) {
    this.history = history ?? new WatchHistory(limits.watchHistoryEventsMax);
    this.requestResults = new LRUCache({ max: limits.requestResultsMax });
  }

  resources(kind: ResourceKind): Map<string, Resource> {
    return kind === "lock" ? this.locks : this.elections;
  }

  emit(body: EventBody): void {
    this.pendingEvents.push(makeEvent(this.appliedIndex, body));
  }

  /** The events of the entry being applied, in the order they happened; clears them. */
  takeEvents(): FsmEvent[] {
    const events = this.pendingEvents;
    this.pendingEvents = [];
    return events;
  }

  // ---------------------------------------------------------------------------------------------
  // Sessions

  openSession(sessionId: number, ttlMs: number, label: string | null, implicit: boolean): Session {
    assert(!this.sessions.has(sessionId), `session ${sessionId} opened twice`);
    const session: Session = { sessionId, ttlMs, label, implicit };
    this.sessions.set(sessionId, session);
    this.links.set(sessionId, { held: new Set(), waiting: new Map(), waiterCount: 0 });
    this.emit({ type: "session-opened", sessionId, ttlMs, implicit });
    return session;
  }

  refreshSession(session: Session, ttlMs: number): void {
    session.ttlMs = ttlMs;
    this.emit({ type: "session-refreshed", sessionId: session.sessionId, ttlMs });
  }

  /**
   * Ends a session and everything it has, in this one entry: its waiters leave their queues first (so
   * that none of them is granted a lock its own session is giving up), then its locks and leaderships are
   * released in the order they were granted, each to the head of its queue with the next token.
   */
  endSession(session: Session, reason: "closed" | "expired"): void {
    const links = this.linksOf(session.sessionId);
    const waitedOn = [...links.waiting.keys()].sort(compareResources);
    for (const resource of waitedOn) {
      let position = 0;
      while (position < resource.waiters.length) {
        if (resource.waiters[position]!.sessionId === session.sessionId) this.dropWaiter(resource, position, "session-ended");
        else position++;
      }
    }
    const held = [...links.held].sort((a, b) => a.holder!.token - b.holder!.token);
    for (const resource of held) this.letGo(resource, reason === "expired" ? "expired" : "session-closed", true);
    assert(links.held.size === 0 && links.waiting.size === 0 && links.waiterCount === 0, `session ${session.sessionId} still linked after it ended`);
    this.sessions.delete(session.sessionId);
    this.links.delete(session.sessionId);
    this.emit({ type: "session-ended", sessionId: session.sessionId, reason });
  }

  // ---------------------------------------------------------------------------------------------
  // Holders

  /** Gives a free resource to a holder with the next fencing token. */
  grant(resource: Resource, owner: string, sessionId: number, waiterId: string, value: string | null): Holder {
    assert(resource.holder === null, `granting ${resource.kind} "${resource.name}" while it is held`);
    const session = this.sessions.get(sessionId);
    assert(session !== undefined, `granting ${resource.kind} "${resource.name}" to unknown session ${sessionId}`);
    this.lastTokenIssued++;
    const holder: Holder = { owner, token: this.lastTokenIssued, sessionId, waiterId, value: resource.kind === "lock" ? null : value };
    resource.holder = holder;
    this.linksOf(sessionId).held.add(resource);
    if (resource.kind === "lock") {
      this.emit({ type: "lock-granted", name: resource.name, owner, token: holder.token, sessionId, ttlMs: session.ttlMs, waiterId });
    } else {
      this.emitLeader(resource, holder);
    }
    return holder;
  }

  emitLeader(resource: Resource, holder: Holder): void {
    this.emit({
      type: "election-leader",
      name: resource.name,
      candidate: holder.owner,
      value: holder.value,
      token: holder.token,
      sessionId: holder.sessionId,
      waiterId: holder.waiterId,
    });
  }

  /** The holder lets go (release, resign, force); the head of the queue is granted in the same entry. */
  release(resource: Resource, reason: ReleaseReason): void {
    this.letGo(resource, reason, false);
  }

  private letGo(resource: Resource, letting: Letting, sessionEnding: boolean): void {
    const holder = resource.holder;
    assert(holder !== null, `releasing ${resource.kind} "${resource.name}" that nobody holds`);
    const session = this.sessions.get(holder.sessionId);
    assert(session !== undefined, `holder of ${resource.kind} "${resource.name}" has no session`);
    resource.holder = null;
    this.linksOf(holder.sessionId).held.delete(resource);
    if (resource.kind === "lock") {
      this.emit(
        letting === "expired"
          ? { type: "lock-expired", name: resource.name, owner: holder.owner, token: holder.token, sessionId: holder.sessionId }
          : { type: "lock-released", name: resource.name, owner: holder.owner, token: holder.token, reason: letting },
      );
    }
    // An implicit lease lives exactly as long as its one lock.
    if (session.implicit && !sessionEnding) {
      this.sessions.delete(session.sessionId);
      this.links.delete(session.sessionId);
      this.emit({ type: "session-ended", sessionId: session.sessionId, reason: "released" });
    }
    this.grantHead(resource);
  }

  /** Grants a free resource to the head of its queue; forgets it when nobody holds or waits for it. */
  private grantHead(resource: Resource): void {
    const head = resource.waiters[0];
    if (head === undefined) {
      if (resource.kind === "election") this.emit({ type: "election-vacant", name: resource.name });
      this.resources(resource.kind).delete(resource.name);
      return;
    }
    this.removeWaiterAt(resource, 0);
    const sessionId = head.sessionId ?? this.openSession(head.requestIndex, head.ttlMs, null, true).sessionId;
    const holder = this.grant(resource, head.owner, sessionId, head.waiterId, head.value);
    // A waiter's cancel may be applied after its grant has come and gone (it expired, or was released):
    // the cancel must still answer with the grant, which clients and readers may have seen.
    this.requestResults.set(grantedWaiterKey(head.waiterId), encodeResult({ kind: "already-granted", token: holder.token }));
  }

  // ---------------------------------------------------------------------------------------------
  // Waiters

  /** Adds a waiter at the tail; returns its 1-based position. */
  enqueue(resource: Resource, waiter: Waiter): number {
    assert(resource.holder !== null, `queueing on ${resource.kind} "${resource.name}" that nobody holds`);
    resource.waiters.push(waiter);
    this.linkWaiter(resource, waiter, +1);
    return resource.waiters.length;
  }

  /** A retry of the same waiter (same owner and session) takes over its place in the queue. */
  replaceWaiter(resource: Resource, position: number, waiter: Waiter): void {
    const previous = resource.waiters[position];
    assert(previous !== undefined && previous.sessionId === waiter.sessionId, "replacing a waiter with another session's");
    resource.waiters[position] = waiter;
    if (previous.waiterId !== waiter.waiterId) this.emitDropped(resource, previous, "replaced");
  }

  dropWaiter(resource: Resource, position: number, reason: DropReason): void {
    const waiter = this.removeWaiterAt(resource, position);
    this.emitDropped(resource, waiter, reason);
  }

  private emitDropped(resource: Resource, waiter: Waiter, reason: DropReason): void {
    const { name } = resource;
    this.emit(
      resource.kind === "lock"
        ? { type: "lock-dropped", name, owner: waiter.owner, waiterId: waiter.waiterId, reason }
        : { type: "election-dropped", name, candidate: waiter.owner, waiterId: waiter.waiterId, reason },
    );
  }

  private removeWaiterAt(resource: Resource, position: number): Waiter {
    const [waiter] = resource.waiters.splice(position, 1);
    assert(waiter !== undefined, `no waiter at position ${position} of ${resource.kind} "${resource.name}"`);
    this.linkWaiter(resource, waiter, -1);
    return waiter;
  }

  private linkWaiter(resource: Resource, waiter: Waiter, change: 1 | -1): void {
    this.waiterCount += change;
    if (waiter.sessionId === null) return;
    const links = this.linksOf(waiter.sessionId);
    links.waiterCount += change;
    const waiting = links.waiting;
    const count = (waiting.get(resource) ?? 0) + change;
    assert(count >= 0, "a session's waiter count went negative");
    if (count === 0) waiting.delete(resource);
    else waiting.set(resource, count);
  }

  /** Locks and elections the session holds, plus its requests queued for others; 0 when it is not open. */
  claimsOf(sessionId: number): number {
    const links = this.links.get(sessionId);
    return links === undefined ? 0 : links.held.size + links.waiterCount;
  }

  /** Whether the session holds `resource` or waits for it already. */
  claims(sessionId: number, resource: Resource): boolean {
    const links = this.links.get(sessionId);
    return links !== undefined && (links.held.has(resource) || links.waiting.has(resource));
  }

  private linksOf(sessionId: number): SessionLinks {
    const links = this.links.get(sessionId);
    assert(links !== undefined, `session ${sessionId} has no links: it is not open`);
    return links;
  }

  // ---------------------------------------------------------------------------------------------
  // After a restore

  /**
   * Rebuilds the derived cross-references from the tables and checks every invariant of the state: run
   * on a decoded snapshot, it refuses one that no sequence of entries could have made.
   */
  reindex(): void {
    this.links.clear();
    this.waiterCount = 0;
    for (const session of this.sessions.values()) this.links.set(session.sessionId, { held: new Set(), waiting: new Map(), waiterCount: 0 });
    const tokens = new Set<number>();
    for (const resource of [...this.locks.values(), ...this.elections.values()]) {
      assert(resource.holder !== null, `${resource.kind} "${resource.name}" is kept while nobody holds it`);
      const { holder } = resource;
      assert(holder.token >= 1 && holder.token <= this.lastTokenIssued && !tokens.has(holder.token), `${resource.kind} "${resource.name}" has token ${holder.token}, not a unique issued one`);
      assert(resource.kind === "election" || (holder.value === null && resource.waiters.every((waiter) => waiter.value === null)), `lock "${resource.name}" carries a value`);
      tokens.add(holder.token);
      const links = this.links.get(holder.sessionId);
      assert(links !== undefined, `holder of ${resource.kind} "${resource.name}" has no session ${holder.sessionId}`);
      links.held.add(resource);
      for (const waiter of resource.waiters) {
        assert(waiter.sessionId === null || this.sessions.get(waiter.sessionId)?.implicit === false, `a waiter on "${resource.name}" has no session ${waiter.sessionId}`);
        this.linkWaiter(resource, waiter, +1);
      }
    }
    const newestEvent = this.history.retained().at(-1);
    assert(newestEvent === undefined || newestEvent.index <= this.appliedIndex, "the watch history has an event after the last applied entry");
    assert(this.raftLeader === null || this.raftLeader.index <= this.appliedIndex, "the raft leader was recorded after the last applied entry");
    for (const session of this.sessions.values()) {
      if (session.implicit) assert(this.links.get(session.sessionId)!.held.size === 1, `implicit lease ${session.sessionId} does not hold exactly one lock`);
    }
  }
}

/** A fixed order for the resources of one session: locks before elections, then by name. */
function compareResources(a: Resource, b: Resource): number {
  if (a.kind !== b.kind) return a.kind === "lock" ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Where the grant of a queued waiter is remembered, next to the results of requests (and bounded with
 * them). Request ids never contain ":", so the two never collide.
 */
export function grantedWaiterKey(waiterId: string): string {
  return `granted:${waiterId}`;
}
