// Random exploration: one seed picks a cluster size and a fault profile, then mixes client traffic,
// faults and (in half of the runs) membership changes over a number of simulator events, then checks
// that the cluster recovers.

import { Cluster, type ClusterOptions } from "./cluster.js";
import { MembershipChurn } from "./explore-membership.js";
import { checkLiveness } from "./liveness.js";
import { Prng } from "./prng.js";

export interface ExploreOptions {
  readonly seed: number;
  /** Simulator events to run with faults before the liveness check. */
  readonly steps: number;
  /** Cluster size; the seed picks 3, 5 or 7 when not given. */
  readonly nodes?: number;
  /** Weight of membership changes among the explorer's actions (0: none); the seed picks it when not given. */
  readonly membershipWeight?: number;
}

export interface ExploreSummary {
  readonly seed: number;
  readonly nodes: number;
  /** Voters of the newest committed configuration at the end (the initial nodes unless membership changed). */
  readonly finalVoters: number;
  readonly steps: number;
  readonly virtualMs: number;
  readonly proposalsAcked: number;
  readonly proposalsIssued: number;
  readonly readsServed: number;
  readonly readsIssued: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly messagesByType: Readonly<Record<string, number>>;
}

/** How long a fault lasts before the explorer undoes it, in virtual ms. */
const faultDurationMinMs = 50;
const faultDurationMaxMs = 3000;
/** Longest process stall; several election timeouts, so a paused leader wakes up deposed. */
const pauseMaxMs = 1500;
/** A crashed node that restarts this soon usually finds the term it left. */
const quickRestartMaxMs = 100;
/** Most proposals one client action issues at once. */
const proposalBurstMax = 5;
/** Gap between two explorer actions, in virtual ms. */
const actionGapMaxMs = 30;
/** Virtual time the liveness check allows for recovery. */
const convergenceBudgetMs = 60_000;

interface Profile {
  readonly options: ClusterOptions;
  /** Relative weights of the explorer's actions. */
  readonly weights: Readonly<Record<Action, number>>;
  /** Whether crashes may take down a majority at once (safety must hold; progress pauses). */
  readonly crashMajority: boolean;
  readonly leaseReadShare: number;
}

type Action = "propose" | "read" | "partition" | "crash" | "pause" | "transfer" | "noise" | "membership";

/** Share of runs in which the membership changes: the rest replay exactly as before membership existed. */
const membershipRunShare = 0.5;

function drawProfile(random: Prng, nodes: number | undefined): Profile {
  const noisy = random.chance(0.5);
  // Short timeouts against slow links and disks make elections overlap, where the subtle bugs live.
  const electionTimeoutMinMs = random.pick([100, 150, 300]);
  return {
    options: {
      nodes: nodes ?? random.pick([3, 5, 7]),
      raft: {
        electionTimeoutMinMs,
        electionTimeoutMaxMs: electionTimeoutMinMs * 2,
        heartbeatIntervalMs: electionTimeoutMinMs / 5,
      },
      network: {
        delayMinMs: random.int(1, 3),
        delayMaxMs: random.int(4, 30),
        dropProbability: noisy ? random.next() * 0.1 : 0,
        duplicateProbability: noisy ? random.next() * 0.05 : 0,
        longDelayProbability: random.chance(0.3) ? random.next() * 0.02 : 0,
        snapshotBytesPerMs: random.pick([100, 1000, 10_000]),
      },
      disk: {
        syncDelayMinMs: 1,
        syncDelayMaxMs: random.int(2, 10),
        slowSyncProbability: random.chance(0.3) ? 0.01 : 0,
        slowSyncMs: random.int(50, 400),
        tornWriteProbability: random.chance(0.5) ? 0.5 : 0,
      },
      // Within the lease's drift bound: 2 x 1% of a 300 ms timeout is 6 ms, under leaseDriftBoundMs.
      clockDriftMax: random.pick([0, 0.005, 0.01]),
      compactEveryEntries: random.pick([0, 10, 25, 50]),
      retainedEntries: random.pick([0, 3, 20]),
      retainedEntriesMax: random.pick([0, 50, 500]),
    },
    weights: {
      propose: 40,
      read: 15,
      partition: random.pick([0, 2, 4]),
      crash: random.pick([0, 1, 3]),
      pause: random.pick([0, 1]),
      transfer: random.pick([0, 1, 2]),
      noise: random.pick([0, 1]),
      membership: 0, // drawn from a stream of its own (drawMembershipWeight)
    },
    crashMajority: random.chance(0.2),
    leaseReadShare: random.pick([0, 0.5, 1]),
  };
}

/**
 * The membership action's weight, from its own stream, so that a run without membership changes draws
 * everything else exactly as it did before they existed (old seeds replay the same runs).
 */
function drawMembershipWeight(seed: number): number {
  const random = new Prng(seed).fork("membership-profile");
  return random.chance(membershipRunShare) ? random.pick([1, 2, 4]) : 0;
}

function pickAction(random: Prng, weights: Readonly<Record<Action, number>>): Action {
  const actions = Object.keys(weights) as Action[];
  let total = 0;
  for (const action of actions) total += weights[action];
  let draw = random.next() * total;
  for (const action of actions) {
    draw -= weights[action];
    if (draw < 0) return action;
  }
  return "propose";
}

/** Runs one seed; throws a SimulationError (naming the seed and step) when an invariant fails. */
export function explore(options: ExploreOptions): ExploreSummary {
  const random = new Prng(options.seed).fork("explorer");
  const drawn = drawProfile(random, options.nodes);
  const membership = options.membershipWeight ?? drawMembershipWeight(options.seed);
  const profile: Profile = { ...drawn, weights: { ...drawn.weights, membership } };
  // Campaigning as soon as the leader's stream is lost is allowed only without lease reads (the node's
  // read-index mode); half of those runs use it. Its own stream, so the rest of the run draws as before.
  const leaderLossCampaign = profile.leaseReadShare === 0 && new Prng(options.seed).fork("leader-loss").chance(0.5);
  const raft = { ...profile.options.raft, leaderLossCampaignWithinMs: leaderLossCampaign ? profile.options.raft!.heartbeatIntervalMs! : null };
  const cluster = Cluster.create({ ...profile.options, raft, seed: options.seed });
  const faults: Record<string, number> = {};
  const count = (fault: string): void => {
    faults[fault] = (faults[fault] ?? 0) + 1;
  };
  const churn = profile.weights.membership > 0 ? new MembershipChurn(cluster, new Prng(options.seed).fork("membership"), count) : null;
  /** Bumped by each new partition so that an older partition's timed heal does not end a newer one. */
  let partitionEpoch = 0;
  let valueNext = 1;

  while (cluster.steps < options.steps) {
    cluster.runFor(random.int(1, actionGapMaxMs));
    const ids = cluster.ids;
    switch (pickAction(random, profile.weights)) {
      case "propose": {
        // Bursts make Readies (and so torn writes) carry several entries.
        const atNodeId = random.chance(0.9) ? undefined : random.pick(ids);
        const burst = random.int(1, proposalBurstMax);
        for (let i = 0; i < burst; i++) cluster.propose(`s${options.seed}-v${valueNext++}`, atNodeId);
        break;
      }
      case "read": {
        // Any node that believes it leads, deposed ones included: a stale leader must not serve a stale read.
        const leaderIds = cluster.leaders();
        const nodeId = leaderIds.length > 0 && random.chance(0.6) ? random.pick(leaderIds) : random.pick(ids);
        cluster.read(nodeId, random.chance(profile.leaseReadShare));
        break;
      }
      case "partition": {
        makePartition(random, cluster, count);
        const epoch = ++partitionEpoch;
        cluster.after(random.int(faultDurationMinMs, faultDurationMaxMs), () => {
          if (epoch === partitionEpoch) cluster.heal();
        });
        break;
      }
      case "crash": {
        const up = ids.filter((id) => !cluster.isCrashed(id));
        // Keep a majority of the voters up (unless this profile crashes majorities): all nodes at first,
        // the committed configuration's voters once membership changes.
        const voters = churn?.voters ?? ids;
        const downCount = voters.filter((id) => !cluster.hasNode(id) || cluster.isCrashed(id)).length;
        const downWithQuorumMax = Math.floor((voters.length - 1) / 2);
        if (up.length === 0 || (!profile.crashMajority && downCount >= downWithQuorumMax)) break;
        // Leaders are crashed more often than their share: their loss starts elections.
        const leaderId = cluster.leader();
        const writing = up.filter((id) => cluster.node(id).disk.hasPendingWrite);
        const id =
          writing.length > 0 && random.chance(0.5)
            ? random.pick(writing) // a crash between write and fsync: the write is lost or torn
            : leaderId !== undefined && random.chance(0.5)
              ? leaderId
              : random.pick(up);
        count(`crash-${cluster.crash(id)}`);
        // A quick restart comes back in the same term, where a forgotten vote would be cast twice.
        const downMs = random.chance(0.5) ? random.int(1, quickRestartMaxMs) : random.int(faultDurationMinMs, faultDurationMaxMs);
        cluster.after(downMs, () => {
          if (!cluster.isDiscarded(id) && cluster.isCrashed(id)) cluster.restart(id);
        });
        break;
      }
      case "pause": {
        count("pause");
        cluster.pause(random.pick(ids), random.int(faultDurationMinMs, pauseMaxMs));
        break;
      }
      case "transfer": {
        const leaderId = cluster.leader();
        if (leaderId === undefined) break;
        count("transfer");
        cluster.transfer(random.pick(ids.filter((id) => id !== leaderId)));
        break;
      }
      case "noise": {
        count("noise");
        cluster.setNetwork({
          dropProbability: random.chance(0.5) ? 0 : random.next() * 0.2,
          duplicateProbability: random.chance(0.5) ? 0 : random.next() * 0.1,
          longDelayProbability: random.chance(0.7) ? 0 : random.next() * 0.05,
        });
        break;
      }
      case "membership": {
        churn?.step();
        break;
      }
    }
  }
  churn?.stop();
  const stepsWithFaults = cluster.steps;
  checkLiveness(cluster, convergenceBudgetMs);

  const messagesByType: Record<string, number> = {};
  for (const [type, sent] of cluster.network.sentByType) messagesByType[type] = sent;
  return {
    seed: options.seed,
    nodes: cluster.initialIds.length,
    finalVoters: cluster.committedConfig()?.voters.length ?? 0,
    steps: stepsWithFaults,
    virtualMs: cluster.nowMs,
    proposalsAcked: cluster.acknowledgedProposals().length,
    proposalsIssued: cluster.proposals.length,
    readsServed: cluster.reads.filter((read) => read.status === "served").length,
    readsIssued: cluster.reads.length,
    faults,
    messagesByType,
  };
}

function makePartition(random: Prng, cluster: Cluster, count: (fault: string) => void): void {
  const ids = random.shuffle(cluster.ids);
  const majoritySize = Math.floor(ids.length / 2) + 1;
  switch (random.int(0, 4)) {
    case 0: {
      count("partition-isolate");
      cluster.isolate(random.chance(0.5) ? (cluster.leader() ?? (ids[0] as string)) : (ids[0] as string));
      break;
    }
    case 1: {
      count("partition-majority-minority");
      cluster.partition(ids.slice(0, majoritySize), ids.slice(majoritySize));
      break;
    }
    case 2: {
      count("partition-random-groups");
      const cut = random.int(1, ids.length - 1);
      const cut2 = random.int(cut, ids.length);
      cluster.partition(ids.slice(0, cut), ids.slice(cut, cut2), ids.slice(cut2));
      break;
    }
    case 3: {
      count("partition-one-way");
      cluster.heal();
      const cuts = random.int(1, ids.length);
      for (let i = 0; i < cuts; i++) {
        const [sourceId, targetId] = random.shuffle(ids);
        cluster.oneWay(sourceId as string, targetId as string);
      }
      break;
    }
    default: {
      count("partition-bridge");
      const [bridgeId, ...rest] = ids;
      const half = Math.ceil(rest.length / 2);
      cluster.bridge(rest.slice(0, half), rest.slice(half), bridgeId as string);
      break;
    }
  }
}
