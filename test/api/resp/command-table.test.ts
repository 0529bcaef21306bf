import { describe, expect, it } from "vitest";
import { type CommandSpec, lookupCommand, mergeCommandTables, parseIntegerArgument, validateCommandTable } from "../../../src/api/resp/command-table.js";
import { genericCommands } from "../../../src/api/resp/generic-commands.js";
import { resolveRespLimits, respLimitsDefault } from "../../../src/api/resp/limits.js";
import { ok } from "../../../src/api/resp/reply.js";

const args = (...words: string[]): Buffer[] => words.map((word) => Buffer.from(word));
const okHandler = () => ok;

describe("command table", () => {
  it("the generic table is well formed", () => {
    expect(() => validateCommandTable(genericCommands)).not.toThrow();
  });

  it("refuses names that are not lower-case, arities that do not count the name, and containers with a handler-less arity", () => {
    expect(() => validateCommandTable(new Map([["LOCK.ACQUIRE", { arity: -4, handler: okHandler }]]))).toThrow(/lower-case/);
    expect(() => validateCommandTable(new Map([["x", { arity: 0, handler: okHandler }]]))).toThrow(/arity 0/);
    expect(() => validateCommandTable(new Map<string, CommandSpec>([["x", { arity: -1, subcommands: new Map() }]]))).toThrow(/no handler/);
    expect(() => validateCommandTable(new Map<string, CommandSpec>([["x", { arity: -2, subcommands: new Map([["y", { arity: 1, handler: okHandler }]]) }]]))).toThrow(/x\|y/);
  });

  it("merging refuses a command defined twice", () => {
    expect(() => mergeCommandTables(genericCommands, new Map([["ping", { arity: 1, handler: okHandler }]]))).toThrow("RESP command 'ping' is defined twice");
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
