// The operator's side of membership changes: ask whoever leads, and retry as a real admin tool would
// (no leader yet, a transfer, a change still pending, a new leader whose term has not committed, a
// learner still catching up) until the committed configuration shows the change, or a deadline passes.

import type { ConfigChange } from "../../src/raft/cluster-config.js";
import type { ClusterConfig, NodeId } from "../../src/raft/types.js";
import { SimulationError, type Cluster, type ConfigChangeResult } from "./cluster.js";
import type { Prng } from "./prng.js";

export interface MembershipRequest {
  readonly change: ConfigChange;
  readonly issuedAtMs: number;
  /** pending: still trying; done: the committed configuration shows the change; failed: it cannot be made, or the deadline passed. */
  status: "pending" | "done" | "failed";
  attempts: number;
  /** The last refusal, e.g. "not-leader" or "invalid-config-change: n4 is not a learner". */
  lastRefusal?: string;
  /** Where the last accepted attempt was appended. */
  accepted?: { readonly nodeId: NodeId; readonly index: number; readonly term: number };
  doneAtMs?: number;
}

export interface AdminOptions {
  /** Between two attempts, and between two looks at the committed configuration. */
  readonly retryIntervalMs: number;
  /** A request still pending this long after it was issued fails. */
  readonly giveUpAfterMs: number;
  /**
   * When set, an attempt goes half of the time to any node that believes it leads, a deposed one
   * included, as an admin tool with a stale view would; otherwise always to the leader of the highest term.
   */
  readonly random: Prng | null;
}

export const adminDefaults: AdminOptions = { retryIntervalMs: 20, giveUpAfterMs: 10_000, random: null };

/** Whether `config` already shows `change`. */
export function changeShown(config: ClusterConfig, change: ConfigChange): boolean {
  const isVoter = config.voters.includes(change.nodeId);
  switch (change.type) {
    case "add-learner":
      return isVoter || config.learners.includes(change.nodeId); // promoted since counts as added
    case "promote":
      return isVoter;
    case "remove":
      return !isVoter && !config.learners.includes(change.nodeId);
  }
}

/** Refusals after which a real admin tool waits and asks again. */
const retriedRefusals = new Set(["not-leader", "transferring", "config-change-pending", "term-not-committed", "learner-behind", "node-down", "node-paused"]);

/**
 * One operator: requests run one after another or side by side, each on its own timer events, so a
 * scenario can keep faults and client traffic going while a change is under way.
 */
export class Admin {
  private readonly options: AdminOptions;
  /** Bumped by `cancelAll`, so that the timers of cancelled requests stop. */
  private epoch = 0;

  constructor(
    private readonly cluster: Cluster,
    options: Partial<AdminOptions> = {},
  ) {
    this.options = { ...adminDefaults, ...options };
  }

  /** Starts trying `change` now; the request's status tells how it ended. */
  request(change: ConfigChange): MembershipRequest {
    const request: MembershipRequest = { change, issuedAtMs: this.cluster.nowMs, status: "pending", attempts: 0 };
    this.attempt(request, this.epoch);
    return request;
  }

  /** Stops retrying every pending request (they stay pending; what was appended may still commit). */
  cancelAll(): void {
    this.epoch++;
  }

  private attempt(request: MembershipRequest, epoch: number): void {
    if (epoch !== this.epoch || request.status !== "pending") return;
    const cluster = this.cluster;
    const committed = cluster.committedConfig();
    if (committed !== undefined && changeShown(committed, request.change)) {
      request.status = "done";
      request.doneAtMs = cluster.nowMs;
      return;
    }
    if (cluster.nowMs - request.issuedAtMs >= this.options.giveUpAfterMs) {
      request.status = "failed";
      request.lastRefusal = `gave up after ${this.options.giveUpAfterMs} ms (last: ${request.lastRefusal ?? "accepted, not committed"})`;
      return;
    }
    const leaderId = this.pickLeader();
    // Once accepted, only look again until it commits or a new leader dropped it.
    const inFlight = request.accepted !== undefined && leaderId === request.accepted.nodeId && cluster.status(leaderId)?.currentTerm === request.accepted.term;
    if (!inFlight) {
      request.attempts++;
      const result: ConfigChangeResult = leaderId === undefined ? { ok: false, reason: "not-leader" } : cluster.proposeConfigChangeAt(leaderId, request.change);
      if (result.ok) {
        request.accepted = { nodeId: leaderId as NodeId, index: result.index, term: result.term };
      } else {
        request.lastRefusal = result.detail === undefined ? result.reason : `${result.reason}: ${result.detail}`;
        if (!retriedRefusals.has(result.reason)) {
          // Refused as invalid: fine when the change is already there and only waits to commit.
          const current = leaderId === undefined ? undefined : cluster.status(leaderId)?.config;
          if (current === undefined || !changeShown(current, request.change)) {
            request.status = "failed";
            return;
          }
        }
      }
    }
    cluster.after(this.options.retryIntervalMs, () => this.attempt(request, epoch));
  }

  private pickLeader(): NodeId | undefined {
    const random = this.options.random;
    if (random !== null && random.chance(0.5)) {
      const leaderIds = this.cluster.leaders();
      if (leaderIds.length > 0) return random.pick(leaderIds);
    }
    return this.cluster.leader();
  }
}

/** Makes `change` through the admin and runs the cluster until it is committed; throws with the seed when it fails. */
export function changeMembership(cluster: Cluster, change: ConfigChange, withinMs = 10_000): MembershipRequest {
  const request = new Admin(cluster, { giveUpAfterMs: withinMs }).request(change);
  cluster.runUntil(() => request.status !== "pending", withinMs + 1_000, `${change.type} ${change.nodeId} committed`);
  if (request.status !== "done") {
    throw new SimulationError(cluster.seed, cluster.steps, cluster.nowMs, `${change.type} ${change.nodeId} failed: ${request.lastRefusal ?? "no reason"} (${cluster.describe()})`);
  }
  return request;
}

/** Starts a new node and makes it a voter: add as a learner, then promote once it caught up. */
export function joinAsVoter(cluster: Cluster, withinMs = 10_000): NodeId {
  const id = cluster.addNode();
  changeMembership(cluster, { type: "add-learner", nodeId: id, address: `${id}.sim:7000` }, withinMs);
  changeMembership(cluster, { type: "promote", nodeId: id }, withinMs);
  return id;
}

/** Removes `id` through the log and then discards its machine. */
export function removeAndDiscard(cluster: Cluster, id: NodeId, withinMs = 10_000): void {
  changeMembership(cluster, { type: "remove", nodeId: id }, withinMs);
  cluster.discard(id);
}
