// A minimal RESP2 client over one socket, for the load generator: commands are encoded once and reused,
// replies are parsed without copying where possible, and requests may be pipelined (answered in order).
// Cheaper per request than ioredis, so the generator spends its core on the cluster's answers.
import { connect, type Socket } from "node:net";

/** A reply's shape: simple string, integer, bulk (null for nil), array, or an error (thrown). */
export type RespValue = string | number | null | RespValue[];

/** An error reply: `code` is its first word (NOLEADER, TIMEOUT, ERR, ...). */
export class RespReplyError extends Error {
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.code = message.split(" ", 1)[0] ?? "ERR";
  }
}

/** One RESP command, encoded once for repeated sending. */
export function encodeCommand(args: readonly (string | number)[]): Buffer {
  const parts: string[] = [`*${args.length}\r\n`];
  for (const arg of args) {
    const text = String(arg);
    parts.push(`$${Buffer.byteLength(text)}\r\n${text}\r\n`);
  }
  return Buffer.from(parts.join(""));
}

interface Pending {
  resolve(value: RespValue): void;
  reject(error: Error): void;
}

/** Incomplete reply: wait for more bytes. */
const incomplete = Symbol("incomplete");
type Parsed = { value: RespValue | RespReplyError; end: number } | typeof incomplete;

function lineEnd(buffer: Buffer, from: number): number {
  const at = buffer.indexOf(13, from);
  return at < 0 || at + 1 >= buffer.length ? -1 : at;
}

function parse(buffer: Buffer, from: number): Parsed {
  if (from >= buffer.length) return incomplete;
  const end = lineEnd(buffer, from + 1);
  if (end < 0) return incomplete;
  const type = buffer[from];
  const line = buffer.toString("latin1", from + 1, end);
  switch (type) {
    case 43: // +
      return { value: line, end: end + 2 };
    case 45: // -
      return { value: new RespReplyError(buffer.toString("utf8", from + 1, end)), end: end + 2 };
    case 58: // :
      return { value: Number(line), end: end + 2 };
    case 36: {
      // $
      const length = Number(line);
      if (length < 0) return { value: null, end: end + 2 };
      if (end + 2 + length + 2 > buffer.length) return incomplete;
      return { value: buffer.toString("utf8", end + 2, end + 2 + length), end: end + 2 + length + 2 };
    }
    case 42: {
      // *
      const count = Number(line);
      if (count < 0) return { value: null, end: end + 2 };
      const items: RespValue[] = [];
      let at = end + 2;
      for (let k = 0; k < count; k++) {
        const item = parse(buffer, at);
        if (item === incomplete) return incomplete;
        items.push(item.value instanceof RespReplyError ? item.value.message : item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP reply type byte ${type} ("${line.slice(0, 40)}")`);
  }
}

export class RespConnection {
  private readonly pending: Pending[] = [];
  private buffered: Buffer = Buffer.alloc(0);
  private closedError: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.received(chunk));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("connection closed")));
  }

  static open(host: string, port: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once("connect", () => resolve(new RespConnection(socket)));
      socket.once("error", reject);
    });
  }

  /** Sends an encoded command; resolves with its reply, rejects with a RespReplyError for an error reply. */
  send(command: Buffer): Promise<RespValue> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(command);
    });
  }

  call(...args: (string | number)[]): Promise<RespValue> {
    return this.send(encodeCommand(args));
  }

  close(): void {
    this.socket.destroy();
  }

  private received(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    let at = 0;
    for (;;) {
      const parsed = parse(this.buffered, at);
      if (parsed === incomplete) break;
      at = parsed.end;
      const waiter = this.pending.shift();
      if (waiter === undefined) continue; // a push we did not ask for
      if (parsed.value instanceof RespReplyError) waiter.reject(parsed.value);
      else waiter.resolve(parsed.value);
    }
    this.buffered = at >= this.buffered.length ? Buffer.alloc(0) : this.buffered.subarray(at);
  }

  private fail(error: Error): void {
    if (this.closedError === null) this.closedError = error;
    for (const waiter of this.pending.splice(0)) waiter.reject(error);
  }
}
