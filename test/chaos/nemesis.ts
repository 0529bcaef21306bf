// The nemesis: every few seconds it picks a fault, alone or together with a second one, holds it, and
// heals it. Membership changes (`member`, membership.ts) run on a lane of their own beside these, so they
// meet every other fault halfway through. Every choice comes from the run's seed, so a seed replays the
// same schedule (the cluster's own timing still varies from run to run: these are real processes).
import { appendFileSync } from "node:fs";
import type { Prng } from "../sim/prng.js";
import { type ChaosCluster, pairs } from "./cluster.js";
import { type MembershipHooks, MembershipNemesis } from "./membership.js";

export const faultKinds = ["kill", "pause", "partition", "oneway", "bridge", "ring", "slow", "clock", "disk", "member"] as const;
export type FaultKind = (typeof faultKinds)[number];
type RoundFaultKind = Exclude<FaultKind, "member">;

/** Pause between one fault's heal and the next fault. */
const gapMs = { min: 500, max: 2_500 };
/** How long a fault is held. */
const holdMs = { min: 1_000, max: 4_000 };
/** A paused leader stays stopped for 1 to 3 leases (the lease is about the minimum election timeout). */
const pauseMs = { min: 300, max: 2_000 };
/** Chance that a second fault joins the first. */
const mixedChance = 0.3;
/** Delay a slow link adds. */
const slowLinkMs = { min: 20, max: 150 };
/** Wall-clock jumps and rates (libfaketime's syntax); the nodes must not notice any. */
const clockSpecs = ["+1h", "-1h", "+1d", "-2d", "+10y", "+0 x10", "+0 x0.1", "-5m x3"];

interface ActiveFault {
  readonly description: string;
  heal(): Promise<void>;
}

export class Nemesis {
  readonly counts = new Map<string, number>();
  /** Nodes that stopped on a full disk (and were restarted once it had room again). */
  diskStops = 0;
  /** The membership lane, when `member` is among the faults. */
  readonly membership: MembershipNemesis | null;
  /** The faults held and healed in rounds: all but `member`. */
  private readonly roundKinds: readonly RoundFaultKind[];

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly random: Prng,
    kinds: readonly FaultKind[],
    private readonly logFile: string,
    membershipHooks: MembershipHooks,
  ) {
    this.roundKinds = kinds.filter((kind): kind is RoundFaultKind => kind !== "member");
    // Its own stream of choices: the rounds' schedule stays the same with or without it.
    this.membership = kinds.includes("member") ? new MembershipNemesis(cluster, random.fork("member"), (what, description) => this.note(what, description), membershipHooks) : null;
  }

  /** Runs faults until `untilMs` (performance.now()), then heals everything. */
  async run(untilMs: number): Promise<void> {
    await Promise.all([this.runRounds(untilMs), this.membership?.run(untilMs)]);
    this.cluster.healLinks();
    this.cluster.reviveAll();
    if (this.membership !== null) this.counts.set("member", this.membership.started);
  }

  private async runRounds(untilMs: number): Promise<void> {
    if (this.roundKinds.length === 0) return;
    while (performance.now() < untilMs) {
      await sleep(this.random.int(gapMs.min, gapMs.max));
      if (performance.now() >= untilMs) break;
      const first = this.random.pick(this.roundKinds);
      const active = [await this.apply(first)];
      if (this.random.chance(mixedChance) && this.roundKinds.length > 1) {
        await sleep(this.random.int(0, 500));
        active.push(await this.apply(this.random.pick(this.roundKinds.filter((kind) => kind !== first))));
      }
      const hold = first === "pause" ? this.random.int(pauseMs.min, pauseMs.max) : this.random.int(holdMs.min, holdMs.max);
      await sleep(Math.min(hold, Math.max(0, untilMs - performance.now())));
      for (const fault of active.reverse()) {
        await fault.heal();
        this.note("healed", fault.description);
      }
    }
  }

  private note(what: string, description: string): void {
    appendFileSync(this.logFile, `${JSON.stringify({ atMs: performance.timeOrigin + performance.now(), what, description })}\n`);
  }

  private async apply(kind: RoundFaultKind): Promise<ActiveFault> {
    const cluster = this.cluster;
    const ids = cluster.ids;
    const leader = (await cluster.someLeader()) ?? this.random.pick(ids);
    const others = ids.filter((id) => id !== leader);
    const minority = Math.floor((ids.length - 1) / 2);
    let fault: ActiveFault;
    switch (kind) {
      case "kill": {
        const variant = this.random.pick(["leader", "minority", "all", "follower"] as const);
        const victims =
          variant === "leader" ? [leader] : variant === "all" ? ids : variant === "minority" ? this.random.shuffle(ids).slice(0, minority) : [this.random.pick(others)];
        for (const id of victims) await cluster.kill9(id);
        fault = {
          description: `kill -9 ${variant}: ${victims.join(",")}`,
          heal: async () => {
            // A victim removed from the cluster meanwhile stays down for good.
            for (const id of victims) if (!cluster.node(id).removed && !cluster.running(id)) cluster.launch(id);
          },
        };
        break;
      }
      case "pause": {
        const victim = this.random.chance(0.8) ? leader : this.random.pick(others);
        cluster.pause(victim);
        fault = { description: `SIGSTOP ${victim}${victim === leader ? " (leader)" : ""}`, heal: async () => cluster.resume(victim) };
        break;
      }
      case "partition": {
        const isolateLeader = this.random.chance(0.5);
        const shuffled = this.random.shuffle(isolateLeader ? others : ids);
        const groups = isolateLeader ? [[leader], others] : [shuffled.slice(0, minority), shuffled.slice(minority)];
        cluster.partition(groups);
        fault = { description: `partition ${groups.map((group) => group.join(",")).join(" | ")}`, heal: async () => cluster.healLinks() };
        break;
      }
      case "oneway": {
        const outbound = this.random.chance(0.5);
        for (const other of others) {
          if (outbound) cluster.blockOneWay(leader, other);
          else cluster.blockOneWay(other, leader);
        }
        fault = { description: outbound ? `one-way: ${leader} (leader) -> others dropped` : `one-way: others -> ${leader} (leader) dropped`, heal: async () => cluster.healLinks() };
        break;
      }
      case "bridge": {
        // Two halves that only the bridge node connects (the "bridge" partition of Jepsen).
        const [bridge, ...rest] = this.random.shuffle(ids) as [string, ...string[]];
        const half = Math.ceil(rest.length / 2);
        const groups = [rest.slice(0, half), rest.slice(half)];
        cluster.partition(groups);
        fault = { description: `bridge through ${bridge}: ${groups.map((group) => group.join(",")).join(" | ")}`, heal: async () => cluster.healLinks() };
        break;
      }
      case "ring": {
        // Each node reaches only its two neighbours on a random ring (with 3 nodes that is everyone: a bridge instead).
        const ring = this.random.shuffle(ids);
        const neighbours = (a: string, b: string): boolean => {
          const distance = Math.abs(ring.indexOf(a) - ring.indexOf(b));
          return distance === 1 || distance === ring.length - 1;
        };
        const cuts = pairs(ids).filter(([a, b]) => !neighbours(a, b));
        if (cuts.length === 0) cluster.link(ring[0]!, ring[2]!).cut(true);
        for (const [a, b] of cuts) cluster.link(a, b).cut(true);
        fault = { description: `ring ${ring.join("-")}`, heal: async () => cluster.healLinks() };
        break;
      }
      case "slow": {
        const slowed = pairs(ids).filter(() => this.random.chance(0.5));
        const delayMs = this.random.int(slowLinkMs.min, slowLinkMs.max);
        for (const [a, b] of slowed) cluster.link(a, b).setDelay(delayMs);
        fault = { description: `slow links +${delayMs} ms: ${slowed.map((pair) => pair.join("-")).join(" ")}`, heal: async () => cluster.healLinks() };
        break;
      }
      case "clock": {
        const victims = this.random.chance(0.5) ? ids : [this.random.pick(ids)];
        const spec = this.random.pick(clockSpecs);
        for (const id of victims) cluster.setClock(id, spec);
        fault = {
          description: `wall clock ${spec} on ${victims.join(",")}`,
          heal: async () => {
            for (const id of victims) cluster.setClock(id, "+0");
          },
        };
        break;
      }
      case "disk": {
        // A full disk: the node must stop (exit) rather than acknowledge what it could not write.
        const victim = this.random.chance(0.5) ? leader : this.random.pick(others);
        cluster.fillDisk(victim);
        fault = {
          description: `disk full on ${victim}${victim === leader ? " (leader)" : ""}`,
          heal: async () => {
            if (cluster.node(victim).removed) return;
            cluster.freeDisk(victim);
            if (!cluster.running(victim)) {
              this.diskStops++;
              cluster.launch(victim);
            }
          },
        };
        break;
      }
    }
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    this.note("applied", fault.description);
    return fault;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
