// One client connection: reads requests, runs them, and writes the replies in request order although
// handlers may answer out of order (a LOCK.ACQUIRE WAIT outlives the PING pipelined after it). Reading
// pauses while too many replies are pending or too many reply bytes wait for the socket, so a client
// that pipelines without reading is slowed down by TCP instead of growing our memory.

import type { Socket } from "node:net";
import type { Logger } from "pino";
import { assert } from "../../util/assert.js";
import { type AuthFailureLimiter, type ClientAccess, type ClientCredentials, tooManyFailuresMessage } from "../auth.js";
import { argument, type CommandContext, type RespServerInfo } from "./command-table.js";
import type { RespLimits } from "./limits.js";
import { err, errorReply, type Reply, type RespProtocol } from "./reply.js";
import { RequestReader, RespProtocolError } from "./request-reader.js";
import { encodeReply } from "./writer.js";

/**
 * After we end a connection (QUIT, a protocol error, a refused connection) we keep reading and dropping
 * the client's bytes for this long before cutting it: closing with unread input makes the kernel send a
 * reset, which can destroy our last reply before the client reads it.
 */
export const closeLingerMs = 2_000;

/** Redis's answer to a wrong username or password. */
export const wrongPasswordReply = errorReply("WRONGPASS", "invalid username-password pair or user is disabled.");

/** One reply to come, in request order. `bytes` is null while its handler is still running. */
interface ReplySlot {
  bytes: Buffer | null;
  /** QUIT and protocol errors: end the connection once this reply is written. */
  closeAfter: boolean;
}

export interface ConnectionOptions {
  readonly clientId: number;
  readonly limits: RespLimits;
  readonly server: RespServerInfo;
  /** The passwords clients present; null when none is required. */
  readonly credentials: ClientCredentials | null;
  /** Shared by the server's connections: failures count per client address, not per connection. */
  readonly authLimiter: AuthFailureLimiter | null;
  readonly execute: (ctx: CommandContext, args: readonly Buffer[]) => Reply | Promise<Reply>;
  readonly logger: Logger;
}

export class RespConnection implements CommandContext {
  readonly clientId: number;
  protocol: RespProtocol = 2;
  clientName: string | null = null;
  libraryName: string | null = null;
  libraryVersion: string | null = null;
  readonly remoteAddress: string;
  readonly connectedAtMs = Date.now();
  readonly subscriptions = new Set<string>();
  readonly server: RespServerInfo;

  /** What the client authenticated as; null until it has. */
  private access: ClientAccess | null = null;
  /** The client's IP address without the port: what failed authentication is counted by. */
  readonly remoteHost: string;
  private readonly reader: RequestReader;
  private readonly slots: ReplySlot[] = [];
  /** The slot of the request whose handler is running synchronously right now (for closeAfterReply). */
  private currentSlot: ReplySlot | null = null;
  /** Bytes read while reading was paused, to read on resume. */
  private unread: Buffer | null = null;
  private readingPaused = false;
  /** Inside readChunk: more requests of the same chunk may follow the one just answered. */
  private reading = false;
  /** No more requests are read: QUIT, a protocol error, or the connection closed. */
  private ending = false;
  /** The client has shut down its sending side: answer what it sent, then end ours. */
  private clientEnded = false;
  private closed = false;
  private lingerTimer: NodeJS.Timeout | null = null;
  private readonly closeHooks = new Set<() => void>();
  private readonly logger: Logger;

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
  ) {
    this.clientId = options.clientId;
    this.server = options.server;
    this.remoteHost = socket.remoteAddress ?? "?";
    this.remoteAddress = `${this.remoteHost}:${socket.remotePort ?? "?"}`;
    this.logger = options.logger.child({ clientId: this.clientId, remote: this.remoteAddress });
    this.reader = new RequestReader(options.limits, () => this.authenticated, options.server.limitHits);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.onClientEnd());
    socket.on("error", (error) => this.logger.debug({ err: error }, "RESP connection error"));
    socket.on("close", () => this.handleClose());
    if (options.limits.idleTimeoutMs > 0) {
      socket.setTimeout(options.limits.idleTimeoutMs);
      socket.on("timeout", () => this.onIdle());
    }
  }

  get authRequired(): boolean {
    return this.options.credentials !== null;
  }

  get authenticated(): boolean {
    return !this.authRequired || this.access !== null;
  }

  get mayWrite(): boolean {
    return this.access !== "read-only";
  }

  authenticate(username: string, password: Buffer): Reply | null {
    const { credentials, authLimiter } = this.options;
    // Without a password the default user is Redis's `nopass`: any password is right.
    if (credentials === null) return username === "default" ? null : wrongPasswordReply;
    // Checked before the password, so that an address over the limit learns nothing from its guesses.
    const retryAfterSeconds = authLimiter?.retryAfterSeconds(this.remoteHost) ?? 0;
    if (retryAfterSeconds > 0) return err(tooManyFailuresMessage(this.remoteHost, retryAfterSeconds, "AUTH"));
    const access = credentials.check(password);
    if (username !== "default" || access === null) {
      // Logged by the limiter, per address and at most once a minute; never the password.
      authLimiter?.recordFailure(this.remoteHost);
      return wrongPasswordReply;
    }
    this.access = access;
    return null;
  }

  push(reply: Reply): void {
    if (this.closed || this.ending) return;
    if (this.protocol === 3) {
      this.write(encodeReply(reply, 3));
      return;
    }
    this.slots.push({ bytes: encodeReply(reply, 2), closeAfter: false });
    this.flush();
  }

  onClose(hook: () => void): () => void {
    if (this.closed || this.clientEnded) {
      hook();
      return () => undefined;
    }
    // Wrapped, so that the same function registered twice is two hooks, each removed on its own.
    const entry = (): void => hook();
    this.closeHooks.add(entry);
    return () => this.closeHooks.delete(entry);
  }

  closeAfterReply(): void {
    assert(this.currentSlot !== null, "closeAfterReply called outside a handler's synchronous part");
    this.currentSlot.closeAfter = true;
    this.ending = true;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.ending || this.closed) return;
    if (this.readingPaused) {
      // Data already on its way when we paused; kept with the rest until we read again.
      this.unread = this.unread === null ? chunk : Buffer.concat([this.unread, chunk]);
      return;
    }
    this.readChunk(chunk);
  }

  private readChunk(chunk: Buffer): void {
    let pending: Buffer | null = chunk;
    while (pending !== null) {
      // Replies of one read go out in one write.
      this.socket.cork();
      this.reading = true;
      let rest: Buffer;
      try {
        rest = this.reader.read(pending, (args) => {
          this.handleRequest(args);
          return this.mayRead();
        });
      } catch (error) {
        if (!(error instanceof RespProtocolError)) throw error;
        rest = Buffer.alloc(0);
        this.failProtocol(error);
      } finally {
        this.reading = false;
        this.socket.uncork();
      }
      if (this.ending) return;
      pending = null;
      if (rest.length > 0 && this.mayRead()) {
        // The reader stopped for output that uncork() has just handed to the kernel: read on now. Left
        // for a later read, these requests would be overtaken by the next chunk's (found by the fuzz).
        pending = rest;
      } else if (rest.length > 0) {
        this.unread = rest;
      }
    }
    if (!this.mayRead()) this.pauseReading();
    this.endIfClientDone();
  }

  private handleRequest(args: Buffer[]): void {
    const name = argument(args, 0).toString().toLowerCase();
    if (name === "post" || name === "host:") {
      // Redis's guard against cross-protocol scripting: a browser tricked into POSTing to this port.
      this.logger.warn("closed a connection that sent an HTTP request to the RESP port");
      this.ending = true;
      this.socket.destroy();
      return;
    }
    const slot: ReplySlot = { bytes: null, closeAfter: false };
    this.slots.push(slot);
    this.currentSlot = slot;
    let result: Reply | Promise<Reply>;
    try {
      result = this.options.execute(this, args);
    } finally {
      this.currentSlot = null;
    }
    // Captured after the handler ran, so that HELLO 3 is answered in RESP3; an asynchronous reply keeps
    // the protocol of the moment it was asked, as a later HELLO does not apply to it in Redis either.
    const protocol = this.protocol;
    if (result instanceof Promise) {
      // executeCommand rejects only on a failed assertion, which must crash the node: no catch here.
      void result.then((reply) => this.complete(slot, reply, protocol));
    } else {
      this.complete(slot, result, protocol);
    }
  }

  private complete(slot: ReplySlot, reply: Reply, protocol: RespProtocol): void {
    if (this.closed) return;
    slot.bytes = encodeReply(reply, protocol);
    this.flush();
  }

  /** Writes the replies at the head of the queue that are ready; ends the connection after a closing one. */
  private flush(): void {
    for (let head = this.slots[0]; head?.bytes != null; head = this.slots[0]) {
      this.slots.shift();
      this.write(head.bytes);
      if (head.closeAfter) {
        this.endGracefully();
        return;
      }
    }
    this.resumeIfAllowed();
    this.endIfClientDone();
  }

  private write(bytes: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(bytes, () => this.resumeIfAllowed());
    if (this.socket.writableLength > this.options.limits.outputBytesMax) {
      this.server.limitHits("resp_output_bytes");
      this.logger.warn({ outputBytes: this.socket.writableLength, outputBytesMax: this.options.limits.outputBytesMax }, "closed a RESP client that does not read its replies");
      this.socket.destroy();
    }
  }

  private failProtocol(error: RespProtocolError): void {
    this.logger.info({ reason: error.message }, "RESP protocol error; closing the connection");
    this.ending = true;
    // After the replies to the requests before it, like any reply; then the connection ends.
    this.slots.push({ bytes: encodeReply(err(`Protocol error: ${error.message}`), this.protocol), closeAfter: true });
    this.flush();
  }

  private mayRead(): boolean {
    const { pendingRepliesMax, outputBytesSoftMax } = this.options.limits;
    return !this.ending && this.slots.length < pendingRepliesMax && this.socket.writableLength <= outputBytesSoftMax;
  }

  private pauseReading(): void {
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
  }

  private resumeIfAllowed(): void {
    if (!this.readingPaused || this.closed || !this.mayRead()) return;
    this.readingPaused = false;
    const unread = this.unread;
    this.unread = null;
    if (unread !== null) this.readChunk(unread);
    if (!this.readingPaused && !this.ending) this.socket.resume();
  }

  /** Ends our side after the last reply; drops what the client still sends until it closes or the linger ends. */
  private endGracefully(): void {
    this.ending = true;
    this.unread = null;
    this.socket.end();
    this.socket.resume();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), closeLingerMs);
    this.lingerTimer.unref();
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    // The client hung up: like Redis, give up what it still waits for (a blocked LOCK.ACQUIRE is
    // cancelled through the log), while replies already computed still go out on the half-open socket.
    this.runCloseHooks();
    this.endIfClientDone();
  }

  /** After the client's FIN (`printf 'PING\r\n' | nc -N`), our side ends once every reply is out. */
  private endIfClientDone(): void {
    if (this.clientEnded && !this.reading && this.slots.length === 0 && this.unread === null && !this.closed && !this.socket.writableEnded) this.socket.end();
  }

  private onIdle(): void {
    const busy = this.slots.length > 0 || this.subscriptions.size > 0 || this.readingPaused;
    if (busy) {
      // Like Redis, a client waiting for a reply or subscribed is not idle; check again a timeout later.
      this.socket.setTimeout(this.options.limits.idleTimeoutMs);
      return;
    }
    this.logger.debug({ idleTimeoutMs: this.options.limits.idleTimeoutMs }, "closed an idle RESP connection");
    this.socket.destroy();
  }

  private handleClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ending = true;
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.slots.length = 0;
    this.unread = null;
    this.runCloseHooks();
  }

  private runCloseHooks(): void {
    const hooks = [...this.closeHooks];
    this.closeHooks.clear();
    for (const hook of hooks) {
      try {
        hook();
      } catch (error) {
        this.logger.error({ err: error }, "a RESP connection close hook failed");
      }
    }
  }
}
