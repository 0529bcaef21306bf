import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { Redis as IoRedis6 } from "ioredis6";
import Redlock from "redlock";
import { createClient } from "redis";
import { afterEach, describe, expect, it } from "vitest";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

const e2eTimeoutMs = 90_000;
/** The TTL floor for the test timeouts: 1.5 x the 600 ms maximum election timeout. */
const ttlMs = 900;

let cluster: E2eCluster | null = null;
const clients: Redis[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await cluster?.close();
  cluster = null;
});

function ioredis(id: string): Redis {
  const client = new Redis({ port: cluster!.node(id).respPort, host: "127.0.0.1", maxRetriesPerRequest: 0, lazyConnect: false });
  clients.push(client);
  return client;
}

/** Whether something accepts connections on `port` now. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function redisCli(id: string, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)("redis-cli", ["-p", String(cluster!.node(id).respPort), ...args]);
  return stdout.trim();
}

/** Debian's python3 with python3-redis (.ci/run installs it); a pyenv python3 earlier on PATH lacks it. */
function pythonWithRedis(): string {
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

describe("the RESP API on a real 3-node cluster", { timeout: e2eTimeoutMs }, () => {
  it("ioredis clients contend for a lock: the waiter gets it with a higher token after release", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const [alice, bob, observer] = [ioredis("n1"), ioredis("n2"), ioredis("n3")];
    const first = (await alice.call("LOCK.ACQUIRE", "db", "alice", String(ttlMs))) as number;
    expect(first).toBeGreaterThan(0);
    expect(await bob.call("LOCK.ACQUIRE", "db", "bob", String(ttlMs))).toBeNull();
    const bobWaits = bob.call("LOCK.ACQUIRE", "db", "bob", String(ttlMs), "WAIT", "20000") as Promise<number>;
    await waitFor(async () => ((await observer.call("LOCK.INFO", "db")) as unknown[])?.[9] === 1, 10_000, "bob queued");
    expect(await observer.call("FENCE.CHECK", "db", String(first))).toBe(1);
    expect(await observer.call("LOCK.RELEASE", "db", "mallory")).toBe(0);
    expect(await alice.call("LOCK.RELEASE", "db", "alice")).toBe(1);
    const second = await bobWaits;
    expect(second).toBeGreaterThan(first);
    expect(await observer.call("FENCE.CHECK", "db", String(first))).toBe(0);
    expect(await bob.call("LOCK.REFRESH", "db", "bob", String(ttlMs))).toBe(1);
  });

  it("sessions, elections and the Raft leader over RESP", async () => {
    cluster = await E2eCluster.start(3);
    const leader = await cluster.leader();
    const client = ioredis("n2");
    expect(await client.call("RAFT.LEADER")).toEqual([leader.id, leader.term]);
    const session = (await client.call("SESSION.OPEN", "5000", "LABEL", "worker")) as number;
    expect(await client.call("SESSION.KEEPALIVE", String(session))).toBeGreaterThan(4000);
    expect(await client.call("ELECT.CAMPAIGN", "primary", "a", String(ttlMs), "VALUE", "10.0.0.1", "SESSION", String(session))).toBeGreaterThan(0);
    expect(await client.call("ELECT.PROCLAIM", "primary", "a", "10.0.0.2")).toBe(1);
    const view = (await client.call("ELECT.LEADER", "primary")) as unknown[];
    expect(view.slice(0, 2)).toEqual(["a", "10.0.0.2"]);
    expect(await client.call("SESSION.CLOSE", String(session))).toBe(1);
    expect(await client.call("ELECT.LEADER", "primary")).toBeNull(); // the session's candidacy ended with it
    await expect(client.call("SESSION.KEEPALIVE", String(session))).rejects.toThrow(/^NOSESSION/);
    const status = (await client.call("RAFT.STATUS")) as unknown[];
    expect(status.slice(0, 2)).toEqual(["id", "n2"]);
  });

  it("Redis lock clients work unchanged: SET NX PX, GET, PTTL, DEL", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const [client, other] = [ioredis("n1"), ioredis("n2")];
    expect(await client.set("resource", "owner-1", "PX", 5000, "NX")).toBe("OK");
    expect(await other.set("resource", "owner-2", "PX", 5000, "NX")).toBeNull();
    expect(await other.get("resource")).toBe("owner-1");
    const remaining = await other.pttl("resource");
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(5000);
    expect(await client.set("resource", "owner-1", "EX", 5, "NX")).toBe("OK"); // the holder again: idempotent
    expect(await other.del("resource")).toBe(1);
    expect(await other.pttl("resource")).toBe(-2);
    expect(await other.get("resource")).toBeNull();
    await expect(client.set("resource", "v")).rejects.toThrow("raftlock supports SET only as a lock acquire");
  });

  it("SUBSCRIBE and PSUBSCRIBE deliver watch events as pub/sub messages, in RESP2 and RESP3", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const port = cluster.node("n2").respPort;
    const resp2 = ioredis("n2");
    const resp3 = new IoRedis6({ port, host: "127.0.0.1" }); // opens with HELLO 3: messages arrive as pushes
    clients.push(resp3 as unknown as Redis);
    const seen: { client: string; channel: string; type: string; index: number }[] = [];
    for (const [name, client] of [["resp2", resp2], ["resp3", resp3]] as const) {
      client.on("message", (channel: string, payload: string) => {
        const event = JSON.parse(payload) as { type: string; index: number };
        seen.push({ client: name, channel, type: event.type, index: event.index });
      });
      client.on("pmessage", (_pattern: string, channel: string, payload: string) => {
        const event = JSON.parse(payload) as { type: string; index: number };
        seen.push({ client: name, channel, type: event.type, index: event.index });
      });
      expect(await client.subscribe("lock:db")).toBe(1);
      expect(await client.psubscribe("election:*")).toBe(2);
    }
    const worker = ioredis("n1");
    await worker.call("LOCK.ACQUIRE", "db", "w", String(ttlMs));
    await worker.call("LOCK.RELEASE", "db", "w");
    await worker.call("ELECT.CAMPAIGN", "primary", "a", String(ttlMs));
    await waitFor(() => seen.filter((message) => message.client === "resp3").length >= 3 && seen.filter((message) => message.client === "resp2").length >= 3, 10_000, "messages on both connections");
    for (const client of ["resp2", "resp3"]) {
      const mine = seen.filter((message) => message.client === client);
      expect(mine.map((message) => [message.channel, message.type])).toEqual([
        ["lock:db", "lock-granted"],
        ["lock:db", "lock-released"],
        ["election:primary", "election-leader"],
      ]);
      expect(mine.map((message) => message.index)).toEqual([...mine.map((message) => message.index)].sort((a, b) => a - b));
    }
    expect(await resp2.unsubscribe("lock:db")).toBe(1); // the pattern is left
    expect(await resp2.punsubscribe("election:*")).toBe(0);
    expect(await resp2.call("PING")).toBe("PONG"); // out of subscribed mode again
  });

  it("a plain SET NX PX + compare-and-delete client acquires, extends and releases", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const client = ioredis("n2");
    const unlock = `if redis.call("get", KEYS[1]) == ARGV[1] then\n  return redis.call("del", KEYS[1])\nelse\n  return 0\nend`;
    const extend = "if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('pexpire',KEYS[1],ARGV[2]) else return 0 end";
    expect(await client.set("job", "token-abc", "PX", 5000, "NX")).toBe("OK");
    const extendSha = (await client.script("LOAD", extend)) as string;
    expect(extendSha).toMatch(/^[0-9a-f]{40}$/);
    expect(await client.evalsha(extendSha, 1, "job", "token-abc", 8000)).toBe(1);
    expect(await client.pttl("job")).toBeGreaterThan(5000);
    expect(await client.eval(unlock, 1, "job", "someone-else")).toBe(0);
    expect(await client.eval(unlock, 1, "job", "token-abc")).toBe(1);
    expect(await client.get("job")).toBeNull();
    await expect(client.evalsha("0".repeat(40), 1, "job", "x")).rejects.toThrow("NOSCRIPT");
    await expect(client.eval("return 1", 0)).rejects.toThrow("ERR unsupported script");
  });

  it("redis-py's Lock acquires, extends (adding and replacing), reacquires and releases through its scripts", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const script = join(dirname(fileURLToPath(import.meta.url)), "clients", "redis-py-lock.py");
    const { stdout } = await promisify(execFile)(pythonWithRedis(), [script, String(cluster.node("n1").respPort), String(cluster.node("n3").respPort)]);
    const seen = JSON.parse(stdout) as Record<string, unknown>;
    expect(seen).toMatchObject({ acquired: true, rival_refused: true, owned: true, extended_add: true, extended_replace: true, reacquired: true, released_locked: false, rival_acquired: true });
    // 5 s, plus 3 s added: more than 5 s left; then replaced by 4 s.
    expect(seen.pttl_after_add).toBeGreaterThan(5_000);
    expect(seen.pttl_after_replace).toBeLessThanOrEqual(4_000);
    expect(seen.pttl_after_replace).toBeGreaterThan(3_000);
  });

  it("the redlock package acquires, extends and releases, and a second client is refused meanwhile", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const [first, second] = [ioredis("n1"), ioredis("n3")];
    // @types/redlock describes ioredis 4's eval signature; redlock 4 calls eval the way ioredis 5 still accepts.
    const asRedlockClient = (client: Redis): Redlock.CompatibleRedisClient => client as unknown as Redlock.CompatibleRedisClient;
    const redlock = new Redlock([asRedlockClient(first)], { retryCount: 0 });
    const rival = new Redlock([asRedlockClient(second)], { retryCount: 0 });
    const lock = await redlock.lock("locks:report", 5000);
    await expect(rival.lock("locks:report", 5000)).rejects.toThrow();
    const extended = await lock.extend(8000);
    expect(await second.pttl("locks:report")).toBeGreaterThan(5000);
    await extended.unlock();
    expect(await second.get("locks:report")).toBeNull();
    const theirs = await rival.lock("locks:report", 5000);
    await theirs.unlock();
  });

  it("answers bad input with api.md's error texts", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const client = ioredis("n1");
    await expect(client.call("LOCK.ACQUIRE", "db")).rejects.toThrow("ERR wrong number of arguments for 'lock.acquire' command");
    await expect(client.call("LOCK.ACQUIRE", "db", "me", "soon")).rejects.toThrow(`ERR ttl-ms must be an integer between ${ttlMs} and 86400000 (got "soon")`);
    await expect(client.call("LOCK.ACQUIRE", "db", "me", "10")).rejects.toThrow(`ERR ttl-ms must be an integer between ${ttlMs} and 86400000 (got 10)`);
    await expect(client.call("NOPE")).rejects.toThrow("ERR unknown command 'NOPE'");
    const subscriber = ioredis("n2");
    await expect(subscriber.subscribe("session:1")).rejects.toThrow("ERR session: channels are internal");
    expect(await client.call("PING")).toBe("PONG"); // the connection survived every error
  });

  it("says -NOLEADER when no majority is left, -NOAUTH before AUTH when a password is set, and -NOPERM to writes after AUTH with the read-only one", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--auth-password", "pw-e2e", "--auth-readonly-password", "pw-reader"]);
    for (const id of ["n1", "n2"]) await waitFor(() => portOpen(cluster!.node(id).respPort), 15_000, `${id} serves RESP`);
    // No ready check: ioredis's INFO would itself be refused before AUTH, which is what this test shows.
    const client = new Redis({ port: cluster.node("n1").respPort, host: "127.0.0.1", maxRetriesPerRequest: 0, enableReadyCheck: false });
    await new Promise((resolve) => client.once("connect", resolve));
    clients.push(client);
    await expect(client.call("LOCK.INFO", "x")).rejects.toThrow("NOAUTH Authentication required.");
    expect(await client.call("AUTH", "pw-e2e")).toBe("OK");
    const reader = new Redis({ port: cluster.node("n1").respPort, host: "127.0.0.1", maxRetriesPerRequest: 0, password: "pw-reader" });
    clients.unshift(reader);
    await waitFor(async () => (await reader.call("RAFT.LEADER")) ?? undefined, 15_000, "a leader, asked with the read-only password");
    expect(await reader.call("LOCK.INFO", "x")).toBeNull();
    await expect(reader.call("LOCK.ACQUIRE", "x", "reader", String(ttlMs))).rejects.toThrow(
      "NOPERM this connection authenticated with the read-only password; it may not run LOCK.ACQUIRE",
    );
    const [leaderId] = await waitFor(async () => ((await client.call("RAFT.LEADER")) as [string, number] | null) ?? undefined, 15_000, "a leader");
    // Keep the node that does not lead; the other two go away.
    const survivor = leaderId === "n1" ? "n2" : "n1";
    if (survivor !== "n1") {
      client.disconnect();
      clients.pop();
      const other = new Redis({ port: cluster.node(survivor).respPort, host: "127.0.0.1", maxRetriesPerRequest: 0, password: "pw-e2e" });
      clients.push(other);
    }
    const survivorClient = clients[clients.length - 1]!;
    for (const id of ["n1", "n2", "n3"].filter((id) => id !== survivor)) await cluster.kill9(id);
    await waitFor(async () => (await survivorClient.call("RAFT.LEADER")) === null, 10_000, "the survivor knows no leader");
    await expect(survivorClient.call("SESSION.OPEN", "5000")).rejects.toThrow("NOLEADER no leader is elected yet; retry");
  });

  it("says -TIMEOUT ... outcome unknown (HTTP 504) when a cut-off leader cannot commit in --commit-timeout-ms", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--commit-timeout-ms", "1000"]);
    const leader = await cluster.leader();
    const client = ioredis(leader.id);
    expect(await client.call("PING")).toBe("PONG");
    cluster.setCut(leader.id, true);
    // Both sent at once, while the cut-off node still believes it leads (until CheckQuorum).
    const [resp, http] = await Promise.all([
      client.call("LOCK.ACQUIRE", "cut", "me", String(ttlMs)).catch((error: Error) => error),
      cluster.post<{ error: { code: string; message: string } }>(leader.id, "/v1/sessions", { ttlMs }),
    ]);
    expect(String(resp)).toContain("TIMEOUT the cluster did not commit within 1000 ms; outcome unknown");
    expect(http).toEqual({ status: 504, body: { error: { code: "TIMEOUT", message: "the cluster did not commit within 1000 ms; outcome unknown" } } });
    cluster.setCut(leader.id, false);
    const others = ["n1", "n2", "n3"].filter((id) => id !== leader.id);
    await cluster.leader(["n1", "n2", "n3"], 15_000);
    // The entry the cut-off leader appended never committed: the majority's leader overwrote it.
    expect(await ioredis(others[0]!).call("LOCK.INFO", "cut")).toBeNull();
  });

  it("redis-cli and node-redis (RESP2 and RESP3, where LOCK.INFO is a map) work as clients", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    expect(await redisCli("n3", "LOCK.ACQUIRE", "cli-lock", "cli", String(ttlMs))).toMatch(/^\d+$/);
    expect(await redisCli("n1", "LOCK.INFO", "cli-lock")).toContain("cli");
    expect(await redisCli("n2", "LOCK.RELEASE", "cli-lock", "cli")).toBe("1");
    const nodeRedis = createClient({ socket: { port: cluster.node("n2").respPort, host: "127.0.0.1" } });
    nodeRedis.on("error", () => undefined);
    await nodeRedis.connect();
    try {
      expect(await nodeRedis.sendCommand(["LOCK.ACQUIRE", "nr", "node-redis", String(ttlMs)])).toBeGreaterThan(0);
      expect(await nodeRedis.sendCommand(["LOCK.RELEASE", "nr", "node-redis"])).toBe(1);
    } finally {
      nodeRedis.destroy();
    }
    // RESP3 (HELLO 3): LOCK.INFO and RAFT.STATUS are maps, nil is a RESP3 null.
    const resp3 = createClient({ RESP: 3, socket: { port: cluster.node("n1").respPort, host: "127.0.0.1" } });
    resp3.on("error", () => undefined);
    await resp3.connect();
    try {
      await resp3.sendCommand(["LOCK.ACQUIRE", "r3", "resp3-client", String(ttlMs)]);
      const info = (await resp3.sendCommand(["LOCK.INFO", "r3"])) as Record<string, unknown>;
      expect(info["owner"]).toBe("resp3-client");
      expect(info["waiters"]).toBe(0);
      expect(((await resp3.sendCommand(["RAFT.STATUS"])) as Record<string, unknown>)["id"]).toBe("n1");
      expect(await resp3.sendCommand(["LOCK.INFO", "free-lock"])).toBeNull();
    } finally {
      resp3.destroy();
    }
  });

  it("a waiter whose connection closes is cancelled and never becomes the holder", async () => {
    cluster = await E2eCluster.start(3);
    await cluster.leader();
    const holder = ioredis("n1");
    await holder.call("LOCK.ACQUIRE", "door", "alice", "5000");
    const quitter = ioredis("n2");
    void quitter.call("LOCK.ACQUIRE", "door", "quitter", "5000", "WAIT", "30000").catch(() => null);
    await waitFor(async () => ((await holder.call("LOCK.INFO", "door")) as unknown[])[9] === 1, 10_000, "the waiter queued");
    quitter.disconnect();
    await waitFor(async () => ((await holder.call("LOCK.INFO", "door")) as unknown[])[9] === 0, 10_000, "the waiter cancelled");
    expect(await holder.call("LOCK.RELEASE", "door", "alice")).toBe(1);
    expect(await holder.call("LOCK.INFO", "door")).toBeNull();
  });
});
