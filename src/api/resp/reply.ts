// The typed replies command handlers return. Handlers never touch bytes: `writer.ts` encodes a Reply for
// the protocol the connection speaks (RESP2 by default, RESP3 after `HELLO 3`).

/** The two wire protocols: RESP2, and RESP3 after `HELLO 3`. */
export type RespProtocol = 2 | 3;

export type Reply =
  /** `+OK`: a short status line. */
  | { readonly type: "status"; readonly value: string }
  /** `-CODE message`: `code` is the first word clients switch on (`ERR`, `NOAUTH`, `NOLEADER`, …). */
  | { readonly type: "error"; readonly code: string; readonly message: string }
  /** `:42`. A number must be a safe integer; a bigint covers the whole signed 64-bit range. */
  | { readonly type: "integer"; readonly value: number | bigint }
  /** `$3\r\nfoo`: binary-safe; a string is sent as UTF-8. */
  | { readonly type: "bulk"; readonly value: Buffer | string }
  /**
   * Nil. RESP3 has one null (`_`); RESP2 has a null bulk string (`$-1`) and a null array (`*-1`), and
   * Redis answers with the one matching the reply it would otherwise give: `shape: "array"` where the
   * non-nil reply is an array or a map.
   */
  | { readonly type: "null"; readonly shape: "bulk" | "array" }
  | { readonly type: "array"; readonly items: readonly Reply[] }
  /** RESP3 `%`; RESP2 has no map, so it becomes the flat array `[key1, value1, key2, value2, …]`. */
  | { readonly type: "map"; readonly entries: readonly (readonly [Reply, Reply])[] }
  /** RESP3 `~`; a plain array in RESP2. */
  | { readonly type: "set"; readonly items: readonly Reply[] }
  /** RESP3 `#t`/`#f`; the integer 1/0 in RESP2, as Redis does. */
  | { readonly type: "boolean"; readonly value: boolean }
  /** RESP3 `,1.5`; a bulk string in RESP2, as Redis does. */
  | { readonly type: "double"; readonly value: number }
  /** RESP3 `=` with a three-letter format (`txt`, `mkd`); a bulk string in RESP2. `INFO` answers with one. */
  | { readonly type: "verbatim"; readonly format: string; readonly value: string }
  /**
   * RESP3 `>`: out-of-band data such as a pub/sub message. In RESP2 a pub/sub message is a plain array,
   * which a client in subscribed mode tells apart by its first element.
   */
  | { readonly type: "push"; readonly items: readonly Reply[] }
  /** Several top-level replies, back to back, for one request: `SUBSCRIBE a b` confirms each channel. */
  | { readonly type: "sequence"; readonly replies: readonly Reply[] };

export const ok: Reply = { type: "status", value: "OK" };
export const nullBulk: Reply = { type: "null", shape: "bulk" };
export const nullArray: Reply = { type: "null", shape: "array" };

export function status(value: string): Reply {
  return { type: "status", value };
}

export function integer(value: number | bigint): Reply {
  return { type: "integer", value };
}

export function bulk(value: Buffer | string): Reply {
  return { type: "bulk", value };
}

/** A bulk string, or nil when `value` is null. */
export function bulkOrNull(value: Buffer | string | null): Reply {
  return value === null ? nullBulk : bulk(value);
}

export function array(items: readonly Reply[]): Reply {
  return { type: "array", items };
}

/** A map with string keys, the common case (`HELLO`, `LOCK.INFO`, `RAFT.STATUS`). */
export function map(entries: readonly (readonly [string, Reply])[]): Reply {
  return { type: "map", entries: entries.map(([key, value]) => [bulk(key), value] as const) };
}

export function push(items: readonly Reply[]): Reply {
  return { type: "push", items };
}

/** `-CODE message`, e.g. `errorReply("NOLEADER", "no leader is elected yet; retry")`. */
export function errorReply(code: string, message: string): Reply {
  return { type: "error", code, message };
}

/** The `-ERR message` that most failures answer with. */
export function err(message: string): Reply {
  return errorReply("ERR", message);
}

/**
 * An expected failure a handler may throw instead of returning an error reply: the server answers
 * `-CODE message` and carries on. Anything else thrown is a bug; the client gets a generic error and the
 * log gets the detail.
 */
export class RespError extends Error {
  override name = "RespError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  toReply(): Reply {
    return errorReply(this.code, this.message);
  }
}
