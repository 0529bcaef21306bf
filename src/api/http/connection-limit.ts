// The HTTP port's bound on client connections (the `http_connections` limit): at most `connectionsMax`
// are served at once, the next ones are answered 503 BUSY and closed, and past a hard ceiling new TCP
// connections are closed at once, unanswered, so that a flood cannot grow the count without bound.
//
// A refused connection is answered at its first request, not when it is accepted, on HTTP and HTTPS
// alike: HTTP/1.1 has no answer before a request (clients misread or drop one), and on HTTPS the 'connection'
// event gives the raw TCP socket, on which plaintext would only make the client report a failed
// handshake. So on HTTPS a connection counts once its handshake finished ('secureConnection'), and a
// refused client learns why over TLS. Its handshake costs the node one key exchange; the ceiling
// (`server.maxConnections`) bounds how many sockets can be in a handshake or waiting for their answer.
// GET /healthz alone is still answered on a refused connection, once: liveness does not depend on load.

import type { IncomingMessage, RequestListener, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { LimitHitSink } from "../../limit-hits.js";

/**
 * HTTP client connections served at once. A sidecar's clients are its own application's processes, tens
 * to hundreds of kept-alive connections; every watch stream and watch WebSocket holds one too, so this is
 * above watchStreamsMax + watchSocketsMax (2,000), leaving room for requests when both are full. A few
 * thousand sockets bound file descriptors and parser buffers far below what would take the node down.
 */
export const httpConnectionsMax = 4_096;
/**
 * TCP connections held beyond httpConnectionsMax: refused ones until they are answered, and on HTTPS ones
 * still in their TLS handshake. Any more are closed as soon as they are accepted.
 */
export const httpConnectionsPendingMax = 100;
/** How long a refused connection has to send its request and read the 503 before it is cut. */
export const refusedConnectionLingerMs = 5_000;
/**
 * Every 503's Retry-After, in seconds: a full limit frees a slot as soon as one client finishes, and a
 * leader is elected within about an election timeout.
 */
export const retryAfterSeconds = 1;

/** How many connections `limitConnections` serves, and where it reports refusals. */
export interface HttpConnectionLimit {
  readonly connectionsMax: number;
  readonly limitHits: LimitHitSink;
}

/** Sockets refused for httpConnectionsMax, with why: their requests and upgrades are answered 503, never served. */
const refusedSockets = new WeakMap<Duplex, string>();

/** Why `socket` was refused for httpConnectionsMax, or undefined: an upgrade on a refused one must be answered, not served. */
export function connectionRefusal(socket: Duplex): string | undefined {
  return refusedSockets.get(socket);
}

/**
 * Bounds the connections of `server` (not yet listening) by `limit`, counting each refusal, and returns
 * `app` wrapped so that requests on a refused connection are answered 503 BUSY instead of reaching it.
 */
export function limitConnections(server: Server, tls: boolean, limit: HttpConnectionLimit, app: RequestListener): RequestListener {
  let served = 0;
  const refusal = `this node already serves its most HTTP connections at once (httpConnectionsMax ${limit.connectionsMax}); retry later, send more requests over each kept-alive connection, or use another node`;
  // net.Server closes a connection past maxConnections before any other work, TLS included, and says so.
  server.maxConnections = limit.connectionsMax + httpConnectionsPendingMax;
  server.on("drop", () => limit.limitHits("http_connections"));
  server.on(tls ? "secureConnection" : "connection", (socket: Socket) => {
    if (served < limit.connectionsMax) {
      served++;
      socket.once("close", () => served--);
      return;
    }
    limit.limitHits("http_connections");
    refusedSockets.set(socket, refusal);
    // A refused client that never sends a request would otherwise keep its slot under the ceiling.
    const linger = setTimeout(() => socket.destroy(), refusedConnectionLingerMs);
    linger.unref();
    socket.once("close", () => clearTimeout(linger));
  });
  return (request: IncomingMessage, response: ServerResponse) => {
    if (!refusedSockets.has(request.socket)) {
      app(request, response);
      return;
    }
    // Connection: close makes Node end the socket once the answer is out, after reading any request body.
    if (isLivenessProbe(request)) {
      // A full node is alive: failing its liveness probe would have it restarted, cutting every client it serves.
      response.setHeader("Connection", "close");
      app(request, response);
      return;
    }
    const body = busyBody(refusal);
    response.writeHead(503, { "Retry-After": String(retryAfterSeconds), Connection: "close", "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body) });
    response.end(body);
  };
}

function isLivenessProbe(request: IncomingMessage): boolean {
  return (request.method === "GET" || request.method === "HEAD") && (request.url === "/healthz" || request.url?.startsWith("/healthz?") === true);
}

/**
 * Answers 503 BUSY with `message` on a socket that left Node's HTTP handling (an upgrade request), and
 * ends it; what the client still sends is read and dropped, so that closing does not reset the answer.
 */
export function endWithBusy(socket: Duplex, message: string): void {
  const body = busyBody(message);
  socket.on("error", () => {}); // a client gone meanwhile is no fault of ours
  socket.end(
    `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${retryAfterSeconds}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.resume();
  setTimeout(() => socket.destroy(), refusedConnectionLingerMs).unref();
}

function busyBody(message: string): string {
  return JSON.stringify({ error: { code: "BUSY", message } });
}
