// The commands of the coordination state machine, as they travel in log entries.
//
// Binary, not JSON: an entry is written to the WAL, sent to every follower and kept in the log until a
// snapshot covers it, so a lock acquire costs ~60 bytes instead of ~200, and decoding is a bounds-checked
// walk (src/util/bytes.ts) that cannot allocate more than the entry holds. Layout, little-endian:
//
//   format version u8 | command tag u8 | request id? | the command's fields in the order of `Command` below
//
// The request id (version 2; version 1 entries have none) names one client request, so that a retry of a
// command that is not idempotent by itself (SESSION.OPEN, DEL) is answered from the state machine's record
// of the first attempt instead of being applied twice (coordination-service.ts).
//
// Strings are a u16 byte length and UTF-8; optional fields are a presence byte (0/1) then the value;
// integers (ttlMs, session ids, terms) are u53. The codec only caps strings at what a u16 can say; the
// real limits (limits.ts) are checked by `validateCommand`, which the server calls before proposing and
// `apply` calls again, so that a user sees the same error text either way.

import type { LimitName } from "../limit-hits.js";
import { assert } from "../util/assert.js";
import { ByteReader, DecodeError, encodeWith, type ByteSink } from "../util/bytes.js";
import {
  labelBytesMax,
  leaderIdBytesMax,
  nameBytesMax,
  ownerBytesMax,
  ttlMsMax,
  valueBytesMax,
  requestIdBytesMax,
  waiterIdBytesMax,
  type FsmLimits,
} from "./limits.js";

/** Version of the command layout; a node refuses (with an error result) entries of a version it does not know. */
export const commandFormatVersion = 2;
/** The first layout, without the request id; still read, so that logs written by it replay. */
const commandFormatVersionWithoutRequestId = 1;
/** Largest string the layout can carry (a u16 length); the named limits are far below it. */
const stringFieldBytesMax = 0xffff;

export type Command =
  | { readonly type: "session-open"; readonly ttlMs: number; readonly label?: string }
  | { readonly type: "session-close"; readonly sessionId: number }
  /** Proposed by the leader for sessions whose deadline passed on its clock (see lease-keeper.ts). */
  | { readonly type: "sessions-expire"; readonly sessionIds: readonly number[] }
  | {
      readonly type: "lock-acquire";
      readonly name: string;
      readonly owner: string;
      readonly ttlMs: number;
      readonly sessionId?: number;
      /** Queue when the lock is held (`WAIT ms`); without it the acquire is tried once. */
      readonly wait: boolean;
      /** Names this request so that a later `lock-cancel` and the grant event can refer to it. */
      readonly waiterId: string;
    }
  | { readonly type: "lock-release"; readonly name: string; readonly owner: string }
  | { readonly type: "lock-refresh"; readonly name: string; readonly owner: string; readonly ttlMs: number }
  /** A waiter gave up (its wait ran out) or its connection closed. */
  | { readonly type: "lock-cancel"; readonly name: string; readonly waiterId: string }
  /** Redis `DEL key`: releases whoever holds the lock (admin). */
  | { readonly type: "lock-force-release"; readonly name: string }
  | {
      readonly type: "elect-campaign";
      readonly election: string;
      readonly candidate: string;
      readonly ttlMs: number;
      readonly value?: string;
      readonly sessionId?: number;
      /** Queue behind the current leader (`WAIT ms`); without it the campaign is tried once. */
      readonly wait: boolean;
      readonly waiterId: string;
    }
  | { readonly type: "elect-proclaim"; readonly election: string; readonly candidate: string; readonly value: string }
  | { readonly type: "elect-resign"; readonly election: string; readonly candidate: string }
  | { readonly type: "elect-cancel"; readonly election: string; readonly waiterId: string }
  /** Proposed by a node that became Raft leader, with its first entry, so watchers see leader changes in log order. */
  | { readonly type: "leader-changed"; readonly leaderId: string; readonly term: number };

export type CommandType = Command["type"];

/** What a log entry of this state machine carries: a command, and the client request it answers, if named. */
export interface CommandEntry {
  readonly command: Command;
  /** Unique per client request and kept across its retries; null when the command needs no deduplication. */
  readonly requestId: string | null;
}

/** Why a command is refused; `code` is the RESP error prefix (`-ERR ...`, `-NOSESSION ...`). */
export interface CommandError {
  readonly code: "ERR" | "NOSESSION" | "LIMIT";
  readonly message: string;
}

const commandTags: Readonly<Record<CommandType, number>> = {
  "session-open": 1,
  "session-close": 2,
  "sessions-expire": 3,
  "lock-acquire": 4,
  "lock-release": 5,
  "lock-refresh": 6,
  "lock-cancel": 7,
  "lock-force-release": 8,
  "elect-campaign": 9,
  "elect-proclaim": 10,
  "elect-resign": 11,
  "elect-cancel": 12,
  "leader-changed": 13,
};
const commandTypesByTag = new Map<number, CommandType>(Object.entries(commandTags).map(([type, tag]) => [tag, type as CommandType]));

/**
 * The bytes of a log entry carrying `command`. Call `validateCommand` first: this asserts only what the
 * layout itself cannot hold (a negative ttl, a string over 64 KiB), which a validated command never has.
 */
export function encodeCommand(command: Command, requestId: string | null = null): Uint8Array {
  return encodeWith("little-endian", (sink) => {
    // Without a request id the first layout says the same, and members of the previous version read it.
    sink.u8(requestId === null ? commandFormatVersionWithoutRequestId : commandFormatVersion);
    sink.u8(commandTags[command.type]);
    if (requestId !== null) {
      sink.bool(true);
      sink.string(requestId, stringFieldBytesMax);
    }
    writeFields(sink, command);
  });
}

function writeFields(sink: ByteSink, command: Command): void {
  const text = (value: string): void => sink.string(value, stringFieldBytesMax);
  const optionalText = (value: string | undefined): void => {
    sink.bool(value !== undefined);
    if (value !== undefined) text(value);
  };
  const optionalU53 = (value: number | undefined): void => {
    sink.bool(value !== undefined);
    if (value !== undefined) sink.u53(value);
  };
  switch (command.type) {
    case "session-open":
      sink.u53(command.ttlMs);
      optionalText(command.label);
      return;
    case "session-close":
      sink.u53(command.sessionId);
      return;
    case "sessions-expire":
      sink.u32(command.sessionIds.length);
      for (const id of command.sessionIds) sink.u53(id);
      return;
    case "lock-acquire":
      text(command.name);
      text(command.owner);
      sink.u53(command.ttlMs);
      optionalU53(command.sessionId);
      sink.bool(command.wait);
      text(command.waiterId);
      return;
    case "lock-release":
      text(command.name);
      text(command.owner);
      return;
    case "lock-refresh":
      text(command.name);
      text(command.owner);
      sink.u53(command.ttlMs);
      return;
    case "lock-cancel":
      text(command.name);
      text(command.waiterId);
      return;
    case "lock-force-release":
      text(command.name);
      return;
    case "elect-campaign":
      text(command.election);
      text(command.candidate);
      sink.u53(command.ttlMs);
      optionalText(command.value);
      optionalU53(command.sessionId);
      sink.bool(command.wait);
      text(command.waiterId);
      return;
    case "elect-proclaim":
      text(command.election);
      text(command.candidate);
      text(command.value);
      return;
    case "elect-resign":
      text(command.election);
      text(command.candidate);
      return;
    case "elect-cancel":
      text(command.election);
      text(command.waiterId);
      return;
    case "leader-changed":
      text(command.leaderId);
      sink.u53(command.term);
      return;
  }
}

/** The command in an entry's bytes; throws a DecodeError for anything that is not a whole command of ours. */
export function decodeCommand(data: Uint8Array): Command {
  return decodeCommandEntry(data).command;
}

/** The command and request id in an entry's bytes; throws a DecodeError as `decodeCommand` does. */
export function decodeCommandEntry(data: Uint8Array): CommandEntry {
  const reader = new ByteReader(data);
  const version = reader.u8("command format version");
  if (version !== commandFormatVersion && version !== commandFormatVersionWithoutRequestId) {
    throw new DecodeError(`command format version ${version} is not known to this node (it knows up to ${commandFormatVersion}); upgrade every member`, 0);
  }
  const tag = reader.u8("command tag");
  const type = commandTypesByTag.get(tag);
  if (type === undefined) throw new DecodeError(`unknown command tag ${tag}`, 1);
  const requestId = version === commandFormatVersionWithoutRequestId || !reader.bool("request id present") ? null : reader.string("request id", stringFieldBytesMax);
  const command = readFields(reader, type);
  reader.expectEnd(`${type} command`);
  return { command, requestId };
}

/** Why a request id must be refused, or null. */
export function validateRequestId(requestId: string | null): CommandError | null {
  if (requestId === null) return null;
  const problem = checkText("request id", requestId, 1, requestIdBytesMax);
  return problem === null ? null : { code: "ERR", message: problem.message };
}

function readFields(reader: ByteReader, type: CommandType): Command {
  const text = (what: string): string => reader.string(what, stringFieldBytesMax);
  const optionalText = (what: string): string | undefined => (reader.bool(`${what} present`) ? text(what) : undefined);
  const optionalU53 = (what: string): number | undefined => (reader.bool(`${what} present`) ? reader.u53(what) : undefined);
  switch (type) {
    case "session-open": {
      const ttlMs = reader.u53("ttlMs");
      const label = optionalText("label");
      return label === undefined ? { type, ttlMs } : { type, ttlMs, label };
    }
    case "session-close":
      return { type, sessionId: reader.u53("session id") };
    case "sessions-expire": {
      const count = reader.count("session id count", 8);
      const sessionIds: number[] = [];
      for (let i = 0; i < count; i++) sessionIds.push(reader.u53("session id"));
      return { type, sessionIds };
    }
    case "lock-acquire": {
      const name = text("lock name");
      const owner = text("owner");
      const ttlMs = reader.u53("ttlMs");
      const sessionId = optionalU53("session id");
      const wait = reader.bool("wait");
      const waiterId = text("waiter id");
      return sessionId === undefined ? { type, name, owner, ttlMs, wait, waiterId } : { type, name, owner, ttlMs, sessionId, wait, waiterId };
    }
    case "lock-release":
      return { type, name: text("lock name"), owner: text("owner") };
    case "lock-refresh":
      return { type, name: text("lock name"), owner: text("owner"), ttlMs: reader.u53("ttlMs") };
    case "lock-cancel":
      return { type, name: text("lock name"), waiterId: text("waiter id") };
    case "lock-force-release":
      return { type, name: text("lock name") };
    case "elect-campaign": {
      const election = text("election name");
      const candidate = text("candidate");
      const ttlMs = reader.u53("ttlMs");
      const value = optionalText("value");
      const sessionId = optionalU53("session id");
      const wait = reader.bool("wait");
      const waiterId = text("waiter id");
      return {
        type,
        election,
        candidate,
        ttlMs,
        ...(value === undefined ? {} : { value }),
        ...(sessionId === undefined ? {} : { sessionId }),
        wait,
        waiterId,
      };
    }
    case "elect-proclaim":
      return { type, election: text("election name"), candidate: text("candidate"), value: text("value") };
    case "elect-resign":
      return { type, election: text("election name"), candidate: text("candidate") };
    case "elect-cancel":
      return { type, election: text("election name"), waiterId: text("waiter id") };
    case "leader-changed":
      return { type, leaderId: text("leader id"), term: reader.u53("term") };
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: the same checks and texts whether the server refuses a request before proposing it or
// `apply` refuses an entry (a proposer of another version, a bug, a hand-made entry).

/** The api.md text for a ttl outside its bounds; `got` is what the user sent, as they sent it. */
export function ttlMsMessage(limits: FsmLimits, got: string): string {
  return `ttl-ms must be an integer between ${limits.ttlMsMin} and ${ttlMsMax} (got ${got})`;
}

/** Why a field is refused; `limit` when it is longer than a named limit allows (counted in metrics). */
interface FieldProblem {
  readonly message: string;
  readonly limit?: LimitName;
}

/** A refusal of a command's fields: an error result, and the named limit it hit if any. */
export type CommandRefusal = CommandError & { readonly limit?: LimitName };

function checkTtlMs(ttlMs: number, limits: FsmLimits): string | null {
  return Number.isSafeInteger(ttlMs) && ttlMs >= limits.ttlMsMin && ttlMs <= ttlMsMax ? null : ttlMsMessage(limits, String(ttlMs));
}

/** `limit`: the named limit a text longer than `bytesMax` hits (waiter and request ids are ours, not the client's). */
function checkText(what: string, value: string, bytesMin: number, bytesMax: number, limit?: LimitName): FieldProblem | null {
  const lengthBytes = Buffer.byteLength(value, "utf8");
  if (lengthBytes >= bytesMin && lengthBytes <= bytesMax) return null;
  const message = bytesMin === 0 ? `${what} must be at most ${bytesMax} bytes (got ${lengthBytes})` : `${what} must be ${bytesMin} to ${bytesMax} bytes (got ${lengthBytes})`;
  return lengthBytes > bytesMax && limit !== undefined ? { message, limit } : { message };
}

function checkId(what: string, value: number | undefined): string | null {
  if (value === undefined || (Number.isSafeInteger(value) && value >= 1)) return null;
  return `${what} must be a positive integer (got ${value})`;
}

/** Why `command` must be refused before it touches any state, or null when its fields are within bounds. */
export function validateCommand(command: Command, limits: FsmLimits): CommandRefusal | null {
  const first = fieldProblems(command, limits).find((problem) => problem !== null);
  if (first === undefined || first === null) return null;
  return typeof first === "string" ? { code: "ERR", message: first } : { code: "ERR", ...first };
}

function fieldProblems(command: Command, limits: FsmLimits): (string | FieldProblem | null)[] {
  switch (command.type) {
    case "session-open":
      return [checkTtlMs(command.ttlMs, limits), command.label === undefined ? null : checkText("label", command.label, 0, labelBytesMax, "name_bytes")];
    case "session-close":
      return [checkId("session id", command.sessionId)];
    case "sessions-expire":
      return [
        command.sessionIds.length <= limits.expireSessionsMax ? null : `one expiry names at most ${limits.expireSessionsMax} sessions (got ${command.sessionIds.length})`,
        ...command.sessionIds.map((id) => checkId("session id", id)),
      ];
    case "lock-acquire":
      return [
        checkText("lock name", command.name, 1, nameBytesMax, "name_bytes"),
        checkText("owner", command.owner, 1, ownerBytesMax, "name_bytes"),
        checkTtlMs(command.ttlMs, limits),
        checkId("session id", command.sessionId),
        checkText("waiter id", command.waiterId, 1, waiterIdBytesMax),
      ];
    case "lock-release":
      return [checkText("lock name", command.name, 1, nameBytesMax, "name_bytes"), checkText("owner", command.owner, 1, ownerBytesMax, "name_bytes")];
    case "lock-refresh":
      return [checkText("lock name", command.name, 1, nameBytesMax, "name_bytes"), checkText("owner", command.owner, 1, ownerBytesMax, "name_bytes"), checkTtlMs(command.ttlMs, limits)];
    case "lock-cancel":
      return [checkText("lock name", command.name, 1, nameBytesMax, "name_bytes"), checkText("waiter id", command.waiterId, 1, waiterIdBytesMax)];
    case "lock-force-release":
      return [checkText("lock name", command.name, 1, nameBytesMax, "name_bytes")];
    case "elect-campaign":
      return [
        checkText("election name", command.election, 1, nameBytesMax, "name_bytes"),
        checkText("candidate", command.candidate, 1, ownerBytesMax, "name_bytes"),
        checkTtlMs(command.ttlMs, limits),
        command.value === undefined ? null : checkText("value", command.value, 0, valueBytesMax, "value_bytes"),
        checkId("session id", command.sessionId),
        checkText("waiter id", command.waiterId, 1, waiterIdBytesMax),
      ];
    case "elect-proclaim":
      return [
        checkText("election name", command.election, 1, nameBytesMax, "name_bytes"),
        checkText("candidate", command.candidate, 1, ownerBytesMax, "name_bytes"),
        checkText("value", command.value, 0, valueBytesMax, "value_bytes"),
      ];
    case "elect-resign":
      return [checkText("election name", command.election, 1, nameBytesMax, "name_bytes"), checkText("candidate", command.candidate, 1, ownerBytesMax, "name_bytes")];
    case "elect-cancel":
      return [checkText("election name", command.election, 1, nameBytesMax, "name_bytes"), checkText("waiter id", command.waiterId, 1, waiterIdBytesMax)];
    case "leader-changed":
      return [checkText("leader id", command.leaderId, 1, leaderIdBytesMax), checkId("term", command.term)];
  }
}

assert(commandTypesByTag.size === Object.keys(commandTags).length, "two command types share a tag");
