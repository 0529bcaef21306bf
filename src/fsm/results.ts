// What `apply` answers the proposer of an entry. The driver hands the bytes to whoever waits for that log
// index (possibly on another node, through forwarding), which decodes them into a reply. Same layout
// rules as commands.ts: format version u8 | result tag u8 | fields.

import { ByteReader, DecodeError, encodeWith } from "../util/bytes.js";
import type { CommandError } from "./commands.js";

export const resultFormatVersion = 1;
const stringFieldBytesMax = 0xffff;
/** Longest error message carried in a result; longer ones are cut (they are made by us from bounded fields). */
export const errorMessageBytesMax = 1024;

/** A lease that a grant or refresh (re)started: the leader resets `sessionId`'s deadline to now + ttlMs. */
export interface Lease {
  readonly sessionId: number;
  readonly ttlMs: number;
}

export type CommandResult =
  /** `session-open`: the id is the log index of the entry. */
  | { readonly kind: "session"; readonly sessionId: number; readonly ttlMs: number }
  /** `session-close`: false when no such explicit session was open. */
  | { readonly kind: "closed"; readonly closed: boolean }
  /** `sessions-expire`: the sessions this entry ended (the others had already ended). */
  | { readonly kind: "expired"; readonly sessionIds: readonly number[] }
  /** `lock-acquire` / `elect-campaign`: held (also when it was already held by the same holder: same token). */
  | { readonly kind: "granted"; readonly token: number; readonly ttlMs: number; readonly sessionId: number }
  /** A blocked acquire or campaign joined the queue; 1 is next in line. The grant arrives as an event. */
  | { readonly kind: "queued"; readonly position: number }
  /** A try-once acquire or campaign found it held by someone else. */
  | { readonly kind: "not-granted" }
  /** `lock-release`, `lock-force-release`: false when the named owner (or anyone, for force) did not hold it. */
  | { readonly kind: "released"; readonly released: boolean }
  /** `lock-refresh`: the lease restarted, or null when the owner does not hold the lock. */
  | { readonly kind: "refreshed"; readonly lease: Lease | null }
  /** `lock-cancel` / `elect-cancel`: the waiter was still queued and is removed. */
  | { readonly kind: "cancelled" }
  /** The waiter had been granted before the cancel applied: the client gets this token, not nil. */
  | { readonly kind: "already-granted"; readonly token: number }
  /** No such waiter: already cancelled, replaced by a retry of the same holder, or its session ended. */
  | { readonly kind: "not-waiting" }
  | { readonly kind: "proclaimed"; readonly proclaimed: boolean }
  | { readonly kind: "resigned"; readonly resigned: boolean }
  /** `leader-changed` recorded (or ignored as a repeat or an older term; nothing for a client to learn). */
  | { readonly kind: "ok" }
  | ({ readonly kind: "error" } & CommandError);

export type ResultKind = CommandResult["kind"];

const resultTags: Readonly<Record<ResultKind, number>> = {
  session: 1,
  closed: 2,
  expired: 3,
  granted: 4,
  queued: 5,
  "not-granted": 6,
  released: 7,
  refreshed: 8,
  cancelled: 9,
  "already-granted": 10,
  "not-waiting": 11,
  proclaimed: 12,
  resigned: 13,
  ok: 14,
  error: 15,
};
const resultKindsByTag = new Map<number, ResultKind>(Object.entries(resultTags).map(([kind, tag]) => [tag, kind as ResultKind]));
const errorCodes: readonly CommandError["code"][] = ["ERR", "NOSESSION", "LIMIT"];

export function errorResult(code: CommandError["code"], message: string): CommandResult {
  return { kind: "error", code, message };
}

export function encodeResult(result: CommandResult): Uint8Array {
  return encodeWith("little-endian", (sink) => {
    sink.u8(resultFormatVersion);
    sink.u8(resultTags[result.kind]);
    switch (result.kind) {
      case "session":
        sink.u53(result.sessionId);
        sink.u53(result.ttlMs);
        return;
      case "closed":
        sink.bool(result.closed);
        return;
      case "expired":
        sink.u32(result.sessionIds.length);
        for (const id of result.sessionIds) sink.u53(id);
        return;
      case "granted":
        sink.u53(result.token);
        sink.u53(result.ttlMs);
        sink.u53(result.sessionId);
        return;
      case "queued":
        sink.u32(result.position);
        return;
      case "released":
        sink.bool(result.released);
        return;
      case "refreshed":
        sink.bool(result.lease !== null);
        if (result.lease !== null) {
          sink.u53(result.lease.sessionId);
          sink.u53(result.lease.ttlMs);
        }
        return;
      case "already-granted":
        sink.u53(result.token);
        return;
      case "proclaimed":
        sink.bool(result.proclaimed);
        return;
      case "resigned":
        sink.bool(result.resigned);
        return;
      case "error":
        sink.u8(errorCodes.indexOf(result.code));
        sink.string(truncateUtf8(result.message, errorMessageBytesMax), stringFieldBytesMax);
        return;
      case "not-granted":
      case "cancelled":
      case "not-waiting":
      case "ok":
        return;
    }
  });
}

/** The result in `apply`'s reply bytes; throws a DecodeError for bytes that are not a result of ours. */
export function decodeResult(data: Uint8Array): CommandResult {
  const reader = new ByteReader(data);
  const version = reader.u8("result format version");
  if (version !== resultFormatVersion) throw new DecodeError(`result format version ${version} is not known to this node (it knows ${resultFormatVersion})`, 0);
  const tag = reader.u8("result tag");
  const kind = resultKindsByTag.get(tag);
  if (kind === undefined) throw new DecodeError(`unknown result tag ${tag}`, 1);
  const result = readResult(reader, kind);
  reader.expectEnd(`${kind} result`);
  return result;
}

function readResult(reader: ByteReader, kind: ResultKind): CommandResult {
  switch (kind) {
    case "session":
      return { kind, sessionId: reader.u53("session id"), ttlMs: reader.u53("ttlMs") };
    case "closed":
      return { kind, closed: reader.bool("closed") };
    case "expired": {
      const count = reader.count("expired session count", 8);
      const sessionIds: number[] = [];
      for (let i = 0; i < count; i++) sessionIds.push(reader.u53("session id"));
      return { kind, sessionIds };
    }
    case "granted":
      return { kind, token: reader.u53("token"), ttlMs: reader.u53("ttlMs"), sessionId: reader.u53("session id") };
    case "queued":
      return { kind, position: reader.u32("position") };
    case "released":
      return { kind, released: reader.bool("released") };
    case "refreshed":
      return { kind, lease: reader.bool("lease present") ? { sessionId: reader.u53("session id"), ttlMs: reader.u53("ttlMs") } : null };
    case "already-granted":
      return { kind, token: reader.u53("token") };
    case "proclaimed":
      return { kind, proclaimed: reader.bool("proclaimed") };
    case "resigned":
      return { kind, resigned: reader.bool("resigned") };
    case "error": {
      const at = reader.position;
      const code = errorCodes[reader.u8("error code")];
      if (code === undefined) throw new DecodeError("unknown error code", at);
      return { kind, code, message: reader.string("error message", stringFieldBytesMax) };
    }
    case "not-granted":
    case "cancelled":
    case "not-waiting":
    case "ok":
      return { kind };
  }
}

/** `text` cut to at most `bytesMax` UTF-8 bytes (an ellipsis included), never inside a character. */
export function truncateUtf8(text: string, bytesMax: number): string {
  if (Buffer.byteLength(text, "utf8") <= bytesMax) return text;
  let kept = "";
  let keptBytes = 0;
  for (const character of text) {
    const characterBytes = Buffer.byteLength(character, "utf8");
    if (keptBytes + characterBytes > bytesMax - 3) break;
    kept += character;
    keptBytes += characterBytes;
  }
  return `${kept}...`;
}
