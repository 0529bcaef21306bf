// The peer transport: one WebSocket stream per pair of nodes, carrying Raft messages (batched, with
// back-pressure), InstallSnapshot streams and the node driver's forwarded requests.
//
// Streams: the node with the lower id dials, the higher one accepts (handshake.ts); only the dialer
// reconnects, with capped exponential backoff and jitter. A higher id whose stream from a lower one stays
// away longer than that backoff dials it in reverse, in case it lacks our address (handshake.ts). Every
// stream starts with a handshake (cluster id, node ids, cluster token) before any other frame; wire
// format in codec.ts, limits in limits.ts.
//
// Membership changes at runtime: `addPeer` and `removePeer`. An authenticated dialer this node was not told
// about gets a link too (a joining node learns the members only from its log); this node never dials it
// unless `addPeer` gives it an address.
//
// Callbacks (onMessage, onUnreachable, onSnapshotStatus, onRequest) never run inside `send` or `request`,
// and none runs after `close()`. `onLimitHit` is the exception: it runs where the limit refuses, inside
// `send` and `request` too, because it only counts and must not cost a deferral per refusal.

import type { IncomingMessage, Server } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import type { Message } from "../raft/types.js";
import { ignoreLimitHits, type LimitHitSink } from "../limit-hits.js";
import { assert } from "../util/assert.js";
import { CodecError, decodeFrame, encodeFrame, type Frame, reasonBytesMax, truncateUtf8 } from "./codec.js";
import { CloseCode, closeReasonBytesMax, type ConnectionState, PeerConnection } from "./connection.js";
import { PeerUnavailableError } from "./errors.js";
import { type AcceptorIdentity, dialsTo, helloRefusal, welcomeMismatch } from "./handshake.js";
import { peerSocketsMax, reconnectDelayMs, resolveLimits, type TransportLimits } from "./limits.js";
import { peerPath, peerProblems, peerUrl, validateOptions } from "./options.js";
import { createPeerServer, dialTlsOptions, explainDialError, refusedPeerCertificate, TlsRefusals } from "./peer-tls.js";
import type { ReloadableTls } from "../tls.js";
import { type LinkContext, PeerLink } from "./peer-link.js";

export { PeerUnavailableError, RemoteHandlerError, RequestError, RequestLimitError, RequestTimeoutError } from "./errors.js";
export type { TransportLimits } from "./limits.js";
export { peerPath } from "./options.js";

const handshakeOverflowLogIntervalMs = 1_000;

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface TransportOptions {
  nodeId: string;
  clusterId: string;
  listen: PeerAddress;
  /** The other members known at start; excludes this node. `addPeer` and `removePeer` change them later. */
  peers: ReadonlyMap<string, PeerAddress>;
  /** Shared secret every dialer must present. Travels in the handshake: use on trusted networks or under TLS. */
  clusterToken?: string;
  /**
   * Mutual TLS (peer-tls.ts): listen with HTTPS and dial `wss`, each side presenting a certificate that must
   * chain to the CA. Absent: plain `ws`.
   */
  tls?: ReloadableTls;
  logger: Logger;
  onMessage(message: Message): void;
  onUnreachable(peerId: string): void;
  onSnapshotStatus(peerId: string, delivered: boolean): void;
  onRequest(fromPeerId: string, payload: Uint8Array): Promise<Uint8Array>;
  /** Overrides of the defaults in limits.ts (tests use small ones). */
  limits?: Partial<TransportLimits>;
  /**
   * Told once per refusal by a transport limit (`peer_*`, `forwarded_requests`): for the limit-hits
   * counter. Called synchronously, only on the refusing path.
   */
  onLimitHit?: LimitHitSink;
}

export class Transport {
  private readonly limits: TransportLimits;
  private readonly logger: Logger;
  private readonly limitHit: LimitHitSink;
  /** Where each peer listens, for the peers we dial; a copy, changed only by addPeer and removePeer. */
  private readonly addresses: Map<string, PeerAddress>;
  /** One per peer, configured or accepted unannounced; at most `linksMax`. */
  private readonly links = new Map<string, PeerLink>();
  private readonly linkContext: LinkContext;
  private readonly connections = new Set<PeerConnection>();
  private readonly identity: AcceptorIdentity;
  private readonly httpServer: Server | HttpsServer;
  private readonly tls: ReloadableTls | undefined;
  private readonly wsServer: WebSocketServer;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private handshakesPending = 0;
  private handshakeOverflowsUnlogged = 0;
  private handshakeOverflowLoggedAtMs = -Infinity;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly unknownPeersWarned = new Set<string>();

  /** Validates the options, listens, and starts dialing the peers this node dials. */
  static async start(options: TransportOptions): Promise<Transport> {
    const limits = resolveLimits(options.limits);
    validateOptions(options, limits.linksMax);
    const transport = new Transport(options, limits);
    await transport.listen();
    transport.startDialing();
    return transport;
  }

  private constructor(
    private readonly options: TransportOptions,
    limits: TransportLimits,
  ) {
    this.limits = limits;
    this.logger = options.logger.child({ component: "transport" });
    this.limitHit = options.onLimitHit ?? ignoreLimitHits;
    this.addresses = new Map(options.peers);
    this.identity = { nodeId: options.nodeId, clusterId: options.clusterId, clusterToken: options.clusterToken };
    this.linkContext = this.createLinkContext();
    for (const peerId of this.addresses.keys()) this.links.set(peerId, new PeerLink(peerId, this.linkContext));
    this.tls = options.tls;
    this.httpServer = createPeerServer(this.tls, limits.handshakeTimeoutMs, (_request, response) => {
      response.writeHead(426, { "content-type": "text/plain" }).end("raftlock peer port: WebSocket connections only\n");
    });
    // Sockets before their upgrade (in the TLS handshake, or yet to send the request) are not in
    // handshakesPending; this bounds them together with everything else.
    this.httpServer.maxConnections = peerSocketsMax(limits);
    this.httpServer.on("drop", (socket?: { remoteAddress?: string; remotePort?: number }) => {
      this.noteHandshakeOverflow(`${socket?.remoteAddress ?? "?"}:${socket?.remotePort ?? "?"}`);
    });
    new TlsRefusals(this.logger).watch(this.httpServer, this.tls);
    // New handshakes use reloaded certificates; open streams keep the session they were made with.
    this.tls?.serveOn(this.httpServer as HttpsServer);
    this.wsServer = new WebSocketServer({ noServer: true, maxPayload: limits.frameBytesMax, perMessageDeflate: false, clientTracking: false });
    this.httpServer.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(request, socket, head));
  }

  private createLinkContext(): LinkContext {
    const { options } = this;
    return {
      nodeId: options.nodeId,
      limits: this.limits,
      logger: this.logger,
      limitHit: this.limitHit,
      onMessage: (message) => options.onMessage(message),
      onUnreachable: (peerId) => options.onUnreachable(peerId),
      onSnapshotStatus: (peerId, delivered) => options.onSnapshotStatus(peerId, delivered),
      onRequest: (fromPeerId, payload) => options.onRequest(fromPeerId, payload),
      defer: (callback) =>
        queueMicrotask(() => {
          if (!this.closed) callback();
        }),
      fail: (connection, code, reason) => this.fail(connection, code, reason),
    };
  }

  // ------------------------------------------------------------------------------------------
  // Public surface

  /** Queues `message` for its peer; never throws for a lost or slow peer (it reports it unreachable). */
  send(message: Message): void {
    assert(message.from === this.options.nodeId, `sending a message from "${message.from}" on node "${this.options.nodeId}"`);
    if (this.closed) return;
    const link = this.links.get(message.to);
    if (link === undefined) {
      if (!this.unknownPeersWarned.has(message.to)) {
        this.unknownPeersWarned.add(message.to);
        this.logger.warn({ peerId: message.to }, "dropped messages to a node that is not a configured peer");
      }
      return;
    }
    link.send(message);
  }

  /**
   * Sends `payload` to the peer's onRequest and resolves with its answer. Rejects with a RequestError:
   * PeerUnavailableError (not connected, or the connection closed while pending — at once, not at the
   * timeout), RequestTimeoutError, RemoteHandlerError or RequestLimitError; `outcomeUnknown` says whether
   * the peer may have acted.
   */
  request(peerId: string, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    assert(Number.isInteger(timeoutMs) && timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1, `request timeout must be a positive integer of ms (got ${timeoutMs})`);
    if (this.closed) return Promise.reject(new PeerUnavailableError(peerId, "the peer transport is closed", false));
    const link = this.links.get(peerId);
    if (link === undefined) return Promise.reject(new PeerUnavailableError(peerId, `"${peerId}" is not a configured peer`, false));
    return link.request(payload, timeoutMs);
  }

  /**
   * Adds a peer, or gives a known one a new address. This node dials it at once when it is the dialer
   * (handshake.ts); a new address takes effect at the next dial, an open stream stays. Throws an Error
   * saying what to change for an invalid id or address, or when `linksMax` peers are already linked.
   */
  addPeer(peerId: string, address: PeerAddress): void {
    const problems = peerProblems(this.options.nodeId, peerId, address);
    if (problems.length > 0) throw new Error(`cannot add peer: ${problems.join("; ")}`);
    if (this.closed) return;
    let link = this.links.get(peerId);
    if (link === undefined) {
      const { linksMax } = this.limits;
      if (this.links.size >= linksMax) {
        this.limitHit("peer_links");
        throw new Error(`cannot add peer "${peerId}": this node already holds ${this.links.size} peer links (linksMax ${linksMax}); remove departed peers first`);
      }
      link = new PeerLink(peerId, this.linkContext);
      this.links.set(peerId, link);
    }
    const previous = this.addresses.get(peerId);
    this.addresses.set(peerId, address);
    this.unknownPeersWarned.delete(peerId);
    if (previous !== undefined && previous.host === address.host && previous.port === address.port) return;
    this.logger.info({ peerId, address, previousAddress: previous }, previous === undefined ? "added a peer" : "peer address changed");
    if (!dialsTo(this.options.nodeId, peerId)) return;
    if (link.reconnectTimer !== null) {
      // Waiting out a backoff earned at the old address: the new one deserves a try now.
      clearTimeout(link.reconnectTimer);
      link.reconnectAttempt = 0;
    }
    this.dial(link);
  }

  /**
   * Forgets a peer: closes its streams, stops reconnecting, fails its pending requests with
   * PeerUnavailableError, and reports nothing more about it. Sends to it are dropped as to any unknown
   * node. Idempotent. If it dials this node again it is accepted as an unannounced peer.
   */
  removePeer(peerId: string): void {
    this.addresses.delete(peerId);
    const link = this.links.get(peerId);
    if (this.closed || link === undefined) return;
    // Out of the map first: the sockets' endings below then find no link to detach or to redial.
    this.links.delete(peerId);
    const reason = `"${peerId}" was removed from the peers of "${this.options.nodeId}"`;
    const sockets = [link.connection, link.dialing].filter((connection) => connection !== null);
    link.remove(reason);
    for (const connection of sockets) this.closeConnection(connection, CloseCode.Normal, reason);
    this.logger.info({ peerId }, "removed a peer");
  }

  /** Peers this node holds a link for (configured or accepted unannounced), sorted. */
  peerIds(): string[] {
    return [...this.links.keys()].sort();
  }

  /** Peers with an authenticated, open stream, sorted. */
  connectedPeers(): string[] {
    return [...this.links.values()]
      .filter((link) => link.connection !== null)
      .map((link) => link.peerId)
      .sort();
  }

  /** Frame bytes sent to and received from each peer this node holds a link for, since the link was made. */
  peerTraffic(): { peerId: string; sentBytes: number; receivedBytes: number }[] {
    return [...this.links.values()].map((link) => ({ peerId: link.peerId, sentBytes: link.bytesSent, receivedBytes: link.bytesReceived }));
  }

  /** Where the peer port listens (the bound port when `listen.port` was 0). */
  address(): PeerAddress {
    const address = this.httpServer.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** Closes every stream and the server and rejects pending requests; no callback runs afterwards. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    for (const link of this.links.values()) link.shutdown();
    const sockets = [...this.connections];
    for (const connection of sockets) this.closeConnection(connection, CloseCode.GoingAway, "node shutting down");
    this.closing = (async () => {
      await Promise.all(sockets.map((connection) => connection.closed));
      await new Promise<void>((resolve) => {
        this.httpServer.close(() => resolve());
        this.httpServer.closeAllConnections();
      });
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------------------------------
  // Listening and accepting

  private listen(): Promise<void> {
    const { host, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(new Error(`cannot listen for peers on ${host}:${port}: ${error.message}`));
      this.httpServer.once("error", onError);
      this.httpServer.listen(port, host, () => {
        this.httpServer.off("error", onError);
        this.httpServer.on("error", (error) => this.logger.error({ err: error }, "peer server error"));
        this.logger.info({ address: this.address(), tls: this.tls !== undefined }, "listening for peers");
        resolve();
      });
    });
  }

  private onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const remoteAddress = `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`;
    const certificateRefused = refusedPeerCertificate(this.tls, request.socket);
    if (certificateRefused !== null) {
      // TlsRefusals destroys such sockets when the handshake completes; this is the gate that cannot be raced.
      this.logger.warn({ remoteAddress, reason: certificateRefused }, "refused a peer connection");
      socket.destroy();
      return;
    }
    const path = (request.url ?? "").split("?")[0];
    if (this.closed || path !== peerPath || this.handshakesPending >= this.limits.handshakesPendingMax) {
      const status = path !== peerPath ? "404 Not Found" : "503 Service Unavailable";
      if (status.startsWith("503") && !this.closed) this.noteHandshakeOverflow(remoteAddress);
      socket.once("finish", () => socket.destroy());
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    this.wsServer.handleUpgrade(request, socket, head, (ws) => {
      if (this.closed) {
        ws.terminate();
        return;
      }
      const connection = new PeerConnection(ws, "acceptor", null, remoteAddress, performance.now());
      this.handshakesPending += 1;
      this.track(connection);
    });
  }

  /** One log line per second at most: a flood of sockets must not become a flood of log lines. */
  private noteHandshakeOverflow(remoteAddress: string): void {
    this.limitHit("peer_handshakes_pending");
    this.handshakeOverflowsUnlogged += 1;
    const nowMs = performance.now();
    if (nowMs - this.handshakeOverflowLoggedAtMs < handshakeOverflowLogIntervalMs) return;
    this.logger.warn(
      { remoteAddress, refusedSockets: this.handshakeOverflowsUnlogged, handshakesPendingMax: this.limits.handshakesPendingMax },
      "refused peer connections: too many handshakes pending",
    );
    this.handshakeOverflowLoggedAtMs = nowMs;
    this.handshakeOverflowsUnlogged = 0;
  }

  private onHello(connection: PeerConnection, frame: Frame): void {
    if (frame.kind !== "hello") {
      this.fail(connection, CloseCode.ProtocolError, `expected a hello frame first, got ${frame.kind}`);
      return;
    }
    connection.peerId = frame.fromNodeId;
    const refusal = helloRefusal(frame, this.identity, { peerIds: this.links, linksMax: this.limits.linksMax, dialable: this.addresses });
    if (refusal !== null) {
      const { reason } = refusal;
      if (refusal.limit !== null) this.limitHit(refusal.limit);
      this.logger.warn({ peerId: frame.fromNodeId, remoteAddress: connection.remoteAddress, reason }, "refused a peer connection");
      connection.ws.send(encodeFrame({ kind: "refuse", reason: truncateUtf8(reason, reasonBytesMax) }));
      this.closeConnection(connection, CloseCode.PolicyViolation, reason);
      return;
    }
    const link = this.links.get(frame.fromNodeId) ?? this.linkUnannounced(frame.fromNodeId, connection);
    if (link.connection !== null) {
      this.logger.info({ peerId: link.peerId }, "peer opened a new stream; closing its previous one");
      this.closeConnection(link.connection, CloseCode.Replaced, "replaced by a newer stream from the same peer");
    }
    this.open(connection);
    connection.ws.send(encodeFrame({ kind: "welcome", clusterId: this.options.clusterId, nodeId: this.options.nodeId }));
    link.attach(connection);
  }

  /** A link for an authenticated dialer we were not told about, e.g. a member dialing this joining node. */
  private linkUnannounced(peerId: string, connection: PeerConnection): PeerLink {
    assert(this.links.size < this.limits.linksMax, "accepted a dialer beyond linksMax");
    const link = new PeerLink(peerId, this.linkContext);
    this.links.set(peerId, link);
    this.logger.info({ peerId, remoteAddress: connection.remoteAddress }, "accepted a stream from a node that is not among the configured peers");
    return link;
  }

  // ------------------------------------------------------------------------------------------
  // Dialing

  private startDialing(): void {
    for (const link of this.links.values()) if (dialsTo(this.options.nodeId, link.peerId)) this.dial(link);
    this.keepaliveTimer = setInterval(() => this.checkLiveness(), this.limits.keepaliveIntervalMs);
  }

  private dial(link: PeerLink): void {
    link.reconnectTimer = null;
    if (this.closed || link.connection !== null || link.dialing !== null) return;
    const address = this.addresses.get(link.peerId);
    assert(address !== undefined, "dialing a peer without an address");
    const ws = new WebSocket(peerUrl(address, this.tls !== undefined), {
      maxPayload: this.limits.frameBytesMax,
      perMessageDeflate: false,
      handshakeTimeout: this.limits.handshakeTimeoutMs,
      ...(this.tls === undefined ? {} : dialTlsOptions(this.tls)),
    });
    const connection = new PeerConnection(ws, "dialer", link.peerId, `${address.host}:${address.port}`, performance.now());
    link.dialing = connection;
    this.track(connection);
    ws.on("open", () => {
      if (connection.state !== "handshaking") return;
      const { clusterId, nodeId, clusterToken } = this.options;
      ws.send(encodeFrame({ kind: "hello", clusterId, fromNodeId: nodeId, toNodeId: link.peerId, clusterToken: clusterToken ?? null }));
    });
  }

  private onWelcome(connection: PeerConnection, link: PeerLink, frame: Frame): void {
    if (frame.kind === "refuse") {
      // A reverse dial is refused whenever the peer has our address and dials us itself: that is no news.
      const level = dialsTo(this.options.nodeId, link.peerId) ? "warn" : "debug";
      this.logger[level]({ peerId: link.peerId, reason: frame.reason }, "peer refused our connection");
      connection.lastError = `refused: ${frame.reason}`;
      this.closeConnection(connection, CloseCode.Normal, "refused");
      return;
    }
    if (frame.kind !== "welcome") {
      this.fail(connection, CloseCode.ProtocolError, `expected a welcome frame first, got ${frame.kind}`);
      return;
    }
    const mismatch = welcomeMismatch(frame, link.peerId, this.options.clusterId);
    if (mismatch !== null) {
      this.fail(connection, CloseCode.PolicyViolation, mismatch);
      return;
    }
    link.dialing = null;
    link.dialFailuresInRow = 0;
    if (link.connection !== null) {
      // Our reverse dial was answered after the peer's own stream arrived: one stream per pair, keep theirs.
      this.closeConnection(connection, CloseCode.Normal, "the peer's own stream arrived first");
      return;
    }
    this.open(connection);
    link.attach(connection);
  }

  private scheduleReconnect(link: PeerLink, connection: PeerConnection): void {
    if (this.closed || link.reconnectTimer !== null) return;
    // A stream that stayed up a while starts the backoff over; one that keeps failing backs off further.
    const upMs = connection.openedAtMs === null ? 0 : performance.now() - connection.openedAtMs;
    if (upMs >= this.limits.reconnectDelayMaxMs) link.reconnectAttempt = 0;
    const delayMs = reconnectDelayMs(link.reconnectAttempt, this.limits);
    link.reconnectAttempt += 1;
    if (connection.openedAtMs === null) {
      link.dialFailuresInRow += 1;
      // The first failure of a streak is news; the rest of the streak would only repeat it every few seconds.
      const level = link.dialFailuresInRow === 1 ? "warn" : "debug";
      this.logger[level]({ peerId: link.peerId, reason: connection.lastError ?? "closed during the handshake", retryInMs: delayMs }, "cannot reach peer; retrying");
    }
    link.reconnectTimer = setTimeout(() => this.dial(link), delayMs);
  }

  // ------------------------------------------------------------------------------------------
  // Connections, both roles

  private track(connection: PeerConnection): void {
    const { ws } = connection;
    this.connections.add(connection);
    connection.handshakeTimer = setTimeout(
      () => this.fail(connection, CloseCode.PolicyViolation, `handshake not completed within ${this.limits.handshakeTimeoutMs} ms`, true),
      this.limits.handshakeTimeoutMs,
    );
    ws.on("message", (data: RawData, isBinary: boolean) => this.onSocketMessage(connection, data, isBinary));
    ws.on("ping", () => {
      connection.lastHeardAtMs = performance.now();
    });
    ws.on("pong", () => {
      connection.lastHeardAtMs = performance.now();
    });
    // ws reports errors (refused connections, frames over maxPayload, resets) here, then closes. A frame over
    // maxPayload (= frameBytesMax) is refused by ws before it reaches decodeFrame, on either side: counted here.
    ws.on("error", (error: Error) => {
      if ((error as NodeJS.ErrnoException).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
        this.limitHit("peer_frame_bytes");
        connection.lastError = `${error.message}: the peer sent a frame over frameBytesMax (${this.limits.frameBytesMax} bytes)`;
        return;
      }
      connection.lastError = connection.role === "dialer" ? explainDialError(error, this.tls !== undefined) : error.message;
    });
    ws.on("close", (code: number, reason: Buffer) => {
      if (connection.closeTimer !== null) clearTimeout(connection.closeTimer);
      this.connections.delete(connection);
      if (connection.state !== "closed") {
        const wasState = connection.state;
        connection.state = "closed";
        const why = connection.lastError ?? `closed by the peer (code ${code}${reason.length > 0 ? `: ${reason.toString()}` : ""})`;
        if (wasState === "open") this.logger.warn({ peerId: connection.peerId, reason: why }, "peer connection lost");
        this.ended(connection, wasState, why);
      }
      connection.markClosed();
    });
  }

  private onSocketMessage(connection: PeerConnection, data: RawData, isBinary: boolean): void {
    if (connection.state === "closed") return;
    connection.lastHeardAtMs = performance.now();
    if (!isBinary) {
      this.fail(connection, CloseCode.UnsupportedData, "text frame; peers speak binary frames only");
      return;
    }
    const bytes = rawBytes(data);
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.limits.frameBytesMax);
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      this.fail(connection, CloseCode.ProtocolError, `malformed frame: ${error.message}`);
      return;
    }
    const link = connection.peerId === null ? undefined : this.links.get(connection.peerId);
    if (connection.state === "handshaking") {
      if (connection.role === "acceptor") this.onHello(connection, frame);
      else if (link !== undefined) this.onWelcome(connection, link, frame);
      return;
    }
    assert(link !== undefined && link.connection === connection, "an open connection without its link");
    link.bytesReceived += bytes.length;
    link.receive(connection, frame);
  }

  private open(connection: PeerConnection): void {
    if (connection.handshakeTimer !== null) clearTimeout(connection.handshakeTimer);
    connection.handshakeTimer = null;
    if (connection.role === "acceptor") this.handshakesPending -= 1;
    connection.state = "open";
    connection.openedAtMs = performance.now();
    this.logger.info({ peerId: connection.peerId, role: connection.role }, "peer connected");
  }

  /** Closes a connection whose peer broke the protocol or went silent; one log line says why. */
  private fail(connection: PeerConnection, code: number, reason: string, terminate = false): void {
    if (connection.state === "closed") return;
    this.logger.warn({ peerId: connection.peerId, remoteAddress: connection.remoteAddress, reason }, "closing peer connection");
    this.closeConnection(connection, code, reason, terminate);
  }

  /** Our side ends the connection. Its dependents fail now; the socket gets `closeTimeoutMs` to close cleanly. */
  private closeConnection(connection: PeerConnection, code: number, reason: string, terminate = false): void {
    if (connection.state === "closed") return;
    const wasState = connection.state;
    connection.state = "closed";
    const { ws } = connection;
    if (terminate) {
      ws.terminate();
    } else {
      ws.close(code, truncateUtf8(reason, closeReasonBytesMax));
      connection.closeTimer = setTimeout(() => ws.terminate(), this.limits.closeTimeoutMs);
    }
    this.ended(connection, wasState, reason);
  }

  /** Runs once per connection, when it leaves `wasState` for closed, whoever closed it. */
  private ended(connection: PeerConnection, wasState: ConnectionState, reason: string): void {
    if (connection.handshakeTimer !== null) clearTimeout(connection.handshakeTimer);
    connection.handshakeTimer = null;
    if (connection.role === "acceptor" && wasState === "handshaking") this.handshakesPending -= 1;
    const link = connection.peerId === null ? undefined : this.links.get(connection.peerId);
    if (link === undefined) return;
    if (wasState === "open") link.detach(connection, reason);
    const weDial = dialsTo(this.options.nodeId, link.peerId);
    if (connection.role === "dialer") {
      if (link.dialing === connection) link.dialing = null;
      // A reverse dial is not retried on the backoff: checkLiveness tries again if the peer still does not dial.
      if (weDial) this.scheduleReconnect(link, connection);
    } else if (weDial && wasState === "open" && this.addresses.has(link.peerId)) {
      // A reverse stream we accepted is gone, and we have the peer's address by now: we dial, as the lower id.
      this.scheduleReconnect(link, connection);
    }
  }

  /**
   * Pings open streams; drops one whose peer has been silent too long (a half-open TCP connection). Dials
   * in reverse each lower id that has not dialed us for longer than its longest backoff (handshake.ts).
   */
  private checkLiveness(): void {
    const nowMs = performance.now();
    for (const connection of this.connections) {
      if (connection.state !== "open" || connection.ws.readyState !== WebSocket.OPEN) continue;
      const silentMs = nowMs - connection.lastHeardAtMs;
      if (silentMs > this.limits.peerSilenceMsMax) {
        this.fail(connection, CloseCode.GoingAway, `no frame or pong for ${Math.round(silentMs)} ms`, true);
      } else {
        connection.ws.ping();
      }
    }
    for (const link of this.links.values()) {
      if (dialsTo(this.options.nodeId, link.peerId) || link.connection !== null || link.dialing !== null || !this.addresses.has(link.peerId)) continue;
      if (nowMs - link.streamlessSinceMs <= this.limits.reconnectDelayMaxMs) continue;
      // Once per backoff period at most, so a peer that is down is not dialed on every tick.
      link.streamlessSinceMs = nowMs;
      this.dial(link);
    }
  }
}

function rawBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
