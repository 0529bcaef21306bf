// Every bound of the coordination state machine, in one place. Replicated decisions depend on these
// values, so every member of a cluster must run with the same ones: a member that accepted a command
// another refused would hold a different state from then on.

import { idLengthMax } from "../config.js";
import { raftConfigDefaults } from "../raft/config.js";

/** Longest lock or election name. */
export const nameBytesMax = 256;
/** Longest lock owner or election candidate. */
export const ownerBytesMax = 256;
/** Longest session label. */
export const labelBytesMax = 256;
/** Longest election value (`ELECT.PROCLAIM`, `VALUE v`). */
export const valueBytesMax = 4096;
/** Longest waiter id: chosen by the node serving the client, unique while the request waits. */
export const waiterIdBytesMax = 128;
/** Longest request id: chosen by the node serving the client, unique per request (commands.ts). */
export const requestIdBytesMax = 128;
/** Longest Raft node id in a `leader-changed` entry: the same bound as on the command line. */
export const leaderIdBytesMax = idLengthMax;

/** Longest TTL of a session or lock lease: 24 h. */
export const ttlMsMax = 24 * 60 * 60 * 1000;
/** Smallest TTL floor whatever the election timeouts (coordination.md: about 500 ms). */
export const ttlMsFloorMs = 500;

/**
 * Smallest TTL a session or lease may have: 1.5 × the maximum election timeout, so that a failover (which
 * resets every deadline to now + TTL) can never expire a healthy session, and never below `ttlMsFloorMs`.
 */
export function ttlMsMinFor(electionTimeoutMaxMs: number): number {
  return Math.min(ttlMsMax, Math.max(ttlMsFloorMs, Math.ceil(1.5 * electionTimeoutMaxMs)));
}

/** The limits one state machine enforces. Tests shrink them; a cluster runs with the same values everywhere. */
export interface FsmLimits {
  /** Smallest TTL; see `ttlMsMinFor`. */
  readonly ttlMsMin: number;
  /**
   * Sessions open at once, explicit ones and the implicit one-lock leases, checked when one is opened or a
   * free lock is granted. A queued waiter without a session gets its lease when a release grants it, which
   * cannot be refused: those may go above this by at most `waitersMax`.
   */
  readonly sessionsMax: number;
  /** Locks that exist at once (held, or with waiters). */
  readonly locksMax: number;
  /** Elections that exist at once (with a leader or candidates). */
  readonly electionsMax: number;
  /** Blocked acquires queued behind one lock, or candidates queued behind one election leader. */
  readonly waitersPerLockMax: number;
  /** Waiters of all locks and elections together. */
  readonly waitersMax: number;
  /** Session ids one `sessions-expire` entry may name. */
  readonly expireSessionsMax: number;
  /** Events kept for watchers that reconnect with `since=<index>`. */
  readonly watchHistoryEventsMax: number;
  /**
   * Results of requests with a request id, kept so that a retry gets the first answer instead of a second
   * application; the least recently used is forgotten first. It must cover every such request proposed
   * within a retry window (`--commit-timeout-ms`, 10 s by default, and a little more for the last attempt):
   * 50,000 covers 2,500 lock cycles a second (acquire and release both carry ids) for 10 s. Beyond that, a
   * retry that arrives late may be applied anew: for an acquire whose first grant expired meanwhile, a
   * second grant. A cluster run faster, or with a longer commit timeout, needs more.
   */
  readonly requestResultsMax: number;
}

export const fsmLimitsDefaults: FsmLimits = {
  ttlMsMin: ttlMsMinFor(raftConfigDefaults.electionTimeoutMaxMs),
  sessionsMax: 100_000,
  locksMax: 100_000,
  electionsMax: 10_000,
  waitersPerLockMax: 1_000,
  waitersMax: 100_000,
  expireSessionsMax: 1_000,
  watchHistoryEventsMax: 10_000,
  requestResultsMax: 50_000,
};

/** Refuses limits that cannot work, when the state machine is built (a configuration error, not a bug). */
export function checkFsmLimits(limits: FsmLimits): void {
  const problems: string[] = [];
  if (!Number.isSafeInteger(limits.ttlMsMin) || limits.ttlMsMin < 1 || limits.ttlMsMin > ttlMsMax) {
    problems.push(`ttlMsMin must be an integer between 1 and ${ttlMsMax} (got ${limits.ttlMsMin})`);
  }
  for (const key of ["sessionsMax", "locksMax", "electionsMax", "waitersPerLockMax", "waitersMax", "expireSessionsMax", "watchHistoryEventsMax", "requestResultsMax"] as const) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value < 1 || value > 0xffff_ffff) problems.push(`${key} must be an integer between 1 and ${0xffff_ffff} (got ${value})`);
  }
  if (problems.length > 0) throw new RangeError(`coordination state machine limits: ${problems.join("; ")}`);
}
