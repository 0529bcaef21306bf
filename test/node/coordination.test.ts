// Locks, sessions and elections through three real drivers (storage in temp dirs, WebSocket transports).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { parseStartConfig } from "../../src/config.js";
import { encodeCommand } from "../../src/fsm/commands.js";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { decodeResult } from "../../src/fsm/results.js";
import { fsmLimitsDefaults, ttlMsMinFor } from "../../src/fsm/limits.js";
import { CoordinationService, type CoordinationServiceOptions } from "../../src/node/coordination-service.js";
import type { NodeError } from "../../src/node/forwarding.js";
import { RaftNode } from "../../src/node/node.js";
import { transportLimitsDefault } from "../../src/transport/limits.js";
import { freePort, waitFor } from "../e2e/harness.js";

const ids = ["n1", "n2", "n3"];
const electionMaxMs = 600;
const ttlMs = ttlMsMinFor(electionMaxMs);
interface Member {
  node: RaftNode;
  service: CoordinationService;
  fsm: CoordinationStateMachine;
}
let members = new Map<string, Member>();
let root = "";

afterEach(async () => {
  for (const member of members.values()) member.service.stop();
  await Promise.all([...members.values()].map((member) => member.node.stop()));
  members = new Map();
  rmSync(root, { recursive: true, force: true });
});

async function startCluster(options: CoordinationServiceOptions = {}): Promise<Map<string, Member>> {
  root = mkdtempSync(join(tmpdir(), "raftlock-coord-"));
  const ports = new Map<string, number>();
  for (const id of ids) ports.set(id, await freePort());
  const peers = ids.map((id) => `${id}=127.0.0.1:${ports.get(id)}`).join(",");
  for (const id of ids) {
    const config = parseStartConfig(
      ["--id", id, "--data-dir", join(root, id), "--peer-listen", `127.0.0.1:${ports.get(id)}`, "--http-listen", "127.0.0.1:1", "--peers", peers,
        "--election-timeout-min-ms", "300", "--election-timeout-max-ms", String(electionMaxMs), "--heartbeat-interval-ms", "50"],
      {},
    );
    const fsm = new CoordinationStateMachine({ ...fsmLimitsDefaults, ttlMsMin: ttlMs });
    const logger = pino({ level: "silent" });
    const node = await RaftNode.start(config, logger, fsm);
    members.set(id, { node, fsm, service: new CoordinationService(node, fsm, logger, undefined, options) });
  }
  await waitFor(() => ids.every((id) => members.get(id)!.node.leader() !== null), 10_000, "a leader everyone knows");
  return members;
}

function service(id: string): CoordinationService {
  return members.get(id)!.service;
}

describe("coordination over a real cluster", { timeout: 30_000 }, () => {
  it("the loser of a contended lock gets it, with a higher token, when the holder releases", async () => {
    await startCluster();
    const first = await service("n1").acquireLock("db", "alice", ttlMs, 0);
    expect(first).not.toBeNull();
    expect(await service("n2").acquireLock("db", "bob", ttlMs, 0)).toBeNull(); // try once: held
    const bobWaits = service("n2").acquireLock("db", "bob", ttlMs, 10_000);
    await waitFor(async () => ((await service("n3").lockInfo("db", "linearizable"))?.waiters ?? 0) === 1, 5_000, "bob queued");
    expect(await service("n3").releaseLock("db", "mallory")).toBe(false); // release is keyed on the holder
    expect(await service("n3").releaseLock("db", "alice")).toBe(true);
    const second = await bobWaits;
    expect(second!.token).toBeGreaterThan(first!.token);
    expect(await service("n1").fenceCheck("db", first!.token, "linearizable")).toBe(false);
    expect(await service("n1").fenceCheck("db", second!.token, "linearizable")).toBe(true);
    expect((await service("n3").lockInfo("db", "linearizable"))?.owner).toBe("bob");
  });

  it("re-acquiring by the same owner returns the same token", async () => {
    await startCluster();
    const first = await service("n1").acquireLock("job", "worker-1", ttlMs, 0);
    const again = await service("n3").acquireLock("job", "worker-1", ttlMs, 0);
    expect(again!.token).toBe(first!.token);
  });

  it("a waiter that times out never becomes a holder", async () => {
    await startCluster();
    await service("n1").acquireLock("db", "alice", ttlMs, 0);
    expect(await service("n2").acquireLock("db", "bob", ttlMs, 300)).toBeNull();
    expect(await service("n1").releaseLock("db", "alice")).toBe(true);
    expect(await service("n3").lockInfo("db", "linearizable")).toBeUndefined();
  });

  it("grants five waiters in FIFO order with increasing tokens", async () => {
    await startCluster();
    await service("n1").acquireLock("q", "holder", ttlMs, 0);
    const grants: { owner: string; token: number }[] = [];
    const waits = [];
    for (let k = 0; k < 5; k++) {
      const owner = `w${k}`;
      waits.push(service(ids[k % 3]!).acquireLock("q", owner, ttlMs, 20_000).then(async (grant) => {
        grants.push({ owner, token: grant!.token });
        await service("n1").releaseLock("q", owner);
      }));
      await waitFor(async () => ((await service("n1").lockInfo("q", "linearizable"))?.waiters ?? 0) === k + 1, 5_000, `w${k} queued`);
    }
    await service("n1").releaseLock("q", "holder");
    await Promise.all(waits);
    expect(grants.map((grant) => grant.owner)).toEqual(["w0", "w1", "w2", "w3", "w4"]);
    for (let k = 1; k < grants.length; k++) expect(grants[k]!.token).toBeGreaterThan(grants[k - 1]!.token);
  });

  it("a lock whose lease runs out is expired by the leader and passes to the next waiter", async () => {
    await startCluster();
    const first = await service("n1").acquireLock("lease", "crashed-client", ttlMs, 0);
    const next = await service("n2").acquireLock("lease", "patient", ttlMs, 10_000);
    expect(next!.token).toBeGreaterThan(first!.token);
  });

  it("keepalives keep a session alive past its TTL; without them it expires and frees its locks", async () => {
    await startCluster();
    const sessionId = await service("n2").openSession(ttlMs, "worker");
    await service("n2").acquireLock("s-lock", "worker", ttlMs, 0, sessionId);
    for (let k = 0; k < 6; k++) {
      await new Promise((resolve) => setTimeout(resolve, ttlMs / 3)); // the client's keepalive period
      expect(await service(ids[k % 3]!).keepalive(sessionId)).toBeGreaterThan(0);
    }
    expect((await service("n1").lockInfo("s-lock", "linearizable"))?.owner).toBe("worker");
    const waiter = await service("n3").acquireLock("s-lock", "other", ttlMs, 10_000);
    expect(waiter).not.toBeNull();
    await expect(service("n1").keepalive(sessionId)).rejects.toMatchObject({ code: "NOSESSION" });
  });

  it("elections: the first candidate leads, proclaims, and leadership passes on resign", async () => {
    await startCluster();
    const a = await service("n1").campaign("primary", "a", ttlMs, 0, "a-addr");
    const bWaits = service("n2").campaign("primary", "b", ttlMs, 10_000, "b-addr");
    expect(await service("n3").proclaim("primary", "a", "a-addr-2")).toBe(true);
    expect(await service("n3").proclaim("primary", "b", "nope")).toBe(false);
    expect(await service("n2").electionLeader("primary", "linearizable")).toMatchObject({ candidate: "a", value: "a-addr-2", token: a!.token });
    expect(await service("n1").resign("primary", "a")).toBe(true);
    const b = await bWaits;
    expect(b!.token).toBeGreaterThan(a!.token);
    expect(await service("n1").electionLeader("primary", "linearizable")).toMatchObject({ candidate: "b", value: "b-addr" });
  });

  it("a request retried on the next leader under its request id is applied once", async () => {
    await startCluster();
    // What the service sends again when the stream to the leader broke with SESSION.OPEN in flight.
    const retried = encodeCommand({ type: "session-open", ttlMs, label: "retried" }, "client-node.boot.r1");
    const first = decodeResult((await members.get("n2")!.node.propose(retried)).result);
    expect(first.kind).toBe("session");
    const oldLeader = members.get("n1")!.node.leader()!.id;
    const survivors = ids.filter((id) => id !== oldLeader);
    members.get(oldLeader)!.service.stop();
    await members.get(oldLeader)!.node.stop();
    members.delete(oldLeader);
    await waitFor(() => survivors.every((id) => ![undefined, oldLeader].includes(members.get(id)!.node.leader()?.id)), 10_000, "a new leader");
    const again = decodeResult((await members.get(survivors[0]!)!.node.propose(retried)).result);
    expect(again).toEqual(first);
    await service(survivors[1]!).lockInfo("barrier", "linearizable");
    for (const id of survivors) expect(members.get(id)!.fsm.sessionLeases().filter((session) => session.label === "retried")).toHaveLength(1);
  });

  it("a session kept alive through a leader change is never reported gone", async () => {
    await startCluster();
    const sessionId = await service("n2").openSession(ttlMs, "survivor");
    // Kept alive for two TTLs: the followers' own deadlines (they never see keepalives) are long past.
    const aliveUntil = Date.now() + 2 * ttlMs;
    while (Date.now() < aliveUntil) {
      await service("n2").keepalive(sessionId);
      await new Promise((resolve) => setTimeout(resolve, ttlMs / 4));
    }
    const oldLeader = members.get("n1")!.node.leader()!.id;
    const asker = ids.find((id) => id !== oldLeader)!;
    const answers: string[] = [];
    let asking = true;
    const ask = (async () => {
      while (asking) {
        answers.push(await service(asker).keepalive(sessionId).then(() => "ok", (error: { code?: string }) => error.code ?? "error"));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    members.get(oldLeader)!.service.stop();
    await members.get(oldLeader)!.node.stop();
    members.delete(oldLeader);
    await waitFor(() => ids.filter((id) => id !== oldLeader).every((id) => ![undefined, oldLeader].includes(members.get(id)!.node.leader()?.id)), 10_000, "a new leader");
    await new Promise((resolve) => setTimeout(resolve, ttlMs / 2));
    asking = false;
    await ask;
    expect(answers).not.toContain("NOSESSION");
    expect(answers[answers.length - 1]).toBe("ok");
  });

  it("bad input is refused with the api.md error text", async () => {
    await startCluster();
    await expect(service("n1").acquireLock("x", "o", 5, 0)).rejects.toMatchObject({ code: "ERR", message: expect.stringContaining("ttl-ms must be an integer between") });
    await expect(service("n1").keepalive(424242)).rejects.toMatchObject({ code: "NOSESSION" });
  });

  it("sessions per client are counted on a follower too, which hears the leader's answer before it applies the open", async () => {
    await startCluster({ sessionsPerClientMax: 2 });
    const leaderId = members.get("n1")!.node.leader()!.id;
    const follower = [...members.entries()].find(([id]) => id !== leaderId)![1].service;
    const app = "10.0.0.9";
    await follower.openSession(ttlMs, undefined, app);
    expect(await follower.acquireLock("orders", "app", ttlMs, 0, undefined, undefined, app)).not.toBeNull();
    await expect(follower.openSession(ttlMs, undefined, app)).rejects.toMatchObject({ code: "LIMIT" });
    await expect(follower.acquireLock("billing", "app", ttlMs, 0, undefined, undefined, app)).rejects.toMatchObject({ code: "LIMIT" });
    // At its quota, a client retrying an acquire of what it holds gets its grant back: that opens nothing.
    await waitFor(() => members.get(leaderId)!.fsm.appliedIndex <= [...members.values()].map((member) => member.fsm.appliedIndex).reduce((a, b) => Math.min(a, b)), 5_000, "the follower applied the grant");
    expect(await follower.acquireLock("orders", "app", ttlMs, 0, undefined, undefined, app)).not.toBeNull();
  });

  it("a follower forwarding more writes at once than requestsInFlightMaxPerPeer: the excess is refused UNAVAILABLE, never 'outcome unknown'", async () => {
    await startCluster();
    const leaderId = members.get("n1")!.node.leader()!.id;
    const follower = [...members.entries()].find(([id]) => id !== leaderId)![1].node;
    const excess = 50;
    // One turn of the event loop: every one is forwarded before any answer can come back.
    const proposals = Array.from({ length: transportLimitsDefault.requestsInFlightMaxPerPeer + excess }, () => follower.propose(new Uint8Array([0])));
    const outcomes = await Promise.allSettled(proposals);
    const refused = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected").map((outcome) => outcome.reason as NodeError);
    expect(refused).toHaveLength(excess);
    for (const error of refused) {
      expect(error).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("(requestsInFlightMaxPerPeer); retry later") });
    }
    await follower.propose(new Uint8Array([0]));
  });
});
