// `COMMAND` and `INFO`: what clients and redis-cli ask to learn about the server. The shapes follow Redis
// 7; the content is ours.

import { readFileSync } from "node:fs";
import { arch, release, type } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CommandContext, CommandSpec, CommandTable } from "./command-table.js";
import { array, bulk, integer, map, nullBulk, type Reply, status } from "./reply.js";

/**
 * The Redis version we answer to `HELLO` and `INFO` (`redis_version`): clients compare it against Redis
 * releases to decide what they may send. We implement 7.2's connection commands (CLIENT SETINFO is 7.2).
 */
export const redisCompatibleVersion = "7.2.0";
/** This package's version (`raftlock_version` in INFO), read from its package.json. */
export const raftlockVersion = findPackageVersion();

/** One `# Name` section of INFO: `field:value` lines. */
export interface InfoSection {
  readonly name: string;
  readonly fields: readonly (readonly [string, string | number])[];
}

const subcommandsOfCommand: CommandTable = new Map<string, CommandSpec>([
  ["count", { arity: 2, access: "read", flags: ["loading", "stale"], summary: "Returns a count of commands.", handler: (ctx) => integer(ctx.server.commands.size) }],
  ["list", { arity: 2, access: "read", flags: ["loading", "stale"], summary: "Returns a list of command names.", handler: (ctx) => array([...ctx.server.commands.keys()].map((name) => bulk(name))) }],
  [
    "info",
    {
      arity: -2,
      access: "read",
      flags: ["loading", "stale"],
      summary: "Returns information about one, multiple or all commands.",
      handler: (ctx, args) => (args.length === 2 ? allCommandInfo(ctx) : array(namesIn(args).map((name) => commandInfoOrNull(ctx.server.commands, name)))),
    },
  ],
  [
    "docs",
    {
      arity: -2,
      access: "read",
      flags: ["loading", "stale"],
      summary: "Returns documentary information about one, multiple or all commands.",
      handler: (ctx, args) => {
        const table = ctx.server.commands;
        const names = args.length === 2 ? [...table.keys()] : namesIn(args);
        // Unknown names are left out, as in Redis.
        return map(names.flatMap((name) => {
          const spec = table.get(name);
          return spec === undefined ? [] : [[name, commandDocs(name, spec)] as const];
        }));
      },
    },
  ],
  ["help", { arity: 2, access: "read", flags: ["loading", "stale"], summary: "Returns helpful text about the different subcommands.", handler: () => commandHelp }],
]);

/** `COMMAND [COUNT | LIST | INFO [name…] | DOCS [name…] | HELP]`. */
export const commandCommand: CommandSpec = {
  arity: -1,
  access: "read",
  flags: ["loading", "stale"],
  summary: "Returns detailed information about all commands.",
  group: "server",
  handler: (ctx) => allCommandInfo(ctx),
  subcommands: subcommandsOfCommand,
};

const commandHelp = array(
  [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "HELP",
    "    Print this help.",
  ].map(status),
);

function namesIn(args: readonly Buffer[]): string[] {
  return args.slice(2).map((name) => name.toString().toLowerCase());
}

function allCommandInfo(ctx: CommandContext): Reply {
  return array([...ctx.server.commands].map(([name, spec]) => commandInfo(name, spec)));
}

function commandInfoOrNull(table: CommandTable, name: string): Reply {
  const spec = table.get(name);
  return spec === undefined ? nullBulk : commandInfo(name, spec);
}

/** Redis 7's ten-element entry: name, arity, flags, first key, last key, key step, ACL categories, tips, key specs, subcommands. */
function commandInfo(name: string, spec: CommandSpec): Reply {
  const subcommands = [...(spec.subcommands ?? [])].map(([subcommand, subspec]) => commandInfo(`${name}|${subcommand}`, subspec));
  return array([
    bulk(name),
    integer(spec.arity),
    { type: "set", items: flagsOf(spec).map(status) },
    integer(0),
    integer(0),
    integer(0),
    { type: "set", items: [] },
    { type: "set", items: [] },
    array([]),
    array(subcommands),
  ]);
}

/**
 * A command's flags with its access as Redis states it: "write" for writes, "readonly" for reads of data
 * (connection commands, flagged "loading"/"stale", are neither), so that clients that route by these
 * flags, and `-NOPERM` on a read-only connection, agree.
 */
function flagsOf(spec: CommandSpec): readonly string[] {
  const flags = spec.flags ?? [];
  if (spec.access === "write") return flags.includes("write") ? flags : [...flags, "write"];
  if (flags.includes("readonly") || flags.includes("loading") || flags.includes("stale")) return flags;
  return [...flags, "readonly"];
}

/** The fields redis-cli reads for `help <command>`: summary, group, and the subcommands (keyed `client|setname`). */
function commandDocs(name: string, spec: CommandSpec): Reply {
  const entries: [string, Reply][] = [
    ["summary", bulk(spec.summary ?? "")],
    ["group", bulk(spec.group ?? "generic")],
  ];
  if (spec.subcommands !== undefined) {
    entries.push(["subcommands", map([...spec.subcommands].map(([subcommand, subspec]) => [`${name}|${subcommand}`, commandDocs(subcommand, { ...subspec, group: subspec.group ?? spec.group })] as const))]);
  }
  return map(entries);
}

/** `INFO [section …]`, with `extraSections` (the node's own) after the standard ones. */
export function infoCommand(extraSections: () => readonly InfoSection[]): CommandSpec {
  return {
    arity: -1,
    access: "read",
    flags: ["loading", "stale"],
    summary: "Returns information and statistics about the server.",
    group: "server",
    handler: (ctx, args) => {
      const sections = [...standardSections(ctx), ...extraSections()];
      const wanted = args.slice(1).map((section) => section.toString().toLowerCase());
      const everything = wanted.length === 0 || wanted.some((name) => name === "all" || name === "everything" || name === "default");
      const chosen = everything ? sections : sections.filter((section) => wanted.includes(section.name.toLowerCase()));
      // Redis 7 answers INFO with a verbatim string (RESP3 `=`), a bulk string in RESP2.
      return { type: "verbatim", format: "txt", value: chosen.map(infoSectionText).join("\r\n") };
    },
  };
}

function standardSections(ctx: CommandContext): InfoSection[] {
  const uptimeSeconds = Math.floor((Date.now() - ctx.server.startedAtMs) / 1000);
  return [
    {
      name: "Server",
      fields: [
        ["redis_version", redisCompatibleVersion],
        ["raftlock_version", raftlockVersion],
        ["redis_mode", "standalone"],
        ["os", `${type()} ${release()} ${arch()}`],
        ["arch_bits", process.arch.endsWith("64") ? 64 : 32],
        ["process_id", process.pid],
        ["tcp_port", ctx.server.address().port],
        ["uptime_in_seconds", uptimeSeconds],
        ["uptime_in_days", Math.floor(uptimeSeconds / 86_400)],
      ],
    },
    {
      name: "Clients",
      fields: [
        ["connected_clients", ctx.server.connectionsOpen()],
        ["maxclients", ctx.server.connectionsMax],
      ],
    },
    // ioredis's ready check waits while `loading` is not 0; raftlock serves as soon as it listens.
    { name: "Persistence", fields: [["loading", 0]] },
  ];
}

function infoSectionText(section: InfoSection): string {
  return `# ${section.name}\r\n${section.fields.map(([field, value]) => `${field}:${value}\r\n`).join("")}`;
}

function findPackageVersion(): string {
  // The nearest package.json above this file: src/api/resp under tsx and vitest, dist/api/resp when built.
  let directory = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const parsed = JSON.parse(readFileSync(join(directory, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (parsed.name === "raftlock" && typeof parsed.version === "string") return parsed.version;
    } catch {
      // No package.json here; look one level up.
    }
    const parent = dirname(directory);
    if (parent === directory) return "unknown";
    directory = parent;
  }
}
