// The named limits whose refusals are counted in `raftlock_limit_hits_total{limit}`. The label values
// are this fixed list, so a limit hit never makes a new series; the README's limits table is checked
// against it (test/readme.test.ts). Each entry says where the limit lives and what a hit does.

import { performance } from "node:perf_hooks";

/** Each limit name (the metric's label value) and what it bounds, for the README's table and the code's readers. */
export const limitDescriptions = {
  // Client connections and requests (src/api/resp/limits.ts, src/api/http/*)
  resp_connections: "RESP client connections at once (`connectionsMax`): one more is answered `-ERR max number of clients reached` and closed",
  resp_arguments: "arguments of one RESP request (`argumentsMax`; 10 before AUTH)",
  resp_bulk_bytes: "bytes of one RESP argument (`bulkBytesMax`; 16 KiB before AUTH)",
  resp_request_bytes: "bytes of all arguments of one RESP request (`requestBytesMax`)",
  resp_inline_bytes: "bytes of one inline RESP request (`inlineBytesMax`)",
  resp_output_bytes: "reply bytes a RESP client leaves unread (`outputBytesMax`): the connection is closed",
  http_connections: "HTTP client connections at once (`httpConnectionsMax`): one more is answered 503 and closed",
  http_body_bytes: "bytes of one HTTP request body (`httpBodyBytesMax`): 413",
  subscriptions_per_connection: "channels one RESP connection or one watch WebSocket subscribes to",
  watch_streams: "Server-Sent Events watch streams open at once (`watchStreamsMax`): 503",
  watch_sockets: "watch WebSockets open at once (`watchSocketsMax`): refused with 503",
  watch_message_bytes: "bytes of one message a watch WebSocket sends (`watchMessageBytesMax`): the socket is closed",
  auth_failures: "wrong passwords from one client address within a minute: further attempts are refused unchecked",
  // Coordination requests (src/fsm/limits.ts, src/node/coordination-service.ts)
  name_bytes: "bytes of a lock or election name, owner, candidate or session label",
  value_bytes: "bytes of an election value",
  sessions: "sessions and implicit lock leases open in the cluster (`sessionsMax`)",
  locks: "locks that exist in the cluster, held or waited for (`locksMax`)",
  elections: "elections that exist in the cluster (`electionsMax`)",
  waiters_per_lock: "acquires or campaigns queued behind one lock or election (`waitersPerLockMax`)",
  waiters: "acquires and campaigns queued in the cluster (`waitersMax`)",
  locks_per_session: "locks and elections one session holds or waits for, checked by the serving node (`locksPerSessionMax`)",
  sessions_per_client: "sessions and implicit lock leases one client address opened through this node and still has (`sessionsPerClientMax`)",
  blocked_clients: "acquires and campaigns in flight on this node at once, blocked ones included (`blockedClientsMax`)",
  // Consensus and replication (src/node/node.ts, src/transport/limits.ts)
  proposal_bytes: "bytes of one proposed entry (`proposalBytesMax`)",
  pending_proposals: "proposals this node waits on to commit (`pendingProposalsMax`)",
  pending_reads: "linearizable reads this node waits on (`pendingReadsMax`)",
  forwarded_requests: "requests waiting on one peer's answer, or one peer's requests handled at once (`requestsInFlightMaxPerPeer`): writes forwarded to the leader among them",
  peer_frame_bytes: "bytes of one peer frame (`frameBytesMax`): a larger one is dropped (sending) or closes the stream (receiving)",
  peer_queued_bytes: "bytes queued for one peer (`queuedBytesMaxPerPeer`): its queued Raft messages are dropped and resent from the log",
  peer_snapshot_bytes: "bytes of one snapshot sent or received (`snapshotBytesMax`)",
  peer_handshakes_pending: "peer sockets accepted that have not finished the handshake (`handshakesPendingMax`)",
  peer_links: "peers this node keeps a link for (`linksMax`)",
} as const satisfies Record<string, string>;

/** A named limit: the `limit` label of `raftlock_limit_hits_total`. */
export type LimitName = keyof typeof limitDescriptions;

/** Every limit name, in the order of `limitDescriptions`. */
export const limitNames = Object.keys(limitDescriptions) as LimitName[];

/** Told each time a named limit refuses something (one call per refusal). */
export type LimitHitSink = (limit: LimitName) => void;

/** A sink for components run without metrics (tests, tools). */
export const ignoreLimitHits: LimitHitSink = () => {};

/** How often a limit's refusals are logged at most: the metric counts every one, the log summarises. */
export const limitLogIntervalMs = 60_000;

/** The part of a pino logger a `LimitLog` writes to. */
interface WarnLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/**
 * Logs a limit's refusals at most once per `limitLogIntervalMs`, with how many were not logged since:
 * a client that hammers a limit (a connection storm) must not flood the log as well.
 */
export class LimitLog {
  private loggedAtMs = Number.NEGATIVE_INFINITY;
  private unlogged = 0;

  constructor(
    private readonly logger: WarnLogger,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** One refusal: logged now with the count of those not logged since the last line, or counted for the next. */
  refused(fields: Record<string, unknown>, message: string): void {
    const nowMs = this.nowMs();
    if (nowMs - this.loggedAtMs < limitLogIntervalMs) {
      this.unlogged++;
      return;
    }
    this.logger.warn({ ...fields, refusedUnloggedBefore: this.unlogged }, message);
    this.loggedAtMs = nowMs;
    this.unlogged = 0;
  }
}
