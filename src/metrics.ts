// Prometheus metrics of one node (`GET /metrics`). Gauges of current state are read from the node at
// scrape time; counters and histograms are updated where the event happens. Every label value comes
// from a bounded set: member ids, protocol names, command-table names, error codes, route patterns.
// Lock names, session ids and request ids are never labels (one series each would grow without bound).

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FsmEvent } from "./fsm/events.js";
import { type LimitHitSink, type LimitName, limitNames } from "./limit-hits.js";

export const metricPrefix = "raftlock_";

/** The consensus state a scrape reports, read from the node when scraped. */
export interface RaftGauges {
  readonly isLeader: boolean;
  readonly hasLeader: boolean;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly proposalsPending: number;
  /** Per follower, entries the leader has that it is not known to hold; empty unless this node leads. */
  readonly followerLagEntries: ReadonlyMap<string, number>;
}

/** The coordination state a scrape reports. */
export interface CoordinationGauges {
  readonly sessionsActive: number;
  readonly locksHeld: number;
  readonly lockWaiters: number;
  readonly electionLeaders: number;
}

/** Bytes exchanged with one peer since its link was made. */
export interface PeerTraffic {
  readonly peerId: string;
  readonly sentBytes: number;
  readonly receivedBytes: number;
}

/** The protocols whose open connections are counted. */
export type ConnectionProtocol = "http" | "resp" | "peer";

/** Status classes of HTTP responses: the `status` label. */
function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : "other";
}

/** Locks whose grant this node applied, remembered until their release to measure the hold. */
export const heldLocksTrackedMax = 100_000;

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const lockSecondsBuckets = [0.001, 0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600];
const batchEntriesBuckets = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export class NodeMetrics {
  /** This node's own registry (not prom-client's global one): several nodes may share a process in tests. */
  readonly registry = new Registry();

  private raftSource: (() => RaftGauges) | null = null;
  private coordinationSource: (() => CoordinationGauges) | null = null;
  private readonly connectionSources = new Map<ConnectionProtocol, () => number | Promise<number>>();
  private peerTrafficSource: (() => readonly PeerTraffic[]) | null = null;
  /** Fencing token → the lock and when this node applied its grant (ms, monotonic), for lock_hold_seconds. */
  private readonly grants = new Map<number, { readonly name: string; readonly grantedAtMs: number }>();
  /** RESP command names that get their own label value; anything else is "other". */
  private respCommandNames: ReadonlySet<string> = new Set();

  private readonly leaderChanges: Counter;
  private readonly proposalsCommitted: Counter;
  private readonly proposalsFailed: Counter<"reason">;
  private readonly walFsyncSeconds: Histogram;
  private readonly snapshotSaveSeconds: Histogram;
  private readonly appendBatchEntries: Histogram;
  private readonly sessionsExpired: Counter;
  private readonly lockGrants: Counter;
  private readonly lockWaitSeconds: Histogram;
  private readonly lockHoldSeconds: Histogram;
  private readonly respRequests: Counter<"command" | "outcome">;
  private readonly respSeconds: Histogram<"command" | "outcome">;
  private readonly httpRequests: Counter<"route" | "method" | "status">;
  private readonly httpSeconds: Histogram<"route" | "method" | "status">;
  private readonly peerRoundTripSeconds: Histogram<"peer">;
  private readonly limitHits: Counter<"limit">;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: metricPrefix });
    // Gauges named like counters: `promtool check metrics` refuses them, and the per-type
    // nodejs_active_{handles,requests,resources} gauges carry the same counts.
    for (const kind of ["handles", "requests", "resources"]) this.registry.removeSingleMetric(`${metricPrefix}nodejs_active_${kind}_total`);
    const sources = this;
    const raftGauge = (name: string, help: string, read: (gauges: RaftGauges) => number): void => {
      new Gauge({
        name: metricPrefix + name,
        help,
        registers,
        collect() {
          const source = sources.raftSource;
          if (source !== null) this.set(read(source()));
        },
      });
    };
    raftGauge("has_leader", "1 when this node knows a leader, else 0.", (gauges) => (gauges.hasLeader ? 1 : 0));
    raftGauge("is_leader", "1 when this node is the leader, else 0.", (gauges) => (gauges.isLeader ? 1 : 0));
    raftGauge("term", "This node's current Raft term.", (gauges) => gauges.term);
    raftGauge("commit_index", "Highest log index this node knows to be committed.", (gauges) => gauges.commitIndex);
    raftGauge("applied_index", "Highest log index this node applied to its state machine.", (gauges) => gauges.appliedIndex);
    raftGauge("proposals_pending", "Proposals appended on this node (as leader) waiting to commit.", (gauges) => gauges.proposalsPending);
    new Gauge({
      name: `${metricPrefix}follower_lag_entries`,
      help: "Leader only: log entries the leader holds that the follower is not known to hold.",
      labelNames: ["peer"],
      registers,
      collect() {
        this.reset();
        const source = sources.raftSource;
        if (source === null) return;
        for (const [peer, lag] of source().followerLagEntries) this.set({ peer }, lag);
      },
    });
    const coordinationGauge = (name: string, help: string, read: (gauges: CoordinationGauges) => number): void => {
      new Gauge({
        name: metricPrefix + name,
        help,
        registers,
        collect() {
          const source = sources.coordinationSource;
          if (source !== null) this.set(read(source()));
        },
      });
    };
    coordinationGauge("sessions_active", "Open sessions in this node's applied state, including each lock's implicit lease.", (gauges) => gauges.sessionsActive);
    coordinationGauge("locks_held", "Locks with a holder in this node's applied state.", (gauges) => gauges.locksHeld);
    coordinationGauge("lock_waiters", "Clients queued for a lock in this node's applied state.", (gauges) => gauges.lockWaiters);
    coordinationGauge("election_leaders", "Elections with a leader in this node's applied state.", (gauges) => gauges.electionLeaders);
    new Gauge({
      name: `${metricPrefix}connections`,
      help: "Open connections by protocol: HTTP clients, RESP clients, and peers connected to this node.",
      labelNames: ["protocol"],
      registers,
      async collect() {
        for (const [protocol, count] of sources.connectionSources) this.set({ protocol }, await count());
      },
    });

    const trafficCounter = (name: string, help: string, read: (traffic: PeerTraffic) => number): void => {
      new Counter({
        name: metricPrefix + name,
        help,
        labelNames: ["peer"],
        registers,
        collect() {
          // Totals kept by the transport: set from them at each scrape (a removed peer's series goes away).
          this.reset();
          const source = sources.peerTrafficSource;
          if (source === null) return;
          for (const traffic of source()) this.inc({ peer: traffic.peerId }, read(traffic));
        },
      });
    };
    trafficCounter("peer_sent_bytes_total", "Frame bytes this node sent to the peer (WebSocket framing not counted).", (traffic) => traffic.sentBytes);
    trafficCounter("peer_received_bytes_total", "Frame bytes this node received from the peer (WebSocket framing not counted).", (traffic) => traffic.receivedBytes);
    this.peerRoundTripSeconds = new Histogram({
      name: `${metricPrefix}peer_round_trip_seconds`,
      help: "Leader only: time from sending a heartbeat to the follower's answer to it (includes the follower's loop turn).",
      labelNames: ["peer"],
      buckets: latencyBuckets,
      registers,
    });

    this.leaderChanges = new Counter({ name: `${metricPrefix}leader_changes_seen_total`, help: "Times this node learned of a new leader.", registers });
    this.proposalsCommitted = new Counter({ name: `${metricPrefix}proposals_committed_total`, help: "Proposals appended by this node as leader that committed.", registers });
    this.proposalsFailed = new Counter({
      name: `${metricPrefix}proposals_failed_total`,
      help: "Proposals made on this node as leader that did not commit (or whose outcome is unknown), by error code.",
      labelNames: ["reason"],
      registers,
    });
    this.walFsyncSeconds = new Histogram({
      name: `${metricPrefix}wal_fsync_duration_seconds`,
      help: "Time to make one Ready batch durable: one WAL write on a segment opened with O_DSYNC (group commit); a batch that only advances the commit index is not written and not counted.",
      buckets: latencyBuckets,
      registers,
    });
    this.snapshotSaveSeconds = new Histogram({
      name: `${metricPrefix}snapshot_save_duration_seconds`,
      help: "Time from encoding a snapshot this node took to its log being compacted to it; the file is written and synced beside the WAL's saves.",
      buckets: latencyBuckets,
      registers,
    });
    this.appendBatchEntries = new Histogram({
      name: `${metricPrefix}append_entries_batch_entries`,
      help: "Entries per AppendEntries message this node sent as leader.",
      buckets: batchEntriesBuckets,
      registers,
    });
    this.sessionsExpired = new Counter({ name: `${metricPrefix}session_expired_total`, help: "Sessions (and implicit lock leases) this node applied the expiry of.", registers });
    this.lockGrants = new Counter({ name: `${metricPrefix}lock_grants_total`, help: "Lock grants this node applied (every member applies every grant).", registers });
    this.lockWaitSeconds = new Histogram({
      name: `${metricPrefix}lock_wait_seconds`,
      help: "For acquires served by this node: time from the acquire being applied to the grant (0 when granted at once).",
      buckets: lockSecondsBuckets,
      registers,
    });
    this.lockHoldSeconds = new Histogram({
      name: `${metricPrefix}lock_hold_seconds`,
      help: "Time from a lock's grant to its release or expiry, as this node applied them.",
      buckets: lockSecondsBuckets,
      registers,
    });
    this.limitHits = new Counter({
      name: `${metricPrefix}limit_hits_total`,
      help: "Times a named limit refused something on this node (see the README's limits table); state machine limits count on every member.",
      labelNames: ["limit"],
      registers,
    });
    // Every series from the start at 0: an alert on increase() then also fires on the first hit.
    for (const limit of limitNames) this.limitHits.inc({ limit }, 0);
    this.respRequests = new Counter({
      name: `${metricPrefix}resp_requests_total`,
      help: "RESP requests answered, by command (other: not in the command table) and outcome (ok or error).",
      labelNames: ["command", "outcome"],
      registers,
    });
    this.respSeconds = new Histogram({
      name: `${metricPrefix}resp_request_duration_seconds`,
      help: "Time from reading a RESP request to its reply (blocking commands include their wait).",
      labelNames: ["command", "outcome"],
      buckets: latencyBuckets,
      registers,
    });
    this.httpRequests = new Counter({
      name: `${metricPrefix}http_requests_total`,
      help: "HTTP requests answered, by route pattern (unmatched: no route), method and status class.",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.httpSeconds = new Histogram({
      name: `${metricPrefix}http_request_duration_seconds`,
      help: "Time from receiving an HTTP request to finishing its response (long polls include their wait).",
      labelNames: ["route", "method", "status"],
      buckets: latencyBuckets,
      registers,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Sources read at scrape time

  watchRaft(source: () => RaftGauges): void {
    this.raftSource = source;
  }

  watchCoordination(source: () => CoordinationGauges): void {
    this.coordinationSource = source;
  }

  countConnections(protocol: ConnectionProtocol, count: () => number | Promise<number>): void {
    this.connectionSources.set(protocol, count);
  }

  watchPeerTraffic(source: () => readonly PeerTraffic[]): void {
    this.peerTrafficSource = source;
  }

  /** The command names that are label values; any other command is counted as "other". */
  labelRespCommands(names: Iterable<string>): void {
    this.respCommandNames = new Set(names);
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  proposalCommitted(): void {
    this.proposalsCommitted.inc();
  }

  /** `reason` is a NodeError code: a small fixed set. */
  proposalFailed(reason: string): void {
    this.proposalsFailed.inc({ reason });
  }

  walSaved(seconds: number): void {
    this.walFsyncSeconds.observe(seconds);
  }

  snapshotSaved(seconds: number): void {
    this.snapshotSaveSeconds.observe(seconds);
  }

  appendEntriesSent(entries: number): void {
    this.appendBatchEntries.observe(entries);
  }

  /** `peer` is a member id: bounded by the cluster size. */
  peerRoundTrip(peer: string, seconds: number): void {
    this.peerRoundTripSeconds.observe({ peer }, seconds);
  }

  lockWaited(seconds: number): void {
    this.lockWaitSeconds.observe(seconds);
  }

  /** Every event the state machine emits on this node, with this node's monotonic clock when it was applied. */
  fsmEvent(event: FsmEvent, nowMs: number): void {
    switch (event.type) {
      case "lock-granted":
        this.lockGrants.inc();
        if (this.grants.size < heldLocksTrackedMax) this.grants.set(event.token, { name: event.name, grantedAtMs: nowMs });
        break;
      case "lock-released":
      case "lock-expired": {
        const grant = this.grants.get(event.token);
        if (grant === undefined) break; // granted before this node started, or in a snapshot it installed
        this.grants.delete(event.token);
        this.lockHoldSeconds.observe((nowMs - grant.grantedAtMs) / 1000);
        break;
      }
      case "session-ended":
        if (event.reason === "expired") this.sessionsExpired.inc();
        break;
      default:
        break;
    }
  }

  /**
   * A snapshot replaced the state: releases in the entries it covered were never seen here. Forget the
   * grants that no longer hold, so that the hold map does not keep them forever.
   */
  restored(stillHeld: (name: string, token: number) => boolean): void {
    for (const [token, grant] of this.grants) if (!stillHeld(grant.name, token)) this.grants.delete(token);
  }

  /** Grants whose release this node waits to see (bounded by heldLocksTrackedMax). */
  get grantsTracked(): number {
    return this.grants.size;
  }

  /** A named limit refused something; `limit` comes from the fixed list in limit-hits.ts. Bound, so it serves as a sink as it is. */
  readonly limitHit: LimitHitSink = (limit: LimitName): void => {
    this.limitHits.inc({ limit });
  };

  /** This node's hits of `limit` so far (for tests and the status of a running node). */
  async limitHitCount(limit: LimitName): Promise<number> {
    const { values } = await this.limitHits.get();
    return values.find((sample) => sample.labels.limit === limit)?.value ?? 0;
  }

  respAnswered(command: string, ok: boolean, seconds: number): void {
    const labels = { command: this.respCommandNames.has(command) ? command : "other", outcome: ok ? "ok" : "error" };
    this.respRequests.inc(labels);
    this.respSeconds.observe(labels, seconds);
  }

  /** `route` is the matched route's pattern (`/v1/locks/:name`), never the raw path. */
  httpAnswered(route: string, method: string, status: number, seconds: number): void {
    const labels = { route, method: httpMethods.has(method) ? method : "other", status: statusClass(status) };
    this.httpRequests.inc(labels);
    this.httpSeconds.observe(labels, seconds);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

const httpMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
