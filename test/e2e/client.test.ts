// raftlock/client against a real 3-node cluster: locks with fencing tokens and keepalive, the loss signal
// when the node the client talks to is paused, elections with client-go style callbacks, and watches.
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { type ElectionLeader, type RaftLeader, RaftlockClient, RaftlockError, safetyMarginMs } from "../../src/client/index.js";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

const e2eTimeoutMs = 90_000;
/** Comfortably above the test cluster's TTL floor (1.5 x the 600 ms maximum election timeout). */
const ttlMs = 2_000;

let cluster: E2eCluster | null = null;
const clients: RaftlockClient[] = [];
afterEach(async () => {
  for (const node of cluster?.nodes.values() ?? []) node.process?.kill("SIGCONT"); // a paused node must wake up to die
  await Promise.all(clients.splice(0).map((client) => client.close().catch(() => undefined)));
  await cluster?.close();
  cluster = null;
});

async function startCluster(): Promise<E2eCluster> {
  cluster = await E2eCluster.start(3);
  await cluster.leader();
  return cluster;
}

function clientOf(id: string): RaftlockClient {
  const client = new RaftlockClient({ port: cluster!.node(id).respPort });
  clients.push(client);
  return client;
}

/** LOCK.INFO's waiters count (RESP2: a flat array of field, value). */
async function waitersOf(client: RaftlockClient, name: string): Promise<number> {
  const reply = await client.command(["LOCK.INFO", name]);
  if (!Array.isArray(reply)) return 0;
  return Number(reply[reply.indexOf("waiters") + 1]);
}

describe("raftlock/client", () => {
  it(
    "locks and releases with fencing tokens that increase from one grant to the next; a held lock is not granted to another owner",
    async () => {
      await startCluster();
      const a = clientOf("n1");
      const b = clientOf("n2");
      const first = (await a.lock("client-tokens", { ttlMs }))!;
      expect(first.token).toBeGreaterThan(0);
      expect(await b.lock("client-tokens", { ttlMs })).toBeNull();
      expect(await first.release()).toBe(true);
      expect(first.signal.aborted).toBe(false);
      const second = (await b.lock("client-tokens", { ttlMs }))!;
      expect(second.token).toBeGreaterThan(first.token);
      expect(await first.release()).toBe(false); // released already: keyed on the owner, never frees b's grant
      expect(await b.command(["FENCE.CHECK", "client-tokens", second.token])).toBe(1);
      expect(await second.release()).toBe(true);
    },
    e2eTimeoutMs,
  );

  it(
    "a second client waiting in the queue gets the lock when the first releases it",
    async () => {
      await startCluster();
      const a = clientOf("n1");
      const b = clientOf("n3");
      const held = (await a.lock("client-queue", { ttlMs }))!;
      const waiting = b.lock("client-queue", { ttlMs, waitMs: 20_000 });
      const queuedAtMs = performance.now();
      await waitFor(async () => (await waitersOf(a, "client-queue")) === 1, 10_000, "b queued behind a");
      // Wait longer than one TTL in the queue: the grant must still come with a live keepalive.
      await waitFor(() => performance.now() - queuedAtMs > ttlMs && !held.signal.aborted, 10_000, "a TTL in the queue");
      expect(await held.release()).toBe(true);
      const granted = (await waiting)!;
      expect(granted).not.toBeNull();
      expect(granted.token).toBeGreaterThan(held.token);
      await waitFor(async () => (await b.command(["FENCE.CHECK", "client-queue", granted.token])) === 1 && performance.now() - queuedAtMs > 2 * ttlMs, 10_000, "the grant kept alive");
      expect(granted.signal.aborted).toBe(false);
      expect(await granted.release()).toBe(true);
    },
    e2eTimeoutMs,
  );

  it(
    "keepalive keeps a lock past several TTLs, and another owner cannot take it meanwhile",
    async () => {
      await startCluster();
      const a = clientOf("n2");
      const b = clientOf("n1");
      const shortTtlMs = 1_000;
      const held = (await a.lock("client-keepalive", { ttlMs: shortTtlMs }))!;
      const startedMs = performance.now();
      // Poll the lock's state until three TTLs have passed; it must be held by a the whole time.
      await waitFor(
        async () => {
          expect(held.signal.aborted).toBe(false);
          expect(await b.command(["FENCE.CHECK", "client-keepalive", held.token])).toBe(1);
          return performance.now() - startedMs > 3 * shortTtlMs;
        },
        15_000,
        "three TTLs with the lock held",
      );
      expect(await b.lock("client-keepalive", { ttlMs: shortTtlMs })).toBeNull();
      expect(await held.release()).toBe(true);
    },
    e2eTimeoutMs,
  );

  it(
    "when the node the client talks to is paused (SIGSTOP), the lock's signal fires within its TTL and another client then gets a higher token",
    async () => {
      const c = await startCluster();
      const leader = await c.leader();
      const others = [...c.nodes.keys()].filter((id) => id !== leader.id);
      const a = clientOf(leader.id);
      const b = clientOf(others[0]!);
      const held = (await a.lock("client-loss", { ttlMs }))!;
      let abortedAtMs: number | null = null;
      held.signal.addEventListener("abort", () => (abortedAtMs = performance.now()));
      // Wait for one refresh to be confirmed, so the loss is measured from a keepalive, not the grant.
      await waitFor(async () => (await b.command(["LOCK.INFO", "client-loss"])) !== null, 5_000, "the lock visible from another node");
      const pausedAtMs = performance.now();
      c.node(leader.id).process!.kill("SIGSTOP");
      await waitFor(() => abortedAtMs !== null, ttlMs + 2_000, "the lock's signal to fire");
      // The last confirmed refresh was sent at most a refresh interval (ttl/3) before the pause.
      expect(abortedAtMs! - pausedAtMs).toBeLessThanOrEqual(ttlMs - safetyMarginMs(ttlMs) + 500);
      const reason = held.signal.reason as RaftlockError;
      expect(reason).toBeInstanceOf(RaftlockError);
      expect(reason.code).toBe("LOCKLOST");
      // The server expires the lease only after it: another client gets the lock with a higher token.
      await c.leader(others, 15_000, leader.id);
      const next = (await b.lock("client-loss", { ttlMs, waitMs: 20_000 }))!;
      expect(next).not.toBeNull();
      expect(next.token).toBeGreaterThan(held.token);
      expect(performance.now() - pausedAtMs).toBeGreaterThanOrEqual(abortedAtMs! - pausedAtMs);
      c.node(leader.id).process!.kill("SIGCONT");
      expect(await next.release()).toBe(true);
    },
    e2eTimeoutMs,
  );

  it(
    "of two campaigners one leads; when it stops, the other takes over with a higher token and the callbacks say so",
    async () => {
      await startCluster();
      const events: string[] = [];
      const tokens = new Map<string, number>();
      const signals = new Map<string, AbortSignal>();
      const observed: (ElectionLeader | null)[] = [];
      const observer = clientOf("n1").observe("client-election", (leader) => observed.push(leader));
      const campaigns = new Map(
        ["alice", "bob"].map((candidate, k) => [
          candidate,
          clientOf(k === 0 ? "n2" : "n3").campaign("client-election", candidate, { ttlMs, value: `${candidate}-value` }, {
            onStartedLeading: (token, signal) => {
              events.push(`${candidate} started`);
              tokens.set(candidate, token);
              signals.set(candidate, signal);
            },
            onStoppedLeading: () => events.push(`${candidate} stopped`),
          }),
        ]),
      );
      const first = await waitFor(() => [...campaigns].find(([, campaign]) => campaign.leading)?.[0], 15_000, "one campaigner leading");
      const second = first === "alice" ? "bob" : "alice";
      expect(campaigns.get(second)!.leading).toBe(false);
      expect(events).toEqual([`${first} started`]);
      await waitFor(() => observed.at(-1)?.candidate === first, 10_000, "the observer to see the first leader");
      expect(observed.at(-1)).toEqual({ candidate: first, value: `${first}-value`, token: tokens.get(first) });

      await campaigns.get(first)!.stop();
      expect((signals.get(first)!.reason as RaftlockError).code).toBe("STOPPED"); // before the hand-over, not after
      expect(events).toContain(`${first} stopped`);
      await waitFor(() => campaigns.get(second)!.leading, 15_000, "the second campaigner to lead");
      expect(tokens.get(second)!).toBeGreaterThan(tokens.get(first)!);
      await waitFor(() => observed.at(-1)?.candidate === second, 10_000, "the observer to see the hand-over");
      expect(await campaigns.get(second)!.proclaim("new-value")).toBe(true);
      await waitFor(() => observed.at(-1)?.value === "new-value", 10_000, "the observer to see the proclaimed value");

      await campaigns.get(second)!.stop();
      expect(events).toEqual([`${first} started`, `${first} stopped`, `${second} started`, `${second} stopped`]);
      await waitFor(() => observed.at(-1) === null, 10_000, "the observer to see the election vacant");
      observer.close();
    },
    e2eTimeoutMs,
  );

  it(
    "a leader whose node is paused stops leading within its TTL (signal LOCKLOST, onStoppedLeading) and the other campaigner takes over",
    async () => {
      const c = await startCluster();
      const raftLeader = await c.leader();
      const others = [...c.nodes.keys()].filter((id) => id !== raftLeader.id);
      const events: string[] = [];
      const signals = new Map<string, AbortSignal>();
      const tokens = new Map<string, number>();
      const callbacks = (candidate: string) => ({
        onStartedLeading: (token: number, signal: AbortSignal) => {
          events.push(`${candidate} started`);
          tokens.set(candidate, token);
          signals.set(candidate, signal);
        },
        onStoppedLeading: () => events.push(`${candidate} stopped`),
      });
      // alice talks to a node that will be paused; bob campaigns only once alice leads, so alice leads first.
      const alice = clientOf(others[0]!).campaign("client-failover", "alice", { ttlMs }, callbacks("alice"));
      await waitFor(() => alice.leading, 15_000, "alice leading");
      const bob = clientOf(others[1]!).campaign("client-failover", "bob", { ttlMs }, callbacks("bob"));
      const pausedAtMs = performance.now();
      c.node(others[0]!).process!.kill("SIGSTOP");
      await waitFor(() => events.includes("alice stopped"), ttlMs + 2_000, "alice to stop leading");
      expect(performance.now() - pausedAtMs).toBeLessThanOrEqual(ttlMs + 500);
      expect((signals.get("alice")!.reason as RaftlockError).code).toBe("LOCKLOST");
      await waitFor(() => bob.leading, 20_000, "bob to take over");
      expect(tokens.get("bob")!).toBeGreaterThan(tokens.get("alice")!);
      expect(events.slice(0, 3)).toEqual(["alice started", "alice stopped", "bob started"]);
      c.node(others[0]!).process!.kill("SIGCONT");
      await bob.stop();
      await alice.stop();
    },
    e2eTimeoutMs,
  );

  it(
    "errors are typed: a bad password, a TTL out of range, and NOLEADER when no majority is left",
    async () => {
      cluster = await E2eCluster.start(3, [...fastTimeouts, "--auth-password", "pw-client"]);
      const first = new RaftlockClient({ port: cluster.node("n1").respPort, password: "pw-client" });
      clients.push(first);
      // The HTTP API wants the password too, so the leader is asked for over RESP.
      const leader = await waitFor(async () => (await first.raftLeader()) ?? undefined, 15_000, "a leader");
      const wrong = new RaftlockClient({ port: cluster.node("n1").respPort, password: "not-it" });
      clients.push(wrong);
      await expect(wrong.raftLeader()).rejects.toBeInstanceOf(RaftlockError);
      const survivor = [...cluster.nodes.keys()].find((id) => id !== leader.id)!;
      const client = new RaftlockClient({ port: cluster.node(survivor).respPort, password: "pw-client" });
      clients.push(client);
      const badTtl = await client.lock("client-errors", { ttlMs: 10 }).catch((error: unknown) => error);
      expect(badTtl).toBeInstanceOf(RaftlockError);
      expect((badTtl as RaftlockError).code).toBe("ERR");
      expect((badTtl as RaftlockError).message).toMatch(/ttl-ms must be an integer between/);
      for (const id of [...cluster.nodes.keys()].filter((id) => id !== survivor)) await cluster.kill9(id);
      await waitFor(async () => (await client.raftLeader()) === null, 10_000, "the survivor knows no leader");
      const noLeader = await client.lock("client-errors", { ttlMs }).catch((error: unknown) => error);
      expect(noLeader).toBeInstanceOf(RaftlockError);
      expect((noLeader as RaftlockError).code).toBe("NOLEADER");
      expect((noLeader as RaftlockError).unavailable).toBe(true);
    },
    e2eTimeoutMs,
  );

  it(
    "watchLeader sees the Raft leader, and a new one after the leader is killed",
    async () => {
      const c = await startCluster();
      const leader = await c.leader();
      const watcherNode = [...c.nodes.keys()].find((id) => id !== leader.id)!;
      const seen: (RaftLeader | null)[] = [];
      const watch = clientOf(watcherNode).watchLeader((current) => seen.push(current));
      await waitFor(() => seen.some((current) => current?.id === leader.id), 10_000, "the watcher to see the current leader");
      await c.kill9(leader.id);
      const next = await waitFor(() => seen.find((current) => current !== null && current.id !== leader.id && current.term > leader.term), 15_000, "the watcher to see a new leader");
      const running = [...c.nodes.keys()].filter((id) => id !== leader.id);
      expect((await c.leader(running, 15_000, leader.id)).id).toBe(next!.id);
      watch.close();
    },
    e2eTimeoutMs,
  );
});

