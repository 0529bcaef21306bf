// Safety of membership changes (pitfalls 18-20), checked with the other invariants after every event:
// nodes agree on the configuration the committed log sets; a leader never holds two uncommitted
// configuration entries; only voters campaign or lead; and a commit is backed by a majority of the
// voters the leader counts with, so a learner never makes one.

import { decodeClusterConfig } from "../../src/raft/cluster-config.js";
import type { Raft, RaftStatus } from "../../src/raft/raft.js";
import { Role, type ClusterConfig, type Entry, EntryType, type NodeId, type SnapshotMeta } from "../../src/raft/types.js";
import { InvariantViolation } from "./invariants.js";

function violated(message: string): never {
  throw new InvariantViolation(message);
}

/** Whether a node's disk holds (index, term), or a snapshot covering it. */
export type DurableLookup = (nodeId: NodeId, index: number, term: number) => boolean;
/** Whether (index, term) was committed by some node, as far as the checker saw. */
export type CommittedLookup = (index: number, term: number) => boolean;

const configKeyCache = new WeakMap<ClusterConfig, string>();

/** A canonical text of a configuration: member order and address order do not matter. */
export function configKey(config: ClusterConfig): string {
  let key = configKeyCache.get(config);
  if (key === undefined) {
    const addresses = Object.entries(config.addresses).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    key = `voters ${[...config.voters].sort().join(",")} learners ${[...config.learners].sort().join(",")} addresses ${JSON.stringify(addresses)}`;
    configKeyCache.set(config, key);
  }
  return key;
}

interface MemberTrack {
  /** What the configuration agreement check last compared, to skip it while nothing moved. */
  checkedConfigIndex: number;
  checkedCommittedConfigIndex: number;
  checkedBaseIndex: number;
  /** For a leader: the term and configuration index whose uncommitted configuration entries were listed. */
  pendingListTerm: number;
  pendingListConfigIndex: number;
  /** Indexes of configuration entries in (commitIndex, configIndex) of the leader's log, when listed. */
  pendingList: number[];
}

export class MembershipInvariants {
  /** Committed configuration entries: index -> configuration key. */
  private readonly committedConfigByIndex = new Map<number, string>();
  /** The same indexes, ascending. */
  private readonly committedConfigIndexes: number[] = [];
  private readonly tracks = new Map<NodeId, MemberTrack>();

  constructor(
    private readonly durablyHolds: DurableLookup,
    private readonly isCommitted: CommittedLookup,
  ) {}

  private track(nodeId: NodeId): MemberTrack {
    let track = this.tracks.get(nodeId);
    if (track === undefined) {
      track = {
        checkedConfigIndex: -1,
        checkedCommittedConfigIndex: -1,
        checkedBaseIndex: -1,
        pendingListTerm: 0,
        pendingListConfigIndex: -1,
        pendingList: [],
      };
      this.tracks.set(nodeId, track);
    }
    return track;
  }

  onStart(nodeId: NodeId): void {
    this.tracks.delete(nodeId);
  }

  /** A committed entry was seen (in a log below its commit index, or applied). */
  onCommittedEntry(nodeId: NodeId, entry: Entry): void {
    if (entry.type !== EntryType.Config) return;
    const key = configKey(decodeClusterConfig(entry.data));
    const known = this.committedConfigByIndex.get(entry.index);
    if (known === undefined) {
      this.committedConfigByIndex.set(entry.index, key);
      const indexes = this.committedConfigIndexes;
      let at = indexes.length;
      while (at > 0 && (indexes[at - 1] as number) > entry.index) at--;
      indexes.splice(at, 0, entry.index);
    } else if (known !== key) {
      violated(`configuration agreement: ${nodeId} committed [${key}] at ${entry.index}, another node committed [${known}] there`);
    }
  }

  /** A snapshot was taken, installed or loaded: it must record the configuration the log sets at its index. */
  onSnapshot(nodeId: NodeId, meta: SnapshotMeta, what: string): void {
    const at = this.committedConfigIndexAtOrBelow(meta.index);
    if (at === undefined) return;
    const expected = this.committedConfigByIndex.get(at) as string;
    const actual = configKey(meta.config);
    if (actual !== expected) {
      violated(`configuration agreement: ${nodeId} ${what} a snapshot at ${meta.index} recording [${actual}], but the committed entry at ${at} sets [${expected}]`);
    }
  }

  /** After every event that touched the node. */
  onStatus(nodeId: NodeId, raft: Raft, status: RaftStatus): void {
    const track = this.track(nodeId);
    this.checkAgreement(nodeId, track, raft, status);
    this.checkCampaigner(nodeId, raft, status);
    if (status.role === Role.Leader) this.checkOneChangeAtATime(nodeId, track, raft, status);
  }

  /**
   * A leader moved its commit index to `commitIndex`: the entry there must be on the disks of a majority
   * of the voters it counts with (its configuration in force now, the latest it appended). A learner
   * never helps make that majority, and neither does the leader's own entry before its fsync.
   */
  onLeaderCommitted(nodeId: NodeId, status: RaftStatus, term: number): void {
    const voters = status.config.voters;
    const holders = voters.filter((voterId) => this.durablyHolds(voterId, status.commitIndex, term));
    if (holders.length * 2 <= voters.length) {
      violated(
        `commit quorum: leader ${nodeId} of term ${status.currentTerm} committed (${status.commitIndex}, term ${term}) ` +
          `but only [${holders.join(", ")}] of its voters [${voters.join(", ")}] hold it on disk`,
      );
    }
  }

  /** The configuration a node has in force at its commit index is the one the committed log sets there. */
  private checkAgreement(nodeId: NodeId, track: MemberTrack, raft: Raft, status: RaftStatus): void {
    const at = this.committedConfigIndexAtOrBelow(status.commitIndex);
    if (at === undefined) return;
    if (at === track.checkedCommittedConfigIndex && status.configIndex === track.checkedConfigIndex && status.snapshotIndex === track.checkedBaseIndex) return;
    track.checkedCommittedConfigIndex = at;
    track.checkedConfigIndex = status.configIndex;
    track.checkedBaseIndex = status.snapshotIndex;
    const actual = configKey(raft.configAt(status.commitIndex));
    const expected = this.committedConfigByIndex.get(at) as string;
    if (actual !== expected) {
      violated(
        `configuration agreement: ${nodeId} has [${actual}] in force at its commit index ${status.commitIndex}, ` +
          `but the committed entry at ${at} sets [${expected}]`,
      );
    }
  }

  /**
   * Only voters campaign or lead. A node whose latest configuration leaves it out may still do so while
   * that configuration is uncommitted in its log and its committed one names it a voter: a removed leader
   * leads on (without counting itself) until its removal commits and steps down in that same event
   * (pitfall 20), and the thesis (§4.2.2) lets such a node campaign, as it may still be needed.
   */
  private checkCampaigner(nodeId: NodeId, raft: Raft, status: RaftStatus): void {
    if (status.role === Role.Follower || status.config.voters.includes(nodeId)) return;
    const removalPending = status.configIndex > status.commitIndex;
    if (removalPending && raft.configAt(status.commitIndex).voters.includes(nodeId)) return;
    const why = removalPending
      ? "it is a voter in neither its latest nor its committed configuration"
      : status.role === Role.Leader
        ? `its removal at ${status.configIndex} committed and it still leads`
        : "it is not a voter";
    violated(`only voters campaign: ${nodeId} is ${status.role} in term ${status.currentTerm}, but ${why} (voters [${status.config.voters.join(", ")}])`);
  }

  /**
   * One change at a time (pitfall 18): a leader's log never holds two configuration entries that are
   * both uncommitted. Committed means committed by anyone: a new leader may not know yet that an
   * inherited entry committed. The leader's log only grows within its term, so the configuration
   * entries below its newest one are listed once per newest one.
   */
  private checkOneChangeAtATime(nodeId: NodeId, track: MemberTrack, raft: Raft, status: RaftStatus): void {
    if (status.configIndex <= status.commitIndex) return;
    if (track.pendingListTerm !== status.currentTerm || track.pendingListConfigIndex !== status.configIndex) {
      track.pendingListTerm = status.currentTerm;
      track.pendingListConfigIndex = status.configIndex;
      track.pendingList = [];
      for (let index = Math.max(status.commitIndex, status.firstIndex - 1) + 1; index < status.configIndex; index++) {
        if (raft.entryAt(index)?.type === EntryType.Config) track.pendingList.push(index);
      }
    }
    const newest = raft.entryAt(status.configIndex);
    if (newest === undefined || this.isCommitted(newest.index, newest.term)) return;
    for (const index of track.pendingList) {
      const entry = raft.entryAt(index);
      if (index <= status.commitIndex || entry === undefined || this.isCommitted(index, entry.term)) continue;
      violated(
        `one change at a time: leader ${nodeId} of term ${status.currentTerm} holds uncommitted configuration entries ` +
          `at ${index} (term ${entry.term}) and ${newest.index} (term ${newest.term})`,
      );
    }
  }

  private committedConfigIndexAtOrBelow(index: number): number | undefined {
    const indexes = this.committedConfigIndexes;
    let lo = 0;
    let hi = indexes.length; // first position whose index is above `index`
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((indexes[mid] as number) <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : indexes[lo - 1];
  }
}
