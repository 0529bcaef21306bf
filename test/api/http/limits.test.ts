// The HTTP port's named limits on a real listener, lowered through options: one more than the limit gets a
// clear error naming it, the refusal is counted in raftlock_limit_hits_total, and the node still serves
// the next request. The stand-in node answers the few routes these tests call; the state machine is real.
import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, type WebSocketServer } from "ws";
import { httpConnectionsPendingMax } from "../../../src/api/http/connection-limit.js";
import { createHttpApp, httpBodyBytesMax, listenHttp } from "../../../src/api/http/server.js";
import { attachWatchSocket, watchMessageBytesMax, type WatchSocketOptions } from "../../../src/api/http/watch-socket.js";
import { CoordinationStateMachine } from "../../../src/fsm/coordination.js";
import type { LimitName } from "../../../src/limit-hits.js";
import { NodeMetrics } from "../../../src/metrics.js";
import { CoordinationError, type CoordinationService } from "../../../src/node/coordination-service.js";
import type { RaftNode } from "../../../src/node/node.js";
import { ReloadableTls } from "../../../src/tls.js";
import { TestCa, useCertificateDir } from "../../support/certs.js";
import { waitFor } from "../../support/wait.js";

/** Answers the few routes these tests call as a node that leads in term 2. */
const node = { leader: () => ({ id: "n1", term: 2 }), isReady: () => true } as unknown as RaftNode;
/** No test here reaches a route that would call the service: the watch routes read the state machine only. */
const service = {} as CoordinationService;
const logger = pino({ level: "silent" });

interface Listener {
  readonly server: Server;
  readonly port: number;
  readonly metrics: NodeMetrics;
  /** Every limit hit so far, in order: read synchronously by waitFor. */
  readonly hits: LimitName[];
  /** Warnings the HTTP listener logged (refusals, once a minute at most). */
  readonly logLines: Record<string, unknown>[];
  /** Connections open as the server sees them (after the TLS handshake on HTTPS). */
  openConnections(): number;
  /** TCP connections the server accepted and has not closed (in a TLS handshake or not). */
  openSockets(): number;
  /** TCP connections the server accepted so far. */
  acceptedSockets(): number;
  readonly watchSockets: WebSocketServer;
}

interface StartOptions {
  readonly connectionsMax?: number;
  readonly watchStreamsMax?: number;
  readonly watch?: WatchSocketOptions;
  readonly tls?: ReloadableTls;
  /** The coordination service the routes call (a stand-in that refuses, for the error mapping). */
  readonly service?: CoordinationService;
}

const servers: Server[] = [];
const clientSockets: Socket[] = [];
afterEach(async () => {
  for (const socket of clientSockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function start(options: StartOptions = {}): Promise<Listener> {
  const metrics = new NodeMetrics();
  const hits: LimitName[] = [];
  const limitHits = (limit: LimitName): void => {
    hits.push(limit);
    metrics.limitHit(limit);
  };
  const fsm = new CoordinationStateMachine();
  const app = createHttpApp(node, logger, { service: options.service ?? service, fsm }, undefined, metrics, options.watchStreamsMax === undefined ? {} : { watchStreamsMax: options.watchStreamsMax });
  const logLines: Record<string, unknown>[] = [];
  const refusalLogger = pino({ level: "warn" }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const server = await listenHttp(app, { host: "127.0.0.1", port: 0 }, options.tls, { limitHits, logger: refusalLogger, ...(options.connectionsMax === undefined ? {} : { connectionsMax: options.connectionsMax }) });
  servers.push(server);
  const watchSockets = attachWatchSocket(server, fsm, () => true, { ...options.watch, limitHits });
  // Registered after the server's own listeners: when this count drops, so has the server's.
  let open = 0;
  server.on(options.tls === undefined ? "connection" : "secureConnection", (socket: Socket) => {
    open++;
    socket.once("close", () => open--);
  });
  let sockets = 0;
  let accepted = 0;
  server.on("connection", (socket: Socket) => {
    sockets++;
    accepted++;
    socket.once("close", () => sockets--);
  });
  return { server, port: (server.address() as { port: number }).port, metrics, hits, logLines, openConnections: () => open, openSockets: () => sockets, acceptedSockets: () => accepted, watchSockets };
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request on a connection of its own (no agent, so no pooled connection outlives it). */
function send(port: number, path: string, options: { method?: string; body?: string; ca?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const common = { host: "127.0.0.1", port, path, method: options.method ?? "GET", agent: false as const, headers: options.body === undefined ? {} : { "content-type": "application/json" } };
    const onResponse = (response: import("node:http").IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
    };
    const request = options.ca === undefined ? httpRequest(common, onResponse) : httpsRequest({ ...common, ca: options.ca, servername: "localhost" }, onResponse);
    request.on("error", reject);
    request.end(options.body);
  });
}

/** A connection that was served GET /healthz and stays open (kept alive), holding one slot. */
function holdConnection(port: number, ca?: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket: Socket = ca === undefined ? netConnect(port, "127.0.0.1") : tlsConnect({ port, host: "127.0.0.1", ca, servername: "localhost" });
    clientSockets.push(socket);
    let received = "";
    socket.on("error", reject);
    socket.on(ca === undefined ? "connect" : "secureConnect", () => socket.write("GET /healthz HTTP/1.1\r\nHost: raftlock\r\n\r\n"));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString();
      if (!received.includes('{"status":"ok"}')) return;
      if (!received.startsWith("HTTP/1.1 200")) reject(new Error(`the held connection was answered ${received}`));
      resolve(socket);
    });
  });
}

function errorOf(answer: Answer): { code: string; message: string } {
  return (JSON.parse(answer.body) as { error: { code: string; message: string } }).error;
}

/** Asks for a watch WebSocket on `port` that must be refused, and returns the refusal; `ifAccepted` is the failure should it open. */
function refusedUpgrade(port: number, ifAccepted: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const webSocket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
    webSocket.on("open", () => reject(new Error(ifAccepted)));
    webSocket.on("error", () => {});
    webSocket.on("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
  });
}

/** An SSE watch of `raft:leader` on `port`, on a connection of its own, once its response has begun. */
function openSse(port: number): Promise<import("node:http").IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: "127.0.0.1", port, path: "/v1/watch?channel=raft:leader", agent: false }, resolve);
    request.on("error", reject);
    request.end();
  });
}

describe("http_connections", () => {
  it("one connection more than connectionsMax is answered 503 BUSY naming the limit and closed; a freed slot serves again", async () => {
    const listener = await start({ connectionsMax: 2 });
    const held = [await holdConnection(listener.port), await holdConnection(listener.port)];
    const refused = await send(listener.port, "/v1/cluster/leader");
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.headers["connection"]).toBe("close");
    expect(refused.headers["content-type"]).toMatch(/^application\/json/);
    expect(errorOf(refused)).toEqual({
      code: "BUSY",
      message: "this node already serves its most HTTP connections at once (httpConnectionsMax 2); retry later, send more requests over each kept-alive connection, or use another node",
    });
    expect(await listener.metrics.limitHitCount("http_connections")).toBe(1);
    // Logged once a minute at most, with the count of the refusals in between.
    expect((await send(listener.port, "/v1/cluster/leader")).status).toBe(503);
    expect(listener.logLines.map((line) => [line.msg, line.httpConnectionsMax, line.refusedUnloggedBefore])).toEqual([["refused an HTTP connection: too many clients", 2, 0]]);
    // The held connections were not disturbed, and once one closes a new client is served.
    held[0]!.write("GET /healthz HTTP/1.1\r\nHost: raftlock\r\nConnection: close\r\n\r\n");
    await waitFor("the first held connection to close", () => listener.openConnections() === 1);
    expect((await send(listener.port, "/v1/cluster/leader")).status).toBe(200);
    expect(await listener.metrics.limitHitCount("http_connections")).toBe(2);
  });

  it("a liveness probe on a connection past connectionsMax is still answered, and that connection closed", async () => {
    const listener = await start({ connectionsMax: 1 });
    await holdConnection(listener.port);
    const probe = await send(listener.port, "/healthz");
    expect(probe.status).toBe(200);
    expect(probe.headers["connection"]).toBe("close");
    expect(JSON.parse(probe.body)).toEqual({ status: "ok" });
    // Still a connection past the limit: counted, and the rest of the API refused on such connections.
    expect(await listener.metrics.limitHitCount("http_connections")).toBe(1);
    expect((await send(listener.port, "/readyz")).status).toBe(503);
    await waitFor("both refused connections to close", () => listener.openSockets() === 1);
  });

  it("a WebSocket upgrade on a refused connection gets the same 503, not a watch", async () => {
    const listener = await start({ connectionsMax: 1 });
    await holdConnection(listener.port);
    const refusal = await refusedUpgrade(listener.port, "a refused connection was upgraded");
    expect(refusal.status).toBe(503);
    expect(errorOf(refusal).message).toMatch(/httpConnectionsMax 1\)/);
    expect(await listener.metrics.limitHitCount("http_connections")).toBe(1);
  });

  describe("over HTTPS", () => {
    let tls: ReloadableTls;
    let ca: Buffer;
    useCertificateDir("raftlock-http-limits-", async (dir) => {
      const authority = await TestCa.create(dir, "ca");
      const files = await authority.issue("server", "21");
      tls = ReloadableTls.load("client-tls", { cert: files.cert, key: files.key, ca: undefined });
      ca = readFileSync(authority.cert);
    });

    it("a connection past connectionsMax finishes its handshake and is answered 503 over TLS", async () => {
      const listener = await start({ connectionsMax: 1, tls });
      const held = await holdConnection(listener.port, ca);
      const refused = await send(listener.port, "/v1/cluster/leader", { ca });
      expect(refused.status).toBe(503);
      expect(refused.headers["retry-after"]).toBe("1");
      expect(errorOf(refused)).toMatchObject({ code: "BUSY", message: expect.stringContaining("(httpConnectionsMax 1)") });
      expect(await listener.metrics.limitHitCount("http_connections")).toBe(1);
      held.destroy();
      await waitFor("the held connection to close", () => listener.openConnections() === 0);
      expect((await send(listener.port, "/healthz", { ca })).status).toBe(200);
    });

    it("sockets that never finish a handshake are held up to the ceiling; past it they are closed at once", async () => {
      const listener = await start({ connectionsMax: 1, tls });
      const ceiling = 1 + httpConnectionsPendingMax;
      // Plain TCP to the HTTPS port, never sending a ClientHello: a slow or hostile client.
      for (let socketIndex = 0; socketIndex < ceiling; socketIndex++) {
        const socket = netConnect(listener.port, "127.0.0.1");
        socket.on("error", () => {});
        clientSockets.push(socket);
      }
      await waitFor(`the server to accept ${ceiling} sockets`, () => listener.openSockets() === ceiling);
      const dropped = netConnect(listener.port, "127.0.0.1");
      dropped.on("error", () => {});
      let droppedClosed = false;
      dropped.on("close", () => (droppedClosed = true));
      await waitFor("the socket past the ceiling to be closed", () => droppedClosed);
      // Closed before it was handed to TLS or HTTP: no 'connection' event for it.
      expect(listener.acceptedSockets()).toBe(ceiling);
      expect(listener.hits).toEqual(["http_connections"]);
      expect(await listener.metrics.limitHitCount("http_connections")).toBe(1);
      for (const socket of clientSockets.splice(0)) socket.destroy();
      await waitFor("the server to see the idle sockets close", () => listener.openSockets() === 0);
      expect((await send(listener.port, "/healthz", { ca })).status).toBe(200);
    });
  });
});

describe("http_body_bytes", () => {
  it("a body over httpBodyBytesMax is answered 413 TOOLARGE with its size and the limit", async () => {
    const listener = await start();
    const body = JSON.stringify({ owner: "a".repeat(httpBodyBytesMax) });
    const refused = await send(listener.port, "/v1/locks/a/acquire", { method: "POST", body });
    expect(refused.status).toBe(413);
    expect(errorOf(refused)).toEqual({
      code: "TOOLARGE",
      message: `the request body is ${body.length} bytes, more than this node reads (httpBodyBytesMax ${httpBodyBytesMax} bytes); send a smaller body`,
    });
    expect(await listener.metrics.limitHitCount("http_body_bytes")).toBe(1);
    expect((await send(listener.port, "/healthz")).status).toBe(200);
  });
});

describe("coordination limits over HTTP", () => {
  it("a LIMIT refusal is 503 with Retry-After and the service's message", async () => {
    const message = "client 127.0.0.1 already has 2 sessions and lock leases open through this node (limit 2, sessionsPerClientMax); close or release unused ones and retry";
    const refusing = { openSession: () => Promise.reject(new CoordinationError("LIMIT", message)) } as unknown as CoordinationService;
    const listener = await start({ service: refusing });
    const refused = await send(listener.port, "/v1/sessions", { method: "POST", body: JSON.stringify({ ttlMs: 10_000 }) });
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(errorOf(refused)).toEqual({ code: "LIMIT", message });
  });
});

describe("watch_streams", () => {
  it("one SSE watch more than watchStreamsMax is answered 503 BUSY; a closed stream frees its slot", async () => {
    const listener = await start({ watchStreamsMax: 1 });
    const stream = await openSse(listener.port);
    expect(stream.statusCode).toBe(200);
    const refused = await send(listener.port, "/v1/watch?channel=lock:a");
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(errorOf(refused)).toEqual({
      code: "BUSY",
      message: "this node already serves its most watch streams at once (watchStreamsMax 1); retry later, use another node, or watch several channels over one WebSocket (GET /v1/ws)",
    });
    expect(await listener.metrics.limitHitCount("watch_streams")).toBe(1);
    stream.destroy();
    await waitFor("the watch stream's connection to close", () => listener.openConnections() === 0);
    const again = await openSse(listener.port);
    expect(again.statusCode).toBe(200);
    again.destroy();
    expect((await send(listener.port, "/healthz")).status).toBe(200);
  });
});

/** A watch WebSocket to `listener`, once open, with every message it receives. */
async function openWatch(listener: Listener): Promise<{ webSocket: WebSocket; messages: unknown[] }> {
  const webSocket = new WebSocket(`ws://127.0.0.1:${listener.port}/v1/ws`);
  const messages: unknown[] = [];
  webSocket.on("message", (data: Buffer) => messages.push(JSON.parse(data.toString())));
  await new Promise<void>((resolve, reject) => {
    webSocket.once("open", () => resolve());
    webSocket.once("error", reject);
  });
  return { webSocket, messages };
}

describe("watch_sockets", () => {
  it("one watch WebSocket more than watchSocketsMax is refused 503 BUSY naming the limit", async () => {
    const listener = await start({ watch: { watchSocketsMax: 1 } });
    const first = await openWatch(listener);
    const refusal = await refusedUpgrade(listener.port, "a WebSocket past watchSocketsMax was accepted");
    expect(refusal.status).toBe(503);
    expect(refusal.headers["retry-after"]).toBe("1");
    expect(errorOf(refusal)).toEqual({
      code: "BUSY",
      message: "this node already serves its most watch WebSockets at once (watchSocketsMax 1); retry later or use another node",
    });
    expect(await listener.metrics.limitHitCount("watch_sockets")).toBe(1);
    first.webSocket.close();
    await waitFor("the server to see the first watch close", () => listener.watchSockets.clients.size === 0);
    (await openWatch(listener)).webSocket.close();
    expect((await send(listener.port, "/healthz")).status).toBe(200);
  });
});

describe("subscriptions_per_connection", () => {
  it("a subscription past subscriptionsPerSocketMax is answered LIMIT naming it; the socket keeps its others", async () => {
    const listener = await start({ watch: { subscriptionsPerSocketMax: 2 } });
    const { webSocket, messages } = await openWatch(listener);
    for (const channel of ["lock:a", "lock:b", "lock:c"]) webSocket.send(JSON.stringify({ subscribe: channel }));
    await waitFor("three answers", () => messages.length === 3);
    expect(messages).toEqual([
      { subscribed: "lock:a" },
      { subscribed: "lock:b" },
      { error: { code: "LIMIT", message: "this connection already watches its most channels (subscriptionsPerSocketMax 2); unsubscribe from one first, or open another connection" } },
    ]);
    expect(await listener.metrics.limitHitCount("subscriptions_per_connection")).toBe(1);
    webSocket.send(JSON.stringify({ unsubscribe: "lock:a" }));
    webSocket.send(JSON.stringify({ subscribe: "lock:c" }));
    await waitFor("the fourth answer", () => messages.length === 4);
    expect(messages[3]).toEqual({ subscribed: "lock:c" });
    webSocket.close();
    expect((await send(listener.port, "/healthz")).status).toBe(200);
  });
});

describe("watch_message_bytes", () => {
  it("a message over watchMessageBytesMax closes that socket with 1009 (Message Too Big); others still connect", async () => {
    const listener = await start();
    const { webSocket } = await openWatch(listener);
    let closeCode = 0;
    webSocket.on("close", (code: number) => (closeCode = code));
    webSocket.on("error", () => {});
    webSocket.send("x".repeat(watchMessageBytesMax + 1));
    await waitFor("the socket to be closed", () => closeCode !== 0);
    expect(closeCode).toBe(1009);
    expect(await listener.metrics.limitHitCount("watch_message_bytes")).toBe(1);
    const next = await openWatch(listener);
    next.webSocket.send(JSON.stringify({ subscribe: "raft:leader" }));
    await waitFor("the next socket's subscription", () => next.messages.length === 1);
    next.webSocket.close();
    expect((await send(listener.port, "/healthz")).status).toBe(200);
  });
});
