// The coordination service's own limits, and the state machine's as the service reports them, on a real
// one-member cluster (storage in a temp dir): each refusal is a clear LIMIT or ERR error, counted in
// raftlock_limit_hits_total, and the node keeps serving.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { parseStartConfig } from "../../src/config.js";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { type FsmLimits, fsmLimitsDefaults, labelBytesMax, nameBytesMax, ttlMsMinFor, valueBytesMax } from "../../src/fsm/limits.js";
import { NodeMetrics } from "../../src/metrics.js";
import { raftConfigDefaults } from "../../src/raft/config.js";
import { CoordinationService, type CoordinationServiceOptions } from "../../src/node/coordination-service.js";
import { pendingProposalsMax, pendingReadsMax, RaftNode } from "../../src/node/node.js";
import { freePort, waitFor } from "../e2e/harness.js";

const electionMaxMs = 600;
const ttlMs = ttlMsMinFor(electionMaxMs);
let stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const stop of stops.reverse()) await stop();
  stops = [];
});

interface Started {
  service: CoordinationService;
  metrics: NodeMetrics;
  fsm: CoordinationStateMachine;
  node: RaftNode;
  /** Stops the node and its service, keeping its data directory. */
  stop(): Promise<void>;
}

/** A one-member cluster; `root` reuses the data of an earlier one (a restart). */
async function startNode(options: CoordinationServiceOptions, limits: Partial<FsmLimits> = {}, root = mkdtempSync(join(tmpdir(), "raftlock-limits-")), port?: number): Promise<Started & { root: string; port: number }> {
  port ??= await freePort();
  const config = parseStartConfig(
    ["--id", "n1", "--data-dir", join(root, "n1"), "--peer-listen", `127.0.0.1:${port}`, "--peers", `n1=127.0.0.1:${port}`,
      "--election-timeout-min-ms", "300", "--election-timeout-max-ms", String(electionMaxMs), "--heartbeat-interval-ms", "50"],
    {},
  );
  const fsm = new CoordinationStateMachine({ ...fsmLimitsDefaults, ttlMsMin: ttlMs, ...limits });
  const logger = pino({ level: "silent" });
  const metrics = new NodeMetrics();
  const node = await RaftNode.start(config, logger, fsm, metrics);
  const service = new CoordinationService(node, fsm, logger, metrics, options);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    service.stop();
    await node.stop();
  };
  stops.push(async () => {
    await stop();
    rmSync(root, { recursive: true, force: true });
  });
  await waitFor(() => node.isLeader(), 10_000, "the single member leads");
  return { service, metrics, fsm, node, stop, root, port };
}

describe("limits of the coordination service", { timeout: 30_000 }, () => {
  it("sessions per client: sessions and implicit lock leases count; closing, releasing and expiring make room", async () => {
    const { service, metrics, fsm } = await startNode({ sessionsPerClientMax: 2 });
    const app = "10.0.0.7";
    const first = await service.openSession(ttlMs, undefined, app);
    await service.openSession(60_000, undefined, app);
    const refusal = `client ${app} already has 2 sessions and lock leases open through this node (limit 2, sessionsPerClientMax); close or release unused ones and retry`;
    await expect(service.openSession(ttlMs, undefined, app)).rejects.toMatchObject({ code: "LIMIT", message: refusal });
    // An acquire without a session would open a lease: refused too, before it reaches the log.
    await expect(service.acquireLock("orders", "app", ttlMs, 0, undefined, undefined, app)).rejects.toMatchObject({ code: "LIMIT" });
    expect(await service.lockInfo("orders", "linearizable")).toBeUndefined();
    expect(await metrics.limitHitCount("sessions_per_client")).toBe(2);
    // Other clients, and the node's own requests, are not held back.
    await service.openSession(ttlMs, undefined, "10.0.0.8");
    await service.openSession(ttlMs);

    expect(await service.closeSession(first)).toBe(true);
    expect(await service.acquireLock("orders", "app", ttlMs, 0, undefined, undefined, app)).not.toBeNull();
    await expect(service.openSession(ttlMs, undefined, app)).rejects.toMatchObject({ code: "LIMIT" });
    expect(await service.releaseLock("orders", "app")).toBe(true);
    const third = await service.openSession(ttlMs, undefined, app);
    // Without keepalives it expires (decided by the leader), and its place is free again.
    await waitFor(() => fsm.sessionInfo(third) === undefined, 10_000, "the unrefreshed session expires");
    await service.openSession(ttlMs, undefined, app);
    expect(await metrics.limitHitCount("sessions_per_client")).toBe(3);
  });

  it("blocked clients: one more acquire than the node keeps in flight is refused, and the waiter still gets the lock", async () => {
    const { service, metrics } = await startNode({ blockedClientsMax: 1 });
    expect(await service.acquireLock("orders", "alice", ttlMs, 0)).not.toBeNull();
    const bobWaits = service.acquireLock("orders", "bob", ttlMs, 20_000);
    await waitFor(async () => (await service.lockInfo("orders", "linearizable"))?.waiters === 1, 5_000, "bob queued");
    await expect(service.acquireLock("orders", "carol", ttlMs, 20_000)).rejects.toMatchObject({
      code: "LIMIT",
      message: "1 clients already wait on this node (limit 1, blockedClientsMax); retry later or use another node",
    });
    expect(await metrics.limitHitCount("blocked_clients")).toBe(1);
    expect(await service.releaseLock("orders", "alice")).toBe(true);
    expect(await bobWaits).not.toBeNull();
    expect(await service.acquireLock("billing", "carol", ttlMs, 0)).not.toBeNull();
  });

  it("names and values longer than their limits are refused before the log, and counted", async () => {
    const { service, metrics } = await startNode({});
    await expect(service.acquireLock("n".repeat(nameBytesMax + 1), "alice", ttlMs, 0)).rejects.toMatchObject({
      code: "ERR",
      message: `lock name must be 1 to ${nameBytesMax} bytes (got ${nameBytesMax + 1})`,
    });
    await expect(service.openSession(ttlMs, "l".repeat(labelBytesMax + 1))).rejects.toMatchObject({ code: "ERR" });
    await expect(service.campaign("primary", "n1", ttlMs, 0, "v".repeat(valueBytesMax + 1))).rejects.toMatchObject({ code: "ERR" });
    // Too short is a plain usage error, not a limit.
    await expect(service.acquireLock("", "alice", ttlMs, 0)).rejects.toMatchObject({ code: "ERR" });
    expect(await metrics.limitHitCount("name_bytes")).toBe(2);
    expect(await metrics.limitHitCount("value_bytes")).toBe(1);
  });

  it("locks per session: held and queued claims count, a retry of one adds none, and other sessions are not held back", async () => {
    const { service, metrics } = await startNode({ locksPerSessionMax: 2 });
    const session = await service.openSession(ttlMs);
    expect(await service.acquireLock("a", "app", ttlMs, 0, session)).not.toBeNull();
    expect(await service.acquireLock("b", "other", ttlMs, 0)).not.toBeNull();
    const queued = service.acquireLock("b", "app", ttlMs, 20_000, session);
    await waitFor(async () => (await service.lockInfo("b", "linearizable"))?.waiters === 1, 5_000, "the session queued for b");
    const refusal = `session ${session} already holds or waits for 2 locks and elections (limit 2, locksPerSessionMax); release some, or use another session`;
    await expect(service.acquireLock("c", "app", ttlMs, 0, session)).rejects.toMatchObject({ code: "LIMIT", message: refusal });
    await expect(service.campaign("primary", "app", ttlMs, 0, undefined, session)).rejects.toMatchObject({ code: "LIMIT" });
    expect(await metrics.limitHitCount("locks_per_session")).toBe(2);
    // Re-acquiring what it holds is a retry: answered with the same grant, not refused.
    expect(await service.acquireLock("a", "app", ttlMs, 0, session)).not.toBeNull();
    expect(await service.acquireLock("c", "app", ttlMs, 0)).not.toBeNull();
    expect(await service.releaseLock("a", "app")).toBe(true);
    expect(await service.acquireLock("d", "app", ttlMs, 0, session)).not.toBeNull();
    expect(await service.releaseLock("b", "other")).toBe(true);
    expect(await queued).not.toBeNull();
    expect(await metrics.limitHitCount("locks_per_session")).toBe(2);
  });

  it("the state machine's refusals reach the metric, and are not counted again when a restart applies them again", async () => {
    const first = await startNode({}, { locksMax: 1 });
    expect(await first.service.acquireLock("a", "app", 60_000, 0)).not.toBeNull();
    await expect(first.service.acquireLock("b", "app", ttlMs, 0)).rejects.toMatchObject({ code: "LIMIT", message: "too many locks exist (limit 1); release unused ones and retry" });
    expect(await first.metrics.limitHitCount("locks")).toBe(1);
    await first.stop();
    const again = await startNode({}, { locksMax: 1 }, first.root, first.port);
    await waitFor(() => again.fsm.appliedIndex >= again.node.recoveredCommitIndex, 5_000, "the log applied again, the refused acquire included");
    expect(again.fsm.lockInfo("a")?.owner).toBe("app");
    expect(await again.metrics.limitHitCount("locks")).toBe(0);
    await expect(again.service.acquireLock("b", "app", ttlMs, 0)).rejects.toMatchObject({ code: "LIMIT" });
    expect(await again.metrics.limitHitCount("locks")).toBe(1);
  });
});

describe("limits of the node", { timeout: 60_000 }, () => {
  it("pending proposals and reads: one past the limit is refused at once, the rest complete", async () => {
    const { node, metrics } = await startNode({});
    // Issued in one turn of the event loop, none can commit (that needs a WAL write) before the last.
    const proposals = Array.from({ length: pendingProposalsMax + 1 }, () => node.propose(new Uint8Array([0])));
    const settled = await Promise.allSettled(proposals);
    const refused = settled.filter((outcome) => outcome.status === "rejected");
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
      code: "UNAVAILABLE",
      message: `${pendingProposalsMax} proposals are already waiting to commit (limit ${pendingProposalsMax}, pendingProposalsMax); retry later`,
    });
    const reads = Array.from({ length: pendingReadsMax + 1 }, () => node.read(() => 1));
    const readOutcomes = await Promise.allSettled(reads);
    expect(readOutcomes.filter((outcome) => outcome.status === "rejected").map((outcome) => (outcome as PromiseRejectedResult).reason.code)).toEqual(["UNAVAILABLE"]);
    expect(await metrics.limitHitCount("pending_proposals")).toBe(1);
    expect(await metrics.limitHitCount("pending_reads")).toBe(1);
    expect(await node.read(() => "still serving")).toBe("still serving");
  });

  it("a proposal larger than one entry may be is refused with its size and the limit", async () => {
    const { node, metrics } = await startNode({});
    const bytesMax = raftConfigDefaults.proposalBytesMax;
    await expect(node.propose(new Uint8Array(bytesMax + 1))).rejects.toMatchObject({
      code: "TOOLARGE",
      message: `the request takes ${bytesMax + 1} bytes, more than one log entry may hold (limit ${bytesMax}, proposalBytesMax)`,
    });
    expect(await metrics.limitHitCount("proposal_bytes")).toBe(1);
    await node.propose(new Uint8Array([0]));
  });
});
