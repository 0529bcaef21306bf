// Mutual TLS on the peer port: the listener is HTTPS (`wss`), dialers present their own certificate, and
// each side accepts the other only if its certificate chains to --peer-tls-ca. TLS wraps the same
// WebSocket stream; the wire format and the handshake (cluster id, node ids, token) are unchanged.
//
// Host names are not checked, only the chain: members are dialed by IP, by StatefulSet pod DNS or by
// --peer-advertise, and a certificate that had to list every one of those names would have to be reissued
// whenever an address changes. Any certificate the cluster's CA issued is a peer's, so that CA must issue
// certificates for this cluster's nodes only; the handshake then checks the cluster id and token as before.
//
// A cluster with TLS on some nodes and not on others fails at every dial, loudly on both sides: the TLS
// side names the mismatch (a plain HTTP request on a TLS port, or a TLS hello on a plain port).

import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { type ReloadableTls, secureOptions } from "../tls.js";

/** At most one log line per interval for refused TLS sockets: a flood of bad sockets must not flood the log. */
export const tlsRefusalLogIntervalMs = 1_000;
/** First byte of a TLS record carrying a handshake (a ClientHello, when it opens a connection). */
const tlsHandshakeRecordByte = 0x16;

/** Options for ws (passed on to tls.connect) that present our certificate and verify the peer's chain. */
export function dialTlsOptions(tls: ReloadableTls): ConnectionOptions {
  return {
    ...secureOptions(tls.current()),
    rejectUnauthorized: true,
    // Chain only, by design (see the top of this file).
    checkServerIdentity: () => undefined,
  };
}

/** Most time between Node's checks of sockets that have not sent their upgrade request in time (its default is 30 s). */
const upgradeCheckIntervalMsMax = 1_000;

/**
 * The peer port's server: HTTPS requiring a client certificate with `tls`, else plain HTTP. The TLS
 * handshake and the upgrade request each get `handshakeTimeoutMs` (Node's defaults are 120 s and 60 s):
 * both come before the peer handshake's own timer and pending count start, so a silent socket is bounded
 * only by these.
 */
export function createPeerServer(tls: ReloadableTls | undefined, handshakeTimeoutMs: number, handler: RequestListener): HttpServer | HttpsServer {
  const upgradeTimeouts = {
    headersTimeout: handshakeTimeoutMs,
    requestTimeout: handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(handshakeTimeoutMs, upgradeCheckIntervalMsMax),
  };
  // rejectUnauthorized is false so that a refused peer reaches refusedPeerCertificate and is logged with the
  // reason; Node would otherwise drop it without a word. The upgrade handler refuses it in any case.
  const server =
    tls === undefined
      ? createHttpServer(upgradeTimeouts, handler)
      : createHttpsServer({ ...secureOptions(tls.current()), requestCert: true, rejectUnauthorized: false, handshakeTimeout: handshakeTimeoutMs, ...upgradeTimeouts }, handler);
  // The two timeouts above start at a request's first byte: a socket that sends nothing is closed once
  // idle this long. ws clears the idle timeout of a socket it upgrades, so open streams are not affected.
  server.setTimeout(handshakeTimeoutMs);
  return server;
}

/** Why an accepted socket may not carry a peer stream, or null when its certificate chains to the CA. */
export function refusedPeerCertificate(tls: ReloadableTls | undefined, socket: Socket): string | null {
  if (tls === undefined) return null;
  const tlsSocket = socket as TLSSocket;
  if (tlsSocket.authorized === true) return null;
  const code = String(tlsSocket.authorizationError ?? "no certificate");
  return `its certificate does not chain to --peer-tls-ca (${code}); give it a certificate issued by this cluster's CA`;
}

/** Why a dial failed, in words that name a TLS mismatch when that is the likely cause. */
export function explainDialError(error: Error & { code?: string }, tlsOn: boolean): string {
  const { message } = error;
  const code = error.code ?? "";
  const closedEarly = /socket hang up|ECONNRESET|disconnected before secure TLS connection/i.test(message);
  if (!tlsOn) return closedEarly ? `${message} (if the peer runs with --peer-tls-*, this node needs them too)` : message;
  if (/wrong version number|packet length too long/i.test(message)) {
    return `${message}: the peer does not speak TLS on its peer port; give every node --peer-tls-cert/key/ca, or none`;
  }
  // An alert from the peer: it refused our certificate (alerts carry CERTIFICATE in their codes too, so first).
  if (/alert/i.test(message) || code.includes("ALERT")) {
    return `the peer refused this node's certificate (${message}); is --peer-tls-cert issued by the peers' --peer-tls-ca?`;
  }
  // OpenSSL's verification codes of the peer's chain: UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED, ...
  if (/^(UNABLE_TO|SELF_SIGNED|DEPTH_ZERO|CERT_|INVALID_CA|PATH_LENGTH)/.test(code)) {
    return `the peer's certificate does not chain to --peer-tls-ca (${code}: ${message})`;
  }
  if (closedEarly) {
    return `${message}: the peer closed the connection during the handshake; does it run with --peer-tls-*, and does this node's --peer-tls-cert chain to its --peer-tls-ca?`;
  }
  return message;
}

/**
 * Logs refusals that happen below the WebSocket: TLS handshakes that fail, peers whose certificate does not
 * chain to the CA, and TLS hellos on a plain port. At most one line per `tlsRefusalLogIntervalMs`.
 */
export class TlsRefusals {
  private unlogged = 0;
  private loggedAtMs = -Infinity;

  constructor(private readonly logger: Logger) {}

  /** Refuses the sockets `server` cannot use as peer streams, logging why. */
  watch(server: HttpServer | HttpsServer, tls: ReloadableTls | undefined): void {
    if (tls === undefined) {
      server.on("clientError", (error: Error & { rawPacket?: Buffer }, socket: Socket) => {
        if (error.rawPacket?.[0] === tlsHandshakeRecordByte) {
          this.note(socket, "it speaks TLS, and this node has no --peer-tls-cert/key/ca; give every node the same TLS flags, or none");
        }
        // A plain answer, as Node gives without this listener: a TLS dialer reads it as "wrong version number".
        if (!socket.writable) {
          socket.destroy();
          return;
        }
        socket.once("finish", () => socket.destroy());
        socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      });
      return;
    }
    server.on("tlsClientError", (error: Error & { code?: string }, socket: TLSSocket) => {
      const reason =
        error.code === "ERR_SSL_HTTP_REQUEST" || /http request/i.test(error.message)
          ? "it does not speak TLS, and this node requires mutual TLS (--peer-tls-*); give every node the same TLS flags"
          : `TLS handshake failed: ${error.message}`;
      this.note(socket, reason);
    });
    server.on("secureConnection", (socket: TLSSocket) => {
      const refused = refusedPeerCertificate(tls, socket);
      if (refused === null) return;
      this.note(socket, refused);
      socket.destroy();
    });
  }

  /** Logs a refusal of the socket from `remote` unless one was logged within the interval. */
  note(socket: Socket, reason: string): void {
    this.unlogged += 1;
    const nowMs = performance.now();
    if (nowMs - this.loggedAtMs < tlsRefusalLogIntervalMs) return;
    const remoteAddress = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    this.logger.warn({ remoteAddress, reason, refusedSockets: this.unlogged }, "refused a peer connection");
    this.loggedAtMs = nowMs;
    this.unlogged = 0;
  }
}

