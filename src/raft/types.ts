// Plain-data shapes shared by the consensus core, the driver and the transport.
// Everything here is a value with a stable shape so that it can be encoded on the wire or on disk.

/** A member of the cluster, as named on the command line (`n1`, `n2`, ...). */
export type NodeId = string;

/**
 * What an entry carries: application data, the leader's empty entry of its term (never applied), or a
 * new cluster configuration (`encodeClusterConfig`), in force on each node from the moment it is appended.
 */
export const EntryType = {
  Normal: 0,
  Empty: 1,
  Config: 2,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One record of the replicated log. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must survive a crash besides the log: term and vote (atomically), and the commit index. */
export interface HardState {
  readonly currentTerm: number;
  readonly votedFor: NodeId | null;
  readonly commitIndex: number;
}

/**
 * Voting members and non-voting learners; a value the core reads, changed only through the log.
 * `addresses` gives each member's peer address (`host:port`) so that every node can reach members added
 * at runtime; the core carries it without reading it.
 */
export interface ClusterConfig {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly addresses: Readonly<Record<NodeId, string>>;
}

/** Where a snapshot sits in the log and which configuration was in force there. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly config: ClusterConfig;
}

/** The application's state at `meta.index`, opaque to the core. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export const Role = {
  Follower: "follower",
  PreCandidate: "pre-candidate",
  Candidate: "candidate",
  Leader: "leader",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

// ---------------------------------------------------------------------------------------------
// Messages. Every message names its sender, receiver and the sender's term.

interface MessageHeader {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's current term; for a PreVote request, the term it would campaign at. */
  readonly term: number;
}

/** RequestVote, or the PreVote probe that asks "would you vote for me at `term`?". */
export interface VoteRequest extends MessageHeader {
  readonly type: "vote" | "pre-vote";
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when the campaign follows a leadership transfer: it bypasses leader stickiness. */
  readonly transfer: boolean;
}

export interface VoteResponse extends MessageHeader {
  readonly type: "vote-response" | "pre-vote-response";
  readonly granted: boolean;
}

/** AppendEntries. An empty `entries` only moves the commit index (heartbeats are separate). */
export interface AppendRequest extends MessageHeader {
  readonly type: "append";
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
}

export interface AppendResponse extends MessageHeader {
  readonly type: "append-response";
  readonly success: boolean;
  /** On success: the follower's last index known to match the leader. On rejection: the rejected prevLogIndex. */
  readonly index: number;
  /** Fast backtracking hint on rejection: the term of the follower's entry at `index` (0 if it has none). */
  readonly conflictTerm: number;
  /** Fast backtracking hint on rejection: the first index of `conflictTerm`, or the follower's lastIndex + 1. */
  readonly conflictIndex: number;
}

/** Leader liveness and the heartbeat rounds that confirm leadership for ReadIndex and lease reads. */
export interface HeartbeatRequest extends MessageHeader {
  readonly type: "heartbeat";
  /** min(follower's matchIndex, leader's commitIndex): never more than the follower is known to hold. */
  readonly leaderCommit: number;
  readonly round: number;
}

export interface HeartbeatResponse extends MessageHeader {
  readonly type: "heartbeat-response";
  readonly round: number;
}

/** InstallSnapshot. The transport streams `snapshot.data` in chunks; the core sees the whole value. */
export interface SnapshotRequest extends MessageHeader {
  readonly type: "snapshot";
  readonly snapshot: Snapshot;
}

/** Leadership transfer: the receiver campaigns at once, bypassing its election timeout and stickiness. */
export interface TimeoutNowRequest extends MessageHeader {
  readonly type: "timeout-now";
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest;

export type MessageType = Message["type"];

// ---------------------------------------------------------------------------------------------
// What the core hands back.

/** A read that may be served once the local state machine has applied `index`. */
export interface ReadState {
  readonly context: unknown;
  readonly index: number;
}

/** Why a read, proposal or transfer could not be taken. */
export type RejectReason =
  | "not-leader"
  | "transferring"
  | "no-quorum"
  | "too-many-reads"
  | "proposal-too-large"
  | "unknown-node"
  /** A configuration change is appended but not committed yet: one at a time (pitfall 18). */
  | "config-change-pending"
  /** A new leader commits an entry of its own term before it changes the configuration (pitfall 18). */
  | "term-not-committed"
  /** The change does not apply to the current configuration; `detail` says why. */
  | "invalid-config-change"
  /** The learner is too far behind (or silent) to be promoted without stalling commits (pitfall 19). */
  | "learner-behind";

export interface ReadFailure {
  readonly context: unknown;
  readonly reason: RejectReason;
}

/** Volatile state the driver may want to report (role changes, who leads). */
export interface SoftState {
  readonly role: Role;
  readonly leaderId: NodeId | null;
  readonly currentTerm: number;
}

/**
 * One batch of work. The driver makes `snapshot`, `entries` and `hardState` durable together (a torn
 * write may lose the commit index only with a suffix of the entries, and never leaves entries of a term
 * the durable term does not reach), then sends `messages` (`leaderMessages` may go out before the write), applies `committedEntries` in order, serves
 * `readStates`, and finally calls `advance(ready)`. Nothing in `messages` may leave the node before the
 * batch is durable.
 */
export interface Ready {
  readonly softState: SoftState;
  /** Present when term, vote or commit changed since the last batch. */
  readonly hardState: HardState | null;
  /** A snapshot received from the leader, to persist and restore before applying anything else. */
  readonly snapshot: Snapshot | null;
  /** Entries to append to the durable log; `entries[0].index` may overwrite an existing suffix. */
  readonly entries: readonly Entry[];
  /**
   * A leader's replication messages (its term is already durable): the driver may send them before this
   * batch is durable, so the leader's fsync runs in parallel with its followers' (pitfall 11: the leader
   * counts its own new entries towards a majority only after `advance`).
   */
  readonly leaderMessages: readonly Message[];
  readonly messages: readonly Message[];
  /** Committed entries, already durable locally, to apply in order. */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  readonly readFailures: readonly ReadFailure[];
}

/** Result of `propose`: where the entry will sit if it commits, or why it was not taken. */
export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: RejectReason; readonly detail?: string };

/**
 * Whether persisting a batch needs an fsync before its messages go out and its entries apply: it does
 * when it carries entries, a snapshot, or a new term or vote (pitfall 2). A batch that only advances the
 * commit index does not: Raft's commit index is volatile state, a restarted node learns it again from
 * the leader, and the entries it points at are already durable.
 */
export function mustSync(batch: Pick<Ready, "hardState" | "snapshot" | "entries">, durable: HardState): boolean {
  if (batch.entries.length > 0 || batch.snapshot !== null) return true;
  if (batch.hardState === null) return false;
  return batch.hardState.currentTerm !== durable.currentTerm || batch.hardState.votedFor !== durable.votedFor;
}
