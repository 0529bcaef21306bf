// EVAL / EVALSHA / SCRIPT LOAD of the standard Redis lock scripts (api.md): compare-and-delete and
// compare-and-pexpire, recognised by their text, run as LOCK.RELEASE and LOCK.REFRESH. raftlock runs no Lua.
// Recognised: the classic scripts of the Redis docs, node-redlock 4's, and redis-py's `Lock`.
import { createHash } from "node:crypto";
import type { CoordinationService } from "../../node/coordination-service.js";
import { argument, type CommandAccess, type CommandSpec, type CommandTable, parseIntegerArgument } from "./command-table.js";
import { bulk, integer, RespError } from "./reply.js";

/**
 * release/refresh: compare-and-delete and compare-and-pexpire (the classic scripts, redis-py's release and
 * reacquire); the `redlock-*` kinds: node-redlock 4's scripts (one key); extend: redis-py's extend, which
 * adds to the time left when its third argument is "0" and replaces it otherwise.
 */
type ScriptKind = "release" | "refresh" | "extend" | "redlock-acquire" | "redlock-release" | "redlock-extend";

/** Scripts remembered by SHA1 for EVALSHA; a named maximum keeps a client from growing it without bound. */
export const scriptsKnownMax = 1024;

/** The scripts' text with case, quotes and whitespace folded, so that formatting variants match. */
const knownScripts = new Map<string, ScriptKind>([
  [normalize(`if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end`), "release"],
  [normalize(`if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("pexpire",KEYS[1],ARGV[2]) else return 0 end`), "refresh"],
  [
    normalize(`for i, key in ipairs(KEYS) do if redis.call("exists", key) == 1 then return 0 end end
      for i, key in ipairs(KEYS) do redis.call("set", key, ARGV[1], "PX", ARGV[2]) end return #KEYS`),
    "redlock-acquire",
  ],
  [
    normalize(`local count = 0 for i, key in ipairs(KEYS) do if redis.call("get", key) == ARGV[1] then redis.pcall("del", key)
      count = count + 1 end end return count`),
    "redlock-release",
  ],
  [
    normalize(`for i, key in ipairs(KEYS) do if redis.call("get", key) ~= ARGV[1] then return 0 end end
      for i, key in ipairs(KEYS) do redis.call("set", key, ARGV[1], "PX", ARGV[2]) end return #KEYS`),
    "redlock-extend",
  ],
  [
    normalize(`local token = redis.call('get', KEYS[1]) if not token or token ~= ARGV[1] then return 0 end
      redis.call('del', KEYS[1]) return 1`),
    "release",
  ],
  [
    normalize(`local token = redis.call('get', KEYS[1]) if not token or token ~= ARGV[1] then return 0 end
      redis.call('pexpire', KEYS[1], ARGV[2]) return 1`),
    "refresh",
  ],
  [
    normalize(`local token = redis.call('get', KEYS[1]) if not token or token ~= ARGV[1] then return 0 end
      local expiration = redis.call('pttl', KEYS[1]) if not expiration then expiration = 0 end
      if expiration < 0 then return 0 end
      local newttl = ARGV[2] if ARGV[3] == "0" then newttl = ARGV[2] + expiration end
      redis.call('pexpire', KEYS[1], newttl) return 1`),
    "extend",
  ],
]);

function normalize(script: string): string {
  return script.replace(/--[^\n]*/g, "").toLowerCase().replace(/'/g, '"').replace(/\s+/g, "");
}

function sha1Of(script: Buffer): string {
  return createHash("sha1").update(script).digest("hex");
}

function kindOf(script: Buffer): ScriptKind {
  const kind = knownScripts.get(normalize(script.toString("utf8")));
  if (kind === undefined) throw new RespError("ERR", "unsupported script: raftlock runs only the standard compare-and-delete and compare-and-pexpire lock scripts");
  return kind;
}

/** EVAL, EVALSHA and SCRIPT LOAD/EXISTS over the coordination service. */
export function scriptCommandTable(service: CoordinationService): CommandTable {
  const bySha = new Map<string, ScriptKind>();
  const remember = (script: Buffer): { sha: string; kind: ScriptKind } => {
    const kind = kindOf(script);
    const sha = sha1Of(script);
    if (!bySha.has(sha) && bySha.size < scriptsKnownMax) bySha.set(sha, kind);
    return { sha, kind };
  };
  /** `client`: the caller's address, against which an acquire's implicit lease is counted. */
  const run = async (kind: ScriptKind, args: readonly Buffer[], from: number, client: string): Promise<number> => {
    const numkeys = parseIntegerArgument(argument(args, from));
    // One key only: several keys would need all-or-nothing across locks, which no command offers.
    if (numkeys !== 1 || args.length < from + 3) throw new RespError("ERR", "raftlock runs the lock scripts for one key at a time, with the owner (and a ttl in ms to acquire or extend)");
    const name = argument(args, from + 1).toString("utf8");
    const owner = argument(args, from + 2).toString("utf8");
    if (kind === "release" || kind === "redlock-release") return (await service.releaseLock(name, owner)) ? 1 : 0;
    const ttlMs = args.length > from + 3 ? parseIntegerArgument(argument(args, from + 3)) : null;
    if (ttlMs === null) throw new RespError("ERR", "this lock script needs a ttl in ms as its second argument");
    if (kind === "redlock-acquire") return (await service.acquireLock(name, owner, ttlMs, 0, undefined, undefined, client)) === null ? 0 : 1;
    if (kind === "extend" && args[from + 4]?.toString("latin1") === "0") {
      // Add to the time left, as the leader counts it. A lease with no time left may be expiring
      // already (the expiry entry in flight): as with the script's vanished key, the answer is 0. The
      // refresh itself is keyed on the owner, so a lock that changed hands in between is never extended.
      const info = await service.lockInfo(name, "linearizable");
      const remainingMs = Math.floor(info?.remainingMs ?? 0);
      if (info?.owner !== owner || remainingMs <= 0) return 0;
      return (await service.refreshLock(name, owner, remainingMs + ttlMs)) ? 1 : 0;
    }
    return (await service.refreshLock(name, owner, ttlMs)) ? 1 : 0;
  };
  const spec = (arity: number, access: CommandAccess, summary: string, handler: CommandSpec["handler"]): CommandSpec => ({ arity, access, summary, group: "scripting", handler });
  return new Map<string, CommandSpec>([
    ["eval", spec(-3, "write", "EVAL script numkeys key owner [ttl-ms]: the standard unlock / extend lock scripts", async (ctx, args) => integer(await run(remember(argument(args, 1)).kind, args, 2, ctx.remoteHost)))],
    [
      "evalsha",
      spec(-3, "write", "EVALSHA sha1 numkeys key owner [ttl-ms]", async (ctx, args) => {
        const kind = bySha.get(argument(args, 1).toString("latin1").toLowerCase());
        if (kind === undefined) throw new RespError("NOSCRIPT", "No matching script. Please use EVAL.");
        return integer(await run(kind, args, 2, ctx.remoteHost));
      }),
    ],
    [
      "script",
      {
        arity: -2,
        access: "read",
        summary: "SCRIPT LOAD|EXISTS",
        group: "scripting",
        subcommands: new Map<string, CommandSpec>([
          ["load", spec(3, "read", "SCRIPT LOAD script: its SHA1, for the standard lock scripts", (_ctx, args) => bulk(remember(argument(args, 2)).sha))],
          ["exists", spec(-3, "read", "SCRIPT EXISTS sha1...: 1 for each known script", (_ctx, args) => ({ type: "array", items: args.slice(2).map((sha) => integer(bySha.has(sha.toString("latin1").toLowerCase()) ? 1 : 0)) }))],
        ]),
      },
    ],
  ]);
}
