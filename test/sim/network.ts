// The simulated network: per-message delay, loss, duplication, long reordering delays, and partitions.
// It only decides each message's fate; the cluster schedules the deliveries on its event queue.
// Reachability is checked when a message is sent and again when it arrives, so a partition made while a
// message is in flight drops it.

import type { Message, MessageType, NodeId } from "../../src/raft/types.js";
import type { Prng } from "./prng.js";

export interface NetworkOptions {
  /** Ordinary one-way delay is uniform in [delayMinMs, delayMaxMs]; overlapping ranges reorder messages. */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  /** "Long reorder" mode: with this probability a message is held for [longDelayMinMs, longDelayMaxMs]. */
  readonly longDelayProbability: number;
  readonly longDelayMinMs: number;
  readonly longDelayMaxMs: number;
  /** Streaming speed of InstallSnapshot data; a large snapshot takes visibly longer than an append. */
  readonly snapshotBytesPerMs: number;
}

export const networkDefaults: NetworkOptions = {
  delayMinMs: 1,
  delayMaxMs: 10,
  dropProbability: 0,
  duplicateProbability: 0,
  longDelayProbability: 0,
  longDelayMinMs: 200,
  longDelayMaxMs: 2000,
  snapshotBytesPerMs: 1000,
};

/** A message may be delivered twice at most: duplication is a fault, not an amplifier. */
const copiesMax = 2;

export class Network {
  options: NetworkOptions;
  /** Directed links that are cut, as "from>to". */
  private readonly cutLinks = new Set<string>();
  readonly sentByType = new Map<MessageType, number>();
  droppedCount = 0;
  duplicatedCount = 0;
  deliveredCount = 0;

  constructor(
    private readonly prng: Prng,
    options: Partial<NetworkOptions> = {},
  ) {
    this.options = { ...networkDefaults, ...options };
  }

  canReach(sourceId: NodeId, targetId: NodeId): boolean {
    return !this.cutLinks.has(linkKey(sourceId, targetId));
  }

  get isPartitioned(): boolean {
    return this.cutLinks.size > 0;
  }

  /** Replaces any partition: nodes in different groups cannot reach each other in either direction. */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.heal();
    for (const [i, group] of groups.entries()) {
      for (const [j, other] of groups.entries()) {
        if (i === j) continue;
        for (const sourceId of group) for (const targetId of other) this.cutLinks.add(linkKey(sourceId, targetId));
      }
    }
  }

  /** Adds a one-way cut: `sourceId` cannot reach `targetId`, while `targetId` still reaches `sourceId`. */
  cutOneWay(sourceId: NodeId, targetId: NodeId): void {
    this.cutLinks.add(linkKey(sourceId, targetId));
  }

  /** Replaces any partition: the two sides cannot reach each other; only `bridgeId` reaches both. */
  bridge(sideA: readonly NodeId[], sideB: readonly NodeId[], bridgeId: NodeId): void {
    this.partition([sideA.filter((id) => id !== bridgeId), sideB.filter((id) => id !== bridgeId)]);
  }

  heal(): void {
    this.cutLinks.clear();
  }

  /** Counts every message a node sends, including those a partition swallows. */
  recordSent(message: Message): void {
    this.sentByType.set(message.type, (this.sentByType.get(message.type) ?? 0) + 1);
  }

  /**
   * Delays after which the copies of a message arrive: none when it is lost, two when it is duplicated.
   * Draws from the network's own generator so that message fates do not shift the nodes' random streams.
   */
  deliveryDelaysMs(snapshotBytes: number): number[] {
    if (this.prng.chance(this.options.dropProbability)) {
      this.droppedCount++;
      return [];
    }
    const copies = this.prng.chance(this.options.duplicateProbability) ? copiesMax : 1;
    if (copies > 1) this.duplicatedCount++;
    const delaysMs: number[] = [];
    for (let i = 0; i < copies; i++) {
      const transferMs = snapshotBytes / this.options.snapshotBytesPerMs;
      delaysMs.push(this.oneDelayMs() + Math.ceil(transferMs));
    }
    return delaysMs;
  }

  private oneDelayMs(): number {
    const o = this.options;
    if (this.prng.chance(o.longDelayProbability)) return this.prng.int(o.longDelayMinMs, o.longDelayMaxMs);
    return this.prng.int(o.delayMinMs, o.delayMaxMs);
  }
}

function linkKey(sourceId: NodeId, targetId: NodeId): string {
  return `${sourceId}>${targetId}`;
}
