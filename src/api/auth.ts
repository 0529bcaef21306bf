// Client authentication shared by the RESP and HTTP ports: which credential a presented password is (the
// full one, the read-only one, or neither), and a per-address limit on failed attempts so that a client
// cannot guess passwords at line rate, with a log line per address at most once a minute.

import { createHash, timingSafeEqual } from "node:crypto";
import { performance } from "node:perf_hooks";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import { ignoreLimitHits, type LimitHitSink } from "../limit-hits.js";

/** What an authenticated client may do: everything, or only read (the read-only password). */
export type ClientAccess = "full" | "read-only";

/** The passwords clients present; only their SHA-256 digests are kept. */
export class ClientCredentials {
  private readonly fullDigest: Buffer;
  private readonly readOnlyDigest: Buffer | null;

  constructor(password: string, readOnlyPassword?: string) {
    if (password === "") throw new Error("the client password must not be empty; leave it unset to require none");
    if (readOnlyPassword === "") throw new Error("the read-only password must not be empty; leave it unset for none");
    if (readOnlyPassword === password) throw new Error("the read-only password must differ from the full password");
    this.fullDigest = digestOf(password);
    this.readOnlyDigest = readOnlyPassword === undefined ? null : digestOf(readOnlyPassword);
  }

  /**
   * The access `presented` grants, or null when it is neither password. Both digests are always compared,
   * so the time taken says nothing about which one (if any) matched, nor where a wrong one differs.
   */
  check(presented: string | Buffer): ClientAccess | null {
    const digest = digestOf(presented);
    const full = timingSafeEqual(digest, this.fullDigest);
    const readOnly = timingSafeEqual(digest, this.readOnlyDigest ?? this.fullDigest) && this.readOnlyDigest !== null;
    if (full) return "full";
    return readOnly ? "read-only" : null;
  }
}

function digestOf(text: string | Buffer): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Bounds of the failed-authentication limiter; tests shrink them. */
export interface AuthLimits {
  /** Failed attempts one address may make per window; further attempts are refused unchecked until it ends. */
  readonly failuresMax: number;
  /** The window starts at an address's first failure after the previous window ended. */
  readonly failureWindowMs: number;
  /** At most one log line per address per this interval, counting what happened since the last one. */
  readonly logIntervalMs: number;
  /** Addresses remembered at once; the least recently seen is forgotten first, so memory stays bounded. */
  readonly addressesMax: number;
}

export const authLimitsDefault: AuthLimits = {
  failuresMax: 10,
  failureWindowMs: 60_000,
  logIntervalMs: 60_000,
  addressesMax: 10_000,
};

/** What one address did since its last log line, and where its current window stands. */
interface AddressRecord {
  windowStartMs: number;
  failuresInWindow: number;
  unloggedFailures: number;
  unloggedWithoutCredentials: number;
  unloggedRefusedWhileLimited: number;
  loggedAtMs: number;
}

/**
 * Counts failed authentication per client address (an IP, not IP and port: a new connection must not
 * reset the count). A success does not reset it: a client that knows the read-only password could
 * otherwise interleave it to guess the full one without limit.
 */
export class AuthFailureLimiter {
  private readonly addresses: LRUCache<string, AddressRecord>;

  constructor(
    private readonly logger: Logger,
    /** Names the port in log lines: "RESP" or "HTTP". */
    private readonly port: string,
    private readonly limits: AuthLimits = authLimitsDefault,
    private readonly nowMs: () => number = () => performance.now(),
    /** Told of each attempt refused unchecked (`auth_failures`). */
    private readonly limitHits: LimitHitSink = ignoreLimitHits,
  ) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new Error(`auth limit ${name} must be an integer of at least 1 (got ${String(value)})`);
    }
    this.addresses = new LRUCache({ max: limits.addressesMax });
  }

  /**
   * Seconds `address` must wait before its password is checked again, or 0 when it may try now. Call it once
   * per attempt: a refused attempt is counted for the log and as a limit hit, not towards the limit (the
   * window does not stretch while refused).
   */
  retryAfterSeconds(address: string): number {
    const record = this.addresses.get(address);
    if (record === undefined) return 0;
    const nowMs = this.nowMs();
    const windowEndMs = record.windowStartMs + this.limits.failureWindowMs;
    if (record.failuresInWindow < this.limits.failuresMax || nowMs >= windowEndMs) return 0;
    record.unloggedRefusedWhileLimited++;
    this.limitHits("auth_failures");
    this.logIfDue(address, record, nowMs);
    return Math.max(1, Math.ceil((windowEndMs - nowMs) / 1000));
  }

  /** Records a wrong password from `address`; it counts towards the limit. */
  recordFailure(address: string): void {
    const nowMs = this.nowMs();
    const record = this.recordOf(address, nowMs);
    if (nowMs >= record.windowStartMs + this.limits.failureWindowMs) {
      record.windowStartMs = nowMs;
      record.failuresInWindow = 0;
    }
    record.failuresInWindow++;
    record.unloggedFailures++;
    this.logIfDue(address, record, nowMs);
  }

  /**
   * Records a request refused for carrying no credentials at all (an HTTP request without a bearer token):
   * logged, but not a guess, so it does not count towards the limit; a status page opened before its
   * password is typed must not lock out the application sharing its address.
   */
  recordMissingCredentials(address: string): void {
    const nowMs = this.nowMs();
    const record = this.recordOf(address, nowMs);
    record.unloggedWithoutCredentials++;
    this.logIfDue(address, record, nowMs);
  }

  private recordOf(address: string, nowMs: number): AddressRecord {
    let record = this.addresses.get(address);
    if (record === undefined) {
      record = {
        windowStartMs: nowMs,
        failuresInWindow: 0,
        unloggedFailures: 0,
        unloggedWithoutCredentials: 0,
        unloggedRefusedWhileLimited: 0,
        loggedAtMs: Number.NEGATIVE_INFINITY,
      };
      this.addresses.set(address, record);
    }
    return record;
  }

  private logIfDue(address: string, record: AddressRecord, nowMs: number): void {
    if (nowMs - record.loggedAtMs < this.limits.logIntervalMs) return;
    const limited = record.failuresInWindow >= this.limits.failuresMax && nowMs < record.windowStartMs + this.limits.failureWindowMs;
    // Counts only, never what the client presented.
    this.logger.warn(
      {
        remote: address,
        port: this.port,
        failures: record.unloggedFailures,
        withoutCredentials: record.unloggedWithoutCredentials,
        refusedWhileLimited: record.unloggedRefusedWhileLimited,
        limited,
        logIntervalMs: this.limits.logIntervalMs,
      },
      `refused ${this.port} client authentication (counts since this address's previous line)`,
    );
    record.unloggedFailures = 0;
    record.unloggedWithoutCredentials = 0;
    record.unloggedRefusedWhileLimited = 0;
    record.loggedAtMs = nowMs;
  }
}

/** The reply text for an address over the limit; RESP and HTTP say the same. */
export function tooManyFailuresMessage(address: string, retryAfterSeconds: number, what: string): string {
  return `too many failed ${what} attempts from ${address}; retry in ${retryAfterSeconds} s`;
}
