import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import express, { type NextFunction, type Request, type Response } from "express";
import type { Logger } from "pino";
import type { Address } from "../../config.js";
import { type AuthFailureLimiter, type ClientAccess, type ClientCredentials, tooManyFailuresMessage } from "../auth.js";
import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import { CoordinationError, type CoordinationService } from "../../node/coordination-service.js";
import { NodeError } from "../../node/forwarding.js";
import type { RaftNode } from "../../node/node.js";
import { ignoreLimitHits, LimitLog, type LimitHitSink, type LimitName } from "../../limit-hits.js";
import type { NodeMetrics } from "../../metrics.js";
import { type ReloadableTls, tlsServerOptions } from "../../tls.js";
import { httpConnectionsMax, limitConnections, retryAfterSeconds } from "./connection-limit.js";
import { BadRequestError, coordinationRouter, watchStreamsMax } from "./coordination-routes.js";
import { memberRouter } from "./member-routes.js";
import { statusPageRouter } from "./status-page.js";

/** Characters of a bad path quoted back in the error, at most. */
const pathEchoLengthMax = 200;
/** Methods a client authenticated with the read-only password may use: those that change nothing. */
const readOnlyMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);
/** Largest request body the HTTP API reads. */
export const httpBodyBytesMax = 64 * 1024;
/** Command bytes of a barrier entry: the state machine skips it, the log still orders it. */
const barrierCommand = new Uint8Array(0);

const statusOfCode: Record<NodeError["code"], number> = {
  NOLEADER: 503,
  UNAVAILABLE: 503,
  SHUTTINGDOWN: 503,
  TIMEOUT: 504,
  LEADERLOST: 504,
  NOTCOMMITTED: 409,
  TOOLARGE: 413,
  MEMBERSHIP: 409,
  CHANGEPENDING: 409,
  NOTCAUGHTUP: 409,
};

/** HTTP status of each coordination error code. */
const statusOfCoordinationCode: Record<string, number> = { ERR: 400, NOSESSION: 404, LIMIT: 503 };

/** Limits of the HTTP API that a caller may lower (tests do); each defaults to its named constant. */
export interface HttpAppLimits {
  readonly watchStreamsMax: number;
}

/**
 * The HTTP API of one node: cluster status, health checks, a write barrier, and locks, sessions and
 * elections. With `metrics`, requests are counted and so are refusals by a named limit.
 */
export function createHttpApp(
  node: RaftNode,
  logger: Logger,
  coordination?: { service: CoordinationService; fsm: CoordinationStateMachine },
  auth?: HttpAuth,
  metrics?: NodeMetrics,
  limits: Partial<HttpAppLimits> = {},
): express.Express {
  const limitHits: LimitHitSink = metrics?.limitHit ?? ignoreLimitHits;
  const app = express();
  app.disable("x-powered-by");
  if (metrics !== undefined) app.use(countRequests(metrics));
  if (coordination !== undefined) app.use(statusPageRouter(coordination.fsm, auth)); // before auth: the page itself holds no data
  if (auth !== undefined) {
    app.use((request, response, next) => {
      // Probes stay open: an orchestrator checks liveness without the application's secret.
      if (request.path === "/healthz" || request.path === "/readyz") return next();
      const access = authorizeRequest(request, auth);
      if (typeof access !== "string") {
        sendRefusal(response, access);
        return;
      }
      if (access === "read-only" && !readOnlyMethods.has(request.method)) {
        response.status(403).json({ error: { code: "NOPERM", message: `this request authenticated with the read-only password; it may not ${request.method} ${request.path}` } });
        return;
      }
      next();
    });
  }
  app.use(express.json({ limit: httpBodyBytesMax }));
  if (coordination !== undefined) app.use(coordinationRouter(coordination.service, coordination.fsm, { watchStreamsMax: limits.watchStreamsMax ?? watchStreamsMax, limitHits }));
  app.use(memberRouter(node));

  app.get("/healthz", (_request, response) => {
    response.json({ status: "ok" });
  });

  app.get("/readyz", (_request, response) => {
    if (node.isReady()) {
      response.json({ status: "ready" });
      return;
    }
    const leader = node.leader();
    const message =
      leader === null ? "no leader is known yet" : "still applying what was committed when this node started";
    response.status(503).set("Retry-After", String(retryAfterSeconds)).json({ error: { code: "NOTREADY", message } });
  });

  if (metrics !== undefined) {
    // Behind --auth-password like every other route: Prometheus sends it with `authorization: {credentials: ...}`.
    app.get("/metrics", async (_request, response, next) => {
      try {
        const { contentType, text } = await metrics.scrape();
        response.set("Content-Type", contentType).send(text);
      } catch (error) {
        next(error);
      }
    });
  }

  app.get("/v1/cluster", async (_request, response, next) => {
    try {
      const members = await node.clusterStatus();
      const leader = node.leader();
      response.json({ id: node.config.id, clusterId: node.config.clusterId, leader, members });
    } catch (error) {
      next(error);
    }
  });

  app.get("/v1/cluster/leader", (_request, response) => {
    const leader = node.leader();
    if (leader === null) {
      response.status(503).set("Retry-After", String(retryAfterSeconds)).json({ error: { code: "NOLEADER", message: "no leader is elected yet; retry" } });
      return;
    }
    response.json(leader);
  });

  app.post("/v1/cluster/barrier", async (_request, response, next) => {
    try {
      const { index, term } = await node.propose(barrierCommand);
      response.json({ index, term });
    } catch (error) {
      next(error);
    }
  });

  app.get("/v1/cluster/hash", (_request, response) => {
    if (coordination === undefined) {
      response.status(404).json({ error: { code: "NOTFOUND", message: "this node runs no coordination state machine" } });
      return;
    }
    // Snapshots are canonical (sorted tables), so members that applied the same entries give the same hash.
    const { fsm } = coordination;
    response.json({ index: fsm.appliedIndex, hash: createHash("sha256").update(fsm.snapshot()).digest("hex") });
  });

  app.post("/v1/cluster/snapshot", async (_request, response, next) => {
    try {
      response.json({ index: await node.snapshotNow() });
    } catch (error) {
      next(error);
    }
  });

  app.use((_request, response) => {
    response.status(404).json({ error: { code: "NOTFOUND", message: "no such route; the README lists the HTTP API" } });
  });

  // express needs all four parameters to recognise an error handler.
  app.use((error: unknown, request: Request, response: Response, _next: NextFunction) => {
    if (error instanceof URIError) {
      // A path parameter that is not valid percent-encoding (`/v1/locks/%ZZ`) fails while express matches
      // the route, before any handler runs, in whichever router: the client's mistake, named here once.
      const path = JSON.stringify(request.path.slice(0, pathEchoLengthMax));
      response.status(400).json({ error: { code: "BADREQUEST", message: `the path ${path} is not valid percent-encoding (${error.message})` } });
      return;
    }
    if (error instanceof BadRequestError) {
      response.status(400).json({ error: { code: "BADREQUEST", message: error.message } });
      return;
    }
    if (error instanceof CoordinationError || error instanceof NodeError) {
      const status = error instanceof NodeError ? statusOfCode[error.code] : (statusOfCoordinationCode[error.code] ?? 400);
      // Every 503 says when to try again: a full limit (LIMIT) frees up as clients finish, a leader is elected.
      if (status === 503) response.set("Retry-After", String(retryAfterSeconds));
      response.status(status).json({ error: { code: error.code, message: error.message } });
      return;
    }
    const bodyError = error as { type?: string; length?: unknown };
    if (bodyError.type === "entity.too.large") {
      limitHits("http_body_bytes");
      // body-parser knows the length only from Content-Length; a chunked body is refused once past the limit.
      const size = typeof bodyError.length === "number" ? ` ${bodyError.length} bytes,` : "";
      response.status(413).json({ error: { code: "TOOLARGE", message: `the request body is${size} more than this node reads (httpBodyBytesMax ${httpBodyBytesMax} bytes); send a smaller body` } });
      return;
    }
    if (bodyError.type === "entity.parse.failed") {
      response.status(400).json({ error: { code: "BADREQUEST", message: "the request body is not valid JSON; send a JSON object with Content-Type: application/json" } });
      return;
    }
    // Other refusals of the body parser (an unsupported charset or content-encoding, a body shorter than
    // its Content-Length) are the client's mistake: http-errors marks them with a 4xx status and `expose`.
    const clientError = error as { status?: unknown; expose?: unknown; message?: unknown };
    if (typeof clientError.status === "number" && clientError.status >= 400 && clientError.status < 500 && clientError.expose === true) {
      response.status(clientError.status).json({ error: { code: "BADREQUEST", message: `the request was refused: ${String(clientError.message)}` } });
      return;
    }
    logger.error({ err: error }, "HTTP request failed");
    response.status(500).json({ error: { code: "INTERNAL", message: "internal error; the node logged the details" } });
  });
  return app;
}

/**
 * Counts every response in http_requests_total by its route pattern, read once the response finished:
 * express sets `request.route` to the route that matched (`/v1/locks/:name`), never the raw path, so
 * lock names do not become label values. A request no route matched (404, refused authentication) is
 * "unmatched".
 */
function countRequests(metrics: NodeMetrics): express.RequestHandler {
  return (request, response, next) => {
    const startedNs = process.hrtime.bigint();
    // "close", not "finish": a watch stream or long poll the client abandons is counted too.
    response.once("close", () => {
      const pattern = (request.route as { path?: unknown } | undefined)?.path;
      const route = typeof pattern === "string" ? `${request.baseUrl}${pattern}` : "unmatched";
      metrics.httpAnswered(route, request.method, response.statusCode, Number(process.hrtime.bigint() - startedNs) / 1e9);
    });
    next();
  };
}

/** Client authentication on the HTTP port: the passwords, and the limit on failures per client address. */
export interface HttpAuth {
  readonly credentials: ClientCredentials;
  /** Shared by every route and the WebSocket upgrade, so that all count towards one limit per address. */
  readonly limiter: AuthFailureLimiter;
}

/** Why a request is refused: no or a wrong bearer token (401), or too many wrong ones from its address (429). */
export interface HttpRefusal {
  readonly status: 401 | 429;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: { readonly code: string; readonly message: string } };
}

/** The answer to a request without a bearer token (or with a wrong one): built once, not per request. */
const unauthenticated: HttpRefusal = {
  status: 401,
  headers: { "WWW-Authenticate": "Bearer" },
  body: { error: { code: "NOAUTH", message: "authentication required: send Authorization: Bearer <password>" } },
};

/**
 * The access `request`'s `Authorization: Bearer <password>` grants (compared in constant time), or why it
 * is refused. Every refusal is counted for the log; a wrong token also towards its address's limit.
 */
export function authorizeRequest(request: IncomingMessage, auth: HttpAuth): ClientAccess | HttpRefusal {
  const address = request.socket.remoteAddress ?? "?";
  const header = request.headers.authorization;
  if (header === undefined || !header.startsWith("Bearer ")) {
    auth.limiter.recordMissingCredentials(address);
    return unauthenticated;
  }
  // Checked before the token, so that an address over the limit learns nothing from its guesses.
  const retryAfterSeconds = auth.limiter.retryAfterSeconds(address);
  if (retryAfterSeconds > 0) {
    const message = tooManyFailuresMessage(address, retryAfterSeconds, "authentication");
    return { status: 429, headers: { "Retry-After": String(retryAfterSeconds) }, body: { error: { code: "TOOMANYAUTH", message } } };
  }
  const access = auth.credentials.check(header.slice("Bearer ".length));
  if (access !== null) return access;
  auth.limiter.recordFailure(address);
  return unauthenticated;
}

/** Answers `refusal` as JSON with its status and headers. */
export function sendRefusal(response: Response, refusal: HttpRefusal): void {
  response.status(refusal.status).set(refusal.headers).json(refusal.body);
}

/** How `listenHttp` bounds its connections: `connectionsMax` defaults to httpConnectionsMax. */
export interface HttpListenOptions {
  readonly connectionsMax?: number;
  /** Told of each connection refused for the http_connections limit. */
  readonly limitHits?: LimitHitSink;
  /** Where refusals are logged, once a minute at most (the metric counts each). */
  readonly logger?: Logger;
}

/**
 * Starts listening; resolves once bound. With `tls` the port speaks HTTPS only (probes included), asks
 * clients for a certificate when `tls` has a CA, and takes reloaded certificates for new connections.
 * At most `options.connectionsMax` connections are served at once (see connection-limit.ts).
 */
export function listenHttp(app: express.Express, address: Address, tls?: ReloadableTls, options: HttpListenOptions = {}): Promise<Server> {
  const refusalLog = options.logger === undefined ? null : new LimitLog(options.logger.child({ component: "http" }));
  const limitHits = options.limitHits ?? ignoreLimitHits;
  const connectionsMax = options.connectionsMax ?? httpConnectionsMax;
  const limit = {
    connectionsMax,
    limitHits: (name: LimitName): void => {
      limitHits(name);
      refusalLog?.refused({ httpConnectionsMax: connectionsMax }, "refused an HTTP connection: too many clients");
    },
  };
  return new Promise((resolve, reject) => {
    let server: Server;
    if (tls === undefined) {
      server = createServer();
    } else {
      const httpsServer = createHttpsServer(tlsServerOptions(tls));
      tls.serveOn(httpsServer);
      server = httpsServer;
    }
    server.on("request", limitConnections(server, tls !== undefined, limit, app));
    server.once("listening", () => resolve(server));
    server.once("error", reject);
    server.listen(address.port, address.host);
  });
}
