import { describe, expect, it } from "vitest";
import { type CommandSpec, lookupCommand, mergeCommandTables, parseIntegerArgument, validateCommandTable } from "../../../src/api/resp/command-table.js";
import { genericCommands } from "../../../src/api/resp/generic-commands.js";
import { nodeCommandTable } from "../../../src/api/resp/node-commands.js";
import type { CoordinationStateMachine } from "../../../src/fsm/coordination.js";
import type { CoordinationService } from "../../../src/node/coordination-service.js";
import type { RaftNode } from "../../../src/node/node.js";
import { resolveRespLimits, respLimitsDefault } from "../../../src/api/resp/limits.js";
import { ok } from "../../../src/api/resp/reply.js";

const args = (...words: string[]): Buffer[] => words.map((word) => Buffer.from(word));
const okHandler = () => ok;

describe("command table", () => {
  it("the generic table is well formed", () => {
    expect(() => validateCommandTable(genericCommands)).not.toThrow();
  });

  it("refuses names that are not lower-case, arities that do not count the name, and containers with a handler-less arity", () => {
    expect(() => validateCommandTable(new Map([["LOCK.ACQUIRE", { arity: -4, access: "read", handler: okHandler }]]))).toThrow(/lower-case/);
    expect(() => validateCommandTable(new Map([["x", { arity: 0, access: "read", handler: okHandler }]]))).toThrow(/arity 0/);
    expect(() => validateCommandTable(new Map<string, CommandSpec>([["x", { arity: -1, access: "read", subcommands: new Map() }]]))).toThrow(/no handler/);
    expect(() => validateCommandTable(new Map<string, CommandSpec>([["x", { arity: -2, access: "read", subcommands: new Map([["y", { arity: 1, access: "read", handler: okHandler }]]) }]]))).toThrow(/x\|y/);
  });

  it("merging refuses a command defined twice", () => {
    expect(() => mergeCommandTables(genericCommands, new Map([["ping", { arity: 1, access: "read", handler: okHandler }]]))).toThrow("RESP command 'ping' is defined twice");
  });

  it("looks commands up case-insensitively and names subcommands as Redis 7 does", () => {
    const found = lookupCommand(genericCommands, args("Client", "SetName", "x"));
    expect("fullName" in found && found.fullName).toBe("client|setname");
    expect(lookupCommand(genericCommands, args("CLIENT"))).toEqual({ error: { type: "error", code: "ERR", message: "wrong number of arguments for 'client' command" } });
  });

  it("parses integers as Redis's string2ll does", () => {
    expect(["0", "-1", "42", "9007199254740991"].map((text) => parseIntegerArgument(Buffer.from(text)))).toEqual([0, -1, 42, 9007199254740991]);
    expect(["", "+1", "01", " 1", "1.0", "1e3", "9007199254740993", "x"].map((text) => parseIntegerArgument(Buffer.from(text)))).toEqual(Array(8).fill(null));
  });
});

/**
 * What a connection authenticated with the read-only password may not run. Adding a command to the node
 * makes the test below fail until it is listed here (a write) or in `readCommands`: someone must decide.
 */
const writeCommands = [
  "lock.acquire", "lock.release", "lock.refresh", "session.open", "session.keepalive", "session.close",
  "elect.campaign", "elect.proclaim", "elect.resign", "set", "del", "eval", "evalsha",
  "raft.addlearner", "raft.promote", "raft.remove", "raft.transfer",
];
const readCommands = [
  "ping", "echo", "quit", "auth", "hello", "select", "client|setname", "client|getname", "client|id", "client|setinfo", "client|info", "client|help",
  "command", "command|count", "command|list", "command|info", "command|docs", "command|help", "info",
  "lock.info", "fence.check", "elect.leader", "raft.leader", "raft.status", "raft.members", "get", "pttl", "readonly", "readwrite", "consistency",
  "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "script|load", "script|exists",
];

describe("read-only access", () => {
  it("every command the node serves is classified as read or write, as listed here", () => {
    // Building the tables reads only the node's commit timeout; no handler runs.
    const node = { config: { commitTimeoutMs: 1_000 } } as unknown as RaftNode;
    const table = nodeCommandTable({} as CoordinationService, {} as CoordinationStateMachine, node);
    expect(() => validateCommandTable(table)).not.toThrow();
    const classified = new Map<string, string>();
    for (const [name, spec] of table) {
      if (spec.handler !== undefined) classified.set(name, spec.access);
      for (const [subcommand, subspec] of spec.subcommands ?? []) classified.set(`${name}|${subcommand}`, subspec.access);
    }
    const expected = new Map([...writeCommands.map((name) => [name, "write"] as const), ...readCommands.map((name) => [name, "read"] as const)]);
    expect(Object.fromEntries([...classified].sort())).toEqual(Object.fromEntries([...expected].sort()));
  });

  it("a command without an access is refused when the server starts", () => {
    const unclassified = { arity: 1, handler: okHandler } as unknown as CommandSpec;
    expect(() => validateCommandTable(new Map([["x", unclassified]]))).toThrow(`RESP command 'x' must say whether a read-only connection may run it (access "read" or "write")`);
  });
});

describe("RESP limits", () => {
  it("defaults are consistent, and an inconsistent override is refused by name", () => {
    expect(resolveRespLimits()).toEqual(respLimitsDefault);
    expect(() => resolveRespLimits({ connectionsMax: 0 })).toThrow("RESP limit connectionsMax must be an integer of at least 1 (got 0)");
    expect(() => resolveRespLimits({ idleTimeoutMs: -1 })).toThrow(/idleTimeoutMs/);
    expect(resolveRespLimits({ idleTimeoutMs: 0 }).idleTimeoutMs).toBe(0);
    expect(() => resolveRespLimits({ bulkBytesMax: 8 << 20 })).toThrow(/bulkBytesMax must not exceed requestBytesMax/);
    expect(() => resolveRespLimits({ outputBytesMax: 1 << 20 })).toThrow(/outputBytesMax must exceed/);
  });
});
