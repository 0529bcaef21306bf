import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

/** Generous: real processes on a loaded 2-core machine. */
const e2eTimeoutMs = 90_000;

let cluster: E2eCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

async function barrier(on: E2eCluster, id: string): Promise<{ index: number; term: number }> {
  const reply = await on.post<{ index: number; term: number }>(id, "/v1/cluster/barrier");
  expect(reply.status).toBe(200);
  return reply.body;
}

async function appliedAtLeast(on: E2eCluster, ids: string[], index: number): Promise<void> {
  await waitFor(async () => (await Promise.all(ids.map((id) => on.self(id)))).every((s) => (s.appliedIndex ?? 0) >= index), 20_000, `${ids.join(", ")} applied ${index}`);
}

describe("a real 3-node cluster", { timeout: e2eTimeoutMs }, () => {
  it("elects a leader, commits writes on all three, and reports every member's status", async () => {
    const token = "e2e-token-8f3a1c";
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--cluster-token", token]);
    const leader = await cluster.leader();
    await waitFor(async () => (await cluster!.get("n1", "/readyz")).status === 200, 10_000, "n1 ready");
    let last = { index: 0, term: 0 };
    for (let k = 0; k < 10; k++) last = await barrier(cluster, `n${(k % 3) + 1}`); // followers forward to the leader
    expect(last.term).toBe(leader.term);
    await appliedAtLeast(cluster, ["n1", "n2", "n3"], last.index);
    const { body } = await cluster.get<{ members: { id: string; role: string; reachable: boolean }[] }>("n2", "/v1/cluster");
    expect(body.members.map((m) => m.id).sort()).toEqual(["n1", "n2", "n3"]);
    expect(body.members.filter((m) => m.role === "leader").map((m) => m.id)).toEqual([leader.id]);
    expect((await cluster.get("n3", "/healthz")).status).toBe(200);
    expect(await cluster.get("n3", "/v1/nope")).toEqual({ status: 404, body: { error: { code: "NOTFOUND", message: "no such route; the README lists the HTTP API" } } });
    // Asynchronously: the link proxies live in this process and must keep relaying meanwhile.
    const { stdout: table } = await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli.ts", "status", "--http", `127.0.0.1:${cluster.node("n3").httpPort}`]);
    expect(table).toMatch(/^ID\s+ROLE\s+TERM\s+COMMIT\s+APPLIED/);
    expect(table).toMatch(new RegExp(`\\n${leader.id}\\s+leader\\s+${leader.term}\\s`));
    expect(table).toContain(`leader ${leader.id} in term ${leader.term}`);
    for (const node of cluster.nodes.values()) expect(node.output).not.toContain(token); // secrets never logged
  });

  it("works with the Raft paper's 150-300 ms election timeouts", async () => {
    cluster = await E2eCluster.start(3, ["--election-timeout-min-ms", "150", "--election-timeout-max-ms", "300", "--heartbeat-interval-ms", "30"]);
    const oldLeader = await cluster.leader();
    await barrier(cluster, oldLeader.id);
    await cluster.kill9(oldLeader.id);
    const survivors = ["n1", "n2", "n3"].filter((id) => id !== oldLeader.id);
    await cluster.leader(survivors, 10_000, oldLeader.id);
    await appliedAtLeast(cluster, survivors, (await barrier(cluster, survivors[1]!)).index);
  });

  it("elects a new leader after kill -9 of the leader and loses nothing acknowledged", async () => {
    cluster = await E2eCluster.start(3);
    const oldLeader = await cluster.leader();
    let acked = 0;
    for (let k = 0; k < 20; k++) acked = (await barrier(cluster, oldLeader.id)).index;
    await cluster.kill9(oldLeader.id);
    const survivors = ["n1", "n2", "n3"].filter((id) => id !== oldLeader.id);
    const newLeader = await cluster.leader(survivors, 15_000, oldLeader.id);
    expect(newLeader.id).not.toBe(oldLeader.id);
    expect(newLeader.term).toBeGreaterThan(oldLeader.term);
    const after = await barrier(cluster, survivors[0]!);
    expect(after.index).toBeGreaterThan(acked);
    await appliedAtLeast(cluster, survivors, after.index);
    // The old leader comes back and catches up from its own disk and the new leader.
    cluster.launch(oldLeader.id);
    await appliedAtLeast(cluster, [oldLeader.id], after.index);
  });

  it("after kill -9 of the leader, followers elect a new one without waiting out an election timeout", async () => {
    // A follower waits at least electionMinMs without a heartbeat before campaigning on its timer; a
    // killed leader's sockets close at once, and in read-index mode that alone starts the campaign.
    const electionMinMs = 5_000;
    /** Well under electionMinMs, and far above the ~100 ms the campaign takes, for a loaded machine. */
    const failoverMaxMs = 3_000;
    cluster = await E2eCluster.start(3, ["--election-timeout-min-ms", String(electionMinMs), "--election-timeout-max-ms", "8000", "--heartbeat-interval-ms", "100"], false);
    const oldLeader = await cluster.leader(undefined, 30_000);
    await barrier(cluster, oldLeader.id);
    const survivors = ["n1", "n2", "n3"].filter((id) => id !== oldLeader.id);
    await cluster.kill9(oldLeader.id);
    const killedAtMs = performance.now();
    const newLeader = await cluster.leader(survivors, 15_000, oldLeader.id);
    expect(newLeader.term).toBeGreaterThan(oldLeader.term);
    expect(performance.now() - killedAtMs).toBeLessThan(failoverMaxMs);
    await barrier(cluster, survivors[0]!);
  });

  it("a restarted node catches up by snapshot once the leader compacted its log", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--snapshot-every-entries", "10", "--retained-entries", "0"]);
    const leader = await cluster.leader();
    const laggard = ["n1", "n2", "n3"].find((id) => id !== leader.id)!;
    await cluster.kill9(laggard);
    let last = { index: 0, term: 0 };
    for (let k = 0; k < 40; k++) last = await barrier(cluster, leader.id);
    await waitFor(async () => ((await cluster!.self(leader.id)).snapshotIndex ?? 0) >= 30, 10_000, "the leader compacts");
    cluster.launch(laggard);
    await appliedAtLeast(cluster, [laggard], last.index);
    expect((await cluster.self(laggard)).snapshotIndex).toBeGreaterThanOrEqual(30);
    expect(cluster.node(laggard).output).toContain("installed a snapshot from the leader");
    // The state it installed and applied on top is the others' state, byte for byte.
    await waitFor(async () => {
      const hashes = await Promise.all(["n1", "n2", "n3"].map(async (id) => (await cluster!.get<{ index: number; hash: string }>(id, "/v1/cluster/hash")).body));
      return hashes.every((hash) => hash.index === hashes[0]!.index && hash.hash === hashes[0]!.hash && /^[0-9a-f]{64}$/.test(hash.hash));
    }, 10_000, "every member reports the same state hash at the same index");
    const onDemand = await cluster.post<{ index: number }>(laggard, "/v1/cluster/snapshot");
    expect(onDemand.body.index).toBeGreaterThanOrEqual(last.index);
  });

  it("a node cut off from its peers rejoins without disrupting the leader", async () => {
    cluster = await E2eCluster.start(3);
    const leader = await cluster.leader();
    const follower = ["n1", "n2", "n3"].find((id) => id !== leader.id)!;
    cluster.setCut(follower, true);
    // Cut off long enough that its election timer fires: it asks for (pre-)votes nobody can give.
    await waitFor(async () => (await cluster!.self(follower)).role === "pre-candidate", 10_000, "the cut-off node campaigns");
    // Meanwhile it tells its clients plainly that it knows no leader.
    const noLeader = await fetch(`http://127.0.0.1:${cluster.node(follower).httpPort}/v1/cluster/leader`);
    expect(noLeader.status).toBe(503);
    expect(noLeader.headers.get("retry-after")).toBe("1");
    expect(await noLeader.json()).toEqual({ error: { code: "NOLEADER", message: "no leader is elected yet; retry" } });
    expect((await cluster.get(follower, "/readyz")).status).toBe(503);
    const during = await barrier(cluster, leader.id);
    cluster.setCut(follower, false);
    await appliedAtLeast(cluster, [follower], during.index);
    const after = await cluster.leader();
    expect(after).toEqual(leader); // PreVote: the rejoining node raised no term and forced no election
  });

  it("SIGTERM of the leader hands leadership over and exits 0; clients of the other nodes see no error", async () => {
    cluster = await E2eCluster.start(3);
    const running = cluster;
    const leader = await cluster.leader();
    await barrier(cluster, leader.id);
    const follower = ["n1", "n2", "n3"].find((id) => id !== leader.id)!;
    // Lock cycles through a follower, forwarded to the leader, all through the hand-over.
    /** Lock cycles that must still succeed once the old leader has exited. */
    const cyclesAfterExitMin = 40;
    let stopped = false;
    const failures: string[] = [];
    let cycles = 0;
    const traffic = Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        while (!stopped || cycles < cyclesAfterExitMin) {
          const acquired = await running.post<{ token: number }>(follower, `/v1/locks/handover-${k}/acquire`, { owner: "app", ttlMs: 5_000 });
          const released = await running.post<{ released: boolean }>(follower, `/v1/locks/handover-${k}/release`, { owner: "app" });
          if (acquired.status !== 200 || released.status !== 200) failures.push(`${acquired.status} ${JSON.stringify(acquired.body)} / ${released.status} ${JSON.stringify(released.body)}`);
          if (stopped) cycles++;
        }
      }),
    );
    expect(await cluster.terminate(leader.id)).toBe(0);
    stopped = true;
    await traffic;
    expect(failures).toEqual([]);
    const survivors = ["n1", "n2", "n3"].filter((id) => id !== leader.id);
    const next = await cluster.leader(survivors, 5_000, leader.id);
    expect(next.id).not.toBe(leader.id);
    expect(cluster.node(leader.id).output).toContain("handed leadership over before stopping");
  });

  it("an acquire a follower forwarded to a leader that then went silent is answered by the next leader, not after the commit timeout", async () => {
    const commitTimeoutMs = 10_000;
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--commit-timeout-ms", String(commitTimeoutMs)]);
    const leader = await cluster.leader();
    const follower = [...cluster.nodes.keys()].find((id) => id !== leader.id)!;
    await waitFor(async () => (await cluster!.get(follower, "/readyz")).status === 200, 10_000, "the follower ready");
    // SIGSTOP is a silent partition: the leader's sockets stay open, so nothing tells the follower that
    // the request it forwards now will never be answered; only the election of a new leader does.
    const paused = cluster.node(leader.id).process!;
    paused.kill("SIGSTOP");
    try {
      const startedMs = performance.now();
      const reply = await cluster.post<{ token: number }>(follower, "/v1/locks/forwarded-into-silence/acquire", { owner: "a", ttlMs: 30_000 });
      const tookMs = performance.now() - startedMs;
      expect(reply.status).toBe(200);
      expect(reply.body.token).toBeGreaterThan(0);
      // A new leader takes an election timeout or two (300-600 ms here), far below the commit timeout.
      expect(tookMs).toBeLessThan(commitTimeoutMs / 2);
    } finally {
      paused.kill("SIGCONT");
    }
  });

  it("a node with a corrupt log refuses to start and says which file and byte are bad", async () => {
    cluster = await E2eCluster.start(3);
    const leader = await cluster.leader();
    for (let k = 0; k < 30; k++) await barrier(cluster, leader.id);
    const victim = ["n1", "n2", "n3"].find((id) => id !== leader.id)!;
    await cluster.terminate(victim);
    const walFiles = listFiles(cluster.node(victim).dataDir).filter((file) => statSync(file).size > 512 && !file.includes("snap"));
    expect(walFiles.length).toBeGreaterThan(0);
    const file = walFiles[0]!;
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 3)]! ^= 0xff; // a flipped byte in the middle, not a torn tail
    writeFileSync(file, bytes);
    cluster.launch(victim);
    expect(await cluster.exited(victim)).toBe(2);
    expect(cluster.node(victim).output).toMatch(/at byte \d+/);
    expect(cluster.node(victim).output).toContain(file.split("/").pop()!);
    expect(cluster.node(victim).output).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });
});

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}
