import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

/** Generous: real processes on a loaded 2-core machine. */
const e2eTimeoutMs = 90_000;
/** The TTL floor for the test timeouts: 1.5 x the 600 ms maximum election timeout. */
const ttlMs = 900;

let cluster: E2eCluster | null = null;
/** A directory a test made for files it hands the nodes; removed once the nodes have stopped. */
let secretDir: string | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
  if (secretDir !== null) rmSync(secretDir, { recursive: true, force: true });
  secretDir = null;
});

interface SseEvent {
  /** `index:n`: the n-th event of that log index on the channel. */
  id: string;
  event: string;
  data: { type: string; index: number; leaderId?: string; term?: number; owner?: string; token?: number };
}

/** Reads Server-Sent Events from `url` into `events` until `stop` is aborted. */
async function watch(url: string, events: SseEvent[], stop: AbortSignal): Promise<void> {
  const response = await fetch(url, { signal: stop });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += new TextDecoder().decode(value);
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(block.split("\n").filter((line) => !line.startsWith(":")).map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)]));
        if (fields["data"] !== undefined) events.push({ id: fields["id"]!, event: fields["event"]!, data: JSON.parse(fields["data"]) as SseEvent["data"] });
      }
    }
  } catch (error) {
    if (!stop.aborted) throw error;
  }
}

describe("the HTTP API for locks, sessions and elections", { timeout: e2eTimeoutMs }, () => {
  it("two clients contend for a lock: the loser gets it, with a higher token, after the holder releases", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const first = await cluster.post<{ token: number; ttlMs: number }>("n1", "/v1/locks/orders/acquire", { owner: "alice", ttlMs });
    expect(first.status).toBe(200);
    expect(await cluster.post("n2", "/v1/locks/orders/acquire", { owner: "bob", ttlMs })).toMatchObject({ status: 409, body: { error: { code: "NOTACQUIRED" } } });
    const bobWaits = cluster.post<{ token: number }>("n3", "/v1/locks/orders/acquire", { owner: "bob", ttlMs, waitMs: 20_000 });
    await waitFor(async () => (await cluster!.get<{ waiters: number }>("n2", "/v1/locks/orders")).body.waiters === 1, 10_000, "bob waits");
    expect((await cluster.get<{ owner: string; token: number }>("n2", "/v1/locks/orders")).body).toMatchObject({ owner: "alice", token: first.body.token });
    expect((await cluster.post("n2", "/v1/locks/orders/release", { owner: "bob" })).body).toEqual({ released: false });
    expect((await cluster.post("n2", "/v1/locks/orders/release", { owner: "alice" })).body).toEqual({ released: true });
    const second = await bobWaits;
    expect(second.status).toBe(200);
    expect(second.body.token).toBeGreaterThan(first.body.token);
    expect((await cluster.get("n1", `/v1/fence/orders/${first.body.token}`)).body).toEqual({ valid: false });
    expect((await cluster.get("n1", `/v1/fence/orders/${second.body.token}?consistency=serializable`)).status).toBe(200);
    expect((await cluster.post("n1", "/v1/locks/orders/refresh", { owner: "bob", ttlMs })).body).toEqual({ refreshed: true });
    // Alice's release and Bob's grant happened in one entry: two events at one index, resumable between them.
    const events: SseEvent[] = [];
    const stop = new AbortController();
    const url = `http://127.0.0.1:${cluster.node("n3").httpPort}/v1/watch?channel=lock:orders`;
    const watching = watch(`${url}&since=0`, events, stop.signal);
    await waitFor(() => events.length >= 3, 10_000, "grant, release and grant");
    stop.abort();
    await watching;
    const released = events.find((event) => event.event === "lock-released")!;
    const granted = events[events.indexOf(released) + 1]!;
    expect(granted).toMatchObject({ event: "lock-granted", data: { owner: "bob", index: released.data.index } });
    expect([released.id, granted.id]).toEqual([`${released.data.index}:1`, `${released.data.index}:2`]);
    const resumed: SseEvent[] = [];
    const stopResumed = new AbortController();
    const resuming = watch(`${url}&since=${released.id}`, resumed, stopResumed.signal);
    await waitFor(() => resumed.length >= 1, 10_000, "the resumed stream");
    stopResumed.abort();
    await resuming;
    expect(resumed[0]).toEqual(granted);
  });

  it("a holder that stops refreshing loses the lock to the next waiter when its lease runs out", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const first = await cluster.post<{ token: number }>("n1", "/v1/locks/job/acquire", { owner: "crashed", ttlMs });
    const next = await cluster.post<{ token: number }>("n2", "/v1/locks/job/acquire", { owner: "next", ttlMs, waitMs: 20_000 });
    expect(next.status).toBe(200);
    expect(next.body.token).toBeGreaterThan(first.body.token);
  });

  it("a waiter whose connection closes is cancelled, and never becomes a holder", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    await cluster.post("n1", "/v1/locks/door/acquire", { owner: "alice", ttlMs: 5_000 });
    const hangUp = new AbortController();
    const waiting = fetch(`http://127.0.0.1:${cluster.node("n2").httpPort}/v1/locks/door/acquire`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ owner: "quitter", ttlMs: 5_000, waitMs: 30_000 }),
      signal: hangUp.signal,
    }).catch(() => null);
    await waitFor(async () => (await cluster!.get<{ waiters: number }>("n1", "/v1/locks/door")).body.waiters === 1, 10_000, "the waiter queued");
    hangUp.abort();
    await waiting;
    await waitFor(async () => (await cluster!.get<{ waiters: number }>("n1", "/v1/locks/door")).body.waiters === 0, 10_000, "the waiter cancelled");
    expect((await cluster.post("n1", "/v1/locks/door/release", { owner: "alice" })).body).toEqual({ released: true });
    expect((await cluster.get("n3", "/v1/locks/door")).status).toBe(404); // free: nobody unseen holds it
  });

  it("sessions: open, keep alive, close; a closed session's lock passes on", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const session = await cluster.post<{ id: number }>("n1", "/v1/sessions", { ttlMs: 5_000, label: "worker" });
    expect(session.status).toBe(200);
    expect((await cluster.post<{ ttlMs: number }>("n2", `/v1/sessions/${session.body.id}/keepalive`)).body.ttlMs).toBeGreaterThan(4_000);
    await cluster.post("n1", "/v1/locks/s/acquire", { owner: "worker", ttlMs: 5_000, session: session.body.id });
    const waiter = cluster.post<{ token: number }>("n3", "/v1/locks/s/acquire", { owner: "other", ttlMs, waitMs: 20_000 });
    const closed = await fetch(`http://127.0.0.1:${cluster.node("n3").httpPort}/v1/sessions/${session.body.id}`, { method: "DELETE" });
    expect(await closed.json()).toEqual({ closed: true });
    expect((await waiter).status).toBe(200);
    expect(await cluster.post("n1", `/v1/sessions/${session.body.id}/keepalive`)).toMatchObject({ status: 404, body: { error: { code: "NOSESSION" } } });
  });

  it("elections: campaign, proclaim, read the leader, resign", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const a = await cluster.post<{ token: number }>("n1", "/v1/elections/primary/campaign", { candidate: "a", ttlMs, value: "10.0.0.1" });
    expect(a.status).toBe(200);
    expect((await cluster.post("n2", "/v1/elections/primary/campaign", { candidate: "b", ttlMs })).status).toBe(409);
    expect((await cluster.post("n2", "/v1/elections/primary/proclaim", { candidate: "a", value: "10.0.0.2" })).body).toEqual({ proclaimed: true });
    expect((await cluster.get("n3", "/v1/elections/primary")).body).toEqual({ candidate: "a", value: "10.0.0.2", token: a.body.token });
    expect((await cluster.post("n3", "/v1/elections/primary/resign", { candidate: "a" })).body).toEqual({ resigned: true });
    expect((await cluster.get("n3", "/v1/elections/primary")).status).toBe(404);
  });

  it("bad requests get a 400 that says what to fix", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    expect(await cluster.post("n1", "/v1/locks/x/acquire", { owner: "o", ttlMs: "soon" })).toEqual({ status: 400, body: { error: { code: "BADREQUEST", message: "ttlMs must be a non-negative integer" } } });
    expect(await cluster.post("n1", "/v1/locks/x/acquire", { ttlMs })).toEqual({ status: 400, body: { error: { code: "BADREQUEST", message: "owner must be a non-empty string" } } });
    const tooShort = await cluster.post<{ error: { message: string } }>("n1", "/v1/locks/x/acquire", { owner: "o", ttlMs: 10 });
    expect(tooShort.status).toBe(400);
    expect(tooShort.body.error.message).toBe(`ttl-ms must be an integer between ${ttlMs} and 86400000 (got 10)`);
    expect((await cluster.get("n1", "/v1/locks/x?consistency=sometimes")).status).toBe(400);
    expect(await cluster.get("n1", "/v1/watch?channel=session:3")).toEqual({
      status: 400,
      body: { error: { code: "BADREQUEST", message: "session: channels are internal; watch raft:leader, lock:<name> or election:<name>" } },
    });
  });

  it("a leader kill during contention never yields two holders at once, tokens only grow, and no client sees an error", async () => {
    cluster = await E2eCluster.start(3);
    const leader = await cluster.leader();
    const clientNodes = ["n1", "n2", "n3"].filter((id) => id !== leader.id);
    const grants: { owner: string; token: number; fromMs: number; untilMs: number }[] = [];
    let holder: string | null = null;
    let overlaps = 0;
    const statuses: number[] = [];
    const runUntilMs = Date.now() + 4_000;
    const client = async (owner: string, nodeId: string): Promise<void> => {
      while (Date.now() < runUntilMs) {
        const acquired = await cluster!.post<{ token: number }>(nodeId, "/v1/locks/contended/acquire", { owner, ttlMs: 5_000, waitMs: 5_000 });
        statuses.push(acquired.status);
        if (acquired.status !== 200) continue; // not acquired within the wait: try again
        if (holder !== null) overlaps++;
        holder = owner;
        const fromMs = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 20)); // hold the lock: the critical section
        holder = null; // from here on this client no longer acts as holder, whatever the release answers
        grants.push({ owner, token: acquired.body.token, fromMs, untilMs: Date.now() });
        statuses.push((await cluster!.post(nodeId, "/v1/locks/contended/release", { owner })).status);
      }
    };
    const clients = [client("c1", clientNodes[0]!), client("c2", clientNodes[1]!)];
    await waitFor(() => grants.length >= 5, 10_000, "some grants before the kill");
    await cluster.kill9(leader.id);
    await Promise.all(clients);
    expect(overlaps).toBe(0);
    // Acquire and release are idempotent: the node retries them on the new leader, so no client saw a 5xx.
    expect(statuses.filter((status) => status >= 500)).toEqual([]);
    const byTime = [...grants].sort((a, b) => a.fromMs - b.fromMs);
    for (let k = 1; k < byTime.length; k++) {
      const [previous, current] = [byTime[k - 1]!, byTime[k]!];
      // A release lost in the failover leaves the owner holding: its retry is the same grant, same token.
      if (current.owner === previous.owner) expect(current.token).toBeGreaterThanOrEqual(previous.token);
      else expect(current.token).toBeGreaterThan(previous.token);
    }
    expect(grants.some((grant) => grant.fromMs > Date.now() - 3_000)).toBe(true); // grants went on after the kill
  });

  it("with --auth-password, every route but the probes and the status page wants the bearer token, the WebSocket watch too", async () => {
    const password = "s3cret-e2e";
    // From a file, as a mounted Kubernetes Secret gives it (with the trailing newline `echo` leaves).
    secretDir = mkdtempSync(join(tmpdir(), "raftlock-e2e-secret-"));
    const passwordFile = join(secretDir, "password");
    writeFileSync(passwordFile, `${password}\n`);
    const readOnlyPassword = "reader-e2e";
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--auth-password-file", passwordFile, "--auth-readonly-password", readOnlyPassword]);
    const port = cluster.node("n1").httpPort;
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 15_000, "n1 ready without credentials");
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const refused = await fetch(`http://127.0.0.1:${port}/v1/cluster/leader`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: { code: "NOAUTH", message: "authentication required: send Authorization: Bearer <password>" } });
    expect((await fetch(`http://127.0.0.1:${port}/v1/cluster/leader`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${port}/v1/cluster/leader`, { headers: { authorization: `Bearer ${password}` } })).status).toBe(200);
    // The node says so once (two refusals from one address within the minute), without any token in the line.
    await waitFor(() => cluster!.node("n1").output.includes("refused HTTP client authentication"), 5_000, "the refusal logged");
    const refusalLines = cluster.node("n1").output.split("\n").filter((line) => line.includes("refused HTTP client authentication"));
    expect(refusalLines).toHaveLength(1);
    expect(refusalLines[0]).not.toMatch(/wrong|s3cret/);
    expect(cluster.node("n1").output).not.toMatch(/s3cret|reader-e2e/);
    // The read-only password reads, and is refused every change.
    const asReader = { authorization: `Bearer ${readOnlyPassword}`, "content-type": "application/json" };
    expect((await fetch(`http://127.0.0.1:${port}/v1/cluster/leader`, { headers: asReader })).status).toBe(200);
    const write = await fetch(`http://127.0.0.1:${port}/v1/locks/reports/acquire`, { method: "POST", headers: asReader, body: JSON.stringify({ owner: "r", ttlMs }) });
    expect(write.status).toBe(403);
    expect(await write.json()).toEqual({ error: { code: "NOPERM", message: "this request authenticated with the read-only password; it may not POST /v1/locks/reports/acquire" } });
    // The WebSocket watch: refused without the token, and with it delivers history in log order.
    const unauthorized = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
    unauthorized.on("error", () => undefined); // the refused upgrade also surfaces as an error event
    const status = await new Promise<number>((resolve) => unauthorized.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0)));
    expect(status).toBe(401);
    unauthorized.terminate();
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { headers: { authorization: `Bearer ${password}` } });
    const received: { channel?: string; id?: string; event?: { type: string; index: number }; subscribed?: string }[] = [];
    socket.on("message", (data) => received.push(JSON.parse(data.toString()) as (typeof received)[number]));
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ subscribe: "raft:leader", since: 0 }));
    // n1 may be ready before it applied the leader's first entry: the event then arrives live, after `subscribed`.
    await waitFor(() => received.some((message) => message.subscribed === "raft:leader"), 10_000, "subscribed");
    await waitFor(() => received.some((message) => message.channel === "raft:leader"), 10_000, "the leader event");
    const leaderEvent = received.find((message) => message.channel === "raft:leader")!;
    expect(leaderEvent).toMatchObject({ channel: "raft:leader", event: { type: "raft-leader" } });
    expect(leaderEvent.id).toBe(`${leaderEvent.event!.index}:1`);
    socket.send("not json");
    await waitFor(() => received.some((message) => "error" in message), 5_000, "a readable refusal");
    socket.close();
  });

  it("a watch on raft:leader sees leader changes with their log index, and resumes with since=", async () => {
    cluster = await E2eCluster.start(3);
    const leader = await cluster.leader();
    const watcher = ["n1", "n2", "n3"].find((id) => id !== leader.id)!;
    const events: SseEvent[] = [];
    const stop = new AbortController();
    const watching = watch(`http://127.0.0.1:${cluster.node(watcher).httpPort}/v1/watch?channel=raft:leader&since=0`, events, stop.signal);
    await waitFor(() => events.some((e) => e.data.leaderId === leader.id && e.data.term === leader.term), 10_000, "the first leader's event");
    await cluster.kill9(leader.id);
    const next = await cluster.leader(["n1", "n2", "n3"].filter((id) => id !== leader.id), 15_000, leader.id);
    await waitFor(() => events.some((e) => e.data.leaderId === next.id && e.data.term === next.term), 10_000, "the new leader's event");
    stop.abort();
    await watching;
    const ids = events.map((e) => e.data.index);
    expect([...ids].sort((x, y) => x - y)).toEqual(ids); // in log order
    expect(events.every((e) => e.id === `${e.data.index}:1` && e.event === "raft-leader")).toBe(true);
    // Resuming after the first event delivers the later ones only.
    const resumed: SseEvent[] = [];
    const stopResumed = new AbortController();
    const resuming = watch(`http://127.0.0.1:${cluster.node(watcher).httpPort}/v1/watch?channel=raft:leader&since=${ids[0]}`, resumed, stopResumed.signal);
    await waitFor(() => resumed.length === ids.length - 1, 10_000, "the resumed stream catches up");
    stopResumed.abort();
    await resuming;
    expect(resumed.map((e) => e.data.index)).toEqual(ids.slice(1));
  });
});
