// Our reply encoder: one typed Reply in, the bytes of RESP2 or RESP3 out. Requests are parsed elsewhere
// (request-reader.ts); nothing here reads from the wire.

import { assert } from "../../util/assert.js";
import type { Reply, RespProtocol } from "./reply.js";

const crlf = Buffer.from("\r\n");
const int64Min = -(1n << 63n);
const int64Max = (1n << 63n) - 1n;
/** An error code is one upper-case word: clients split on the first space to find it. */
const errorCodePattern = /^[A-Z][A-Z0-9_-]*$/;

/** The bytes of `reply` in `protocol`. */
export function encodeReply(reply: Reply, protocol: RespProtocol): Buffer {
  const parts: Buffer[] = [];
  appendReply(parts, reply, protocol);
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

function appendReply(parts: Buffer[], reply: Reply, protocol: RespProtocol): void {
  switch (reply.type) {
    case "sequence":
      for (const each of reply.replies) appendReply(parts, each, protocol);
      return;
    case "status":
      parts.push(Buffer.from(`+${oneLine(reply.value)}\r\n`));
      return;
    case "error":
      assert(errorCodePattern.test(reply.code), `error code "${reply.code}" is not one upper-case word`);
      parts.push(Buffer.from(`-${reply.code} ${oneLine(reply.message)}\r\n`));
      return;
    case "integer":
      parts.push(Buffer.from(`:${integerText(reply.value)}\r\n`));
      return;
    case "bulk":
      appendBulk(parts, typeof reply.value === "string" ? Buffer.from(reply.value) : reply.value);
      return;
    case "null":
      parts.push(Buffer.from(protocol === 3 ? "_\r\n" : reply.shape === "array" ? "*-1\r\n" : "$-1\r\n"));
      return;
    case "array":
      appendAggregate(parts, "*", reply.items, protocol);
      return;
    case "set":
      appendAggregate(parts, protocol === 3 ? "~" : "*", reply.items, protocol);
      return;
    case "push":
      // RESP2 has no push type: pub/sub messages are plain arrays there.
      appendAggregate(parts, protocol === 3 ? ">" : "*", reply.items, protocol);
      return;
    case "map":
      parts.push(Buffer.from(protocol === 3 ? `%${reply.entries.length}\r\n` : `*${reply.entries.length * 2}\r\n`));
      for (const [key, value] of reply.entries) {
        appendReply(parts, key, protocol);
        appendReply(parts, value, protocol);
      }
      return;
    case "boolean":
      parts.push(Buffer.from(protocol === 3 ? (reply.value ? "#t\r\n" : "#f\r\n") : reply.value ? ":1\r\n" : ":0\r\n"));
      return;
    case "double": {
      const text = doubleText(reply.value);
      if (protocol === 3) parts.push(Buffer.from(`,${text}\r\n`));
      else appendBulk(parts, Buffer.from(text));
      return;
    }
    case "verbatim": {
      assert(/^[a-z]{3}$/.test(reply.format), `verbatim format "${reply.format}" is not three lower-case letters`);
      const text = Buffer.from(reply.value);
      if (protocol === 2) {
        appendBulk(parts, text);
        return;
      }
      parts.push(Buffer.from(`=${text.length + 4}\r\n${reply.format}:`), text, crlf);
      return;
    }
  }
}

function appendBulk(parts: Buffer[], value: Buffer): void {
  parts.push(Buffer.from(`$${value.length}\r\n`), value, crlf);
}

function appendAggregate(parts: Buffer[], marker: string, items: readonly Reply[], protocol: RespProtocol): void {
  parts.push(Buffer.from(`${marker}${items.length}\r\n`));
  for (const item of items) appendReply(parts, item, protocol);
}

function integerText(value: number | bigint): string {
  if (typeof value === "bigint") {
    assert(value >= int64Min && value <= int64Max, `integer reply ${value} does not fit in 64 bits`);
    return value.toString();
  }
  assert(Number.isSafeInteger(value), `integer reply ${value} is not a safe integer`);
  return String(value);
}

function doubleText(value: number): string {
  if (Number.isNaN(value)) return "nan";
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  return String(value);
}

/**
 * A status or error is one line: a CR or LF inside (say, an argument echoed in `unknown command 'x'`)
 * would end the reply early and desynchronise the client, so Redis maps them to spaces and so do we.
 */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, " ");
}
