import { assert } from "../util/assert.js";
import type { NodeId } from "./types.js";

/** Tunables of one consensus core. Times are milliseconds on the caller's monotonic clock. */
export interface RaftConfig {
  readonly id: NodeId;
  /**
   * Randomized election timeout is drawn from [min, max). Stickiness and the lease use `min`, so every
   * member must run with the same `min`: a follower with a shorter one would vote while a leader with a
   * longer one still trusts its lease (lower it on every node before using lease reads with it).
   */
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly heartbeatIntervalMs: number;
  /** How far two nodes' clocks may drift apart within one lease; subtracted from the lease. */
  readonly leaseDriftBoundMs: number;
  /** Largest AppendEntries payload in entry bytes; a single larger entry travels alone. */
  readonly appendBytesMax: number;
  /** AppendEntries in flight to one follower in the replicate state. */
  readonly inflightMessagesMax: number;
  /** Entry bytes in flight to one follower; caps the memory a slow follower can make the leader hold. */
  readonly inflightBytesMax: number;
  /** Reads waiting for a heartbeat round at once. */
  readonly pendingReadsMax: number;
  /** Largest data of one proposed entry. */
  readonly proposalBytesMax: number;
  /** A learner is promoted only when its log is within this many entries of the leader's (pitfall 19). */
  readonly promoteLagEntriesMax: number;
  /**
   * When the transport reports its stream to the leader lost, a follower campaigns (PreVote first) within
   * this many ms, at a random point, instead of after a whole election timeout; null waits the timeout.
   * A killed leader's sockets close at once, so this cuts failover from seconds to milliseconds. It also
   * stops shielding that leader from other candidates, so it must stay null while lease reads are served:
   * a live leader behind a broken link may still be trusting its lease (readIndex asserts this).
   */
  readonly leaderLossCampaignWithinMs: number | null;
  /** Uniform in [0, 1). Injected so that simulations replay exactly from a seed. */
  readonly random: () => number;
}

/** Defaults for a real node on a loaded 2-core machine (the paper's 150-300 ms also work when configured). */
export const raftConfigDefaults = {
  electionTimeoutMinMs: 1000,
  electionTimeoutMaxMs: 2000,
  heartbeatIntervalMs: 100,
  leaseDriftBoundMs: 50,
  appendBytesMax: 1 << 20,
  inflightMessagesMax: 256,
  inflightBytesMax: 32 << 20,
  pendingReadsMax: 10_000,
  proposalBytesMax: 1 << 20,
  promoteLagEntriesMax: 1000,
  leaderLossCampaignWithinMs: null,
} as const;

/** Checks the relations between tunables that the protocol's safety arguments rely on. */
export function validateRaftConfig(config: RaftConfig): void {
  assert(config.id.length > 0, "node id must not be empty");
  assert(config.heartbeatIntervalMs > 0, "heartbeat interval must be positive");
  assert(
    config.electionTimeoutMinMs > config.heartbeatIntervalMs,
    "election timeout must be longer than the heartbeat interval",
  );
  assert(config.electionTimeoutMaxMs > config.electionTimeoutMinMs, "election timeout range must not be empty");
  assert(
    config.leaseDriftBoundMs >= 0 && config.leaseDriftBoundMs < config.electionTimeoutMinMs,
    "lease drift bound must be below the minimum election timeout",
  );
  assert(config.appendBytesMax > 0 && config.inflightMessagesMax > 0, "append limits must be positive");
  assert(config.inflightBytesMax >= config.appendBytesMax, "in-flight bytes must fit one full append");
  assert(config.pendingReadsMax > 0 && config.proposalBytesMax > 0, "read and proposal limits must be positive");
  assert(config.promoteLagEntriesMax >= 0, "promotion lag must not be negative");
  assert(
    config.leaderLossCampaignWithinMs === null || (config.leaderLossCampaignWithinMs > 0 && config.leaderLossCampaignWithinMs <= config.electionTimeoutMinMs),
    "a campaign after losing the leader must come within (0, minimum election timeout]",
  );
}
