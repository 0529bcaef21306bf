// The HTTP port's bearer authentication on a real listener, over a stand-in node: the read-only password
// may GET but not change anything, and wrong tokens are limited per address.
import type { Server } from "node:http";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { AuthFailureLimiter, ClientCredentials } from "../../../src/api/auth.js";
import { createHttpApp, listenHttp } from "../../../src/api/http/server.js";
import type { RaftNode } from "../../../src/node/node.js";

type LogLine = Record<string, unknown> & { msg: string };

const password = "full-Pa55";
const readOnlyPassword = "reader-Pa55";
/** Answers the few routes these tests call as a node that leads in term 2. */
const node = { leader: () => ({ id: "n1", term: 2 }), isReady: () => true, propose: async () => ({ index: 7, term: 2 }) } as unknown as RaftNode;

let server: Server | undefined;
afterEach(async () => {
  if (server === undefined) return;
  const closing = server;
  server = undefined;
  // fetch keeps connections alive: close them too, or close() waits for their idle timeout.
  closing.closeAllConnections();
  await new Promise<void>((resolve) => closing.close(() => resolve()));
});

async function start(): Promise<{ url: string; logs: LogLine[]; setNowMs: (ms: number) => void }> {
  const logs: LogLine[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  let nowMs = 0;
  const limiter = new AuthFailureLimiter(logger, "HTTP", { failuresMax: 2, failureWindowMs: 5_000, logIntervalMs: 60_000, addressesMax: 10 }, () => nowMs);
  const app = createHttpApp(node, logger, undefined, { credentials: new ClientCredentials(password, readOnlyPassword), limiter });
  server = await listenHttp(app, { host: "127.0.0.1", port: 0 });
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, logs, setNowMs: (ms) => (nowMs = ms) };
}

const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });

describe("HTTP authentication", () => {
  it("the read-only password may GET; POST gets 403 with a JSON error; the full password may do both", async () => {
    const { url } = await start();
    expect((await fetch(`${url}/v1/cluster/leader`, bearer(readOnlyPassword))).status).toBe(200);
    const refused = await fetch(`${url}/v1/cluster/barrier`, { method: "POST", ...bearer(readOnlyPassword) });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ error: { code: "NOPERM", message: "this request authenticated with the read-only password; it may not POST /v1/cluster/barrier" } });
    expect((await fetch(`${url}/v1/cluster/barrier`, { method: "POST", ...bearer(password) })).status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it("after failuresMax wrong tokens an address gets 429 with Retry-After, the right token too, until the window passes", async () => {
    const { url, logs, setNowMs } = await start();
    // Requests without a token are refused but are no guesses: they do not count towards the limit.
    for (let request = 0; request < 3; request++) expect((await fetch(`${url}/v1/cluster/leader`)).status).toBe(401);
    for (let guess = 0; guess < 2; guess++) expect((await fetch(`${url}/v1/cluster/leader`, bearer(`guess-${guess}`))).status).toBe(401);
    setNowMs(1_000);
    const limited = await fetch(`${url}/v1/cluster/leader`, bearer(password));
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("4");
    expect(await limited.json()).toEqual({ error: { code: "TOOMANYAUTH", message: "too many failed authentication attempts from 127.0.0.1; retry in 4 s" } });
    setNowMs(5_000);
    expect((await fetch(`${url}/v1/cluster/leader`, bearer(password))).status).toBe(200);
    // One line for all of it (within the log interval), naming the address and never a token.
    const refusals = logs.filter((line) => line.msg.startsWith("refused HTTP client authentication"));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ remote: "127.0.0.1", withoutCredentials: 1, failures: 0 });
    expect(JSON.stringify(logs)).not.toMatch(/guess|Pa55/);
  });
});
