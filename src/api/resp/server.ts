// The RESP listener: accepts connections up to `connectionsMax`, gives each a RespConnection, and
// dispatches requests on one command table. A protocol error or a misbehaving client closes that
// connection only.

import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { Address } from "../../config.js";
import { ignoreLimitHits, LimitLog, type LimitHitSink } from "../../limit-hits.js";
import type { NodeMetrics } from "../../metrics.js";
import { type ReloadableTls, tlsServerOptions } from "../../tls.js";
import { assert } from "../../util/assert.js";
import { AuthFailureLimiter, type AuthLimits, authLimitsDefault, ClientCredentials } from "../auth.js";
import { type CommandContext, type CommandTable, type RespServerInfo, validateCommandTable } from "./command-table.js";
import { closeLingerMs, RespConnection } from "./connection.js";
import { executeCommand } from "./execute.js";
import { type RespLimits, resolveRespLimits } from "./limits.js";
import { err, type Reply } from "./reply.js";
import { encodeReply } from "./writer.js";

/** Sockets in a TLS handshake (or just accepted) beyond the served and refused ones: past them, new sockets are closed at once. */
export const respHandshakesPendingMax = 256;

export interface RespServerOptions {
  readonly listen: Address;
  readonly logger: Logger;
  /** Lower-cased command name to spec: `genericCommands` merged with the node's own. */
  readonly commands: CommandTable;
  /** When set, every command but AUTH, HELLO … AUTH and QUIT answers `-NOAUTH` until the client authenticates. */
  readonly authPassword?: string;
  /** With `authPassword`: a second password whose connections may run only "read" commands. */
  readonly authReadOnlyPassword?: string;
  /** Bounds on failed AUTH attempts per client address. */
  readonly authLimits?: AuthLimits;
  /** The clock of the AUTH failure window; tests move it by hand. */
  readonly nowMs?: () => number;
  readonly limits?: Partial<RespLimits>;
  /** Counts requests by command and outcome, open connections, and limit hits. */
  readonly metrics?: NodeMetrics;
  /**
   * TLS on the port, as Redis 6+ offers (`redis-cli --tls`); with a CA, a client must present a certificate
   * chaining to it. Reloads take effect for new connections.
   */
  readonly tls?: ReloadableTls;
}

export class RespServer implements RespServerInfo {
  readonly commands: CommandTable;
  readonly startedAtMs = Date.now();
  readonly limits: RespLimits;
  readonly limitHits: LimitHitSink;
  private readonly connections = new Set<RespConnection>();
  /** Sockets refused for connectionsMax, lingering until the client has read why. */
  private readonly refusedSockets = new Set<Socket>();
  /** Every TCP socket under a TLS port, those still in their handshake included: `close` cuts them all. */
  private readonly tlsTcpSockets = new Set<Socket>();
  private readonly refusalLog: LimitLog;
  private nextClientId = 1;
  private readonly logger: Logger;
  /** Only digests of the passwords are kept, and compared in constant time. */
  private readonly credentials: ClientCredentials | null;
  private readonly authLimiter: AuthFailureLimiter | null;
  private readonly metrics: NodeMetrics | null;

  private constructor(
    private readonly netServer: Server,
    options: RespServerOptions,
  ) {
    this.commands = options.commands;
    this.limits = resolveRespLimits(options.limits);
    this.logger = options.logger.child({ component: "resp" });
    this.refusalLog = new LimitLog(this.logger);
    this.metrics = options.metrics ?? null;
    const metrics = this.metrics;
    this.limitHits = metrics?.limitHit ?? ignoreLimitHits;
    this.credentials = options.authPassword === undefined ? null : new ClientCredentials(options.authPassword, options.authReadOnlyPassword);
    this.authLimiter =
      this.credentials === null ? null : new AuthFailureLimiter(this.logger, "RESP", options.authLimits ?? authLimitsDefault, options.nowMs, this.limitHits);
    this.metrics?.labelRespCommands(this.commands.keys());
    this.metrics?.countConnections("resp", () => this.connections.size);
  }

  /** Listens on `options.listen` (port 0 picks a free port; see `address()`). */
  static async start(options: RespServerOptions): Promise<RespServer> {
    validateCommandTable(options.commands);
    if (options.authPassword === "") throw new Error("the RESP password must not be empty; leave it unset to require none");
    if (options.authReadOnlyPassword !== undefined && options.authPassword === undefined) {
      throw new Error("a RESP read-only password needs a full password too: otherwise writers could not authenticate");
    }
    // allowHalfOpen: a client that shuts down its sending side after its requests still gets the replies.
    const { tls } = options;
    const netServer = tls === undefined ? createServer({ allowHalfOpen: true }) : createTlsServer({ allowHalfOpen: true, ...tlsServerOptions(tls) });
    const server = new RespServer(netServer, options);
    // Served, refused-and-lingering (bounded by connectionsMax in accept), and in a TLS handshake: past
    // that net.Server closes a socket as it is accepted, before any TLS work, and says so with "drop".
    netServer.maxConnections = 2 * server.limits.connectionsMax + respHandshakesPendingMax;
    netServer.on("drop", () => server.limitHits("resp_connections"));
    if (tls === undefined) {
      netServer.on("connection", (socket: Socket) => server.accept(socket));
    } else {
      netServer.on("connection", (socket: Socket) => {
        server.tlsTcpSockets.add(socket);
        socket.once("close", () => server.tlsTcpSockets.delete(socket));
      });
      netServer.on("secureConnection", (socket: TLSSocket) => server.accept(socket));
      netServer.on("tlsClientError", (error: Error, socket: TLSSocket) => {
        // Debug only: any client that can reach the port could otherwise fill the log.
        server.logger.debug({ remote: socket.remoteAddress, reason: error.message }, "refused a RESP connection: TLS handshake failed");
      });
      tls.serveOn(netServer as ReturnType<typeof createTlsServer>);
    }
    await new Promise<void>((resolve, reject) => {
      netServer.once("error", reject);
      netServer.listen(options.listen.port, options.listen.host, () => {
        netServer.off("error", reject);
        resolve();
      });
    });
    netServer.on("error", (error) => server.logger.error({ err: error }, "RESP server error"));
    server.logger.info({ address: server.address(), authRequired: server.credentials !== null, readOnlyPassword: options.authReadOnlyPassword !== undefined, tls: tls !== undefined, clientCertificateRequired: tls?.verifiesPeer ?? false }, "listening for RESP clients");
    return server;
  }

  /** The address actually bound (the chosen port when listening on port 0). */
  address(): Address {
    const bound = this.netServer.address() as AddressInfo | null;
    assert(bound !== null && typeof bound === "object", "RESP server address asked before it listens");
    return { host: bound.address, port: bound.port };
  }

  get connectionsMax(): number {
    return this.limits.connectionsMax;
  }

  connectionsOpen(): number {
    return this.connections.size;
  }

  /** Stops accepting and cuts every connection; replies still being computed are dropped. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.netServer.close(() => resolve()));
    for (const connection of this.connections) connection.destroy();
    for (const socket of this.refusedSockets) socket.destroy();
    for (const socket of this.tlsTcpSockets) socket.destroy();
    await closed;
  }

  private execute(ctx: CommandContext, args: readonly Buffer[]): Reply | Promise<Reply> {
    const metrics = this.metrics;
    if (metrics === null) return executeCommand(this.commands, ctx, args, this.logger);
    const startedNs = process.hrtime.bigint();
    const count = (reply: Reply): Reply => {
      const command = args[0]?.toString().toLowerCase() ?? "";
      metrics.respAnswered(command, reply.type !== "error", Number(process.hrtime.bigint() - startedNs) / 1e9);
      return reply;
    };
    const result = executeCommand(this.commands, ctx, args, this.logger);
    return result instanceof Promise ? result.then(count) : count(result);
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= this.limits.connectionsMax) {
      this.limitHits("resp_connections");
      this.refusalLog.refused({ connectionsMax: this.limits.connectionsMax, remote: socket.remoteAddress }, "refused a RESP connection: too many clients");
      // Lingering refusals are bounded too: past as many again, a refused socket is cut at once.
      if (this.refusedSockets.size >= this.limits.connectionsMax) {
        socket.destroy();
        return;
      }
      this.refusedSockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => this.refusedSockets.delete(socket));
      socket.end(encodeReply(err(`max number of clients reached (${this.limits.connectionsMax}, connectionsMax); retry later`), 2));
      // Read and drop what the client sends meanwhile: closing with unread input would reset the connection.
      socket.resume();
      setTimeout(() => socket.destroy(), closeLingerMs).unref();
      return;
    }
    const connection = new RespConnection(socket, {
      clientId: this.nextClientId++,
      limits: this.limits,
      server: this,
      credentials: this.credentials,
      authLimiter: this.authLimiter,
      execute: (ctx, args) => this.execute(ctx, args),
      logger: this.logger,
    });
    this.connections.add(connection);
    connection.onClose(() => this.connections.delete(connection));
  }
}
