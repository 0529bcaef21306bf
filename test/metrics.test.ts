import { describe, expect, it } from "vitest";
import { makeEvent } from "../src/fsm/events.js";
import { NodeMetrics, type RaftGauges } from "../src/metrics.js";
import { parseExposition, sampleValue } from "./support/exposition.js";

async function scrape(metrics: NodeMetrics): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition((await metrics.scrape()).text);
}

function raftGauges(overrides: Partial<RaftGauges> = {}): RaftGauges {
  return { isLeader: false, hasLeader: true, term: 3, commitIndex: 10, appliedIndex: 9, proposalsPending: 0, followerLagEntries: new Map(), ...overrides };
}

describe("NodeMetrics", () => {
  it("reads the consensus gauges from the node at scrape time", async () => {
    const metrics = new NodeMetrics();
    let gauges = raftGauges();
    metrics.watchRaft(() => gauges);
    let families = await scrape(metrics);
    expect(sampleValue(families, "raftlock_is_leader")).toBe(0);
    expect(sampleValue(families, "raftlock_has_leader")).toBe(1);
    expect(sampleValue(families, "raftlock_term")).toBe(3);
    expect(sampleValue(families, "raftlock_commit_index")).toBe(10);
    expect(sampleValue(families, "raftlock_applied_index")).toBe(9);
    gauges = raftGauges({ isLeader: true, term: 4, commitIndex: 12, proposalsPending: 2, followerLagEntries: new Map([["n2", 0], ["n3", 5]]) });
    families = await scrape(metrics);
    expect(sampleValue(families, "raftlock_is_leader")).toBe(1);
    expect(sampleValue(families, "raftlock_term")).toBe(4);
    expect(sampleValue(families, "raftlock_proposals_pending")).toBe(2);
    expect(sampleValue(families, "raftlock_follower_lag_entries", { peer: "n3" })).toBe(5);
    expect(sampleValue(families, "raftlock_follower_lag_entries", { peer: "n2" })).toBe(0);
  });

  it("drops the follower lag series once this node stops leading", async () => {
    const metrics = new NodeMetrics();
    let gauges = raftGauges({ isLeader: true, followerLagEntries: new Map([["n2", 1]]) });
    metrics.watchRaft(() => gauges);
    expect(sampleValue(await scrape(metrics), "raftlock_follower_lag_entries", { peer: "n2" })).toBe(1);
    gauges = raftGauges();
    expect((await scrape(metrics)).get("raftlock_follower_lag_entries")!.samples).toEqual([]);
  });

  it("counts grants, measures holds to release or expiry, and never labels a lock name", async () => {
    const metrics = new NodeMetrics();
    const grant = (name: string, token: number) => makeEvent(token, { type: "lock-granted", name, owner: "w", token, sessionId: token, ttlMs: 5000, waiterId: `x.${token}` });
    metrics.fsmEvent(grant("orders/secret-lock-name", 1), 1_000);
    metrics.fsmEvent(grant("other", 2), 1_000);
    metrics.fsmEvent(makeEvent(3, { type: "lock-released", name: "orders/secret-lock-name", owner: "w", token: 1, reason: "released" }), 1_250);
    metrics.fsmEvent(makeEvent(4, { type: "lock-expired", name: "other", owner: "w", token: 2, sessionId: 2 }), 3_000);
    metrics.fsmEvent(makeEvent(4, { type: "session-ended", sessionId: 2, reason: "expired" }), 3_000);
    metrics.fsmEvent(makeEvent(5, { type: "session-ended", sessionId: 7, reason: "closed" }), 3_000);
    // A release this node never saw the grant of (it installed a snapshot) is not a hold.
    metrics.fsmEvent(makeEvent(6, { type: "lock-released", name: "old", owner: "w", token: 99, reason: "forced" }), 3_000);
    metrics.lockWaited(0);
    metrics.lockWaited(2.5);
    const { text } = await metrics.scrape();
    const families = parseExposition(text);
    expect(sampleValue(families, "raftlock_lock_grants_total")).toBe(2);
    expect(sampleValue(families, "raftlock_lock_hold_seconds_count")).toBe(2);
    expect(sampleValue(families, "raftlock_lock_hold_seconds_sum")).toBeCloseTo(0.25 + 2, 9);
    expect(sampleValue(families, "raftlock_session_expired_total")).toBe(1);
    expect(sampleValue(families, "raftlock_lock_wait_seconds_count")).toBe(2);
    expect(sampleValue(families, "raftlock_lock_wait_seconds_sum")).toBe(2.5);
    expect(text).not.toContain("secret-lock-name");
    expect(metrics.grantsTracked).toBe(0);
  });

  it("forgets grants a restored snapshot no longer holds", () => {
    const metrics = new NodeMetrics();
    for (const token of [1, 2]) metrics.fsmEvent(makeEvent(token, { type: "lock-granted", name: `l${token}`, owner: "w", token, sessionId: token, ttlMs: 5000, waiterId: `x.${token}` }), 0);
    metrics.restored((name, token) => name === "l2" && token === 2);
    expect(metrics.grantsTracked).toBe(1);
  });

  it("labels RESP requests by command-table name only, and by outcome", async () => {
    const metrics = new NodeMetrics();
    metrics.labelRespCommands(["ping", "lock.acquire"]);
    metrics.respAnswered("ping", true, 0.001);
    metrics.respAnswered("lock.acquire", false, 0.002);
    metrics.respAnswered("no-such-command-7f3e", false, 0.001);
    const { text } = await metrics.scrape();
    const families = parseExposition(text);
    expect(sampleValue(families, "raftlock_resp_requests_total", { command: "ping", outcome: "ok" })).toBe(1);
    expect(sampleValue(families, "raftlock_resp_requests_total", { command: "lock.acquire", outcome: "error" })).toBe(1);
    expect(sampleValue(families, "raftlock_resp_requests_total", { command: "other", outcome: "error" })).toBe(1);
    expect(sampleValue(families, "raftlock_resp_request_duration_seconds_count", { command: "ping", outcome: "ok" })).toBe(1);
    expect(text).not.toContain("no-such-command");
  });

  it("labels HTTP requests by route pattern, method and status class", async () => {
    const metrics = new NodeMetrics();
    metrics.httpAnswered("/v1/locks/:name/acquire", "POST", 200, 0.01);
    metrics.httpAnswered("/v1/locks/:name/acquire", "POST", 409, 0.01);
    metrics.httpAnswered("unmatched", "BREW", 404, 0.001);
    const families = await scrape(metrics);
    expect(sampleValue(families, "raftlock_http_requests_total", { route: "/v1/locks/:name/acquire", method: "POST", status: "2xx" })).toBe(1);
    expect(sampleValue(families, "raftlock_http_requests_total", { route: "/v1/locks/:name/acquire", method: "POST", status: "4xx" })).toBe(1);
    expect(sampleValue(families, "raftlock_http_requests_total", { route: "unmatched", method: "other", status: "4xx" })).toBe(1);
  });

  it("counts proposals, leader changes, storage timings and AppendEntries batch sizes", async () => {
    const metrics = new NodeMetrics();
    metrics.proposalCommitted();
    metrics.proposalFailed("NOLEADER");
    metrics.proposalFailed("NOLEADER");
    metrics.leaderChanged();
    metrics.walSaved(0.002);
    metrics.snapshotSaved(0.05);
    metrics.appendEntriesSent(3);
    metrics.appendEntriesSent(0);
    const families = await scrape(metrics);
    expect(sampleValue(families, "raftlock_proposals_committed_total")).toBe(1);
    expect(sampleValue(families, "raftlock_proposals_failed_total", { reason: "NOLEADER" })).toBe(2);
    expect(sampleValue(families, "raftlock_leader_changes_seen_total")).toBe(1);
    expect(sampleValue(families, "raftlock_wal_fsync_duration_seconds_count")).toBe(1);
    expect(sampleValue(families, "raftlock_snapshot_save_duration_seconds_sum")).toBe(0.05);
    expect(sampleValue(families, "raftlock_append_entries_batch_entries_sum")).toBe(3);
    expect(sampleValue(families, "raftlock_append_entries_batch_entries_bucket", { le: "0" })).toBe(1);
  });

  it("reports each peer's bytes from the transport's totals, and heartbeat round trips by member id", async () => {
    const metrics = new NodeMetrics();
    let traffic = [{ peerId: "n2", sentBytes: 100, receivedBytes: 40 }, { peerId: "n3", sentBytes: 7, receivedBytes: 0 }];
    metrics.watchPeerTraffic(() => traffic);
    metrics.peerRoundTrip("n2", 0.003);
    let families = await scrape(metrics);
    expect(sampleValue(families, "raftlock_peer_sent_bytes_total", { peer: "n2" })).toBe(100);
    expect(sampleValue(families, "raftlock_peer_received_bytes_total", { peer: "n2" })).toBe(40);
    expect(sampleValue(families, "raftlock_peer_sent_bytes_total", { peer: "n3" })).toBe(7);
    expect(sampleValue(families, "raftlock_peer_round_trip_seconds_count", { peer: "n2" })).toBe(1);
    // n3 was removed from the cluster: its series go with its link.
    traffic = [{ peerId: "n2", sentBytes: 150, receivedBytes: 60 }];
    families = await scrape(metrics);
    expect(sampleValue(families, "raftlock_peer_sent_bytes_total", { peer: "n2" })).toBe(150);
    expect(sampleValue(families, "raftlock_peer_sent_bytes_total", { peer: "n3" })).toBeUndefined();
  });

  it("reports connections by protocol and the process metrics, each node in its own registry", async () => {
    const first = new NodeMetrics();
    const second = new NodeMetrics();
    first.countConnections("resp", () => 2);
    first.countConnections("http", () => Promise.resolve(1));
    second.countConnections("resp", () => 7);
    const families = await scrape(first);
    expect(sampleValue(families, "raftlock_connections", { protocol: "resp" })).toBe(2);
    expect(sampleValue(families, "raftlock_connections", { protocol: "http" })).toBe(1);
    expect(sampleValue(await scrape(second), "raftlock_connections", { protocol: "resp" })).toBe(7);
    expect(families.get("raftlock_process_cpu_seconds_total")?.type).toBe("counter");
    for (const name of families.keys()) expect(name.startsWith("raftlock_")).toBe(true);
  });
});
