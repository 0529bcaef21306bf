// RaftlockClient: locks with keepalive and a loss signal, elections in the style of client-go's leader
// election, and watches, over RESP to one raftlock node (which forwards writes to the Raft leader).
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { performance } from "node:perf_hooks";
import { type ConnectionOptions, type ReplyValue, RespConnection } from "./connection.js";
import { RaftlockError } from "./errors.js";
import { Keepalive, type RefreshOutcome } from "./keepalive.js";
import { type ChannelListener, Subscriber } from "./subscriber.js";

/**
 * Attempts of an idempotent request (acquire by the same owner, release) when the connection to the node
 * broke. NOLEADER and TIMEOUT are not retried here: the node already waited and retried across leaders
 * for its commit timeout before answering them, so they are surfaced to the caller at once.
 */
export const idempotentAttemptsMax = 3;
/** Pause between those attempts. */
export const retryPauseMs = 200;
/** Longest single ELECT.CAMPAIGN wait; a campaign waits in rounds of this length. */
export const campaignWaitMsMax = 30_000;
/** Extra time a blocking command's reply may take beyond its WAIT (the cancel is committed through the log). */
export const blockingReplyGraceMs = 15_000;

/** Where the node is: host, RESP port, and the password of `--auth-password` if any. */
export interface RaftlockClientOptions {
  host?: string;
  port?: number;
  password?: string;
  /**
   * TLS options (node:tls) for a node started with --client-tls-*: `ca` to trust its certificate, and
   * `cert` and `key` when it also has --client-tls-ca. The node's name is checked against `host`.
   */
  tls?: TlsConnectionOptions;
  /** How long a request may wait for its reply (default 15 s). */
  requestTimeoutMs?: number;
  /** How long to wait for a TCP connection (default 5 s). */
  connectTimeoutMs?: number;
}

/** How to acquire a lock. */
export interface LockOptions {
  /** The lease: the lock is released by the cluster this long after the last refresh. */
  ttlMs: number;
  /** How long to wait in the lock's FIFO queue; 0 (default) tries once. */
  waitMs?: number;
  /** The owner string; default a unique `host:pid:uuid`. */
  owner?: string;
}

/** A held lock: its fencing token, a signal that fires when it is lost, and release(). */
export interface LockHandle {
  readonly name: string;
  readonly owner: string;
  /** The fencing token: send it with every write to the protected resource. */
  readonly token: number;
  /** Aborts (reason: a LOCKLOST RaftlockError) when the lock is lost or can no longer be confirmed. */
  readonly signal: AbortSignal;
  /** Stops the keepalive and releases; true if the lock was still held by this owner. */
  release(): Promise<boolean>;
}

/** An election's leader as observers see it; null when the election has no leader. */
export interface ElectionLeader {
  candidate: string;
  value: string | null;
  token: number;
}

/** The Raft leader of the cluster; null when none is known. */
export interface RaftLeader {
  id: string;
  term: number;
}

/** How to campaign. */
export interface CampaignOptions {
  /** The candidacy's session TTL: leadership ends this long after the last keepalive. */
  ttlMs: number;
  /** The value published with the leadership (ELECT.PROCLAIM can change it). */
  value?: string;
}

/** What a campaigner is told, as client-go's LeaderCallbacks. */
export interface CampaignCallbacks {
  /** This candidate leads, with `token`, until `signal` aborts (reason LOCKLOST when leadership was lost, STOPPED on stop()). */
  onStartedLeading(token: number, signal: AbortSignal): void;
  /** This candidate stopped leading (lost its session, resigned or stopped). */
  onStoppedLeading(): void;
  /** The election has a new leader (or none): every change, this candidate's own included. */
  onNewLeader?(leader: ElectionLeader | null): void;
}

/** A running campaign. */
export interface Campaign {
  /** Whether this candidate leads right now. */
  readonly leading: boolean;
  /** Publishes a new value while leading; false when not leading. */
  proclaim(value: string): Promise<boolean>;
  /** Stops campaigning: ends the leader's work (signal, onStoppedLeading), then resigns (handing over) and closes the session. */
  stop(): Promise<void>;
}

/** A watch; close() stops it. */
export interface Watch {
  /** Stops delivering events. */
  close(): void;
}

function integerReply(reply: ReplyValue, command: string): number {
  if (typeof reply !== "number") throw new RaftlockError("PROTOCOL", `${command} answered ${JSON.stringify(reply)}, expected an integer`);
  return reply;
}

function tokenOrNull(reply: ReplyValue, command: string): number | null {
  return reply === null ? null : integerReply(reply, command);
}

function electionLeaderOf(reply: ReplyValue): ElectionLeader | null {
  if (!Array.isArray(reply)) return null;
  const [candidate, value, token] = reply;
  return { candidate: String(candidate), value: typeof value === "string" ? value : null, token: Number(token) };
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client of one raftlock node over RESP. */
export class RaftlockClient {
  private readonly options: ConnectionOptions;
  private main: Promise<RespConnection> | null = null;
  private readonly dedicated = new Set<RespConnection>();
  private subscriber: Subscriber | null = null;
  private readonly keepalives = new Set<Keepalive>();
  private readonly campaigns = new Set<Campaign>();
  private closed = false;

  /** A client of the node at `host:port` (default 127.0.0.1:6381); connects on first use. */
  constructor(options: RaftlockClientOptions = {}) {
    this.options = {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 6381,
      ...(options.password === undefined ? {} : { password: options.password }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    };
  }

  /** Sends one command on the shared connection (opened again if it was lost); errors are RaftlockErrors. */
  async command(args: readonly (string | number)[]): Promise<ReplyValue> {
    if (this.closed) throw new RaftlockError("CLOSED", "the client is closed");
    let connection: RespConnection;
    try {
      connection = await this.mainConnection();
    } catch (error) {
      this.main = null;
      throw error;
    }
    return connection.call(args);
  }

  /** Acquires `name`, waiting up to `waitMs`; null when not acquired in time (or lost before it could be confirmed). The lock is kept alive until release() or loss. */
  async lock(name: string, options: LockOptions): Promise<LockHandle | null> {
    const owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID()}`;
    const waitMs = options.waitMs ?? 0;
    const args = ["LOCK.ACQUIRE", name, owner, options.ttlMs, ...(waitMs > 0 ? ["WAIT", waitMs] : [])];
    let sentAtMs = 0;
    // An acquire by the same owner is idempotent (coordination.md): a retry after a broken connection gets
    // the same token, or joins the queue again, never a second grant.
    const token = await this.idempotent(async () => {
      sentAtMs = performance.now();
      return tokenOrNull(waitMs > 0 ? await this.blocking(args, waitMs) : await this.command(args), "LOCK.ACQUIRE");
    });
    if (token === null) return null;
    const refresh = async (): Promise<RefreshOutcome> => {
      const reply = await this.command(["LOCK.REFRESH", name, owner, options.ttlMs]);
      return integerReply(reply, "LOCK.REFRESH") === 1 ? "held" : "lost";
    };
    if (waitMs > 0) {
      // The lease began at the grant, somewhere within the wait: only a refresh sent now gives a time the
      // client can count from (the send time of the acquire may be longer ago than the TTL).
      sentAtMs = performance.now();
      if ((await this.idempotent(refresh)) === "lost") return null;
    }
    const keepalive = new Keepalive(`lock "${name}" (token ${token})`, options.ttlMs, sentAtMs, refresh);
    this.keepalives.add(keepalive);
    return {
      name,
      owner,
      token,
      signal: keepalive.signal,
      release: async () => {
        keepalive.stop();
        this.keepalives.delete(keepalive);
        return this.idempotent(async () => integerReply(await this.command(["LOCK.RELEASE", name, owner]), "LOCK.RELEASE") === 1);
      },
    };
  }

  /** Campaigns for `election` as `candidate` until stop(), calling back as leadership starts and stops. */
  campaign(election: string, candidate: string, options: CampaignOptions, callbacks: CampaignCallbacks): Campaign {
    const client = this;
    let stopped = false;
    let leading = false;
    let sessionId: number | null = null;
    let waiting: RespConnection | null = null;
    let current: Keepalive | null = null;
    let wakeStop: () => void = () => undefined;
    const stopRequested = new Promise<void>((resolve) => (wakeStop = resolve));
    const observer = callbacks.onNewLeader === undefined ? null : this.observe(election, callbacks.onNewLeader);

    const round = async (): Promise<void> => {
      const openedAtMs = performance.now();
      // SESSION.OPEN is not idempotent: it is not retried, the next round opens another.
      const id = integerReply(await this.command(["SESSION.OPEN", options.ttlMs, "LABEL", `${election}/${candidate}`]), "SESSION.OPEN");
      sessionId = id;
      const keepalive = new Keepalive(`leadership of "${election}"`, options.ttlMs, openedAtMs, async () => {
        try {
          await this.command(["SESSION.KEEPALIVE", id]);
          return "held";
        } catch (error) {
          if (error instanceof RaftlockError && error.code === "NOSESSION") return "lost";
          throw error;
        }
      });
      current = keepalive;
      this.keepalives.add(keepalive);
      try {
        let token: number | null = null;
        while (token === null && !stopped && !keepalive.signal.aborted) {
          const args = ["ELECT.CAMPAIGN", election, candidate, options.ttlMs, "WAIT", campaignWaitMsMax, ...(options.value === undefined ? [] : ["VALUE", options.value]), "SESSION", id];
          token = tokenOrNull(await this.blocking(args, campaignWaitMsMax, (connection) => (waiting = connection)), "ELECT.CAMPAIGN");
        }
        if (token === null || stopped || keepalive.signal.aborted) return;
        leading = true;
        const leadership = new AbortController();
        keepalive.signal.addEventListener("abort", () => leadership.abort(keepalive.signal.reason), { once: true });
        callbacks.onStartedLeading(token, leadership.signal);
        await Promise.race([stopRequested, new Promise((resolve) => leadership.signal.addEventListener("abort", resolve, { once: true }))]);
        // Stop the leader's work before anyone else can lead: stop() resigns only after this.
        if (!leadership.signal.aborted) leadership.abort(new RaftlockError("STOPPED", `campaign for "${election}" stopped`));
      } finally {
        keepalive.stop();
        this.keepalives.delete(keepalive);
        if (leading) {
          leading = false;
          callbacks.onStoppedLeading();
        }
      }
    };

    const run = async (): Promise<void> => {
      while (!stopped && !this.closed) {
        try {
          await round();
        } catch {
          if (!stopped) await pause(retryPauseMs); // no leader, connection lost: campaign again
        }
      }
    };
    const finished = run();

    const campaign: Campaign = {
      get leading() {
        return leading;
      },
      async proclaim(value: string): Promise<boolean> {
        if (!leading) return false;
        return integerReply(await client.command(["ELECT.PROCLAIM", election, candidate, value]), "ELECT.PROCLAIM") === 1;
      },
      async stop(): Promise<void> {
        if (stopped) return finished;
        stopped = true;
        const id = sessionId;
        (waiting as RespConnection | null)?.close(); // a waiting campaign is cancelled when its connection closes
        wakeStop();
        // onStoppedLeading has run (and the signal fired) before leadership passes on: no overlap.
        await finished;
        // Resign first, so the next candidate takes over in the same entry; then end the session.
        await client.command(["ELECT.RESIGN", election, candidate]).catch(() => undefined);
        if (id !== null) await client.command(["SESSION.CLOSE", id]).catch(() => undefined);
        (current as Keepalive | null)?.stop();
        observer?.close();
        client.campaigns.delete(campaign);
      },
    };
    this.campaigns.add(campaign);
    return campaign;
  }

  /** The election's current leader, or null. */
  async electionLeader(election: string): Promise<ElectionLeader | null> {
    return electionLeaderOf(await this.command(["ELECT.LEADER", election]));
  }

  /** Calls `onNewLeader` with the election's leader now and at every change (null: vacant). */
  observe(election: string, onNewLeader: (leader: ElectionLeader | null) => void): Watch {
    const deliver = changesOnly(onNewLeader);
    const listener: ChannelListener = {
      onEvent: (event) => {
        if (event.type === "election-leader") deliver({ candidate: String(event.candidate), value: (event.value as string | null) ?? null, token: Number(event.token) });
        else if (event.type === "election-vacant") deliver(null);
      },
      // Events may have been missed while (re)subscribing: read the state.
      onSubscribed: () => void this.electionLeader(election).then(deliver, () => undefined),
    };
    return { close: this.subscriptions().watch(`election:${election}`, listener) };
  }

  /** The Raft leader this node knows of, or null. */
  async raftLeader(): Promise<RaftLeader | null> {
    const reply = await this.command(["RAFT.LEADER"]);
    if (!Array.isArray(reply)) return null;
    return { id: String(reply[0]), term: Number(reply[1]) };
  }

  /** Calls `onLeader` with the cluster's Raft leader now and at every change (channel raft:leader). */
  watchLeader(onLeader: (leader: RaftLeader | null) => void): Watch {
    const deliver = changesOnly(onLeader);
    const listener: ChannelListener = {
      onEvent: (event) => {
        if (event.type === "raft-leader") deliver({ id: String(event.leaderId), term: Number(event.term) });
      },
      onSubscribed: () => void this.raftLeader().then(deliver, () => undefined),
    };
    return { close: this.subscriptions().watch("raft:leader", listener) };
  }

  /** Stops campaigns, keepalives and watches and closes every connection (held locks expire by TTL; release them first to free them now). */
  async close(): Promise<void> {
    await Promise.all([...this.campaigns].map((campaign) => campaign.stop()));
    this.closed = true;
    for (const keepalive of this.keepalives) keepalive.stop();
    this.keepalives.clear();
    this.subscriber?.close();
    for (const connection of this.dedicated) connection.close();
    const main = this.main;
    this.main = null;
    if (main !== null) (await main.catch(() => null))?.close();
  }

  private mainConnection(): Promise<RespConnection> {
    if (this.main !== null) {
      const main = this.main;
      return main.then((connection) => {
        if (!connection.closed) return connection;
        if (this.main === main) this.main = null;
        return this.mainConnection();
      });
    }
    const opening = RespConnection.open(this.options);
    this.main = opening;
    opening.catch(() => {
      if (this.main === opening) this.main = null;
    });
    return opening;
  }

  /** A blocking command on a connection of its own, so that it holds up nothing else; closing it cancels the wait on the server. */
  private async blocking(args: readonly (string | number)[], waitMs: number, onConnection?: (connection: RespConnection) => void): Promise<ReplyValue> {
    if (this.closed) throw new RaftlockError("CLOSED", "the client is closed");
    const connection = await RespConnection.open({ ...this.options, requestTimeoutMs: waitMs + blockingReplyGraceMs });
    this.dedicated.add(connection);
    onConnection?.(connection);
    try {
      return await connection.call(args);
    } finally {
      this.dedicated.delete(connection);
      connection.close();
    }
  }

  /** Runs an idempotent request, again after a broken connection (outcome unknown), up to idempotentAttemptsMax times. */
  private async idempotent<T>(attempt: () => Promise<T>): Promise<T> {
    for (let attemptNumber = 1; ; attemptNumber++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof RaftlockError) || error.code !== "CONNECTION" || attemptNumber >= idempotentAttemptsMax || this.closed) throw error;
        await pause(retryPauseMs);
      }
    }
  }

  private subscriptions(): Subscriber {
    if (this.closed) throw new RaftlockError("CLOSED", "the client is closed");
    this.subscriber ??= new Subscriber(this.options);
    return this.subscriber;
  }
}

/** Wraps `callback` so that it hears a value only when it differs from the last one it heard. */
function changesOnly<T>(callback: (value: T) => void): (value: T) => void {
  let last: string | undefined;
  return (value) => {
    const key = JSON.stringify(value);
    if (key === last) return;
    last = key;
    callback(value);
  };
}
