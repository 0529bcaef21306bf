// GET /metrics on every node of a real 3-node cluster, behind --auth-password, after lock traffic over
// HTTP and RESP. The exposition is parsed here and, when promtool is installed (Debian `prometheus`),
// linted by `promtool check metrics`.
import { execFile, spawnSync } from "node:child_process";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { nameBytesMax } from "../../src/fsm/limits.js";
import { limitNames } from "../../src/limit-hits.js";
import { parseExposition, sampleValue, type Family } from "../support/exposition.js";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

const e2eTimeoutMs = 90_000;
const password = "metrics-e2e-pw-51c2";
const ids = ["n1", "n2", "n3"];
/** Just above the shortest TTL fastTimeouts allow (1.5 x their 600 ms maximum election timeout). */
const expiringTtlMs = 1_000;
const promtoolPresent = spawnSync("promtool", ["--version"]).status === 0;

let cluster: E2eCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

async function call(id: string, method: string, path: string, body?: unknown, auth = true): Promise<Response> {
  return fetch(`http://127.0.0.1:${cluster!.node(id).httpPort}${path}`, {
    method,
    headers: { ...(auth ? { authorization: `Bearer ${password}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(25_000),
  });
}

async function scrape(id: string): Promise<{ text: string; families: Map<string, Family> }> {
  const response = await call(id, "GET", "/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  return { text, families: parseExposition(text) };
}

/** Sends RESP commands on one connection and resolves with everything the server answered. */
function resp(port: number, commands: string[], repliesExpected: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString();
      if (received.split("\r\n").length - 1 >= repliesExpected) {
        socket.end();
        resolve(received);
      }
    });
    socket.on("error", reject);
    socket.write(commands.map((command) => `${command}\r\n`).join(""));
  });
}

function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile("promtool", ["check", "metrics"], (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, output: stdout + stderr });
    });
    child.stdin!.end(text);
  });
}

describe("GET /metrics on a real cluster", { timeout: e2eTimeoutMs }, () => {
  it("exactly one node reports itself leader, every node knows one, and lock traffic shows up", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--auth-password", password]);
    // Like every other route, /metrics needs the password (Prometheus sends it as a bearer token).
    await waitFor(async () => (await call("n1", "GET", "/healthz", undefined, false)).status === 200, 20_000, "n1 serving");
    expect((await call("n1", "GET", "/metrics", undefined, false)).status).toBe(401);
    await waitFor(
      async () => {
        const scraped = await Promise.all(ids.map(async (id) => (await scrape(id)).families));
        const leaders = scraped.filter((families) => sampleValue(families, "raftlock_is_leader") === 1);
        return leaders.length === 1 && scraped.every((families) => sampleValue(families, "raftlock_has_leader") === 1);
      },
      20_000,
      "one leader that every node knows",
    );
    const grantsBefore = await Promise.all(ids.map(async (id) => sampleValue((await scrape(id)).families, "raftlock_lock_grants_total")!));

    // alice holds, bob queues behind her on another node, alice releases, bob is granted and releases.
    const lockName = "metrics-e2e-secret-name";
    expect((await call("n1", "POST", `/v1/locks/${lockName}/acquire`, { owner: "alice", ttlMs: 5_000 })).status).toBe(200);
    const bobWaits = call("n3", "POST", `/v1/locks/${lockName}/acquire`, { owner: "bob", ttlMs: 5_000, waitMs: 20_000 });
    await waitFor(async () => ((await (await call("n1", "GET", `/v1/locks/${lockName}`)).json()) as { waiters?: number }).waiters === 1, 10_000, "bob queued");
    await waitFor(
      async () => {
        const families = (await scrape("n2")).families;
        return sampleValue(families, "raftlock_locks_held") === 1 && sampleValue(families, "raftlock_lock_waiters") === 1 && sampleValue(families, "raftlock_sessions_active")! >= 1;
      },
      10_000,
      "n2 applied alice's grant and bob's wait",
    );
    expect((await call("n2", "POST", `/v1/locks/${lockName}/release`, { owner: "alice" })).status).toBe(200);
    expect((await bobWaits).status).toBe(200);
    expect((await call("n3", "POST", `/v1/locks/${lockName}/release`, { owner: "bob" })).status).toBe(200);
    // A lock nobody refreshes: its lease expires, through the log, on the leader's clock.
    expect((await call("n2", "POST", "/v1/locks/abandoned/acquire", { owner: "gone", ttlMs: expiringTtlMs })).status).toBe(200);
    expect((await call("n1", "POST", "/v1/elections/metrics-e2e-election/campaign", { candidate: "c1", ttlMs: 30_000 })).status).toBe(200);
    expect((await call("n3", "POST", "/v1/cluster/snapshot")).status).toBe(200);
    // A name past its limit: refused by n1 before the log, and counted there only.
    expect((await call("n1", "POST", `/v1/locks/${"n".repeat(nameBytesMax + 1)}/acquire`, { owner: "alice", ttlMs: 30_000 })).status).toBe(400);
    const pong = await resp(cluster.node("n2").respPort, [`AUTH ${password}`, "PING", "NOSUCHCOMMAND x"], 3);
    expect(pong).toContain("+PONG");

    await waitFor(
      async () => {
        const scraped = await Promise.all(ids.map(async (id) => (await scrape(id)).families));
        return scraped.every(
          (families, k) =>
            sampleValue(families, "raftlock_lock_grants_total")! >= grantsBefore[k]! + 3 &&
            sampleValue(families, "raftlock_lock_hold_seconds_count")! >= 3 &&
            sampleValue(families, "raftlock_session_expired_total")! >= 1 &&
            sampleValue(families, "raftlock_election_leaders") === 1,
        );
      },
      20_000,
      "every node applied the three grants, both releases, the expiry and the election",
    );

    const leaderId = ((await (await call("n1", "GET", "/v1/cluster/leader")).json()) as { id: string }).id;
    const texts: string[] = [];
    for (const id of ids) {
      const { text, families } = await scrape(id);
      texts.push(text);
      expect(text).not.toContain(lockName);
      for (const name of families.keys()) expect(name.startsWith("raftlock_")).toBe(true);
      expect(sampleValue(families, "raftlock_wal_fsync_duration_seconds_count")).toBeGreaterThan(0);
      expect(sampleValue(families, "raftlock_applied_index")).toBeGreaterThan(0);
      expect(sampleValue(families, "raftlock_connections", { protocol: "peer" })).toBe(2);
      const isLeader = sampleValue(families, "raftlock_is_leader") === 1;
      // Raft traffic flows between the leader and each follower; followers do not talk to each other.
      for (const peer of isLeader ? ids.filter((other) => other !== id) : [leaderId]) {
        expect(sampleValue(families, "raftlock_peer_sent_bytes_total", { peer })).toBeGreaterThan(0);
        expect(sampleValue(families, "raftlock_peer_received_bytes_total", { peer })).toBeGreaterThan(0);
      }
      // Only the leader appends proposals and sends AppendEntries with entries; it reports each follower's lag.
      if (isLeader) {
        expect(sampleValue(families, "raftlock_proposals_committed_total")).toBeGreaterThanOrEqual(4);
        expect(families.get("raftlock_follower_lag_entries")!.samples.map((sample) => sample.labels.peer).sort()).toEqual(ids.filter((other) => other !== id));
        expect(sampleValue(families, "raftlock_append_entries_batch_entries_count")).toBeGreaterThan(0);
        for (const peer of ids.filter((other) => other !== id)) expect(sampleValue(families, "raftlock_peer_round_trip_seconds_count", { peer })).toBeGreaterThan(0);
      }
    }
    const leaderCount = await Promise.all(ids.map(async (id) => sampleValue((await scrape(id)).families, "raftlock_is_leader")));
    expect(leaderCount.filter((value) => value === 1)).toHaveLength(1);

    const n3 = parseExposition(texts[2]!);
    expect(sampleValue(n3, "raftlock_snapshot_save_duration_seconds_count")).toBe(1);
    // bob's acquire was served by n3 and queued: its wait is measured there.
    expect(sampleValue(n3, "raftlock_lock_wait_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(n3, "raftlock_http_requests_total", { route: "/v1/locks/:name/acquire", method: "POST", status: "2xx" })).toBe(1);
    const n2 = parseExposition(texts[1]!);
    expect(sampleValue(n2, "raftlock_resp_requests_total", { command: "ping", outcome: "ok" })).toBe(1);
    expect(sampleValue(n2, "raftlock_resp_requests_total", { command: "other", outcome: "error" })).toBe(1);
    const n1 = parseExposition(texts[0]!);
    expect(sampleValue(n1, "raftlock_limit_hits_total", { limit: "name_bytes" })).toBe(1);
    // Every limit's series is there from the start, at 0 where nothing was refused.
    for (const limit of limitNames) expect(sampleValue(n2, "raftlock_limit_hits_total", { limit }), limit).toBe(0);
    expect(sampleValue(n1, "raftlock_http_requests_total", { route: "unmatched", method: "GET", status: "4xx" })).toBeGreaterThanOrEqual(1);

    if (!promtoolPresent) {
      console.warn("promtool not found (Debian package `prometheus`): skipped `promtool check metrics` on the scraped text");
      return;
    }
    for (const [k, text] of texts.entries()) {
      const { code, output } = await promtoolCheck(text);
      expect({ node: ids[k], code, output }).toEqual({ node: ids[k], code: 0, output: "" });
    }
  });
});
