import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { type Command, encodeCommand, validateCommand } from "../fsm/commands.js";
import type { CoordinationStateMachine, ElectionLeaderView, LockView } from "../fsm/coordination.js";
import type { ResourceKind } from "../fsm/state.js";
import type { FsmEvent } from "../fsm/events.js";
import { LeaseKeeper } from "../fsm/lease-keeper.js";
import { type CommandResult, decodeResult } from "../fsm/results.js";
import { ignoreLimitHits, type LimitHitSink } from "../limit-hits.js";
import type { NodeMetrics } from "../metrics.js";
import type { SoftState } from "../raft/types.js";
import { ClientSessions, sessionsPerClientMaxDefault } from "./client-sessions.js";
import { NodeError } from "./forwarding.js";
import type { RaftNode } from "./node.js";
import { retryAcrossLeaders, type RetryClock } from "./retry.js";

const realClock: RetryClock = { nowMs, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };

/** How often the leader looks for sessions whose deadline passed. */
export const expiryCheckIntervalMs = 100;
/** Clients blocked in an acquire or campaign on this node at once. */
export const blockedClientsMaxDefault = 10_000;

/**
 * Commands that are safe to send again when the first attempt's outcome is unknown (coordination.md,
 * Reads): applying one twice gives the same state and answer. Client commands not listed here carry a
 * request id instead, and the state machine answers a retry with the first attempt's result.
 */
const idempotentCommands: ReadonlySet<Command["type"]> = new Set([
  "lock-refresh",
  "lock-cancel",
  "elect-proclaim",
  "elect-cancel",
  // Not listed: a release, resign or close applied twice answers "false" the second time; an acquire
  // or campaign whose first attempt was queued, granted, and expired before the retry landed would be
  // granted a second time (found by the chaos linearizability check).
]);

/** Commands the leader proposes for itself: never retried (a new leader decides afresh), so never deduplicated. */
const leaderCommands: ReadonlySet<Command["type"]> = new Set(["sessions-expire", "leader-changed"]);

/**
 * Locks and elections one session may hold or wait for at once, each queued request counted, so that one
 * runaway client session cannot take the cluster's whole `locksMax`. Checked by the node serving the
 * request against its applied state, not in the log: a member that lags may let a few more through, and
 * a cluster mid-upgrade cannot disagree about it (a replicated rule only some members knew would make
 * their states diverge).
 */
export const locksPerSessionMaxDefault = 1_000;

/** Longest `WAIT` a client may ask for. */
export const waitMsMax = 24 * 60 * 60 * 1000;

/** Why a request failed in a way its client must hear about as an error (`-CODE message`). */
export class CoordinationError extends Error {
  override name = "CoordinationError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A granted lock or leadership. */
export interface Grant {
  readonly token: number;
  readonly ttlMs: number;
}

/** A grant and the session that holds it (null when not known: a grant learned from a late cancel). */
interface LeasedGrant extends Grant {
  readonly sessionId: number | null;
}

/** An acquire or a campaign as `acquire` runs it: what it asks for, the command, its cancel, and how long to wait. */
interface AcquireRequest {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly owner: string;
  /** The explicit session it names, counted against `locksPerSessionMax`; none: a grant opens an implicit lease. */
  readonly sessionId: number | undefined;
  /** The client's address, whose implicit leases count against `sessionsPerClientMax`; none for internal callers. */
  readonly client: string | undefined;
  readonly command: (waiterId: string) => Command;
  readonly cancel: (waiterId: string) => Command;
  readonly waitMs: number;
  /** Aborted when the client's connection closes: the wait is given up through the log. */
  readonly signal: AbortSignal | undefined;
  readonly onGranted?: (waitedMs: number) => void;
  /** Told once the command was applied (queued, granted or refused), or failed: it is in the state from then on. */
  readonly onApplied?: () => void;
}

/** Bounds a service enforces beyond the state machine's (tests shrink them). */
export interface CoordinationServiceOptions {
  readonly sessionsPerClientMax?: number;
  readonly blockedClientsMax?: number;
  readonly locksPerSessionMax?: number;
}

interface Waiter {
  readonly settle: (grant: LeasedGrant | null) => void;
  /** Once queued: cancels the wait through the log, the reply decided by apply order. */
  giveUp: (() => void) | null;
}

/** How a read is served: linearizable (ReadIndex or lease, through the leader) or from local state. */
export type Consistency = "linearizable" | "serializable";

/**
 * Lease work only the leader can answer, since deadlines live on its clock (lease-keeper.ts); a follower
 * asks it over the peer stream. Request: op u8 | session id f64. Reply: remaining ms f64, -1 when unknown.
 */
const LeaseOp = { Keepalive: 0, Remaining: 1 } as const;
type LeaseOp = (typeof LeaseOp)[keyof typeof LeaseOp];
const leaseRequestBytes = 9;

/**
 * Locks, sessions and elections as the APIs offer them, on top of the replicated coordination state
 * machine: it turns requests into log commands, waits for blocked clients by watching the state machine's
 * events (so the reply is decided by apply order), keeps session deadlines on the leader's clock, and
 * proposes expiries only while the leader's quorum contact is fresh.
 */
export class CoordinationService {
  private readonly keeper: LeaseKeeper;
  private readonly waiters = new Map<string, Waiter>();
  /** Prefix of this node's waiter and request ids: the node id and a random boot id. */
  private readonly waiterPrefix: string;
  private waiterNext = 1;
  private requestNext = 1;
  private leaderTerm: number | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private expiryInFlight = false;
  private readonly limitHit: LimitHitSink;
  private readonly clientSessions: ClientSessions;
  private readonly blockedClientsMax: number;
  private readonly locksPerSessionMax: number;
  /** Session id → acquires and campaigns naming it that this node has not answered yet (`locksPerSessionMax`). */
  private readonly sessionRequestsInFlight = new Map<number, number>();

  constructor(
    private readonly node: RaftNode,
    private readonly fsm: CoordinationStateMachine,
    private readonly logger: Logger,
    private readonly metrics?: NodeMetrics,
    options: CoordinationServiceOptions = {},
  ) {
    this.limitHit = metrics?.limitHit ?? ignoreLimitHits;
    // Entries an earlier run of this node applied are applied again at start: their refusals were counted then.
    fsm.reportLimitHits((limit) => {
      if (fsm.appliedIndex > node.recoveredCommitIndex) this.limitHit(limit);
    });
    this.locksPerSessionMax = options.locksPerSessionMax ?? locksPerSessionMaxDefault;
    this.blockedClientsMax = options.blockedClientsMax ?? blockedClientsMaxDefault;
    // A session id is the index of the entry that opened it: above the applied index, this node (a
    // follower answered by the leader) has not applied its opening yet, and must count it all the same.
    this.clientSessions = new ClientSessions(options.sessionsPerClientMax ?? sessionsPerClientMaxDefault, (sessionId) => sessionId > fsm.appliedIndex || fsm.sessionInfo(sessionId) !== undefined);
    this.keeper = new LeaseKeeper(10 * expiryCheckIntervalMs);
    // Waiter ids must never repeat across restarts of this node: a random boot id sees to it.
    this.waiterPrefix = `${node.config.id}.${randomBytes(6).toString("hex")}.`;
    this.keeper.load(fsm.sessionLeases(), nowMs());
    fsm.subscribe((event) => this.observe(event));
    fsm.onRestore(({ eventsMissed }) => this.restored(eventsMissed));
    node.onSoftStateChange((softState) => this.leadershipChanged(softState));
    node.setLeaderRequestHandler((data) => this.answerLeaseRequest(data));
    this.expiryTimer = setInterval(() => this.expireDueSessions(), expiryCheckIntervalMs);
    if (metrics !== undefined) {
      metrics.watchCoordination(() => {
        const census = fsm.census();
        return { sessionsActive: census.sessions, locksHeld: census.locksHeld, lockWaiters: census.lockWaiters, electionLeaders: census.electionLeaders };
      });
      fsm.subscribe((event) => metrics.fsmEvent(event, nowMs()));
      fsm.onRestore(() => metrics.restored((name, token) => fsm.fenceCheck(name, token)));
    }
  }

  stop(): void {
    if (this.expiryTimer !== null) clearInterval(this.expiryTimer);
    for (const waiter of this.waiters.values()) waiter.settle(null);
    this.waiters.clear();
  }

  // ------------------------------------------------------------------------------------------
  // Sessions

  /** Opens a session; `client` (its address) counts it against `sessionsPerClientMax`. */
  openSession(ttlMs: number, label?: string, client?: string): Promise<number> {
    return this.openingSession(client, async () => {
      const result = await this.execute({ type: "session-open", ttlMs, ...(label === undefined ? {} : { label }) });
      const { sessionId } = expectKind(result, "session");
      return { value: sessionId, sessionId };
    });
  }

  /** Runs a request that may open a session for `client` (none for internal callers), within its limit. */
  private async openingSession<T>(client: string | undefined, request: () => Promise<{ value: T; sessionId: number | null }>): Promise<T> {
    if (client === undefined) return (await request()).value;
    if (!this.clientSessions.admit(client)) {
      const limit = this.clientSessions.sessionsPerClientMax;
      this.limitHit("sessions_per_client");
      throw new CoordinationError(
        "LIMIT",
        `client ${client} already has ${limit} sessions and lock leases open through this node (limit ${limit}, sessionsPerClientMax); close or release unused ones and retry`,
      );
    }
    let sessionId: number | null = null;
    try {
      const answer = await request();
      sessionId = answer.sessionId;
      return answer.value;
    } finally {
      this.clientSessions.settle(client, sessionId);
    }
  }

  /** Moves the session's deadline on the leader (nothing is written to the log); remaining ms. */
  async keepalive(sessionId: number): Promise<number> {
    const remainingMs = await this.askLeader(LeaseOp.Keepalive, sessionId);
    if (remainingMs === undefined) throw new CoordinationError("NOSESSION", "the session expired or never existed; open a new one");
    return remainingMs;
  }

  async closeSession(sessionId: number): Promise<boolean> {
    return expectKind(await this.execute({ type: "session-close", sessionId }), "closed").closed;
  }

  // ------------------------------------------------------------------------------------------
  // Locks

  /**
   * Acquires `name` for `owner`; waits up to `waitMs` in the lock's FIFO queue (0: try once). Null if not
   * acquired. Aborting `signal` (the client's connection closed) gives up the wait through the log.
   * `client` (its address) counts the lease a grant without `sessionId` opens against `sessionsPerClientMax`.
   */
  acquireLock(name: string, owner: string, ttlMs: number, waitMs: number, sessionId?: number, signal?: AbortSignal, client?: string): Promise<Grant | null> {
    return this.acquire({
      kind: "lock",
      name,
      owner,
      sessionId,
      client,
      command: (waiterId) =>
        sessionId === undefined
          ? { type: "lock-acquire", name, owner, ttlMs, wait: waitMs > 0, waiterId }
          : { type: "lock-acquire", name, owner, ttlMs, wait: waitMs > 0, waiterId, sessionId },
      cancel: (waiterId) => ({ type: "lock-cancel", name, waiterId }),
      waitMs,
      signal,
      onGranted: (waitedMs) => this.metrics?.lockWaited(waitedMs / 1000),
    });
  }

  async releaseLock(name: string, owner: string): Promise<boolean> {
    return expectKind(await this.execute({ type: "lock-release", name, owner }), "released").released;
  }

  async refreshLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return expectKind(await this.execute({ type: "lock-refresh", name, owner, ttlMs }), "refreshed").lease !== null;
  }

  async forceReleaseLock(name: string): Promise<boolean> {
    return expectKind(await this.execute({ type: "lock-force-release", name }), "released").released;
  }

  /**
   * The lock's holder and the time its lease has left, or undefined when free. Linearizable: the time on
   * the leader's clock, which decides expiry (0 when the leader no longer tracks the lease: its expiry is
   * under way). Serializable: this node's estimate, from when it applied the last grant or refresh.
   */
  async lockInfo(name: string, consistency: Consistency): Promise<(LockView & { remainingMs: number | undefined }) | undefined> {
    const view = await this.read(consistency, (fsm) => fsm.lockInfo(name));
    if (view === undefined) return undefined;
    if (consistency === "serializable" || this.node.isLeader()) return { ...view, remainingMs: this.keeper.remainingMs(view.sessionId, nowMs()) };
    return { ...view, remainingMs: (await this.askLeader(LeaseOp.Remaining, view.sessionId)) ?? 0 };
  }

  fenceCheck(name: string, token: number, consistency: Consistency): Promise<boolean> {
    return this.read(consistency, (fsm) => fsm.fenceCheck(name, token));
  }

  // ------------------------------------------------------------------------------------------
  // Elections

  /** Campaigns in `election` as `candidate`, as `acquireLock` acquires a lock; the token when leader. */
  campaign(election: string, candidate: string, ttlMs: number, waitMs: number, value?: string, sessionId?: number, signal?: AbortSignal, client?: string): Promise<Grant | null> {
    return this.acquire({
      kind: "election",
      name: election,
      owner: candidate,
      sessionId,
      client,
      command: (waiterId) => ({
        type: "elect-campaign",
        election,
        candidate,
        ttlMs,
        wait: waitMs > 0,
        waiterId,
        ...(value === undefined ? {} : { value }),
        ...(sessionId === undefined ? {} : { sessionId }),
      }),
      cancel: (waiterId) => ({ type: "elect-cancel", election, waiterId }),
      waitMs,
      signal,
    });
  }

  async proclaim(election: string, candidate: string, value: string): Promise<boolean> {
    return expectKind(await this.execute({ type: "elect-proclaim", election, candidate, value }), "proclaimed").proclaimed;
  }

  async resign(election: string, candidate: string): Promise<boolean> {
    return expectKind(await this.execute({ type: "elect-resign", election, candidate }), "resigned").resigned;
  }

  electionLeader(election: string, consistency: Consistency): Promise<ElectionLeaderView | undefined> {
    return this.read(consistency, (fsm) => fsm.electionLeader(election));
  }

  // ------------------------------------------------------------------------------------------

  /**
   * Validates, proposes and decodes one command; state machine refusals become CoordinationErrors. When
   * the leader goes away with a client's command in flight, it is sent again to the next leader (within
   * `--commit-timeout-ms`): an idempotent one as it is, any other under the same request id, so that the state
   * machine applies it at most once. The leader's own commands are not retried.
   */
  private async execute(command: Command): Promise<CommandResult> {
    const problem = validateCommand(command, this.fsm.limits);
    if (problem !== null) {
      if (problem.limit !== undefined) this.limitHit(problem.limit);
      throw new CoordinationError(problem.code, problem.message);
    }
    const needsRequestId = !idempotentCommands.has(command.type) && !leaderCommands.has(command.type);
    const requestId = needsRequestId ? `${this.waiterPrefix}r${this.requestNext++}` : null;
    const entry = encodeCommand(command, requestId);
    const { result } = await this.retryingAcrossLeaders(!leaderCommands.has(command.type), () => this.node.propose(entry));
    const decoded = decodeResult(result);
    if (decoded.kind === "error") throw new CoordinationError(decoded.code, decoded.message);
    return decoded;
  }

  private read<T>(consistency: Consistency, query: (fsm: CoordinationStateMachine) => T): Promise<T> {
    if (consistency === "serializable") return Promise.resolve(query(this.fsm));
    return this.retryingAcrossLeaders(true, () => this.node.read(() => query(this.fsm)));
  }

  /**
   * The shared shape of a lock acquire and a campaign, within the per-client and per-session limits: an
   * acquire naming a session adds to that session's claims; one without may open an implicit lease for
   * its client. A retry of what the client holds already adds neither, and is never refused for them.
   */
  private async acquire(request: AcquireRequest): Promise<Grant | null> {
    const { kind, name, owner, sessionId, client } = request;
    if (sessionId !== undefined) {
      return this.claimingForSession(sessionId, kind, name, async (applied) => publicGrant(await this.acquireLeased({ ...request, onApplied: applied })));
    }
    const opensLease = client !== undefined && !this.fsm.holdsUnderImplicitLease(kind, name, owner);
    return this.openingSession(opensLease ? client : undefined, async () => {
      const grant = await this.acquireLeased(request);
      return { value: publicGrant(grant), sessionId: grant?.sessionId ?? null };
    });
  }

  /**
   * Runs an acquire or campaign naming `sessionId` if the session may take one more claim
   * (`locksPerSessionMax`): its claims in the applied state, plus its requests not applied yet, each of
   * which may add one. `run` calls `applied` once its command is applied (then it counts in the state).
   */
  private async claimingForSession<T>(sessionId: number, kind: ResourceKind, name: string, run: (applied: () => void) => Promise<T>): Promise<T> {
    const inFlight = this.sessionRequestsInFlight.get(sessionId) ?? 0;
    // A retry of what the session holds or waits for adds nothing.
    if (!this.fsm.sessionClaimsResource(sessionId, kind, name) && this.fsm.sessionClaims(sessionId) + inFlight >= this.locksPerSessionMax) {
      this.limitHit("locks_per_session");
      const limit = this.locksPerSessionMax;
      throw new CoordinationError("LIMIT", `session ${sessionId} already holds or waits for ${limit} locks and elections (limit ${limit}, locksPerSessionMax); release some, or use another session`);
    }
    this.sessionRequestsInFlight.set(sessionId, inFlight + 1);
    let counted = true;
    const applied = (): void => {
      if (!counted) return;
      counted = false;
      const left = (this.sessionRequestsInFlight.get(sessionId) ?? 1) - 1;
      if (left === 0) this.sessionRequestsInFlight.delete(sessionId);
      else this.sessionRequestsInFlight.set(sessionId, left);
    };
    try {
      return await run(applied);
    } finally {
      applied();
    }
  }

  /**
   * The waiter is registered before the command is proposed: its grant may be applied in the same batch
   * as the command that queued it.
   */
  private async acquireLeased({ command, cancel, waitMs, signal, onGranted, onApplied }: AcquireRequest): Promise<LeasedGrant | null> {
    if (!(Number.isSafeInteger(waitMs) && waitMs >= 0 && waitMs <= waitMsMax)) {
      throw new CoordinationError("ERR", `wait must be an integer number of milliseconds between 0 and ${waitMsMax}`);
    }
    if (this.waiters.size >= this.blockedClientsMax) {
      this.limitHit("blocked_clients");
      const limit = this.blockedClientsMax;
      throw new CoordinationError("LIMIT", `${limit} clients already wait on this node (limit ${limit}, blockedClientsMax); retry later or use another node`);
    }
    // One waiter id for the request and its retries: a retry is answered the first attempt's result
    // (its request id), and the grant event names this id whenever it is applied.
    const waiterId = `${this.waiterPrefix}${this.waiterNext++}`;
    let settle!: (grant: LeasedGrant | null) => void;
    const settled = new Promise<LeasedGrant | null>((resolve) => {
      settle = resolve;
    });
    const waiter: Waiter = { settle, giveUp: null };
    this.waiters.set(waiterId, waiter);
    try {
      const result = await this.execute(command(waiterId));
      onApplied?.();
      if (result.kind === "granted") {
        onGranted?.(0);
        return { token: result.token, ttlMs: result.ttlMs, sessionId: result.sessionId };
      }
      if (result.kind !== "queued") return null;
      const queuedAtMs = nowMs();
      const giveUp = (): void => void this.giveUp(waiterId, cancel(waiterId));
      waiter.giveUp = giveUp;
      const timer = setTimeout(giveUp, waitMs);
      signal?.addEventListener("abort", giveUp, { once: true });
      if (signal?.aborted === true) giveUp();
      try {
        const grant = await settled;
        if (grant !== null) onGranted?.(nowMs() - queuedAtMs);
        return grant;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", giveUp);
      }
    } finally {
      this.waiters.delete(waiterId);
    }
  }

  /** The wait ran out: cancel through the log; if the grant was applied first, the client gets it. */
  private async giveUp(waiterId: string, cancel: Command): Promise<void> {
    const waiter = this.waiters.get(waiterId);
    if (waiter === undefined) return;
    try {
      const result = await this.execute(cancel);
      waiter.settle(result.kind === "already-granted" ? this.grantOf(result.token) : null);
    } catch (error) {
      // Outcome unknown: the waiter may still be granted; keep waiting for its event rather than lie.
      this.logger.warn({ err: error, waiterId }, "could not cancel a waiter that gave up; waiting for its outcome");
    }
  }

  private grantOf(token: number): LeasedGrant {
    return { token, ttlMs: 0, sessionId: null };
  }

  private observe(event: FsmEvent): void {
    this.keeper.observe(event, nowMs());
    switch (event.type) {
      case "lock-granted":
      case "election-leader":
        this.waiters.get(event.waiterId)?.settle({ token: event.token, ttlMs: "ttlMs" in event ? event.ttlMs : 0, sessionId: event.sessionId });
        break;
      case "lock-dropped":
      case "election-dropped":
        this.waiters.get(event.waiterId)?.settle(null);
        break;
      case "session-ended":
        this.clientSessions.ended(event.sessionId);
        break;
      case "raft-leader":
        // Our own leader-changed entry applied: deadlines restart now, so a failover never expires early.
        if (event.leaderId === this.node.config.id && event.term === this.leaderTerm && this.node.isLeader()) {
          this.keeper.resetAll(nowMs());
        }
        break;
      default:
        break;
    }
  }

  /**
   * A snapshot replaced the state. Sessions opened, refreshed or ended in the entries it covers reach
   * the keeper only this way (their events are not in the watch history). Waiters were given their
   * grants from the history; when it did not reach back far enough, a waiter's grant may have been
   * skipped: each queued one gives up now, through the log, and hears its grant if it had one.
   */
  private restored(eventsMissed: boolean): void {
    this.keeper.load(this.fsm.sessionLeases(), nowMs());
    this.clientSessions.restored();
    if (!eventsMissed) return;
    for (const waiter of this.waiters.values()) waiter.giveUp?.();
  }

  private leadershipChanged(softState: SoftState): void {
    if (softState.leaderId !== this.node.config.id) {
      this.leaderTerm = null;
      this.keeper.relinquish();
      return;
    }
    if (this.leaderTerm === softState.currentTerm) return;
    this.leaderTerm = softState.currentTerm;
    const command: Command = { type: "leader-changed", leaderId: this.node.config.id, term: softState.currentTerm };
    this.execute(command).catch((error: unknown) => this.logger.warn({ err: error, term: softState.currentTerm }, "could not record the leader change"));
  }

  /** Leader only, and only while its leadership is fresh (etcd #15247: a paused leader must not expire everything). */
  private expireDueSessions(): void {
    // The keeper hands out nothing until this leader reset every deadline (no early expiry on failover).
    if (this.expiryInFlight || !this.node.leadershipFresh()) return;
    const sessionIds = this.keeper.expired(nowMs(), this.fsm.limits.expireSessionsMax);
    if (sessionIds.length === 0) return;
    this.expiryInFlight = true;
    this.execute({ type: "sessions-expire", sessionIds })
      .catch((error: unknown) => this.logger.warn({ err: error }, "could not expire sessions; will retry"))
      .finally(() => {
        this.expiryInFlight = false;
      });
  }

  /** `retryAcrossLeaders` within this node's commit timeout. */
  private retryingAcrossLeaders<T>(retry: boolean, attempt: () => Promise<T>): Promise<T> {
    return retryAcrossLeaders(attempt, retry, this.node.config.commitTimeoutMs, realClock);
  }

  private async askLeader(op: LeaseOp, sessionId: number): Promise<number | undefined> {
    const request = new Uint8Array(leaseRequestBytes);
    request[0] = op;
    new DataView(request.buffer).setFloat64(1, sessionId);
    const reply = await this.retryingAcrossLeaders(true, () => this.node.requestLeader(request));
    const remainingMs = reply.length === 8 ? new DataView(reply.buffer, reply.byteOffset, reply.byteLength).getFloat64(0) : -1;
    return remainingMs < 0 ? undefined : remainingMs;
  }

  private async answerLeaseRequest(request: Uint8Array): Promise<Uint8Array> {
    // Only a leader whose lease holds: a deposed leader that has not noticed yet would move a deadline
    // the new leader never learns of, and the client would count on a session that expires sooner.
    // And only once its deadlines are its own (reset when its first entry applied): until then they are a
    // follower's estimates, past due for sessions that the previous leader kept alive.
    if (!this.node.leadershipFresh() || !this.keeper.authoritative) throw new NodeError("NOLEADER", "this node cannot vouch for session deadlines right now; retry");
    // In read-index mode followers stop shielding a leader whose stream they lost, so its lease alone
    // does not prove that no newer leader exists; a heartbeat round after the request arrived does (a
    // newer leader's deadlines then start after the client sent this keepalive).
    if (!this.node.leaseProvesLeadership()) await this.node.confirmLeadership();
    const reply = new Uint8Array(8);
    let remainingMs: number | undefined | null;
    if (request.length === leaseRequestBytes) {
      const sessionId = new DataView(request.buffer, request.byteOffset, request.byteLength).getFloat64(1);
      if (request[0] === LeaseOp.Keepalive) remainingMs = this.keeper.keepalive(sessionId, nowMs());
      else if (request[0] === LeaseOp.Remaining) remainingMs = this.keeper.remainingMs(sessionId, nowMs());
    }
    // Null: the keeper stopped vouching while the round above was in flight (this node stepped down, e.g.
    // on committing its own removal, in the same batch that confirmed the round). Not an answer at all:
    // read as -1 it would tell a live session NOSESSION (chaos seed 701); the client retries on the new leader.
    if (remainingMs === null) throw new NodeError("NOLEADER", "this node stopped leading while it handled the request; retry");
    new DataView(reply.buffer).setFloat64(0, remainingMs ?? -1);
    return reply;
  }
}

function expectKind<K extends CommandResult["kind"]>(result: CommandResult, kind: K): Extract<CommandResult, { kind: K }> {
  if (result.kind !== kind) throw new NodeError("UNAVAILABLE", `the state machine answered ${result.kind} where ${kind} was expected`);
  return result as Extract<CommandResult, { kind: K }>;
}

function nowMs(): number {
  return performance.now();
}

/** A grant as callers see it: the session that holds it stays inside the service. */
function publicGrant(grant: LeasedGrant | null): Grant | null {
  return grant === null ? null : { token: grant.token, ttlMs: grant.ttlMs };
}
