// Session deadlines, on the leader's monotonic clock. The replicated state keeps only TTLs (durations):
// when a session is due is a leader-local fact, as in etcd's lessor, so that a keepalive writes nothing to
// the log (coordination.md, Sessions).

import type { FsmEvent } from "./events.js";

/** What `load` needs of each session: the state machine's `sessionLeases()` gives it. */
export interface TrackedLease {
  readonly sessionId: number;
  readonly ttlMs: number;
  readonly implicit: boolean;
}

interface Deadline {
  ttlMs: number;
  deadlineMs: number;
  readonly implicit: boolean;
  /** When this session was last handed out by `expired`, or null: its expiry may be in flight. */
  expiringSinceMs: number | null;
}

/**
 * Tracks a deadline per session and lock lease. Pure: every method takes the caller's monotonic `nowMs`.
 *
 * How the driver uses it:
 * - Every node keeps one, so that a new leader has every session at hand: subscribe it to the state
 *   machine (`fsm.subscribe((event) => keeper.observe(event, now()))`), and after restoring a snapshot
 *   call `keeper.load(fsm.sessionLeases(), now())`.
 * - A node that becomes leader calls `resetAll(now())` once its first entry of the term (the empty entry
 *   with the `leader-changed` command beside it) is applied: every deadline becomes now + TTL, so a
 *   failover never expires a session early (it may live up to one TTL longer).
 * - `SESSION.KEEPALIVE` is forwarded to the leader and answered from `keepalive` (undefined: `-NOSESSION`).
 *   Lock refreshes and re-acquires go through the log and reach the keeper as `session-refreshed` events.
 * - On each tick the leader proposes `sessions-expire` with `expired(now(), expireSessionsMax)`, but only
 *   while its leadership is fresh: it heard from a majority within the last election timeout, measured
 *   after any pause. A leader that was paused (GC, SIGSTOP, a stalled event loop) must not wake up and
 *   expire everything (etcd #15247); its deadlines are stale until it hears from a majority again.
 */
export class LeaseKeeper {
  private readonly deadlines = new Map<number, Deadline>();
  /**
   * True on a leader after `resetAll`, until `relinquish`. Before that the deadlines are this node's own
   * estimates: it never saw the keepalives the leader handled, so they may be long past for healthy
   * sessions, and answering a keepalive from them would tell a live session it is gone.
   */
  private authoritativeNow = false;

  /**
   * @param expiryRetryMs after this long, a session handed out by `expired` whose expiry has not applied
   *   (the proposal was lost) is handed out again.
   */
  constructor(private readonly expiryRetryMs: number) {}

  get size(): number {
    return this.deadlines.size;
  }

  /** Follows the state machine's session lifecycle. */
  observe(event: FsmEvent, nowMs: number): void {
    switch (event.type) {
      case "session-opened":
        this.deadlines.set(event.sessionId, { ttlMs: event.ttlMs, deadlineMs: nowMs + event.ttlMs, implicit: event.implicit, expiringSinceMs: null });
        return;
      case "session-refreshed": {
        const deadline = this.deadlines.get(event.sessionId);
        if (deadline === undefined) return;
        deadline.ttlMs = event.ttlMs;
        deadline.deadlineMs = nowMs + event.ttlMs;
        return;
      }
      case "session-ended":
        this.deadlines.delete(event.sessionId);
        return;
      default:
        return;
    }
  }

  get authoritative(): boolean {
    return this.authoritativeNow;
  }

  /** Replaces everything with `leases`, each due one TTL from now (after a snapshot restore). */
  load(leases: Iterable<TrackedLease>, nowMs: number): void {
    this.authoritativeNow = false;
    this.deadlines.clear();
    for (const lease of leases) {
      this.deadlines.set(lease.sessionId, { ttlMs: lease.ttlMs, deadlineMs: nowMs + lease.ttlMs, implicit: lease.implicit, expiringSinceMs: null });
    }
  }

  /** A new leader takes over: every deadline is now + TTL, and no expiry is in flight any more. */
  resetAll(nowMs: number): void {
    this.authoritativeNow = true;
    for (const deadline of this.deadlines.values()) {
      deadline.deadlineMs = nowMs + deadline.ttlMs;
      deadline.expiringSinceMs = null;
    }
  }

  /** Leadership is gone: the deadlines are estimates again until the next `resetAll`. */
  relinquish(): void {
    this.authoritativeNow = false;
  }

  /**
   * `SESSION.KEEPALIVE`: moves the deadline to now + TTL and returns the TTL, or undefined when the session
   * is unknown, is a lock's own lease (refreshed with LOCK.REFRESH), or is already past its deadline (its
   * expiry may be in flight; reviving it would race it). Null when this keeper is not authoritative: the
   * caller must not answer at all (the client retries on the leader).
   */
  keepalive(sessionId: number, nowMs: number): number | undefined | null {
    if (!this.authoritativeNow) return null;
    const deadline = this.deadlines.get(sessionId);
    if (deadline === undefined || deadline.implicit || deadline.expiringSinceMs !== null || nowMs >= deadline.deadlineMs) return undefined;
    deadline.deadlineMs = nowMs + deadline.ttlMs;
    return deadline.ttlMs;
  }

  /** Whole milliseconds left before the session is due (0 when past), or undefined when unknown: `ttl-ms` of LOCK.INFO, PTTL. */
  remainingMs(sessionId: number, nowMs: number): number | undefined {
    const deadline = this.deadlines.get(sessionId);
    // Rounded down: an answer must never promise more time than the leader will give.
    return deadline === undefined ? undefined : Math.max(0, Math.floor(deadline.deadlineMs - nowMs));
  }

  deadlineMs(sessionId: number): number | undefined {
    return this.deadlines.get(sessionId)?.deadlineMs;
  }

  /**
   * Sessions past their deadline, earliest due first (ties by id), at most `countMax`: what to put in the
   * next `sessions-expire` entry. Each is handed out once, then again only after `expiryRetryMs`.
   */
  expired(nowMs: number, countMax = Number.POSITIVE_INFINITY): number[] {
    if (!this.authoritativeNow) return [];
    const due: [number, Deadline][] = [];
    for (const [sessionId, deadline] of this.deadlines) {
      const handedOut = deadline.expiringSinceMs !== null && nowMs < deadline.expiringSinceMs + this.expiryRetryMs;
      if (nowMs >= deadline.deadlineMs && !handedOut) due.push([sessionId, deadline]);
    }
    due.sort(([idA, a], [idB, b]) => a.deadlineMs - b.deadlineMs || idA - idB);
    const chosen = due.slice(0, countMax);
    for (const [, deadline] of chosen) deadline.expiringSinceMs = nowMs;
    return chosen.map(([sessionId]) => sessionId);
  }
}
