// The clients' side of the simulation: every proposal and read issued, and what became of it.
// A proposal is acknowledged only when the node that took it applies its entry at the (index, term)
// it was given, which is what a real raftlock node would wait for before answering.

import type { Entry, NodeId, ProposeResult, RejectReason } from "../../src/raft/types.js";
import { InvariantViolation, type Invariants } from "./invariants.js";
import { decodeValue } from "./state-machine.js";

/** Why a request was not taken: the core's reason, or the simulator's when the node could not answer. */
export type ClientRejectReason = RejectReason | "node-down" | "node-paused";

export interface Proposal {
  readonly id: number;
  readonly value: string;
  readonly nodeId: NodeId;
  readonly issuedAtMs: number;
  /**
   * rejected: not taken; pending: in the node's log, fate unknown; acked: applied by the proposer at
   * (index, term); lost: another entry took its index; unknown: the proposer crashed, or jumped past it
   * by installing a snapshot, before it could tell.
   */
  status: "rejected" | "pending" | "acked" | "lost" | "unknown";
  index: number;
  term: number;
  reason?: ClientRejectReason;
  ackedAtMs?: number;
}

export interface ReadRequest {
  readonly id: number;
  readonly nodeId: NodeId;
  readonly useLease: boolean;
  readonly issuedAtMs: number;
  /** Highest index of any write acknowledged before this read was issued: the read must see it. */
  readonly ackedIndexAtIssue: number;
  status: "pending" | "served" | "failed" | "lost";
  servedIndex?: number;
  /** How many values the node's state held when it served the read. */
  servedValueCount?: number;
  reason?: ClientRejectReason;
}

export class Clients {
  readonly proposals: Proposal[] = [];
  readonly reads: ReadRequest[] = [];
  /** Per node, for its current lifetime only: proposals by log index, reads by id (the read's context). */
  private readonly pendingProposals = new Map<NodeId, Map<number, Proposal>>();
  private readonly pendingReads = new Map<NodeId, Map<number, ReadRequest>>();

  constructor(private readonly invariants: Invariants) {}

  newProposal(nodeId: NodeId, value: string, nowMs: number): Proposal {
    const proposal: Proposal = { id: this.proposals.length + 1, value, nodeId, issuedAtMs: nowMs, status: "rejected", index: 0, term: 0 };
    this.proposals.push(proposal);
    return proposal;
  }

  /** The node answered `propose`. */
  proposed(proposal: Proposal, result: ProposeResult): void {
    if (!result.ok) {
      proposal.reason = result.reason;
      return;
    }
    proposal.status = "pending";
    proposal.index = result.index;
    proposal.term = result.term;
    const pending = this.pendingProposalsOf(proposal.nodeId);
    // The earlier proposal at this index left this node's log; a new leader holds every committed
    // entry, so it cannot have committed.
    const overwritten = pending.get(result.index);
    if (overwritten !== undefined) overwritten.status = "lost";
    pending.set(result.index, proposal);
  }

  newRead(nodeId: NodeId, useLease: boolean, nowMs: number): ReadRequest {
    const read: ReadRequest = {
      id: this.reads.length + 1,
      nodeId,
      useLease,
      issuedAtMs: nowMs,
      ackedIndexAtIssue: this.invariants.ackedIndexMax,
      status: "failed",
    };
    this.reads.push(read);
    return read;
  }

  /** The read was handed to the node's core; its answer comes back with the read's id as context. */
  readIssued(read: ReadRequest): void {
    read.status = "pending";
    this.pendingReadsOf(read.nodeId).set(read.id, read);
  }

  onApplied(nodeId: NodeId, entry: Entry, nowMs: number): void {
    const pending = this.pendingProposalsOf(nodeId);
    const proposal = pending.get(entry.index);
    if (proposal === undefined) return;
    pending.delete(entry.index);
    if (proposal.term === entry.term && decodeValue(entry.data) === proposal.value) {
      proposal.status = "acked";
      proposal.ackedAtMs = nowMs;
      this.invariants.onAcknowledged(entry.index);
    } else {
      proposal.status = "lost";
    }
  }

  onRestored(nodeId: NodeId, snapshotIndex: number): void {
    const pending = this.pendingProposalsOf(nodeId);
    for (const [index, proposal] of pending) {
      if (index > snapshotIndex) continue;
      proposal.status = "unknown";
      pending.delete(index);
    }
  }

  onReadServed(nodeId: NodeId, context: unknown, appliedIndex: number, valueCount: number): void {
    const read = this.takePendingRead(nodeId, context);
    read.status = "served";
    read.servedIndex = appliedIndex;
    read.servedValueCount = valueCount;
    this.invariants.onReadServed(nodeId, read.id, appliedIndex, read.ackedIndexAtIssue);
  }

  onReadFailed(nodeId: NodeId, context: unknown, reason: RejectReason): void {
    const read = this.takePendingRead(nodeId, context);
    read.status = "failed";
    read.reason = reason;
  }

  /** The node died: its clients never hear back. */
  onCrash(nodeId: NodeId): void {
    const proposals = this.pendingProposalsOf(nodeId);
    for (const proposal of proposals.values()) proposal.status = "unknown";
    proposals.clear();
    const reads = this.pendingReadsOf(nodeId);
    for (const read of reads.values()) read.status = "lost";
    reads.clear();
  }

  acknowledged(): Proposal[] {
    return this.proposals.filter((proposal) => proposal.status === "acked");
  }

  private pendingProposalsOf(nodeId: NodeId): Map<number, Proposal> {
    let pending = this.pendingProposals.get(nodeId);
    if (pending === undefined) {
      pending = new Map();
      this.pendingProposals.set(nodeId, pending);
    }
    return pending;
  }

  private pendingReadsOf(nodeId: NodeId): Map<number, ReadRequest> {
    let pending = this.pendingReads.get(nodeId);
    if (pending === undefined) {
      pending = new Map();
      this.pendingReads.set(nodeId, pending);
    }
    return pending;
  }

  private takePendingRead(nodeId: NodeId, context: unknown): ReadRequest {
    const reads = this.pendingReadsOf(nodeId);
    const read = typeof context === "number" ? reads.get(context) : undefined;
    if (read === undefined) throw new InvariantViolation(`${nodeId} answered a read it was never asked (context ${String(context)})`);
    reads.delete(read.id);
    return read;
  }
}
