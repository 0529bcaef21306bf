// Three drivers in one process over real storage (temp dirs) and real WebSocket transports on loopback.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { parseStartConfig } from "../../src/config.js";
import { NodeError } from "../../src/node/forwarding.js";
import { RaftNode } from "../../src/node/node.js";
import { JournalStateMachine } from "../support/journal-state-machine.js";
import { parseExposition, sampleValue } from "../support/exposition.js";
import { NodeMetrics } from "../../src/metrics.js";
import { raftConfigDefaults } from "../../src/raft/config.js";
import { freePort, waitFor } from "../e2e/harness.js";

const ids = ["n1", "n2", "n3"];
let running: RaftNode[] = [];
let root = "";

afterEach(async () => {
  await Promise.all(running.map((node) => node.stop()));
  running = [];
  rmSync(root, { recursive: true, force: true });
});

async function startCluster(readMode: "read-index" | "lease"): Promise<Map<string, { node: RaftNode; journal: JournalStateMachine }>> {
  root = mkdtempSync(join(tmpdir(), "raftlock-node-"));
  const ports = new Map<string, number>();
  for (const id of ids) ports.set(id, await freePort());
  const peers = ids.map((id) => `${id}=127.0.0.1:${ports.get(id)}`).join(",");
  const nodes = new Map<string, { node: RaftNode; journal: JournalStateMachine }>();
  for (const id of ids) {
    const argv = ["--id", id, "--data-dir", join(root, id), "--peer-listen", `127.0.0.1:${ports.get(id)}`, "--http-listen", "127.0.0.1:1", "--peers", peers];
    const config = parseStartConfig([...argv, "--election-timeout-min-ms", "300", "--election-timeout-max-ms", "600", "--heartbeat-interval-ms", "50", "--read-mode", readMode], {});
    const journal = new JournalStateMachine();
    const node = await RaftNode.start(config, pino({ level: "silent" }), journal);
    running.push(node);
    nodes.set(id, { node, journal });
  }
  await waitFor(() => ids.every((id) => nodes.get(id)!.node.leader() !== null), 10_000, "a leader everyone knows");
  return nodes;
}

describe("the node driver", { timeout: 30_000 }, () => {
  for (const readMode of ["read-index", "lease"] as const) {
    it(`a write acknowledged on one node is seen by a linearizable read on every node (${readMode})`, async () => {
      const nodes = await startCluster(readMode);
      for (let k = 0; k < 5; k++) {
        const writer = nodes.get(ids[k % 3]!)!.node;
        const { index } = await writer.propose(new TextEncoder().encode(`w${k}`));
        for (const id of ids) {
          const seen = await nodes.get(id)!.node.read((stateMachine) => (stateMachine as JournalStateMachine).appliedCount);
          expect(seen).toBe(k + 1);
          expect(nodes.get(id)!.node.localStatus().appliedIndex).toBeGreaterThanOrEqual(index);
        }
      }
    });
  }

  it("forwards a follower's proposal to the leader and answers with where it committed", async () => {
    const nodes = await startCluster("read-index");
    const leaderId = nodes.get("n1")!.node.leader()!.id;
    const followerId = ids.find((id) => id !== leaderId)!;
    const result = await nodes.get(followerId)!.node.propose(new Uint8Array([1, 2, 3]));
    expect(result.term).toBe(nodes.get(leaderId)!.node.leader()!.term);
    expect(nodes.get(leaderId)!.node.localStatus().commitIndex).toBeGreaterThanOrEqual(result.index);
  });

  it("refuses reads and writes with NOLEADER when no majority is left", async () => {
    const nodes = await startCluster("read-index");
    const leaderId = nodes.get("n1")!.node.leader()!.id;
    const survivorId = ids.find((id) => id !== leaderId)!;
    for (const id of ids.filter((id) => id !== survivorId)) {
      await nodes.get(id)!.node.stop();
      running = running.filter((node) => node !== nodes.get(id)!.node);
    }
    await expect(nodes.get(survivorId)!.node.read(() => 0)).rejects.toBeInstanceOf(NodeError);
    await expect(nodes.get(survivorId)!.node.propose(new Uint8Array(1))).rejects.toMatchObject({ name: "NodeError" });
  });

  it("takes a snapshot on demand at the applied index", async () => {
    const nodes = await startCluster("read-index");
    const { index } = await nodes.get("n2")!.node.propose(new Uint8Array(0));
    await waitFor(() => nodes.get("n3")!.node.localStatus().appliedIndex! >= index, 5_000, "n3 applied");
    const snapshotIndex = await nodes.get("n3")!.node.snapshotNow();
    expect(snapshotIndex).toBeGreaterThanOrEqual(index);
    expect(nodes.get("n3")!.node.localStatus().snapshotIndex).toBe(snapshotIndex);
  });
});

describe("the node driver's metrics", { timeout: 30_000 }, () => {
  it("counts a committed proposal and a refused one by its error code, and times the WAL saves", async () => {
    root = mkdtempSync(join(tmpdir(), "raftlock-node-metrics-"));
    const port = await freePort();
    const config = parseStartConfig(
      ["--id", "n1", "--data-dir", join(root, "n1"), "--peer-listen", `127.0.0.1:${port}`, "--http-listen", "127.0.0.1:1", "--peers", `n1=127.0.0.1:${port}`,
        "--election-timeout-min-ms", "300", "--election-timeout-max-ms", "600", "--heartbeat-interval-ms", "50"],
      {},
    );
    const metrics = new NodeMetrics();
    const node = await RaftNode.start(config, pino({ level: "silent" }), new JournalStateMachine(), metrics);
    running.push(node);
    await waitFor(() => node.isLeader(), 10_000, "the single node leading");
    await node.propose(new TextEncoder().encode("w"));
    await expect(node.propose(new Uint8Array(raftConfigDefaults.proposalBytesMax + 1))).rejects.toMatchObject({ code: "TOOLARGE" });
    const families = parseExposition((await metrics.scrape()).text);
    expect(sampleValue(families, "raftlock_is_leader")).toBe(1);
    expect(sampleValue(families, "raftlock_leader_changes_seen_total")).toBe(1);
    expect(sampleValue(families, "raftlock_proposals_committed_total")).toBe(1);
    expect(sampleValue(families, "raftlock_proposals_failed_total", { reason: "TOOLARGE" })).toBe(1);
    expect(sampleValue(families, "raftlock_proposals_pending")).toBe(0);
    expect(sampleValue(families, "raftlock_wal_fsync_duration_seconds_count")).toBeGreaterThanOrEqual(2);
    expect(sampleValue(families, "raftlock_applied_index")).toBeGreaterThanOrEqual(2);
  });
});
