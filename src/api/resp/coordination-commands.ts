// LOCK.*, FENCE.CHECK, SESSION.*, ELECT.*, RAFT.* and the per-connection read mode (api.md, RESP).
import { ttlMsMessage } from "../../fsm/commands.js";
import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import { type Consistency, CoordinationError, type CoordinationService, waitMsMax } from "../../node/coordination-service.js";
import type { RaftNode } from "../../node/node.js";
import { NodeError } from "../../node/forwarding.js";
import { argument, type CommandAccess, type CommandContext, type CommandHandler, type CommandSpec, type CommandTable, parseIntegerArgument } from "./command-table.js";
import { array, bulk, bulkOrNull, integer, map, nullArray, nullBulk, ok, type Reply, RespError } from "./reply.js";

/** Each connection's read mode: `READONLY` / `CONSISTENCY serializable` answer reads from local state. */
const readModes = new WeakMap<CommandContext, Consistency>();

function consistencyOf(ctx: CommandContext): Consistency {
  return readModes.get(ctx) ?? "linearizable";
}

/** Errors of the layers below, in api.md's words. */
function asRespError(error: unknown, commitTimeoutMs: number): unknown {
  if (error instanceof CoordinationError) return new RespError(error.code, error.message);
  if (error instanceof NodeError) {
    if (error.code === "NOLEADER") return new RespError("NOLEADER", "no leader is elected yet; retry");
    if (error.code === "TIMEOUT" || error.code === "LEADERLOST") {
      return new RespError("TIMEOUT", `the cluster did not commit within ${commitTimeoutMs} ms; outcome unknown`);
    }
    return new RespError(error.code, error.message);
  }
  return error;
}

function translated(handler: CommandHandler, commitTimeoutMs: number): CommandHandler {
  return async (ctx, args) => {
    try {
      return await handler(ctx, args);
    } catch (error) {
      throw asRespError(error, commitTimeoutMs);
    }
  };
}

function text(args: readonly Buffer[], index: number): string {
  return argument(args, index).toString("utf8");
}

function nonNegativeInteger(args: readonly Buffer[], index: number, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const value = parseIntegerArgument(argument(args, index));
  if (value === null || value < 0 || value > max) throw new RespError("ERR", `${what} must be an integer between 0 and ${max}`);
  return value;
}

/** Options after the positional arguments: `WAIT ms`, `SESSION id`, `VALUE v`, as keyword/value pairs. */
function options(args: readonly Buffer[], from: number, allowed: readonly string[], command: string): Map<string, number> {
  const positions = new Map<string, number>();
  for (let index = from; index < args.length; index += 2) {
    const keyword = text(args, index).toUpperCase();
    if (!allowed.includes(keyword) || index + 1 >= args.length) {
      throw new RespError("ERR", `syntax error in '${command}': expected ${allowed.join(" or ")} followed by a value`);
    }
    positions.set(keyword, index + 1);
  }
  return positions;
}

/** The coordination commands, served by `service` over the state machine `fsm` of `node`. */
export function coordinationCommandTable(service: CoordinationService, fsm: CoordinationStateMachine, node: RaftNode): CommandTable {
  const ttlOf = (args: readonly Buffer[], index: number): number => {
    const value = parseIntegerArgument(argument(args, index));
    if (value === null) throw new RespError("ERR", ttlMsMessage(fsm.limits, JSON.stringify(text(args, index))));
    return value;
  };
  /**
   * Runs a request that may wait with a signal that fires if the connection closes meanwhile (a waiter
   * whose connection closes is cancelled through the log). A request that does not wait needs none, and
   * the hook goes when the request settles: one per request would pile up on a long-lived connection.
   */
  const whileConnected = async <T>(ctx: CommandContext, waitMs: number, run: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> => {
    if (waitMs === 0) return run(undefined);
    const controller = new AbortController();
    const removeHook = ctx.onClose(() => controller.abort());
    try {
      return await run(controller.signal);
    } finally {
      removeHook();
    }
  };
  const command = (arity: number, access: CommandAccess, summary: string, handler: CommandHandler): CommandSpec => ({
    arity,
    access,
    summary,
    group: "raftlock",
    handler: translated(handler, node.config.commitTimeoutMs),
  });

  const table = new Map<string, CommandSpec>([
    [
      "lock.acquire",
      command(-4, "write", "LOCK.ACQUIRE name owner ttl-ms [WAIT ms] [SESSION id]: a fencing token, or nil", async (ctx, args) => {
        const extra = options(args, 4, ["WAIT", "SESSION"], "lock.acquire");
        const waitAt = extra.get("WAIT");
        const sessionAt = extra.get("SESSION");
        const waitMs = waitAt === undefined ? 0 : nonNegativeInteger(args, waitAt, "WAIT ms", waitMsMax);
        const sessionId = sessionAt === undefined ? undefined : nonNegativeInteger(args, sessionAt, "SESSION id");
        const [name, owner, ttlMs] = [text(args, 1), text(args, 2), ttlOf(args, 3)];
        const grant = await whileConnected(ctx, waitMs, (signal) => service.acquireLock(name, owner, ttlMs, waitMs, sessionId, signal, ctx.remoteHost));
        return grant === null ? nullBulk : integer(grant.token);
      }),
    ],
    ["lock.release", command(3, "write", "LOCK.RELEASE name owner: 1 released, 0 not held by owner", async (_ctx, args) => integer((await service.releaseLock(text(args, 1), text(args, 2))) ? 1 : 0))],
    [
      "lock.refresh",
      command(4, "write", "LOCK.REFRESH name owner ttl-ms: 1 refreshed, 0 not held by owner", async (_ctx, args) => integer((await service.refreshLock(text(args, 1), text(args, 2), ttlOf(args, 3))) ? 1 : 0)),
    ],
    [
      "lock.info",
      command(2, "read", "LOCK.INFO name: owner, token, ttl-ms, session, waiters; nil when free", async (ctx, args) => {
        const info = await service.lockInfo(text(args, 1), consistencyOf(ctx));
        if (info === undefined) return nullArray;
        return map([
          ["owner", bulk(info.owner)],
          ["token", integer(info.token)],
          ["ttl-ms", integer(Math.round(info.remainingMs ?? info.ttlMs))],
          ["session", info.implicitLease ? nullBulk : integer(info.sessionId)],
          ["waiters", integer(info.waiters)],
        ]);
      }),
    ],
    [
      "fence.check",
      command(3, "read", "FENCE.CHECK name token: 1 if token is the lock's current grant", async (ctx, args) =>
        integer((await service.fenceCheck(text(args, 1), nonNegativeInteger(args, 2, "token"), consistencyOf(ctx))) ? 1 : 0),
      ),
    ],
    [
      "session.open",
      command(-2, "write", "SESSION.OPEN ttl-ms [LABEL text]: a session id", async (ctx, args) => {
        const labelAt = options(args, 2, ["LABEL"], "session.open").get("LABEL");
        return integer(await service.openSession(ttlOf(args, 1), labelAt === undefined ? undefined : text(args, labelAt), ctx.remoteHost));
      }),
    ],
    ["session.keepalive", command(2, "write", "SESSION.KEEPALIVE id: remaining ms", async (_ctx, args) => integer(Math.round(await service.keepalive(nonNegativeInteger(args, 1, "session id")))))],
    ["session.close", command(2, "write", "SESSION.CLOSE id: 1 closed, 0 unknown", async (_ctx, args) => integer((await service.closeSession(nonNegativeInteger(args, 1, "session id"))) ? 1 : 0))],
    [
      "elect.campaign",
      command(-4, "write", "ELECT.CAMPAIGN election candidate ttl-ms [WAIT ms] [VALUE v] [SESSION id]: a token when leader, nil on timeout", async (ctx, args) => {
        const extra = options(args, 4, ["WAIT", "VALUE", "SESSION"], "elect.campaign");
        const waitAt = extra.get("WAIT");
        const valueAt = extra.get("VALUE");
        const sessionAt = extra.get("SESSION");
        const [election, candidate, ttlMs] = [text(args, 1), text(args, 2), ttlOf(args, 3)];
        const waitMs = waitAt === undefined ? 0 : nonNegativeInteger(args, waitAt, "WAIT ms", waitMsMax);
        const value = valueAt === undefined ? undefined : text(args, valueAt);
        const sessionId = sessionAt === undefined ? undefined : nonNegativeInteger(args, sessionAt, "SESSION id");
        const grant = await whileConnected(ctx, waitMs, (signal) => service.campaign(election, candidate, ttlMs, waitMs, value, sessionId, signal, ctx.remoteHost));
        return grant === null ? nullBulk : integer(grant.token);
      }),
    ],
    ["elect.proclaim", command(4, "write", "ELECT.PROCLAIM election candidate value: 1, or 0 if not leader", async (_ctx, args) => integer((await service.proclaim(text(args, 1), text(args, 2), text(args, 3))) ? 1 : 0))],
    ["elect.resign", command(3, "write", "ELECT.RESIGN election candidate: 1 or 0", async (_ctx, args) => integer((await service.resign(text(args, 1), text(args, 2))) ? 1 : 0))],
    [
      "elect.leader",
      command(2, "read", "ELECT.LEADER election: [candidate, value, token], or nil", async (ctx, args) => {
        const leader = await service.electionLeader(text(args, 1), consistencyOf(ctx));
        return leader === undefined ? nullArray : array([bulk(leader.candidate), bulkOrNull(leader.value), integer(leader.token)]);
      }),
    ],
    [
      "raft.leader",
      command(1, "read", "RAFT.LEADER: [leaderId, term], or nil when no leader is known", () => {
        const leader = node.leader();
        return leader === null ? nullArray : array([bulk(leader.id), integer(leader.term)]);
      }),
    ],
    [
      "raft.status",
      command(1, "read", "RAFT.STATUS: id, role, term, leader, commit, applied, members", () => {
        const status = node.localStatus();
        return map([
          ["id", bulk(status.id)],
          ["role", bulk(status.role ?? "unknown")],
          ["term", integer(status.term ?? 0)],
          ["leader", bulkOrNull(status.leader ?? null)],
          ["commit", integer(status.commitIndex ?? 0)],
          ["applied", integer(status.appliedIndex ?? 0)],
          ["members", array(node.localMembership().members.map((member) => bulk(member.id)))],
        ]);
      }),
    ],
    // Redis lock compatibility (api.md): `SET key value NX PX ms` is an acquire with owner = value.
    [
      "set",
      command(-3, "write", "SET key value NX PX ms | NX EX s: acquire a lock (owner = value); OK or nil", async (ctx, args) => {
        let nx = false;
        let ttl: number | null = null;
        for (let index = 3; index < args.length; index++) {
          const keyword = text(args, index).toUpperCase();
          if (keyword === "NX") nx = true;
          else if ((keyword === "PX" || keyword === "EX") && index + 1 < args.length && ttl === null) {
            const amount = parseIntegerArgument(argument(args, ++index));
            if (amount === null || amount <= 0) throw new RespError("ERR", "invalid expire time in 'set' command");
            ttl = keyword === "EX" ? amount * 1000 : amount;
          } else {
            throw new RespError("ERR", "syntax error");
          }
        }
        if (!nx || ttl === null) throw new RespError("ERR", "raftlock supports SET only as a lock acquire: SET key value NX PX ms (or NX EX s)");
        const grant = await service.acquireLock(text(args, 1), text(args, 2), ttl, 0, undefined, undefined, ctx.remoteHost);
        return grant === null ? nullBulk : ok;
      }),
    ],
    [
      "get",
      command(2, "read", "GET key: the lock's owner, or nil", async (ctx, args) => {
        const info = await service.lockInfo(text(args, 1), consistencyOf(ctx));
        return info === undefined ? nullBulk : bulk(info.owner);
      }),
    ],
    [
      "pttl",
      command(2, "read", "PTTL key: the lock's remaining ms, -2 when free", async (ctx, args) => {
        const info = await service.lockInfo(text(args, 1), consistencyOf(ctx));
        return integer(info === undefined ? -2 : Math.max(0, Math.round(info.remainingMs ?? info.ttlMs)));
      }),
    ],
    [
      "del",
      command(-2, "write", "DEL key [key ...]: force-release locks (admin); how many were held", async (_ctx, args) => {
        let released = 0;
        for (let index = 1; index < args.length; index++) if (await service.forceReleaseLock(text(args, index))) released++;
        return integer(released);
      }),
    ],
    ["readonly", command(1, "read", "READONLY: answer reads from this node's state (serializable)", (ctx) => setReadMode(ctx, "serializable"))],
    ["readwrite", command(1, "read", "READWRITE: linearizable reads (the default)", (ctx) => setReadMode(ctx, "linearizable"))],
    [
      "consistency",
      command(2, "read", "CONSISTENCY linearizable|serializable: this connection's read mode", (ctx, args) => {
        const mode = text(args, 1).toLowerCase();
        if (mode !== "linearizable" && mode !== "serializable") throw new RespError("ERR", `CONSISTENCY must be linearizable or serializable (got "${mode}")`);
        return setReadMode(ctx, mode);
      }),
    ],
  ]);
  return table;
}

function setReadMode(ctx: CommandContext, mode: Consistency): Reply {
  readModes.set(ctx, mode);
  return ok;
}
