// Raft's safety properties, checked by the simulator after every event. Each check keeps a global
// record (what any node ever logged, committed, applied, voted) and compares one node against it,
// so a check costs time proportional to what changed, not to the cluster's history.

import type { Raft } from "../../src/raft/raft.js";
import { Role, type Entry, type HardState, type Message, type NodeId, type SnapshotMeta } from "../../src/raft/types.js";
import { hashBytes, hashNumbers } from "./hash.js";
import { MembershipInvariants, type DurableLookup } from "./membership-invariants.js";

/** A safety property does not hold. The cluster adds the seed and step number to the message. */
export class InvariantViolation extends Error {
  override name = "InvariantViolation";
}

function violated(message: string): never {
  throw new InvariantViolation(message);
}

/** Terms are packed below indexes into one number key; a run never reaches this many terms. */
const termsMax = 1 << 20;

function logKey(index: number, term: number): number {
  if (term >= termsMax) violated(`term ${term} exceeds the simulator's key space`);
  return index * termsMax + term;
}

interface CommittedRecord {
  readonly term: number;
  /** Unknown when the commitment was learned from a snapshot's metadata. */
  contentHash: number | undefined;
  /**
   * An upper bound on the term in which the entry was committed: the observer's currentTerm when it
   * first saw the entry committed (a node learns commitment from a leader of its own term, or later).
   * Leader Completeness only binds leaders of later terms: a stale leader of an older term, elected
   * while cut off, may legitimately lack entries committed after its term.
   */
  commitTermBound: number;
}

interface AppliedRecord {
  readonly term: number;
  /** Unknown when the index was first reached by restoring a snapshot rather than applying the entry. */
  readonly contentHash: number | undefined;
  readonly stateHash: number;
}

/** What the checker remembers about one node; reset in part when the node restarts. */
interface NodeTrack {
  /** Fingerprint of the node's log prefix ending at each index, as handed out in Ready.entries. */
  readonly prefixHashByIndex: Map<number, number>;
  /** Highest index in the node's log as handed out, and the snapshot index below which it has no prefixes. */
  lastIndex: number;
  snapshotIndex: number;
  /** Per lifetime: commitIndex and lastApplied as last reported by status(). */
  commitIndex: number;
  lastApplied: number;
  /** Highest index whose commitment this node's commitIndex has already been recorded for. */
  commitRecordedIndex: number;
  /** Term in which this node was last seen leading, to run leader completeness once per term. */
  leaderTerm: number;
}

const emptyPrefixHash = 0x9e3779b9;

const contentHashCache = new WeakMap<Entry, number>();

export function contentHashOf(entry: Entry): number {
  let contentHash = contentHashCache.get(entry);
  if (contentHash === undefined) {
    contentHash = hashNumbers(entry.type, hashBytes(entry.data));
    contentHashCache.set(entry, contentHash);
  }
  return contentHash;
}

export class Invariants {
  private readonly leaderByTerm = new Map<number, NodeId>();
  private readonly grantedVoteByTermVoter = new Map<string, NodeId>();
  /** (index, term) -> fingerprint of the entry and of the whole log prefix it ends, from any node. */
  private readonly prefixHashByKey = new Map<number, number>();
  private readonly contentHashByKey = new Map<number, number>();
  private readonly committedByIndex = new Map<number, CommittedRecord>();
  private committedIndexMax = 0;
  private readonly appliedByIndex = new Map<number, AppliedRecord>();
  private readonly tracks = new Map<NodeId, NodeTrack>();
  /** Highest log index of a write acknowledged to a client so far. */
  ackedIndexMax = 0;
  private readonly membership: MembershipInvariants;

  /** `durablyHolds` tells what a node's disk holds, for the check that a commit is backed by a majority. */
  constructor(durablyHolds: DurableLookup = () => true) {
    this.membership = new MembershipInvariants(durablyHolds, (index, term) => this.committedByIndex.get(index)?.term === term);
  }

  private track(nodeId: NodeId): NodeTrack {
    let track = this.tracks.get(nodeId);
    if (track === undefined) {
      track = {
        prefixHashByIndex: new Map([[0, emptyPrefixHash]]),
        lastIndex: 0,
        snapshotIndex: 0,
        commitIndex: 0,
        lastApplied: 0,
        commitRecordedIndex: 0,
        leaderTerm: 0,
      };
      this.tracks.set(nodeId, track);
    }
    return track;
  }

  /** A node (re)starts from its durable state: rebuild its log fingerprints, start a new lifetime. */
  onStart(nodeId: NodeId, snapshotMeta: SnapshotMeta | null, entries: readonly Entry[]): void {
    const track = this.track(nodeId);
    track.prefixHashByIndex.clear();
    track.prefixHashByIndex.set(0, emptyPrefixHash);
    track.snapshotIndex = 0;
    track.lastIndex = 0;
    if (snapshotMeta !== null) this.resetToSnapshot(nodeId, track, snapshotMeta);
    // Every durable entry was handed out in some Ready and fingerprinted then; a missing fingerprint means
    // the durable log holds an entry the core never asked to persist.
    for (const entry of entries) {
      const key = logKey(entry.index, entry.term);
      const prefixHash = this.prefixHashByKey.get(key);
      if (prefixHash === undefined) violated(`${nodeId}'s durable log holds (${entry.index}, term ${entry.term}) that no Ready handed out`);
      track.prefixHashByIndex.set(entry.index, prefixHash);
      track.lastIndex = Math.max(track.lastIndex, entry.index);
    }
    track.commitIndex = 0;
    track.lastApplied = 0;
    track.commitRecordedIndex = 0;
    track.leaderTerm = 0;
    this.membership.onStart(nodeId);
    if (snapshotMeta !== null) this.membership.onSnapshot(nodeId, snapshotMeta, "loaded");
  }

  private resetToSnapshot(nodeId: NodeId, track: NodeTrack, meta: SnapshotMeta): void {
    const prefixHash = this.prefixHashByKey.get(logKey(meta.index, meta.term));
    if (prefixHash === undefined && meta.index > 0) {
      violated(`${nodeId} holds a snapshot at (${meta.index}, term ${meta.term}), an entry no node ever logged`);
    }
    track.prefixHashByIndex.clear();
    track.prefixHashByIndex.set(meta.index, prefixHash ?? emptyPrefixHash);
    track.snapshotIndex = meta.index;
    track.lastIndex = meta.index;
  }

  /**
   * Log Matching: a Ready hands out entries for the node's log. Each gets a fingerprint of the prefix
   * it ends; two logs holding (index, term) must agree on it, so the entries and all before are identical.
   */
  onEntriesHandedOut(nodeId: NodeId, snapshotMeta: SnapshotMeta | null, entries: readonly Entry[]): void {
    const track = this.track(nodeId);
    if (snapshotMeta !== null) this.resetToSnapshot(nodeId, track, snapshotMeta);
    const first = entries[0];
    if (first === undefined) return;
    if (first.index > track.lastIndex + 1) {
      violated(`${nodeId} handed out entries from ${first.index} but its log ends at ${track.lastIndex} (a gap)`);
    }
    for (let index = first.index; index <= track.lastIndex; index++) track.prefixHashByIndex.delete(index);
    for (const entry of entries) {
      const contentHash = contentHashOf(entry);
      const key = logKey(entry.index, entry.term);
      const previousPrefixHash = track.prefixHashByIndex.get(entry.index - 1);
      let prefixHash: number;
      if (previousPrefixHash !== undefined) {
        prefixHash = hashNumbers(previousPrefixHash, entry.index, entry.term, contentHash);
      } else if (entry.index <= track.snapshotIndex) {
        // Below the snapshot the node keeps no prefix of its own; the entry must match the one logged before.
        const known = this.prefixHashByKey.get(key);
        if (known === undefined) violated(`${nodeId} re-logged (${entry.index}, term ${entry.term}) below its snapshot, never logged before`);
        prefixHash = known;
      } else {
        violated(`${nodeId} handed out entry ${entry.index} with no entry ${entry.index - 1} before it`);
      }
      const knownContentHash = this.contentHashByKey.get(key);
      if (knownContentHash === undefined) {
        this.contentHashByKey.set(key, contentHash);
        this.prefixHashByKey.set(key, prefixHash);
      } else if (knownContentHash !== contentHash) {
        violated(`log matching: ${nodeId} logged a different entry at (${entry.index}, term ${entry.term}) than another node`);
      } else if (this.prefixHashByKey.get(key) !== prefixHash) {
        violated(`log matching: ${nodeId} holds (${entry.index}, term ${entry.term}) after a log prefix that differs from another node's`);
      }
      track.prefixHashByIndex.set(entry.index, prefixHash);
    }
    track.lastIndex = (entries.at(-1) as Entry).index;
  }

  /** The driver dropped the node's log below a new snapshot; fingerprints below it are no longer needed. */
  onCompacted(nodeId: NodeId, snapshotMeta: SnapshotMeta, retainFromIndex: number): void {
    const snapshotIndex = snapshotMeta.index;
    this.membership.onSnapshot(nodeId, snapshotMeta, "took");
    const track = this.track(nodeId);
    for (const index of track.prefixHashByIndex.keys()) {
      if (index < retainFromIndex - 1) track.prefixHashByIndex.delete(index);
    }
    track.snapshotIndex = Math.max(track.snapshotIndex, snapshotIndex);
  }

  /** After every event that touched the node: election safety, leader completeness, monotonic indexes. */
  onStatus(nodeId: NodeId, raft: Raft): void {
    const track = this.track(nodeId);
    const status = raft.status();
    if (status.commitIndex < track.commitIndex) {
      violated(`${nodeId}'s commitIndex went backwards from ${track.commitIndex} to ${status.commitIndex}`);
    }
    if (status.lastApplied < track.lastApplied) {
      violated(`${nodeId}'s lastApplied went backwards from ${track.lastApplied} to ${status.lastApplied}`);
    }
    if (status.lastApplied > status.commitIndex) {
      violated(`${nodeId} applied ${status.lastApplied} beyond its commitIndex ${status.commitIndex}`);
    }
    const commitAdvanced = status.commitIndex > track.commitIndex;
    track.commitIndex = status.commitIndex;
    track.lastApplied = status.lastApplied;
    this.recordCommitted(nodeId, track, raft, status.firstIndex, status.commitIndex, status.currentTerm);
    // The leader of this term, or the one that just stepped down in it after committing its own removal.
    if (commitAdvanced && (status.role === Role.Leader || track.leaderTerm === status.currentTerm)) {
      const term = raft.termAt(status.commitIndex);
      if (term !== undefined) this.membership.onLeaderCommitted(nodeId, status, term);
    }
    this.membership.onStatus(nodeId, raft, status);

    if (status.role !== Role.Leader) return;
    const leaderId = this.leaderByTerm.get(status.currentTerm);
    if (leaderId === undefined) {
      this.leaderByTerm.set(status.currentTerm, nodeId);
    } else if (leaderId !== nodeId) {
      violated(`election safety: ${nodeId} and ${leaderId} are both leaders of term ${status.currentTerm}`);
    }
    if (track.leaderTerm !== status.currentTerm) {
      track.leaderTerm = status.currentTerm;
      this.checkLeaderCompleteness(nodeId, raft, status.snapshotIndex, status.currentTerm);
    }
  }

  /** Everything at or below a node's commitIndex is committed; remember it, and catch two commits at one index. */
  private recordCommitted(
    nodeId: NodeId,
    track: NodeTrack,
    raft: Raft,
    firstIndex: number,
    commitIndex: number,
    currentTerm: number,
  ): void {
    for (let index = Math.max(track.commitRecordedIndex + 1, firstIndex); index <= commitIndex; index++) {
      const entry = raft.entryAt(index);
      if (entry === undefined) continue;
      this.recordCommittedEntry(nodeId, entry.index, entry.term, contentHashOf(entry), currentTerm);
      this.membership.onCommittedEntry(nodeId, entry);
    }
    track.commitRecordedIndex = Math.max(track.commitRecordedIndex, commitIndex);
  }

  private recordCommittedEntry(
    nodeId: NodeId,
    index: number,
    term: number,
    contentHash: number | undefined,
    commitTermBound: number,
  ): void {
    const known = this.committedByIndex.get(index);
    if (known === undefined) {
      this.committedByIndex.set(index, { term, contentHash, commitTermBound });
      this.committedIndexMax = Math.max(this.committedIndexMax, index);
      return;
    }
    if (known.term !== term || (contentHash !== undefined && known.contentHash !== undefined && known.contentHash !== contentHash)) {
      violated(
        `commitment: ${nodeId} holds (${index}, term ${term}) as committed, but (${index}, term ${known.term}) was committed before`,
      );
    }
    known.contentHash ??= contentHash;
    known.commitTermBound = Math.min(known.commitTermBound, commitTermBound);
  }

  /** Leader Completeness: a leader of term T holds every entry committed in a term before T. */
  private checkLeaderCompleteness(nodeId: NodeId, raft: Raft, snapshotIndex: number, leaderTerm: number): void {
    for (let index = snapshotIndex + 1; index <= this.committedIndexMax; index++) {
      const committed = this.committedByIndex.get(index);
      if (committed === undefined || committed.commitTermBound >= leaderTerm) continue;
      const entry = raft.entryAt(index);
      const contentDiffers = entry !== undefined && committed.contentHash !== undefined && contentHashOf(entry) !== committed.contentHash;
      if (entry === undefined || entry.term !== committed.term || contentDiffers) {
        const held = entry === undefined ? "nothing" : `term ${entry.term}`;
        violated(
          `leader completeness: ${nodeId} became leader of term ${leaderTerm} holding ${held} at ${index}, ` +
            `where (${index}, term ${committed.term}) was committed by term ${committed.commitTermBound}`,
        );
      }
    }
  }

  /** A node sent a vote: no voter grants two candidates in one term, across restarts too. */
  onMessageSent(message: Message): void {
    if (message.type !== "vote-response" || !message.granted) return;
    const key = `${message.term}:${message.from}`;
    const candidateId = this.grantedVoteByTermVoter.get(key);
    if (candidateId === undefined) this.grantedVoteByTermVoter.set(key, message.to);
    else if (candidateId !== message.to) {
      violated(`${message.from} granted its vote in term ${message.term} to both ${candidateId} and ${message.to}`);
    }
  }

  /** A write became durable: the durable term never falls, a durable vote never changes within its term. */
  onDurableHardState(nodeId: NodeId, before: HardState, after: HardState): void {
    if (after.currentTerm < before.currentTerm) {
      violated(`${nodeId}'s durable currentTerm went backwards from ${before.currentTerm} to ${after.currentTerm}`);
    }
    if (after.currentTerm === before.currentTerm && before.votedFor !== null && after.votedFor !== before.votedFor) {
      violated(`${nodeId}'s durable vote in term ${after.currentTerm} changed from ${before.votedFor} to ${after.votedFor}`);
    }
    if (after.commitIndex < before.commitIndex) {
      violated(`${nodeId}'s durable commitIndex went backwards from ${before.commitIndex} to ${after.commitIndex}`);
    }
  }

  /** State Machine Safety: no two nodes apply different entries, or reach different states, at one index. */
  onApplied(nodeId: NodeId, entry: Entry, stateHash: number): void {
    const contentHash = contentHashOf(entry);
    // The applying node's term is not at hand here; its next status check supplies the bound.
    this.recordCommittedEntry(nodeId, entry.index, entry.term, contentHash, Number.POSITIVE_INFINITY);
    this.membership.onCommittedEntry(nodeId, entry);
    const known = this.appliedByIndex.get(entry.index);
    if (known === undefined) {
      this.appliedByIndex.set(entry.index, { term: entry.term, contentHash, stateHash });
      return;
    }
    if (known.term !== entry.term || (known.contentHash !== undefined && known.contentHash !== contentHash)) {
      violated(`state machine safety: ${nodeId} applied (${entry.index}, term ${entry.term}), another node applied term ${known.term} there`);
    }
    if (known.stateHash !== stateHash) {
      violated(`state machine safety: ${nodeId}'s state after applying ${entry.index} differs from another node's`);
    }
  }

  /** A node restored its state machine from a snapshot: it must equal the state other nodes had there. */
  onRestored(nodeId: NodeId, meta: SnapshotMeta, stateHash: number): void {
    this.recordCommittedEntry(nodeId, meta.index, meta.term, undefined, Number.POSITIVE_INFINITY);
    this.membership.onSnapshot(nodeId, meta, "restored");
    const known = this.appliedByIndex.get(meta.index);
    if (known === undefined) {
      this.appliedByIndex.set(meta.index, { term: meta.term, contentHash: undefined, stateHash });
      return;
    }
    if (known.term !== meta.term || known.stateHash !== stateHash) {
      violated(`state machine safety: ${nodeId} restored a snapshot at ${meta.index} that differs from the state applied there`);
    }
  }

  onAcknowledged(index: number): void {
    this.ackedIndexMax = Math.max(this.ackedIndexMax, index);
  }

  /** Linearizable reads: a read sees every write acknowledged before it was issued. */
  onReadServed(nodeId: NodeId, readId: number, appliedIndex: number, ackedIndexAtIssue: number): void {
    if (appliedIndex < ackedIndexAtIssue) {
      violated(
        `linearizability: read ${readId} at ${nodeId} was served at applied index ${appliedIndex}, ` +
          `but a write at index ${ackedIndexAtIssue} was acknowledged before the read was issued`,
      );
    }
  }

  get highestCommittedIndex(): number {
    return this.committedIndexMax;
  }
}
