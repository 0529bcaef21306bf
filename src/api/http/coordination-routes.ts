import express, { type NextFunction, type Request, type Response } from "express";
import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import { type FsmEvent, isWatchableChannel, unwatchableChannelMessage } from "../../fsm/events.js";
import type { LimitHitSink } from "../../limit-hits.js";
import { type Consistency, type CoordinationService, waitMsMax } from "../../node/coordination-service.js";
import { retryAfterSeconds } from "./connection-limit.js";
import { deliveredBefore, EventIds, historySince, parseResumePoint } from "./event-ids.js";

/** Watch streams open on this node at once. */
export const watchStreamsMax = 1_000;
/** Longest channel name a watch may name. */
export const channelBytesMax = 300;
/** How often an idle SSE stream sends a comment, so proxies keep it open. */
export const sseKeepaliveIntervalMs = 15_000;

/** A request the client must fix: answered 400 with this message. */
export class BadRequestError extends Error {
  override name = "BadRequestError";
}

type Body = Record<string, unknown>;

function bodyOf(request: Request): Body {
  const body: unknown = request.body;
  if (body === undefined || body === null) return {};
  if (typeof body !== "object" || Array.isArray(body)) throw new BadRequestError("the request body must be a JSON object");
  return body as Body;
}

function requiredString(body: Body, field: string): string {
  const value = body[field];
  if (typeof value !== "string" || value === "") throw new BadRequestError(`${field} must be a non-empty string`);
  return value;
}

function optionalString(body: Body, field: string): string | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new BadRequestError(`${field} must be a string`);
  return value;
}

function integer(body: Body, field: string, fallback?: number): number {
  const value = body[field] ?? fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new BadRequestError(`${field} must be a non-negative integer${fallback === undefined ? "" : " (or left out)"}`);
  }
  return value;
}

function optionalInteger(body: Body, field: string): number | undefined {
  return body[field] === undefined ? undefined : integer(body, field);
}

function consistencyOf(request: Request): Consistency {
  const value = request.query["consistency"];
  if (value === undefined || value === "linearizable") return "linearizable";
  if (value === "serializable") return "serializable";
  throw new BadRequestError(`consistency must be linearizable or serializable (got "${String(value)}")`);
}

function notFound(response: Response, what: string): void {
  response.status(404).json({ error: { code: "NOTFOUND", message: what } });
}

function notAcquired(response: Response, what: string): void {
  response.status(409).json({ error: { code: "NOTACQUIRED", message: what } });
}

/** Wraps an async handler so its failures reach the error middleware. */
function route(handler: (request: Request, response: Response) => Promise<void>) {
  return (request: Request, response: Response, next: NextFunction): void => {
    handler(request, response).catch(next);
  };
}

/** How many watch streams `coordinationRouter` serves at once, and where it reports refusals. */
export interface WatchStreamLimit {
  readonly watchStreamsMax: number;
  readonly limitHits: LimitHitSink;
}

/** `/v1/locks`, `/v1/fence`, `/v1/sessions`, `/v1/elections` and `/v1/watch` (api.md). */
export function coordinationRouter(service: CoordinationService, fsm: CoordinationStateMachine, limit: WatchStreamLimit): express.Router {
  const router = express.Router();
  let watchStreams = 0;

  router.post(
    "/v1/locks/:name/acquire",
    route(async (request, response) => {
      const body = bodyOf(request);
      const waitMs = integer(body, "waitMs", 0);
      if (waitMs > waitMsMax) throw new BadRequestError(`waitMs must be at most ${waitMsMax}`);
      const grant = await service.acquireLock(param(request, "name"), requiredString(body, "owner"), integer(body, "ttlMs"), waitMs, optionalInteger(body, "session"), abortedOnClose(response), clientOf(request));
      if (grant === null) return notAcquired(response, waitMs > 0 ? `the lock is held; not acquired within ${waitMs} ms` : "the lock is held");
      response.json({ token: grant.token, ttlMs: grant.ttlMs });
    }),
  );
  router.post(
    "/v1/locks/:name/release",
    route(async (request, response) => {
      response.json({ released: await service.releaseLock(param(request, "name"), requiredString(bodyOf(request), "owner")) });
    }),
  );
  router.post(
    "/v1/locks/:name/refresh",
    route(async (request, response) => {
      const body = bodyOf(request);
      response.json({ refreshed: await service.refreshLock(param(request, "name"), requiredString(body, "owner"), integer(body, "ttlMs")) });
    }),
  );
  router.get(
    "/v1/locks/:name",
    route(async (request, response) => {
      const info = await service.lockInfo(param(request, "name"), consistencyOf(request));
      if (info === undefined) return notFound(response, "the lock is free");
      response.json({ owner: info.owner, token: info.token, ttlMs: info.remainingMs ?? info.ttlMs, session: info.implicitLease ? null : info.sessionId, waiters: info.waiters });
    }),
  );
  router.get(
    "/v1/fence/:name/:token",
    route(async (request, response) => {
      const token = Number(param(request, "token"));
      if (!Number.isSafeInteger(token) || token < 0) throw new BadRequestError("token must be a non-negative integer");
      response.json({ valid: await service.fenceCheck(param(request, "name"), token, consistencyOf(request)) });
    }),
  );

  router.post(
    "/v1/sessions",
    route(async (request, response) => {
      const body = bodyOf(request);
      response.json({ id: await service.openSession(integer(body, "ttlMs"), optionalString(body, "label"), clientOf(request)) });
    }),
  );
  router.post(
    "/v1/sessions/:id/keepalive",
    route(async (request, response) => {
      response.json({ ttlMs: await service.keepalive(sessionIdOf(request)) });
    }),
  );
  router.delete(
    "/v1/sessions/:id",
    route(async (request, response) => {
      response.json({ closed: await service.closeSession(sessionIdOf(request)) });
    }),
  );

  router.post(
    "/v1/elections/:name/campaign",
    route(async (request, response) => {
      const body = bodyOf(request);
      const waitMs = integer(body, "waitMs", 0);
      const grant = await service.campaign(param(request, "name"), requiredString(body, "candidate"), integer(body, "ttlMs"), waitMs, optionalString(body, "value"), optionalInteger(body, "session"), abortedOnClose(response), clientOf(request));
      if (grant === null) return notAcquired(response, "another candidate leads");
      response.json({ token: grant.token });
    }),
  );
  router.post(
    "/v1/elections/:name/proclaim",
    route(async (request, response) => {
      const body = bodyOf(request);
      response.json({ proclaimed: await service.proclaim(param(request, "name"), requiredString(body, "candidate"), requiredString(body, "value")) });
    }),
  );
  router.post(
    "/v1/elections/:name/resign",
    route(async (request, response) => {
      response.json({ resigned: await service.resign(param(request, "name"), requiredString(bodyOf(request), "candidate")) });
    }),
  );
  router.get(
    "/v1/elections/:name",
    route(async (request, response) => {
      const leader = await service.electionLeader(param(request, "name"), consistencyOf(request));
      if (leader === undefined) return notFound(response, "the election has no leader");
      response.json({ candidate: leader.candidate, value: leader.value, token: leader.token });
    }),
  );

  // Server-Sent Events: `GET /v1/watch?channel=raft:leader&since=N`. Events carry their log index as the
  // SSE id, so a client that reconnects resumes with `since=<last id>` (or Last-Event-ID).
  router.get("/v1/watch", (request, response) => {
    const channel = request.query["channel"];
    if (typeof channel !== "string" || channel === "" || Buffer.byteLength(channel) > channelBytesMax) {
      throw new BadRequestError(`channel must be given, e.g. raft:leader, election:<name> or lock:<name> (at most ${channelBytesMax} bytes)`);
    }
    if (!isWatchableChannel(channel)) throw new BadRequestError(unwatchableChannelMessage);
    const sinceText = request.query["since"] ?? request.get("last-event-id") ?? String(fsm.appliedIndex);
    const since = typeof sinceText === "string" ? parseResumePoint(sinceText) : null;
    if (since === null) throw new BadRequestError("since must be a log index (a non-negative integer), or an event id index:n as the stream sent it");
    if (watchStreams >= limit.watchStreamsMax) {
      limit.limitHits("watch_streams");
      const message = `this node already serves its most watch streams at once (watchStreamsMax ${limit.watchStreamsMax}); retry later, use another node, or watch several channels over one WebSocket (GET /v1/ws)`;
      response.status(503).set("Retry-After", String(retryAfterSeconds)).json({ error: { code: "BUSY", message } });
      return;
    }
    const history = fsm.eventsSince(channel, historySince(since));
    if (history.kind === "compacted") {
      response.status(410).json({ error: { code: "COMPACTED", message: `events after ${since.index} are no longer retained; re-read the state, then watch from ${history.oldestIndex}` } });
      return;
    }
    watchStreams++;
    response.status(200).set({ "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    response.flushHeaders();
    const ids = new EventIds();
    // History, then live events, numbered as they pass; what the client already has is skipped, also
    // live events at or below `since` (this node may not have applied that far yet when the client
    // resumes here after another node).
    const send = (event: FsmEvent): void => {
      if (event.channel !== channel) return;
      const id = ids.next(event);
      if (!deliveredBefore(since, event, id)) response.write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    };
    // History and live events never overlap: both are taken in one synchronous step.
    for (const event of history.events) send(event);
    const unsubscribe = fsm.subscribe(send);
    // Events this node skipped by installing a snapshot are lost to the stream: end it, so that the
    // client reconnects with its last id and hears 410 compacted instead of going on with a gap.
    const stopRestoreWatch = fsm.onRestore(({ eventsMissed }) => {
      if (eventsMissed) response.end();
    });
    const keepalive = setInterval(() => response.write(": keepalive\n\n"), sseKeepaliveIntervalMs);
    request.on("close", () => {
      clearInterval(keepalive);
      unsubscribe();
      stopRestoreWatch();
      watchStreams--;
    });
  });
  return router;
}

/** Aborts when the client goes away before its answer was sent: its wait is cancelled through the log. */
function abortedOnClose(response: Response): AbortSignal {
  const controller = new AbortController();
  // The response's close, not the request's: a request emits close as soon as its body was read.
  response.on("close", () => {
    if (!response.writableEnded) controller.abort();
  });
  return controller.signal;
}

function param(request: Request, name: string): string {
  const value: unknown = request.params[name];
  if (typeof value !== "string" || value === "") throw new BadRequestError(`the ${name} in the path must not be empty`);
  return value;
}

function sessionIdOf(request: Request): number {
  const id = Number(param(request, "id"));
  if (!Number.isSafeInteger(id) || id <= 0) throw new BadRequestError("the session id must be a positive integer");
  return id;
}

/** The client's IP address: whom `sessionsPerClientMax` counts against. */
function clientOf(request: express.Request): string {
  return request.socket.remoteAddress ?? "unknown";
}
