// Drives a coordination state machine with log entries only, as the node does: each command is encoded
// into the next entry, applied, and its reply decoded.

import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { encodeCommand, type Command } from "../../src/fsm/commands.js";
import type { FsmEvent } from "../../src/fsm/events.js";
import { fsmLimitsDefaults, type FsmLimits } from "../../src/fsm/limits.js";
import { decodeResult, type CommandResult } from "../../src/fsm/results.js";
import type { LimitName } from "../../src/limit-hits.js";
import { EntryType, type Entry } from "../../src/raft/types.js";

/** TTL bounds of a cluster whose largest election timeout is 2 s: 3000 ms to 24 h. */
export const testLimits: FsmLimits = { ...fsmLimitsDefaults, ttlMsMin: 3000 };
export const ttlMs = 10_000;

export function entry(index: number, data: Uint8Array, term = 1): Entry {
  return { index, term, type: EntryType.Normal, data };
}

export class FsmHarness {
  readonly fsm: CoordinationStateMachine;
  /** Every event delivered to subscribers, in order. */
  readonly events: FsmEvent[] = [];
  /** Every limit the state machine reported hitting, in order. */
  readonly limitHits: LimitName[] = [];
  /** Index of the last entry applied (or skipped, for entries that are not applied, like a leader's empty entry). */
  lastIndex = 0;
  private waiterCount = 0;

  constructor(limits: Partial<FsmLimits> = {}, fsm?: CoordinationStateMachine) {
    this.fsm = fsm ?? new CoordinationStateMachine({ ...testLimits, ...limits });
    this.fsm.subscribe((event) => this.events.push(event));
    this.fsm.reportLimitHits((limit) => this.limitHits.push(limit));
  }

  /** Applies `command` as the next entry and returns its decoded reply. */
  run(command: Command): CommandResult {
    return this.runBytes(encodeCommand(command));
  }

  runBytes(data: Uint8Array): CommandResult {
    this.lastIndex++;
    return decodeResult(this.fsm.apply(entry(this.lastIndex, data)));
  }

  /** Index the next entry will have. */
  get nextIndex(): number {
    return this.lastIndex + 1;
  }

  /** Leaves log indexes unused, as the leader's empty entries do. */
  skip(count: number): void {
    this.lastIndex += count;
  }

  /** A fresh waiter id, unique within this harness. */
  waiterId(): string {
    return `w${++this.waiterCount}`;
  }

  openSession(ttl = ttlMs, label?: string): number {
    const result = this.run({ type: "session-open", ttlMs: ttl, ...(label === undefined ? {} : { label }) });
    if (result.kind !== "session") throw new Error(`session-open answered ${JSON.stringify(result)}`);
    return result.sessionId;
  }

  acquire(name: string, owner: string, options: { wait?: boolean; sessionId?: number; ttlMs?: number; waiterId?: string } = {}): CommandResult {
    return this.run({
      type: "lock-acquire",
      name,
      owner,
      ttlMs: options.ttlMs ?? ttlMs,
      wait: options.wait ?? false,
      waiterId: options.waiterId ?? this.waiterId(),
      ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }),
    });
  }

  campaign(election: string, candidate: string, options: { wait?: boolean; sessionId?: number; value?: string; waiterId?: string } = {}): CommandResult {
    return this.run({
      type: "elect-campaign",
      election,
      candidate,
      ttlMs,
      wait: options.wait ?? true,
      waiterId: options.waiterId ?? this.waiterId(),
      ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }),
      ...(options.value === undefined ? {} : { value: options.value }),
    });
  }

  /** Events delivered since `mark` (a previous `events.length`). */
  eventsAfter(mark: number): FsmEvent[] {
    return this.events.slice(mark);
  }
}

/** The token of a granted reply; fails the test otherwise. */
export function tokenOf(result: CommandResult): number {
  if (result.kind !== "granted") throw new Error(`expected a grant, got ${JSON.stringify(result)}`);
  return result.token;
}
