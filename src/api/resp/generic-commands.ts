// The connection commands every Redis client sends or expects, answered as Redis 7 does: enough for
// redis-cli, ioredis and node-redis to connect with their defaults. The node merges this table with its
// own (mergeCommandTables).
//
// At connect (tests in test/api/resp/clients.test.ts): ioredis 5 sends CLIENT SETINFO LIB-VER and
// LIB-NAME, then INFO for its ready check; ioredis 6 sends HELLO 3 first, then the same. node-redis 5
// sends CLIENT SETINFO LIB-VER and LIB-NAME, preceded by HELLO <n> when given `RESP: n`; with RESP 3 it
// adds CLIENT MAINT_NOTIFICATIONS, which we answer "unknown subcommand" as Redis 7 does, and it ignores.
// redis-cli sends HELLO 3 with -3, and COMMAND DOCS when interactive. A password adds AUTH (HELLO … AUTH
// with HELLO), a client name CLIENT SETNAME (HELLO … SETNAME), a database other than 0 SELECT.

import { argument, arityError, type CommandContext, type CommandSpec, type CommandTable, parseIntegerArgument } from "./command-table.js";
import { commandCommand, type InfoSection, infoCommand, redisCompatibleVersion } from "./introspection.js";
import { array, bulk, bulkOrNull, err, errorReply, integer, map, ok, type Reply, status } from "./reply.js";

/** Longest client name or library name/version a connection keeps (`CLIENT SETNAME`, `CLIENT SETINFO`). */
export const clientAttributeBytesMax = 256;

const ping: CommandSpec = {
  arity: -1,
  access: "read",
  flags: ["fast"],
  allowedWhenSubscribed: true,
  summary: "Returns the server's liveliness response.",
  group: "connection",
  handler: (ctx, args) => {
    if (args.length > 2) return arityError("ping");
    const message = args[1];
    // A RESP2 client in subscribed mode reads every array as a message; Redis answers ["pong", message].
    if (ctx.protocol === 2 && ctx.subscriptions.size > 0) return array([bulk("pong"), bulk(message ?? "")]);
    return message === undefined ? status("PONG") : bulk(message);
  },
};

const echo: CommandSpec = {
  arity: 2,
  access: "read",
  flags: ["fast"],
  summary: "Returns the given string.",
  group: "connection",
  handler: (_ctx, args) => bulk(argument(args, 1)),
};

const quit: CommandSpec = {
  arity: -1,
  access: "read",
  flags: ["no_auth", "fast", "loading", "stale", "allow_busy"],
  allowedWhenSubscribed: true,
  summary: "Closes the connection.",
  group: "connection",
  handler: (ctx) => {
    ctx.closeAfterReply();
    return ok;
  },
};

const auth: CommandSpec = {
  arity: -2,
  access: "read",
  flags: ["no_auth", "fast", "loading", "stale", "noscript", "allow_busy"],
  summary: "Authenticates the connection.",
  group: "connection",
  handler: (ctx, args) => {
    if (args.length > 3) return err("syntax error");
    if (args.length === 2 && !ctx.authRequired) {
      return err("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    const username = args.length === 3 ? argument(args, 1).toString() : "default";
    return ctx.authenticate(username, argument(args, args.length - 1)) ?? ok;
  },
};

const hello: CommandSpec = {
  arity: -1,
  access: "read",
  flags: ["no_auth", "fast", "loading", "stale", "noscript", "allow_busy"],
  summary: "Handshakes with the server: protocol version, authentication, client name.",
  group: "connection",
  handler: (ctx, args) => {
    let protocol: 2 | 3 | null = null;
    if (args.length >= 2) {
      const version = parseIntegerArgument(argument(args, 1));
      if (version === null) return err("Protocol version is not an integer or out of range");
      if (version !== 2 && version !== 3) return errorReply("NOPROTO", "unsupported protocol version");
      protocol = version;
    }
    for (let index = 2; index < args.length; index++) {
      const option = argument(args, index).toString();
      const argumentsLeft = args.length - 1 - index;
      if (option.toLowerCase() === "auth" && argumentsLeft >= 2) {
        const refusal = ctx.authenticate(argument(args, index + 1).toString(), argument(args, index + 2));
        if (refusal !== null) return refusal;
        index += 2;
      } else if (option.toLowerCase() === "setname" && argumentsLeft >= 1) {
        const failure = setClientName(ctx, argument(args, index + 1));
        if (failure !== null) return failure;
        index += 1;
      } else {
        return err(`Syntax error in HELLO option '${option}'`);
      }
    }
    if (!ctx.authenticated) {
      return errorReply(
        "NOAUTH",
        "HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
      );
    }
    // The reply to HELLO 3 is already RESP3: the server encodes it after the handler switched.
    if (protocol !== null) ctx.protocol = protocol;
    return map([
      ["server", bulk("raftlock")],
      ["version", bulk(redisCompatibleVersion)],
      ["proto", integer(ctx.protocol)],
      ["id", integer(ctx.clientId)],
      // Not "cluster": cluster-aware clients would then expect CLUSTER SLOTS and MOVED redirections.
      ["mode", bulk("standalone")],
      ["role", bulk("master")],
      ["modules", array([])],
    ]);
  },
};

const select: CommandSpec = {
  arity: 2,
  access: "read",
  flags: ["loading", "stale", "fast"],
  summary: "Changes the selected database; raftlock has only database 0.",
  group: "connection",
  handler: (_ctx, args) => {
    const index = parseIntegerArgument(argument(args, 1));
    if (index === null) return err("value is not an integer or out of range");
    return index === 0 ? ok : err("DB index is out of range");
  },
};

const clientHelp = array(
  [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
  ].map(status),
);

const subcommandsOfClient: CommandTable = new Map<string, CommandSpec>([
  [
    "setname",
    {
      arity: 3,
      access: "read",
      flags: ["noscript", "loading", "stale"],
      summary: "Sets the connection name.",
      handler: (ctx, args) => setClientName(ctx, argument(args, 2)) ?? ok,
    },
  ],
  ["getname", { arity: 2, access: "read", flags: ["noscript", "loading", "stale"], summary: "Returns the name of the connection.", handler: (ctx) => bulkOrNull(ctx.clientName) }],
  ["id", { arity: 2, access: "read", flags: ["noscript", "loading", "stale"], summary: "Returns the unique client ID of the connection.", handler: (ctx) => integer(ctx.clientId) }],
  [
    "setinfo",
    {
      arity: 4,
      access: "read",
      flags: ["noscript", "loading", "stale", "allow_busy"],
      summary: "Sets information specific to the client or connection.",
      handler: (ctx, args) => {
        const attribute = argument(args, 2).toString();
        const value = argument(args, 3);
        const field = attribute.toLowerCase();
        if (field !== "lib-name" && field !== "lib-ver") return err(`Unrecognized option '${attribute}'`);
        const problem = clientAttributeProblem(value);
        if (problem === "characters") return err(`${attribute} cannot contain spaces, newlines or special characters.`);
        if (problem === "length") return err(`${attribute} is at most ${clientAttributeBytesMax} bytes`);
        if (field === "lib-name") ctx.libraryName = clientAttributeValue(value);
        else ctx.libraryVersion = clientAttributeValue(value);
        return ok;
      },
    },
  ],
  [
    "info",
    {
      arity: 2,
      access: "read",
      flags: ["noscript", "loading", "stale"],
      summary: "Returns information about the connection.",
      handler: (ctx) => ({ type: "verbatim", format: "txt", value: `${clientInfoLine(ctx)}\n` }),
    },
  ],
  ["help", { arity: 2, access: "read", flags: ["loading", "stale"], summary: "Returns helpful text about the different subcommands.", handler: () => clientHelp }],
]);

const client: CommandSpec = {
  arity: -2,
  access: "read",
  summary: "A container for client connection commands.",
  group: "connection",
  subcommands: subcommandsOfClient,
};

/** Sets the client name (empty clears it), or returns the error Redis gives for a name it refuses. */
function setClientName(ctx: CommandContext, name: Buffer): Reply | null {
  const problem = clientAttributeProblem(name);
  if (problem === "characters") return err("Client names cannot contain spaces, newlines or special characters.");
  if (problem === "length") return err(`Client names are at most ${clientAttributeBytesMax} bytes`);
  ctx.clientName = clientAttributeValue(name);
  return null;
}

/**
 * Why Redis would refuse `value` as a client name or library attribute: a character outside `!`..`~`
 * (CLIENT INFO must stay splittable on spaces), or more than `clientAttributeBytesMax` bytes. Null when fine.
 */
function clientAttributeProblem(value: Buffer): "characters" | "length" | null {
  if (value.length > clientAttributeBytesMax) return "length";
  for (const byte of value) if (byte < 0x21 || byte > 0x7e) return "characters";
  return null;
}

/** The attribute to keep: an empty value clears it, as in Redis. */
function clientAttributeValue(value: Buffer): string | null {
  return value.length === 0 ? null : value.toString("latin1");
}

function clientInfoLine(ctx: CommandContext): string {
  const ageSeconds = Math.floor((Date.now() - ctx.connectedAtMs) / 1000);
  return [
    `id=${ctx.clientId}`,
    `addr=${ctx.remoteAddress}`,
    `name=${ctx.clientName ?? ""}`,
    `age=${ageSeconds}`,
    "db=0",
    `sub=${ctx.subscriptions.size}`,
    "user=default",
    `resp=${ctx.protocol}`,
    `lib-name=${ctx.libraryName ?? ""}`,
    `lib-ver=${ctx.libraryVersion ?? ""}`,
  ].join(" ");
}

export interface GenericCommandOptions {
  /** INFO sections the node adds after Server, Clients and Persistence (e.g. its Raft state). */
  readonly infoSections?: () => readonly InfoSection[];
}

/** PING, ECHO, QUIT, AUTH, HELLO, SELECT, CLIENT, COMMAND and INFO. */
export function genericCommandTable(options: GenericCommandOptions = {}): CommandTable {
  return new Map<string, CommandSpec>([
    ["ping", ping],
    ["echo", echo],
    ["quit", quit],
    ["auth", auth],
    ["hello", hello],
    ["select", select],
    ["client", client],
    ["command", commandCommand],
    ["info", infoCommand(options.infoSections ?? (() => []))],
  ]);
}

export const genericCommands: CommandTable = genericCommandTable();
