// Fuzzing the HTTP API: random and malformed requests against the real express app of a one-node cluster
// (real storage, real Raft), through fetch and, for what fetch will not send, a raw socket.
//
// Properties:
//   - every request is answered; no answer is a 5xx, except the documented "retry" ones (503 with a JSON
//     error such as NOLEADER or LIMIT; 504 TIMEOUT);
//   - every answer that is not a success carries a JSON error with a code and a message;
//   - nothing is logged at error level, and a well-behaved client is served throughout (health check, a
//     lock acquired and released).

import { mkdir, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { connect } from "node:net";
import path from "node:path";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { createHttpApp, listenHttp } from "../../src/api/http/server.js";
import { parseStartConfig } from "../../src/config.js";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { fsmLimitsDefaults, ttlMsMinFor } from "../../src/fsm/limits.js";
import { CoordinationService } from "../../src/node/coordination-service.js";
import { RaftNode } from "../../src/node/node.js";
import { freePort } from "../support/ports.js";
import { applyMutations, type Mutation, mutationsArb } from "./mutate.js";
import { checkProperty, errorLogCapture, type FuzzOptions, type FuzzPart, type FuzzReport, Stats } from "./run.js";
import { waitFor } from "../support/wait.js";
import { scratchRoot } from "./wal.js";

/** Requests one property run sends at once. */
export const httpRequestsPerRun = 8;
/** Longest a request may take: the generator keeps waits (waitMs) far below it. */
const requestDeadlineMs = 10_000;
const electionTimeoutMaxMs = 300;
const ttlMsMin = ttlMsMinFor(electionTimeoutMaxMs);
/** 5xx answers the API documents: the client retries them. */
const retryCodes = new Set(["NOLEADER", "UNAVAILABLE", "SHUTTINGDOWN", "LIMIT", "BUSY", "TIMEOUT", "LEADERLOST", "NOTREADY"]);

// ---------------------------------------------------------------------------------------------
// Requests

const segmentArb = fc.oneof(
  fc.constantFrom("orders", "n2", "n9", "1", "0", "-1", "1.5", "1e3", "9007199254740993", "%ZZ", "%", "%C0%AF", "%00", "..", "%2F", "%F0%9F%94%92", "é", "a".repeat(300), ""),
  fc.string({ maxLength: 12 }).map((text) => encodeURIComponent(text)),
  fc.uint8Array({ maxLength: 12 }).map((bytes) => [...bytes].map((byte) => `%${byte.toString(16).padStart(2, "0")}`).join("")),
);

const pathArb: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(
    fc.constantFrom(
      "/v1/locks/{}/acquire", "/v1/locks/{}/release", "/v1/locks/{}/refresh", "/v1/locks/{}", "/v1/fence/{}/{}", "/v1/sessions", "/v1/sessions/{}/keepalive",
      "/v1/sessions/{}", "/v1/elections/{}/campaign", "/v1/elections/{}/proclaim", "/v1/elections/{}/resign", "/v1/elections/{}", "/v1/watch",
      "/v1/members", "/v1/members/{}/promote", "/v1/members/{}", "/v1/cluster/transfer", "/v1/cluster", "/v1/cluster/leader", "/v1/cluster/hash",
      "/v1/cluster/barrier", "/v1/cluster/snapshot", "/healthz", "/readyz", "/", "/v1/locks", "/nope/{}",
    ),
    segmentArb,
    segmentArb,
  ).map(([template, first, second]) => template.replace("{}", first).replace("{}", second)),
  fc.string({ maxLength: 30 }).map((text) => `/${encodeURI(text)}`),
);

const queryArb = fc.constantFrom(
  "", "?consistency=serializable", "?consistency=linearizable", "?consistency=bogus", "?consistency=a&consistency=b", "?consistency[x]=1",
  "?channel=raft:leader", "?channel=lock:orders&since=0", "?channel=lock:orders&since=-1", "?channel=nope", "?channel=", "?channel=raft:leader&since=1:2", `?channel=${"x".repeat(400)}`,
  "?channel=a&channel=b", "?since=99999999999999999999",
);

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom("alice", "", "n2", "127.0.0.1:7009", "n2:7000", ttlMsMin, ttlMsMin + 1000, 0, 1, 10, 50, -1, 1.5, 2 ** 53, Number.MAX_VALUE, null, true, [], {}, "1000"),
  fc.jsonValue({ maxDepth: 2 }),
);

/** A JSON object with the fields the API reads, of right and wrong types. */
const fieldsArb = fc.dictionary(fc.constantFrom("owner", "ttlMs", "waitMs", "session", "candidate", "value", "label", "id", "address", "__proto__", "constructor"), valueArb, { maxKeys: 6 })
  .map((fields) => {
    // Waits stay short: a valid waitMs on a held lock is answered when it runs out.
    const waitMs = fields["waitMs"];
    if (typeof waitMs === "number" && waitMs > 50 && waitMs <= 60_000) fields["waitMs"] = 50;
    return JSON.stringify(fields);
  });

const bodyArb: fc.Arbitrary<Uint8Array | null> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 6, arbitrary: fieldsArb.map((text) => Buffer.from(text)) },
  { weight: 2, arbitrary: fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value))) },
  { weight: 2, arbitrary: fc.tuple(fieldsArb, mutationsArb).map(([text, mutations]) => applyMutations(Buffer.from(text), mutations)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((depth) => Buffer.from(`${"[".repeat(depth)}${"]".repeat(depth)}`)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((depth) => Buffer.from(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`)) },
  { weight: 1, arbitrary: fc.constantFrom("1e400", "-0", "9007199254740993", '{"ttlMs":1e400}', '{"owner":"\\ud800"}', "\ufeff{}", '"text"', "null", "") .map((text) => Buffer.from(text)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 70_000 }).map((length) => Buffer.from(`{"owner":"${"x".repeat(length)}"}`)) },
);

interface HttpCase {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly contentType: string | null;
  readonly contentEncoding: "gzip" | "gzip-claimed" | "deflate" | "bogus" | null;
  readonly body: Uint8Array | null;
  /** Sent on a raw socket with byte damage, instead of through fetch. */
  readonly raw: readonly Mutation[] | null;
}

export const httpCaseArb: fc.Arbitrary<HttpCase> = fc.record({
  method: fc.constantFrom("GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"),
  path: pathArb,
  query: queryArb,
  contentType: fc.constantFrom(null, "application/json", "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16", "application/json; charset=latin1", "application/json; charset=bogus", "text/plain", "application/x-www-form-urlencoded", "application/merge-patch+json"),
  contentEncoding: fc.constantFrom(null, null, null, null, null, null, "gzip" as const, "gzip-claimed" as const, "deflate" as const, "bogus" as const),
  body: bodyArb,
  raw: fc.oneof({ weight: 9, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: mutationsArb }),
});

// ---------------------------------------------------------------------------------------------
// Answers

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

function headersOf(request: HttpCase): Record<string, string> {
  const headers: Record<string, string> = {};
  if (request.contentType !== null) headers["content-type"] = request.contentType;
  if (request.contentEncoding !== null) headers["content-encoding"] = request.contentEncoding === "gzip-claimed" ? "gzip" : request.contentEncoding;
  return headers;
}

function bodyOf(request: HttpCase): Uint8Array | null {
  if (request.body === null) return null;
  return request.contentEncoding === "gzip" ? gzipSync(request.body) : request.body;
}

async function viaFetch(port: number, request: HttpCase): Promise<Answer> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), requestDeadlineMs);
  try {
    const body = request.method === "GET" || request.method === "HEAD" ? null : bodyOf(request);
    const response = await fetch(`http://127.0.0.1:${port}${request.path}${request.query}`, { method: request.method, headers: headersOf(request), body, signal: controller.signal });
    const contentType = response.headers.get("content-type") ?? "";
    // A watch stream stays open: its headers are the answer.
    if (contentType.startsWith("text/event-stream")) {
      controller.abort();
      return { status: response.status, contentType, text: "" };
    }
    return { status: response.status, contentType, text: await response.text() };
  } finally {
    clearTimeout(timer);
  }
}

/** The request as bytes on a socket, damaged; the status line of the answer, or null when the server just closed. */
async function viaSocket(port: number, request: HttpCase, mutations: readonly Mutation[]): Promise<number | null> {
  const body = bodyOf(request) ?? new Uint8Array(0);
  const head = [`${request.method} ${request.path}${request.query} HTTP/1.1`, "Host: 127.0.0.1", ...Object.entries(headersOf(request)).map(([name, value]) => `${name}: ${value}`), `Content-Length: ${body.length}`, "Connection: close", "", ""].join("\r\n");
  const bytes = applyMutations(Buffer.concat([Buffer.from(head, "latin1"), body]), mutations);
  const socket = connect({ host: "127.0.0.1", port });
  const received: Buffer[] = [];
  socket.on("data", (data: Buffer) => received.push(data));
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.end(bytes);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer and no close within ${requestDeadlineMs} ms to a damaged request`));
    }, requestDeadlineMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(Buffer.concat(received).toString("latin1"));
  return statusLine === null ? null : Number(statusLine[1]);
}

/** Why `answer` breaks the API's promises, or null. */
function answerProblem(request: HttpCase, answer: Answer): string | null {
  let json: unknown = null;
  if (answer.contentType.startsWith("application/json") && request.method !== "HEAD") {
    try {
      json = JSON.parse(answer.text);
    } catch {
      return `a JSON content type with a body that is not JSON`;
    }
  }
  const error = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (answer.status >= 500) {
    if (!((answer.status === 503 || answer.status === 504) && typeof error?.code === "string" && retryCodes.has(error.code))) return `a ${answer.status} that is not a documented retry`;
  }
  if (answer.status >= 400 && request.method !== "HEAD" && (typeof error?.code !== "string" || typeof error.message !== "string")) return "an error answer without a JSON error code and message";
  return null;
}

// ---------------------------------------------------------------------------------------------
// The node

export interface OneNode {
  readonly port: number;
  readonly errorLogs: string[];
  stop(): Promise<void>;
}

/** A one-node cluster (real storage, Raft and HTTP API) on loopback ports, its data on a scratch file system. */
export async function startOneNode(): Promise<OneNode> {
  const root = await scratchRoot("raftlock-fuzz-http-");
  const dataDir = path.join(root, "n1");
  await mkdir(dataDir);
  const peerPort = await freePort();
  const config = parseStartConfig(
    ["--id", "n1", "--data-dir", dataDir, "--peer-listen", `127.0.0.1:${peerPort}`, "--http-listen", "127.0.0.1:1", "--peers", `n1=127.0.0.1:${peerPort}`,
      "--election-timeout-min-ms", "150", "--election-timeout-max-ms", String(electionTimeoutMaxMs), "--heartbeat-interval-ms", "50"],
    {},
  );
  const { logger, errorLogs } = errorLogCapture("warn");
  const fsm = new CoordinationStateMachine({ ...fsmLimitsDefaults, ttlMsMin });
  const node = await RaftNode.start(config, logger, fsm);
  const service = new CoordinationService(node, fsm, logger);
  const server: Server = await listenHttp(createHttpApp(node, logger, { service, fsm }), { host: "127.0.0.1", port: 0 });
  await waitFor("the one-node cluster to elect itself", () => node.leader() !== null, 10_000);
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the HTTP server has no port");
  return {
    port: address.port,
    errorLogs,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      service.stop();
      await node.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function checkWellBehavedClient(port: number, run: number): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  if (health.status !== 200) throw new Error(`/healthz answered ${health.status}`);
  const post = (route: string, body: unknown) => fetch(`http://127.0.0.1:${port}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const owner = `well-behaved-${run}`;
  const acquired = await post("/v1/locks/fuzz-health/acquire", { owner, ttlMs: ttlMsMin });
  if (acquired.status !== 200) throw new Error(`a well-behaved acquire answered ${acquired.status}: ${await acquired.text()}`);
  const released = await post("/v1/locks/fuzz-health/release", { owner });
  const text = await released.text();
  if (released.status !== 200 || text !== '{"released":true}') throw new Error(`a well-behaved release answered ${released.status}: ${text}`);
}

export const httpPart: FuzzPart = {
  name: "http",
  inputsAre: "HTTP requests to a one-node cluster's API",
  async run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const node = await startOneNode();
    let run = 0;
    try {
      const property = fc.asyncProperty(fc.array(httpCaseArb, { minLength: httpRequestsPerRun, maxLength: httpRequestsPerRun }), async (requests) => {
        run += 1;
        await Promise.all(requests.map(async (request) => {
          const described = `${request.method} ${request.path}${request.query} ${JSON.stringify(headersOf(request))} ${request.body === null ? "" : Buffer.from(request.body.subarray(0, 200)).toString("latin1")}`;
          if (request.raw !== null) {
            const status = await viaSocket(node.port, request, request.raw);
            if (status !== null && status >= 500 && status !== 503) throw new Error(`a damaged request was answered ${status}: ${described}`);
            stats.add(status === null ? "damaged requests closed without an answer" : `damaged requests answered ${Math.floor(status / 100)}xx`);
            return;
          }
          const answer = await viaFetch(node.port, request);
          const problem = answerProblem(request, answer);
          if (problem !== null) throw new Error(`${problem}: ${described} was answered ${answer.status} ${answer.contentType} ${answer.text.slice(0, 300)}`);
          stats.add(`answered ${Math.floor(answer.status / 100)}xx`);
        }));
        // Nothing a client sends may make the node log an error: refusals are the client's, not the node's.
        const unexplained = node.errorLogs.splice(0);
        if (unexplained.length > 0) throw new Error(`the node logged errors: ${unexplained.join("; ")}`);
        await checkWellBehavedClient(node.port, run);
      });
      return await checkProperty(this, options, property, Math.ceil(options.count / httpRequestsPerRun), httpRequestsPerRun, stats);
    } finally {
      await node.stop();
    }
  },
};
