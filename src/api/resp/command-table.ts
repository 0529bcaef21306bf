// What a RESP command is to the server: a name, an arity, flags, and a handler that gets the connection's
// state and the arguments and returns a typed Reply. The node merges `genericCommands` with its own table.

import type { Address } from "../../config.js";
import type { LimitHitSink } from "../../limit-hits.js";
import { assert } from "../../util/assert.js";
import { err, type Reply, type RespProtocol } from "./reply.js";

/** Redis's command flags, as `COMMAND INFO` lists them. The server itself acts on `no_auth` only. */
export type CommandFlag =
  | "no_auth"
  | "fast"
  | "readonly"
  | "write"
  | "admin"
  | "pubsub"
  | "blocking"
  | "loading"
  | "stale"
  | "noscript"
  | "no_multi"
  | "allow_busy";

/**
 * Whether a connection authenticated with the read-only password may run a command: "read" commands
 * observe state or only change the connection's own settings; "write" commands change replicated state or
 * the cluster and are refused to it with `-NOPERM`.
 */
export type CommandAccess = "read" | "write";

export type CommandHandler = (ctx: CommandContext, args: readonly Buffer[]) => Reply | Promise<Reply>;

export interface CommandSpec {
  /**
   * Redis's convention, the command name counted: 2 = exactly the name and one argument, -2 = at least
   * that. A subcommand counts both names (`CLIENT SETNAME name` has arity 3).
   */
  readonly arity: number;
  /**
   * Gets every argument, the command name as typed at `args[0]` (subcommand at `args[1]`). May throw a
   * RespError for an expected failure. Optional only for a container whose arity requires a subcommand.
   */
  readonly handler?: CommandHandler;
  /** Lower-cased subcommand name to spec (`CLIENT SETNAME`, `COMMAND DOCS`). */
  readonly subcommands?: CommandTable;
  readonly flags?: readonly CommandFlag[];
  /**
   * Required of every command and subcommand, so that a new one is classified when it is written (a
   * container's own value applies only to its own handler).
   */
  readonly access: CommandAccess;
  /**
   * Allowed while a RESP2 connection is subscribed, when Redis allows only (P)SUBSCRIBE, (P)UNSUBSCRIBE,
   * PING, QUIT and RESET: a RESP2 client in that mode reads every array as a pub/sub message.
   */
  readonly allowedWhenSubscribed?: boolean;
  /** One line for `COMMAND DOCS` (redis-cli's `help <command>`). */
  readonly summary?: string;
  /** `COMMAND DOCS` group, e.g. "connection", "server", "lock". */
  readonly group?: string;
}

/** Lower-cased command name to spec. */
export type CommandTable = ReadonlyMap<string, CommandSpec>;

/** What the server tells handlers about itself. */
export interface RespServerInfo {
  /** The merged table the server dispatches on (what `COMMAND` describes). */
  readonly commands: CommandTable;
  address(): Address;
  readonly startedAtMs: number;
  readonly connectionsMax: number;
  connectionsOpen(): number;
  /** Told of each refusal by a named limit, by the server, its connections and handlers alike. */
  readonly limitHits: LimitHitSink;
}

/** One connection as handlers see it. */
export interface CommandContext {
  /** Unique per server for its lifetime; `CLIENT ID` and `HELLO` report it. */
  readonly clientId: number;
  /** Protocol of the replies; 2 until `HELLO 3`. Only HELLO changes it. */
  protocol: RespProtocol;
  /** `CLIENT SETNAME`; null when unnamed. */
  clientName: string | null;
  /** `CLIENT SETINFO LIB-NAME` / `LIB-VER`. */
  libraryName: string | null;
  libraryVersion: string | null;
  readonly remoteAddress: string;
  /** The client's IP address: whom `sessionsPerClientMax` and the AUTH failure limit count against. */
  readonly remoteHost: string;
  readonly connectedAtMs: number;
  /** True when no password is required or the client has authenticated. */
  readonly authenticated: boolean;
  readonly authRequired: boolean;
  /** False once the connection authenticated with the read-only password: "write" commands are refused. */
  readonly mayWrite: boolean;
  /**
   * Checks a username and password as Redis's AUTH does (one user, "default"), in constant time; on
   * success the connection is authenticated (read-only with the read-only password) and the result is
   * null, otherwise it is the error to answer: a wrong password, or too many failures from this address.
   * Without a configured password any password of "default" succeeds (Redis's `nopass`).
   */
  authenticate(username: string, password: Buffer): Reply | null;
  /**
   * The channels and patterns this connection is subscribed to, owned by the pub/sub commands. While it is
   * not empty the idle timeout does not apply, and a RESP2 connection may only run commands
   * `allowedWhenSubscribed`.
   */
  readonly subscriptions: Set<string>;
  /**
   * Sends data the client did not ask for (a pub/sub message). RESP3: a push, written at once, ahead of
   * replies still being computed. RESP2: a plain array, written after the replies to every request read
   * before, so a client never takes it for one of those replies.
   */
  push(reply: Reply): void;
  /** Runs `hook` once when the connection closes, for whatever reason; returns what removes the hook. */
  onClose(hook: () => void): () => void;
  /**
   * Closes the connection once the reply to this request has been written (QUIT); nothing after this
   * request is read. Only from the synchronous part of a handler.
   */
  closeAfterReply(): void;
  /** Cuts the connection at once, whatever is unwritten (a server shutdown, a watch that can no longer continue). */
  destroy(): void;
  readonly server: RespServerInfo;
}

/** `args[index]`, which the command's arity guarantees is there. */
export function argument(args: readonly Buffer[], index: number): Buffer {
  const value = args[index];
  assert(value !== undefined, `argument ${index} is missing although the arity check passed`);
  return value;
}

/** One table from several; a command name defined twice is a programming error. */
export function mergeCommandTables(...tables: CommandTable[]): CommandTable {
  const merged = new Map<string, CommandSpec>();
  for (const table of tables) {
    for (const [name, spec] of table) {
      if (merged.has(name)) throw new Error(`RESP command '${name}' is defined twice`);
      merged.set(name, spec);
    }
  }
  return merged;
}

/** Throws an Error naming the first malformed entry of `table` (checked once, when the server starts). */
export function validateCommandTable(table: CommandTable, prefix = ""): void {
  for (const [name, spec] of table) {
    const fullName = prefix + name;
    if (name === "" || name !== name.toLowerCase() || /\s/.test(name)) {
      throw new Error(`RESP command name '${fullName}' must be lower-case, without spaces`);
    }
    const minimum = prefix === "" ? 1 : 2;
    if (!Number.isSafeInteger(spec.arity) || Math.abs(spec.arity) < minimum) {
      throw new Error(`RESP command '${fullName}' has arity ${spec.arity}; it must count the command name${prefix === "" ? "" : " and the subcommand"}`);
    }
    if (spec.access !== "read" && spec.access !== "write") {
      throw new Error(`RESP command '${fullName}' must say whether a read-only connection may run it (access "read" or "write")`);
    }
    if (spec.handler === undefined && (spec.subcommands === undefined || spec.arity > -2)) {
      throw new Error(`RESP command '${fullName}' has no handler, so it needs subcommands and an arity of -2 or less`);
    }
    if (spec.subcommands !== undefined) {
      if (prefix !== "") throw new Error(`RESP subcommand '${fullName}' cannot have subcommands of its own`);
      validateCommandTable(spec.subcommands, `${name}|`);
    }
  }
}

/** The command to run for `args`, its full name (`client|setname`), or the error Redis 7 would answer. */
export type CommandLookup = { readonly spec: CommandSpec; readonly handler: CommandHandler; readonly fullName: string } | { readonly error: Reply };

/** Finds the command `args` names and checks its arity, worded as Redis 7 does. */
export function lookupCommand(table: CommandTable, args: readonly Buffer[]): CommandLookup {
  const typedName = argument(args, 0).toString();
  const name = typedName.toLowerCase();
  const container = table.get(name);
  if (container === undefined) return { error: err(`unknown command '${typedName.slice(0, 128)}', with args beginning with: ${argumentsPreview(args)}`) };
  let spec = container;
  let fullName = name;
  const subcommandArgument = args[1];
  if (container.subcommands !== undefined && subcommandArgument !== undefined) {
    const typedSubcommand = subcommandArgument.toString();
    const subcommand = container.subcommands.get(typedSubcommand.toLowerCase());
    if (subcommand === undefined) {
      return { error: err(`unknown subcommand '${typedSubcommand.slice(0, 128)}'. Try ${typedName.toUpperCase()} HELP.`) };
    }
    spec = subcommand;
    fullName = `${name}|${typedSubcommand.toLowerCase()}`;
  }
  const arityOk = spec.arity > 0 ? args.length === spec.arity : args.length >= -spec.arity;
  if (!arityOk || spec.handler === undefined) return { error: arityError(fullName) };
  return { spec, handler: spec.handler, fullName };
}

/** `-ERR wrong number of arguments for 'lock.acquire' command`; handlers use it for argument counts the arity cannot express. */
export function arityError(fullName: string): Reply {
  return err(`wrong number of arguments for '${fullName}' command`);
}

/** Redis's `'a' 'b' ` list after "with args beginning with:", at most about 128 characters. */
function argumentsPreview(args: readonly Buffer[]): string {
  let preview = "";
  for (let index = 1; index < args.length && preview.length < 128; index++) {
    preview += `'${argument(args, index).toString().slice(0, 128 - preview.length)}' `;
  }
  return preview;
}

/**
 * A whole number argument written as Redis's string2ll accepts it (no sign but `-`, no leading zeros,
 * no spaces), or null. Bounded to safe integers.
 */
export function parseIntegerArgument(value: Buffer): number | null {
  const text = value.toString("latin1");
  if (!/^-?(0|[1-9]\d{0,15})$/.test(text)) return null;
  const parsed = Number(text);
  return Number.isSafeInteger(parsed) ? parsed : null;
}
