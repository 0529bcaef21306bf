// Membership changes as a fault, through the HTTP API as an operator makes them: a fresh node joins with
// `--join` (it asks to be added as a learner, then to be promoted), a follower or the leader is removed,
// or a node is replaced (a fresh one joins, then an old one is removed). They run on a lane of their own,
// beside the other faults, so that a change meets kills, pauses and partitions halfway through.
//
// Each step retries what only means "not now" (CHANGEPENDING, NOTCAUGHTUP, NOLEADER, timeouts) until its
// deadline, then is abandoned: noted in the nemesis log, never a failure of the run. What an abandoned
// step leaves behind is put right by `reconcile` before the next change and at the end of the run: a
// process the configuration does not list is discarded, and a member the harness does not run (a join
// given up on that got in after all) or a learner left over is removed. Only a cluster that cannot
// settle its membership once every fault is healed fails the run.
import type { Prng } from "../sim/prng.js";
import type { MembershipObservation } from "./checkers/membership.js";
import type { ChaosCluster } from "./cluster.js";

export const memberVariants = ["add", "remove-follower", "remove-leader", "replace"] as const;
export type MemberVariant = (typeof memberVariants)[number];

/** Voters the harness keeps: a change never leaves fewer (no fault tolerance below 3) nor more. */
export const votersMin = 3;
export const votersMax = 5;
/** Node processes at once, the one joining included. */
export const processesMax = 7;
/** How long one step (a join until it is a voter, a removal until it committed) may take before it is abandoned. */
export const memberStepMs = 10_000;
/** Pause between one change and the next. */
const gapMs = { min: 1_000, max: 4_000 };
/** One HTTP request of a step: a change commits or fails within the nodes' commit timeout (3 s). */
const requestTimeoutMs = 5_000;
/** Pause before retrying a step that was refused for now. */
const retryPauseMs = 250;
/** How long a removed leader may take to hand over before it is stopped anyway. */
const handoverWaitMs = 3_000;
/** Codes of a refusal that a retry may get past; any other 409 is final. */
const retriedCodes = new Set(["CHANGEPENDING", "NOTCAUGHTUP", "NOTCOMMITTED"]);

export interface MembershipView {
  readonly configIndex: number;
  readonly members: readonly { readonly id: string; readonly voter: boolean; readonly address: string | null }[];
}

/** What the run does when the set of nodes changes. */
export interface MembershipHooks {
  /** A node process was started for the first time: watch it. */
  started(id: string): void;
  /** The voters clients should talk to changed. */
  targetsChanged(ids: readonly string[]): void;
  /** A node was stopped for good. */
  discarded(id: string): void;
}

type ChangeResult = { type: "ok"; view: MembershipView } | { type: "refused"; message: string } | { type: "abandoned"; lastError: string };

export class MembershipNemesis {
  /** Changes started, by variant, and how many were abandoned or skipped. */
  readonly counts = new Map<string, number>();
  /** Changes started. */
  started = 0;
  /** Every membership read and acknowledged change, for the membership checker. */
  readonly observations: MembershipObservation[] = [];
  /** Answers no node should give (a 500, a malformed reply): reported as violations. */
  readonly unexpected: string[] = [];
  /** Voters clients may use: members, minus a node being removed. */
  private readonly serving: Set<string>;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly random: Prng,
    private readonly note: (what: string, description: string) => void,
    private readonly hooks: MembershipHooks,
  ) {
    this.serving = new Set(cluster.ids);
  }

  /** Changes membership until `untilMs` (performance.now()); a change under way finishes or is abandoned. */
  async run(untilMs: number): Promise<void> {
    while (performance.now() < untilMs) {
      await sleep(this.random.int(gapMs.min, gapMs.max));
      // A change needs time to finish; one that would mostly run after the faults is left out.
      if (performance.now() + memberStepMs / 2 >= untilMs) break;
      const view = await this.reconcile(performance.now() + memberStepMs);
      if (view === null) {
        this.count("skipped: membership unsettled");
        this.note("abandoned", "membership change: the membership could not be read or settled; no change this round");
        continue;
      }
      const voters = view.members.filter((member) => member.voter).length;
      const processes = this.cluster.ids.length;
      const allowed = memberVariants.filter((variant) => variantAllowed(variant, voters, processes));
      if (allowed.length === 0) continue;
      await this.change(this.random.pick(allowed), view);
    }
  }

  private async change(variant: MemberVariant, view: MembershipView): Promise<void> {
    const voters = view.members.filter((member) => member.voter).map((member) => member.id);
    this.started++;
    this.count(variant);
    switch (variant) {
      case "add":
        await this.add(voters);
        return;
      case "remove-follower":
      case "remove-leader": {
        const leader = await this.cluster.someLeader();
        const followers = voters.filter((id) => id !== leader);
        const victim = variant === "remove-leader" && leader !== null && voters.includes(leader) ? leader : this.random.pick(followers);
        await this.remove(victim, voters, victim === leader);
        return;
      }
      case "replace": {
        const added = await this.add(voters);
        if (added === null) return;
        const leader = await this.cluster.someLeader();
        const victim = this.random.pick(voters);
        await this.remove(victim, [...voters, added], victim === leader);
        return;
      }
    }
  }

  /** A fresh node joins through the voters; the id once it is a voter, null when abandoned. */
  private async add(voters: readonly string[]): Promise<string | null> {
    const deadlineMs = performance.now() + memberStepMs;
    const id = await this.cluster.join(this.random.shuffle(voters));
    this.hooks.started(id);
    this.note("applied", `member add ${id} (--join through ${voters.join(",")})`);
    let state = "not a member";
    while (performance.now() < deadlineMs) {
      const view = await this.read(deadlineMs, [id]);
      const listed = view?.members.find((member) => member.id === id);
      if (listed !== undefined) state = listed.voter ? "voter" : "learner";
      if (state === "voter") {
        this.serving.add(id);
        this.hooks.targetsChanged([...this.serving]);
        this.note("healed", `member add ${id}: a voter`);
        return id;
      }
      await sleep(retryPauseMs);
    }
    // Stop it first, so it asks for nothing more; whatever of its join got in, reconcile removes.
    this.count("add abandoned");
    this.note("abandoned", `member add ${id}: still ${state} after ${memberStepMs} ms (last failed read: ${this.lastReadError || "none"}); discarded`);
    await this.discard(id);
    return null;
  }

  /** Removes voter `victim` through another member, then stops it for good. */
  private async remove(victim: string, voters: readonly string[], wasLeader: boolean): Promise<void> {
    const description = `member remove ${victim}${wasLeader ? " (leader)" : ""}`;
    this.serving.delete(victim);
    this.hooks.targetsChanged([...this.serving]);
    this.note("applied", description);
    const result = await this.request("DELETE", `/v1/members/${victim}`, voters.filter((id) => id !== victim), performance.now() + memberStepMs, victim);
    if (result.type === "abandoned" || (result.type === "refused" && !isNotAMember(result.message))) {
      // Maybe removed after all (the outcome of a timed-out request is unknown): reconcile finds out.
      this.count(`remove ${result.type}`);
      this.note("abandoned", `${description}: ${result.type === "abandoned" ? `not committed within ${memberStepMs} ms (${result.lastError})` : `refused: ${result.message}`}`);
      this.serving.add(victim);
      this.hooks.targetsChanged([...this.serving]);
      return;
    }
    if (wasLeader) {
      // It steps down once its removal committed and hands over at once; stopped after, not to decide the election.
      const handedOver = await this.newLeaderWithout(victim, performance.now() + handoverWaitMs);
      this.note("healed", `${description}: committed; ${handedOver === null ? `no other leader within ${handoverWaitMs} ms` : `${handedOver} leads`}`);
    } else {
      this.note("healed", `${description}: committed`);
    }
    await this.discard(victim);
  }

  /**
   * Brings the configuration and the processes in line: discards running nodes the configuration does
   * not list and removes members that are not running voters. Returns the settled membership, or null
   * if it could not be read or changed before `deadlineMs`.
   */
  async reconcile(deadlineMs: number): Promise<MembershipView | null> {
    while (performance.now() < deadlineMs) {
      const view = await this.read(deadlineMs);
      if (view === null) return null;
      const listed = new Set(view.members.map((member) => member.id));
      for (const id of this.cluster.ids) {
        if (listed.has(id)) continue;
        // A join given up on, or a removal that committed after the harness stopped waiting for it.
        this.note("reconciled", `${id} is not a member: discarded`);
        await this.discard(id);
      }
      const strays = view.members.filter((member) => !member.voter || !this.cluster.ids.includes(member.id));
      if (strays.length === 0) {
        this.serving.clear();
        for (const member of view.members) this.serving.add(member.id);
        this.hooks.targetsChanged([...this.serving]);
        return view;
      }
      for (const stray of strays) {
        const members = view.members.filter((member) => member.voter && member.id !== stray.id && this.cluster.ids.includes(member.id)).map((member) => member.id);
        this.serving.delete(stray.id);
        this.hooks.targetsChanged([...this.serving]);
        const result = await this.request("DELETE", `/v1/members/${stray.id}`, members, deadlineMs, stray.id);
        const removed = result.type === "ok" || (result.type === "refused" && isNotAMember(result.message));
        this.note("reconciled", `${stray.id}, ${stray.voter ? "a voter" : "a learner"} the harness does not run as a voter: ${removed ? "removed" : `not removed (${result.type === "abandoned" ? result.lastError : result.type === "refused" ? result.message : ""})`}`);
        if (!removed) return null;
        if (this.cluster.ids.includes(stray.id)) await this.discard(stray.id);
      }
    }
    return null;
  }

  private async discard(id: string): Promise<void> {
    this.serving.delete(id);
    this.hooks.targetsChanged([...this.serving]);
    await this.cluster.discard(id);
    this.hooks.discarded(id);
  }

  /** Why the last membership read failed, for the nemesis log. */
  private lastReadError = "";

  /** GET /v1/members (a linearizable read) from any live member, until one answers or the deadline. */
  private async read(deadlineMs: number, exclude: readonly string[] = []): Promise<MembershipView | null> {
    while (performance.now() < deadlineMs) {
      for (const via of this.random.shuffle(this.reachable(this.cluster.ids.filter((id) => !exclude.includes(id))))) {
        const invokeMs = nowMs();
        try {
          const answer = await this.cluster.httpGet<MembershipView>(via, "/v1/members", Math.ceil(Math.min(requestTimeoutMs, Math.max(1, deadlineMs - performance.now()))));
          if (answer.status === 200 && isMembershipView(answer.body)) {
            this.observe(`GET /v1/members via ${via}`, invokeMs, answer.body, null);
            return answer.body;
          }
          if (answer.status !== 503 && answer.status !== 504) this.unexpected.push(`GET /v1/members on ${via} answered ${answer.status} ${JSON.stringify(answer.body)}`);
          this.lastReadError = `${via} answered ${answer.status} ${JSON.stringify(answer.body)}`;
        } catch (error) {
          this.lastReadError = `${via}: ${(error as Error).message}`;
        }
        if (performance.now() >= deadlineMs) break;
      }
      await sleep(retryPauseMs);
    }
    return null;
  }

  /** One membership change through any of `via`, retried while the refusal means "not now". */
  private async request(method: string, path: string, via: readonly string[], deadlineMs: number, subject: string): Promise<ChangeResult> {
    let lastError = "no member to ask was running";
    while (performance.now() < deadlineMs) {
      const candidates = this.reachable(via);
      if (candidates.length > 0) {
        const target = this.random.pick(candidates);
        const invokeMs = nowMs();
        try {
          const answer = await this.cluster.httpRequest<MembershipView & { committedIndex?: number; error?: { code: string; message: string } }>(
            target, method, path, undefined, Math.ceil(Math.min(requestTimeoutMs, Math.max(1, deadlineMs - performance.now()))),
          );
          const code = answer.body.error?.code ?? "";
          if (answer.status === 200 && isMembershipView(answer.body) && typeof answer.body.committedIndex === "number") {
            this.observe(`${method} ${path} via ${target}`, invokeMs, answer.body, { removed: method === "DELETE" ? subject : null, committedIndex: answer.body.committedIndex });
            return { type: "ok", view: answer.body };
          }
          if (answer.status === 409 && !retriedCodes.has(code)) return { type: "refused", message: `${code}: ${answer.body.error?.message ?? ""}` };
          if (answer.status !== 409 && answer.status !== 503 && answer.status !== 504) this.unexpected.push(`${method} ${path} on ${target} answered ${answer.status} ${JSON.stringify(answer.body)}`);
          lastError = `${target} answered ${answer.status} ${code}`;
        } catch (error) {
          lastError = `${target}: ${(error as Error).message}`;
        }
      }
      await sleep(retryPauseMs);
    }
    return { type: "abandoned", lastError };
  }

  /** The nodes among `ids` that can answer now: running and not stopped. */
  private reachable(ids: readonly string[]): string[] {
    return ids.filter((id) => this.cluster.ids.includes(id) && this.cluster.running(id) && !this.cluster.node(id).paused);
  }

  private async newLeaderWithout(removed: string, deadlineMs: number): Promise<string | null> {
    while (performance.now() < deadlineMs) {
      for (const id of this.reachable(this.cluster.ids.filter((other) => other !== removed))) {
        const view = await this.cluster.httpGet<{ id: string }>(id, "/v1/cluster/leader", 500).catch(() => null);
        if (view?.status === 200 && view.body.id !== removed) return view.body.id;
      }
      await sleep(100);
    }
    return null;
  }

  private observe(what: string, invokeMs: number, view: MembershipView, change: { removed: string | null; committedIndex: number } | null): void {
    this.observations.push({
      what,
      invokeMs,
      completeMs: nowMs(),
      configIndex: view.configIndex,
      voters: view.members.filter((member) => member.voter).map((member) => member.id),
      learners: view.members.filter((member) => !member.voter).map((member) => member.id),
      ...(change === null ? {} : { committedIndex: change.committedIndex, ...(change.removed === null ? {} : { removed: change.removed }) }),
    });
  }

  private count(what: string): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + 1);
  }
}

/** Whether a change may start: it keeps 3 to 5 voters and at most 7 processes, the one joining included. */
export function variantAllowed(variant: MemberVariant, voters: number, processes: number): boolean {
  switch (variant) {
    case "add":
      return voters < votersMax && processes < processesMax;
    case "remove-follower":
    case "remove-leader":
      return voters > votersMin;
    case "replace":
      return voters < votersMax && processes < processesMax;
  }
}

function isNotAMember(message: string): boolean {
  return /is not a member/.test(message);
}

function isMembershipView(body: unknown): body is MembershipView {
  const view = body as Partial<MembershipView> | null;
  return typeof view?.configIndex === "number" && Array.isArray(view.members) && view.members.every((member) => typeof member?.id === "string" && typeof member.voter === "boolean");
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
