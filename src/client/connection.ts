// One RESP2 connection to one raftlock node, over node:net (node:tls for a node with --client-tls-*). Requests are pipelined and answered in order;
// a connection in subscribed mode hands pushed messages to `onMessage`. A connection that fails rejects
// everything in flight with a CONNECTION error and is not reused: the client opens a new one.
import { connect, type Socket } from "node:net";
import { connect as connectTls, type ConnectionOptions as TlsConnectionOptions } from "node:tls";
import RedisParser from "redis-parser";
import { errorFromReply, RaftlockError } from "./errors.js";

/** Longest time a request may wait for its reply before the connection is given up (a paused node). */
export const requestTimeoutMsDefault = 15_000;
/** Longest time to wait for a TCP connection to a node. */
export const connectTimeoutMsDefault = 5_000;
/** Requests waiting for replies on one connection at once. */
export const inflightRequestsMax = 1_000;
/**
 * Bytes received since the last whole reply: a reply this large is not one a node sends (its largest,
 * RAFT.STATUS or a status list, is a few hundred KiB), so the connection is given up rather than buffered
 * without bound for a server that is not a raftlock node, or is misbehaving.
 */
export const replyBytesMax = 64 << 20;

/** Where a node's RESP port is and how to authenticate. */
export interface ConnectionOptions {
  host: string;
  port: number;
  password?: string;
  /** Connect with TLS (the node runs with --client-tls-*): `ca` to trust its certificate, `cert`/`key` for mutual TLS. */
  tls?: TlsConnectionOptions;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** A RESP2 reply as redis-parser decodes it. */
export type ReplyValue = string | number | null | ReplyValue[];

interface Pending {
  resolve(value: ReplyValue): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

function encodeRequest(args: readonly (string | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(String(arg), "utf8");
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/** A pipelined RESP2 connection; `onMessage` receives pub/sub messages, `onClose` fires once when it ends. */
export class RespConnection {
  private readonly pending: Pending[] = [];
  private readonly parser: RedisParser;
  private closedError: RaftlockError | null = null;
  /** Bytes received since the parser last completed a reply (`replyBytesMax`). */
  private bytesSinceReply = 0;
  private readonly closeListeners: ((error: RaftlockError) => void)[] = [];
  onMessage: ((channel: string, payload: string) => void) | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly requestTimeoutMs: number,
  ) {
    this.parser = new RedisParser({
      returnReply: (reply: ReplyValue) => {
        this.bytesSinceReply = 0;
        this.reply(reply);
      },
      returnError: (error: Error) => {
        this.bytesSinceReply = 0;
        this.settle((request) => request.reject(errorFromReply(error.message)));
      },
      returnFatalError: (error: Error) => this.fail(new RaftlockError("CONNECTION", `unreadable reply from the node: ${error.message}`)),
    });
    socket.on("data", (chunk: Buffer) => this.received(chunk));
    socket.on("error", (error) => this.fail(new RaftlockError("CONNECTION", `connection to the node failed: ${error.message}`)));
    socket.on("close", () => this.fail(new RaftlockError("CONNECTION", "connection to the node closed")));
  }

  /** Connects (and authenticates with AUTH when a password is given). */
  static async open(options: ConnectionOptions): Promise<RespConnection> {
    const socket = options.tls === undefined ? connect({ host: options.host, port: options.port }) : connectTls({ ...options.tls, host: options.host, port: options.port });
    socket.setNoDelay(true);
    // A TLS socket is usable once the handshake completed (and the node's certificate was verified).
    const ready = options.tls === undefined ? "connect" : "secureConnect";
    const connectTimeoutMs = options.connectTimeoutMs ?? connectTimeoutMsDefault;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new RaftlockError("CONNECTION", `could not connect to ${options.host}:${options.port} within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once(ready, () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(new RaftlockError("CONNECTION", `could not connect to ${options.host}:${options.port}: ${error.message}`));
      });
    });
    const connection = new RespConnection(socket, options.requestTimeoutMs ?? requestTimeoutMsDefault);
    if (options.password !== undefined) {
      try {
        await connection.call(["AUTH", options.password]);
      } catch (error) {
        connection.close();
        throw error;
      }
    }
    return connection;
  }

  /** Whether the connection has ended; a closed connection rejects every call. */
  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Registers `listener` for the end of the connection. */
  onClose(listener: (error: RaftlockError) => void): void {
    if (this.closedError !== null) listener(this.closedError);
    else this.closeListeners.push(listener);
  }

  /** Sends one command; resolves with its reply, rejects with a RaftlockError. `timeoutMs: 0` waits without limit (blocking commands bound their own wait). */
  call(args: readonly (string | number)[], timeoutMs = this.requestTimeoutMs): Promise<ReplyValue> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    if (this.pending.length >= inflightRequestsMax) return Promise.reject(new RaftlockError("LIMIT", `at most ${inflightRequestsMax} requests may wait on one connection`));
    return new Promise<ReplyValue>((resolve, reject) => {
      const request: Pending = { resolve, reject, timer: undefined };
      if (timeoutMs > 0) {
        // Replies come in order, so one late reply holds up every later one: give the connection up.
        request.timer = setTimeout(() => this.fail(new RaftlockError("REQUESTTIMEOUT", `${String(args[0])} got no reply within ${timeoutMs} ms; outcome unknown`)), timeoutMs);
      }
      this.pending.push(request);
      this.socket.write(encodeRequest(args));
    });
  }

  /** Closes the connection; calls in flight are rejected with a CLOSED error. */
  close(): void {
    this.fail(new RaftlockError("CLOSED", "the client closed the connection"));
  }

  private received(chunk: Buffer): void {
    if (this.closedError !== null) return;
    this.bytesSinceReply += chunk.length;
    try {
      // redis-parser throws (rather than reporting a fatal error) on some hostile input, e.g. an array
      // length too large for an Array or nesting deeper than the stack: neither may take the app down.
      this.parser.execute(chunk);
    } catch (error) {
      this.fail(new RaftlockError("CONNECTION", `unreadable reply from the node: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    if (this.bytesSinceReply > replyBytesMax) {
      this.fail(new RaftlockError("CONNECTION", `the node sent more than ${replyBytesMax} bytes without completing a reply (replyBytesMax); is it a raftlock node?`));
    }
  }

  private reply(reply: ReplyValue): void {
    if (this.onMessage !== null && Array.isArray(reply) && reply[0] === "message" && typeof reply[1] === "string" && typeof reply[2] === "string") {
      this.onMessage(reply[1], reply[2]);
      return;
    }
    this.settle((request) => request.resolve(reply));
  }

  private settle(answer: (request: Pending) => void): void {
    const request = this.pending.shift();
    if (request === undefined) return; // e.g. the extra confirmations of a multi-channel SUBSCRIBE
    clearTimeout(request.timer);
    answer(request);
  }

  private fail(error: RaftlockError): void {
    if (this.closedError !== null) return;
    this.closedError = error;
    this.socket.destroy();
    for (const request of this.pending.splice(0)) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    for (const listener of this.closeListeners.splice(0)) listener(error);
  }
}
