// Membership churn for random exploration: an operator who adds learners, promotes them, removes voters
// (the leader too) and decommissions removed machines, one change at a time, while the explorer's
// faults and clients go on. It keeps at least `votersMin` voters most of the time and never runs more
// than `nodesMax` machines.

import type { ConfigChange } from "../../src/raft/cluster-config.js";
import type { NodeId } from "../../src/raft/types.js";
import type { Cluster } from "./cluster.js";
import { Admin, type MembershipRequest } from "./membership.js";
import type { Prng } from "./prng.js";

export interface ChurnOptions {
  readonly nodesMax: number;
  readonly votersMin: number;
  /** Chance that a change would take the voters below `votersMin` anyway (down to one). */
  readonly belowMinChance: number;
  /** Chance that a removed machine is left running for a while rather than discarded at once. */
  readonly keepRemovedChance: number;
  /** The admin gives a change up after this long. */
  readonly giveUpAfterMs: number;
  /**
   * Chance that a second operator starts a change while one is under way: the core must keep them to
   * one in flight (pitfall 18), whichever leader, current or deposed, each of them asks.
   */
  readonly secondOperatorChance: number;
}

export const churnDefaults: ChurnOptions = {
  nodesMax: 7,
  votersMin: 3,
  belowMinChance: 0.1,
  keepRemovedChance: 0.5,
  giveUpAfterMs: 5_000,
  secondOperatorChance: 0.2,
};

export class MembershipChurn {
  private readonly admin: Admin;
  private readonly options: ChurnOptions;
  /** Changes under way, one per operator. */
  private requests: MembershipRequest[] = [];
  /** Nodes seen in a committed configuration; once out of it they are never added again, only discarded. */
  private readonly everMember = new Set<NodeId>();
  private votersKnown: readonly NodeId[];

  constructor(
    private readonly cluster: Cluster,
    private readonly random: Prng,
    private readonly count: (what: string) => void,
    options: Partial<ChurnOptions> = {},
  ) {
    this.options = { ...churnDefaults, ...options };
    this.admin = new Admin(cluster, { giveUpAfterMs: this.options.giveUpAfterMs, random: random.fork("admin") });
    for (const id of cluster.initialIds) this.everMember.add(id);
    this.votersKnown = cluster.initialIds;
  }

  /** Voters of the newest committed configuration seen, for the explorer's "keep a majority up" rule. */
  get voters(): readonly NodeId[] {
    return this.votersKnown;
  }

  /** One explorer action: tidy up after finished changes, then maybe start the next one. */
  step(): void {
    const cluster = this.cluster;
    for (const request of this.requests) {
      if (request.status !== "pending") this.count(`member-${request.change.type}-${request.status}`);
    }
    this.requests = this.requests.filter((request) => request.status === "pending");
    if (this.requests.length > 1 || (this.requests.length === 1 && !this.random.chance(this.options.secondOperatorChance))) return;
    const config = cluster.committedConfig();
    if (config === undefined) return;
    this.votersKnown = config.voters;
    const members = new Set([...config.voters, ...config.learners]);
    for (const id of members) this.everMember.add(id);
    for (const id of cluster.ids) {
      if (members.has(id) || !this.everMember.has(id)) continue;
      // Removed by a committed change; a machine left running must not disrupt the cluster (pitfall 20).
      if (this.random.chance(this.options.keepRemovedChance)) continue;
      this.count("member-discard");
      cluster.discard(id);
    }
    const busy = new Set(this.requests.map((request) => request.change.nodeId));
    if (busy.size > 0) this.count("member-second-operator");
    const change = this.nextChange(config.voters, config.learners, busy);
    if (change !== null) this.requests.push(this.admin.request(change));
  }

  /** Stops retrying (at the end of the faulty phase); an appended change may still commit. */
  stop(): void {
    this.admin.cancelAll();
  }

  /** The next change to make to the committed configuration, on a node no other operator is changing. */
  private nextChange(allVoters: readonly NodeId[], allLearners: readonly NodeId[], busy: ReadonlySet<NodeId>): ConfigChange | null {
    const cluster = this.cluster;
    const random = this.random;
    const learners = allLearners.filter((id) => !busy.has(id));
    const voters = allVoters.filter((id) => !busy.has(id));
    if (learners.length > 0) {
      const nodeId = random.pick(learners);
      return random.chance(0.85) ? { type: "promote", nodeId } : { type: "remove", nodeId };
    }
    const fresh = cluster.ids.filter((id) => !this.everMember.has(id) && !busy.has(id));
    const canAdd = fresh.length > 0 || cluster.ids.length < this.options.nodesMax;
    const canRemove =
      voters.length > 0 && (allVoters.length > this.options.votersMin || (allVoters.length > 1 && random.chance(this.options.belowMinChance)));
    if (canAdd && (!canRemove || random.chance(0.5))) {
      const nodeId = fresh[0] ?? cluster.addNode();
      if (fresh.length === 0) this.count("member-node-started");
      return { type: "add-learner", nodeId, address: `${nodeId}.sim:7000` };
    }
    if (!canRemove) return null;
    const leaderId = cluster.leader();
    const crashed = voters.filter((id) => cluster.hasNode(id) && cluster.isCrashed(id));
    let nodeId: NodeId;
    if (leaderId !== undefined && voters.includes(leaderId) && random.chance(0.3)) {
      this.count("member-remove-leader");
      nodeId = leaderId;
    } else if (crashed.length > 0 && random.chance(0.5)) {
      nodeId = random.pick(crashed);
    } else {
      nodeId = random.pick(voters);
    }
    return { type: "remove", nodeId };
  }
}
