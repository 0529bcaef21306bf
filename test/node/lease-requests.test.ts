// The leader's answers to session keepalives (coordination-service.ts), against a driver whose leadership
// the test moves by hand: what a keepalive in flight hears when its leader steps down under it.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { fsmLimitsDefaults } from "../../src/fsm/limits.js";
import { CoordinationService } from "../../src/node/coordination-service.js";
import { NodeError, type ProposalResult } from "../../src/node/forwarding.js";
import type { RaftNode } from "../../src/node/node.js";
import { EntryType, Role, type SoftState } from "../../src/raft/types.js";

const ttlMs = 3_000;
/** How long the service retries a request across leaders (the driver's --commit-timeout-ms). */
const commitTimeoutMs = 2_000;

/**
 * The part of RaftNode the coordination service uses, on one node that applies each proposal at once.
 * Leadership checks are confirmed at once unless `nextConfirmation` says how.
 */
class ScriptedDriver {
  readonly config = { id: "n1", commitTimeoutMs };
  /** Runs instead of confirming the next leadership check at once; it gets the check's resolve. */
  nextConfirmation: ((confirm: () => void) => void) | null = null;
  private role: Role = Role.Follower;
  private term = 0;
  private lastIndex = 0;
  private readonly listeners = new Set<(softState: SoftState) => void>();
  private handler: ((data: Uint8Array) => Promise<Uint8Array>) | null = null;

  constructor(private readonly fsm: CoordinationStateMachine) {}

  onSoftStateChange(listener: (softState: SoftState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setLeaderRequestHandler(handler: (data: Uint8Array) => Promise<Uint8Array>): void {
    this.handler = handler;
  }

  isLeader(): boolean {
    return this.role === Role.Leader;
  }

  leadershipFresh(): boolean {
    return this.isLeader();
  }

  /** Read-index mode, the default: each keepalive waits for a heartbeat round. */
  leaseProvesLeadership(): boolean {
    return false;
  }

  confirmLeadership(): Promise<void> {
    return new Promise((resolve) => {
      const script = this.nextConfirmation;
      this.nextConfirmation = null;
      if (script === null) resolve();
      else script(resolve);
    });
  }

  async propose(data: Uint8Array): Promise<ProposalResult> {
    if (!this.isLeader()) throw new NodeError("NOLEADER", "not the leader");
    this.lastIndex++;
    return { index: this.lastIndex, term: this.term, result: this.fsm.apply({ index: this.lastIndex, term: this.term, type: EntryType.Normal, data }) };
  }

  async requestLeader(data: Uint8Array): Promise<Uint8Array> {
    if (!this.isLeader() || this.handler === null) throw new NodeError("NOLEADER", "no leader");
    return this.handler(data);
  }

  lead(term: number): void {
    this.role = Role.Leader;
    this.term = term;
    this.notify({ role: Role.Leader, leaderId: this.config.id, currentTerm: term });
  }

  stepDown(): void {
    this.role = Role.Follower;
    this.notify({ role: Role.Follower, leaderId: null, currentTerm: this.term });
  }

  private notify(softState: SoftState): void {
    for (const listener of this.listeners) listener(softState);
  }
}

describe("a keepalive whose leader steps down while it confirms its leadership", () => {
  it("is answered by the next leader, never told NOSESSION (chaos seed 701)", async () => {
    const fsm = new CoordinationStateMachine({ ...fsmLimitsDefaults, ttlMsMin: ttlMs });
    const driver = new ScriptedDriver(fsm);
    const service = new CoordinationService(driver as unknown as RaftNode, fsm, pino({ level: "silent" }));
    try {
      driver.lead(1);
      const sessionId = await service.openSession(ttlMs);
      expect(await service.keepalive(sessionId)).toBe(ttlMs);

      // As the node does when one batch both confirms the round and commits this leader's own removal:
      // the round's waiter is resolved, then the step-down is announced, before the waiter resumes.
      driver.nextConfirmation = (confirm) => {
        confirm();
        driver.stepDown();
        setImmediate(() => driver.lead(2));
      };
      expect(await service.keepalive(sessionId)).toBe(ttlMs);
      expect(driver.nextConfirmation).toBeNull(); // the scripted round did run
    } finally {
      service.stop();
    }
  });
});
