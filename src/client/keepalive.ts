// The client side of a lease (coordination.md, Sessions): refresh every ttl/3, and assume the lease is gone
// at `time the last successful refresh was sent + TTL − margin`, measured on the monotonic clock. The
// server may hold the lease a little longer; the client never believes in it longer than the server does.
import { performance } from "node:perf_hooks";
import { RaftlockError } from "./errors.js";

/** Shortest interval between refreshes, whatever the TTL. */
export const refreshIntervalMsMin = 50;
/** Longest interval between refreshes, so that a long lease still notices its loss within a minute. */
export const refreshIntervalMsMax = 60_000;
/** Part of the TTL kept as a safety margin: the lease counts as lost this much before the server would expire it. */
export const safetyMarginFraction = 0.1;
/** Smallest safety margin, for clock-rate differences and scheduling delays on short TTLs. */
export const safetyMarginMsMin = 100;
/** Pause between refresh attempts after a failed one (no leader, connection lost), bounded by the refresh interval. */
export const refreshRetryMs = 100;

/** How often a lease of `ttlMs` is refreshed: a third of the TTL, within the named bounds. */
export function refreshIntervalMs(ttlMs: number): number {
  return Math.min(refreshIntervalMsMax, Math.max(refreshIntervalMsMin, Math.floor(ttlMs / 3)));
}

/** How long before the server could expire a lease of `ttlMs` the client gives it up. */
export function safetyMarginMs(ttlMs: number): number {
  return Math.max(safetyMarginMsMin, Math.ceil(ttlMs * safetyMarginFraction));
}

/** The answer of one refresh: still held, or definitely not held any more. */
export type RefreshOutcome = "held" | "lost";

/** Keeps one lease alive until `stop()`; `signal` aborts (with a LOCKLOST RaftlockError) when it is lost or can no longer be confirmed. */
export class Keepalive {
  private readonly controller = new AbortController();
  private confirmedSentAtMs: number;
  private refreshTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly what: string,
    private readonly ttlMs: number,
    /** performance.now() when the request that granted the lease was sent. */
    grantSentAtMs: number,
    private readonly refresh: () => Promise<RefreshOutcome>,
  ) {
    this.confirmedSentAtMs = grantSentAtMs;
    this.armDeadline();
    this.schedule(refreshIntervalMs(ttlMs));
  }

  /** Aborts when the lease is lost or unconfirmed; never un-aborts. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Stops refreshing (the signal does not fire). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    clearTimeout(this.deadlineTimer);
  }

  /** Stops refreshing and fires the signal with `reason`. */
  lose(reason: string): void {
    if (this.controller.signal.aborted) return;
    this.stop();
    this.controller.abort(new RaftlockError("LOCKLOST", `${this.what}: ${reason}`));
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    const deadlineMs = this.confirmedSentAtMs + this.ttlMs - safetyMarginMs(this.ttlMs);
    this.deadlineTimer = setTimeout(
      () => this.lose(`not confirmed for ${Math.round(performance.now() - this.confirmedSentAtMs)} ms (TTL ${this.ttlMs} ms); it may have expired on the server`),
      Math.max(0, deadlineMs - performance.now()),
    );
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.refreshTimer = setTimeout(() => void this.refreshOnce(), delayMs);
  }

  private async refreshOnce(): Promise<void> {
    if (this.stopped) return;
    const sentAtMs = performance.now();
    let outcome: RefreshOutcome;
    try {
      outcome = await this.refresh();
    } catch {
      // Refreshes are idempotent, so a failed one is simply sent again; the deadline decides when to give up.
      this.schedule(Math.min(refreshRetryMs, refreshIntervalMs(this.ttlMs)));
      return;
    }
    if (this.stopped) return;
    if (outcome === "lost") {
      this.lose("the server says it is no longer held");
      return;
    }
    if (sentAtMs > this.confirmedSentAtMs) {
      this.confirmedSentAtMs = sentAtMs;
      this.armDeadline();
    }
    this.schedule(Math.max(0, refreshIntervalMs(this.ttlMs) - (performance.now() - sentAtMs)));
  }
}
