// The consensus core's Ready batches, persisted through Storage exactly as the node driver will: three cores,
// restarts from what Storage recovers, compaction by application snapshots, and a follower brought back by
// a snapshot from the leader. The core's own start-up assertions check every recovered state.

import { describe, expect, it } from "vitest";
import { raftConfigDefaults } from "../../src/raft/config.js";
import { Raft } from "../../src/raft/raft.js";
import { EntryType, type Message, type NodeId, type Snapshot } from "../../src/raft/types.js";
import type { Storage } from "../../src/storage/storage.js";
import { open, segmentPaths, tempDir } from "./helpers.js";

const voters: NodeId[] = ["n1", "n2", "n3"];
const snapshotEveryEntries = 15;
const retainedEntries = 4;

class DurableNode {
  raft!: Raft;
  storage!: Storage;
  /** The application: the data of every applied normal entry, in order. */
  applied: string[] = [];
  /** Snapshots received from a leader and saved (the install path). */
  snapshotsReceived = 0;
  private snapshotIndex = 0;

  constructor(
    readonly id: NodeId,
    readonly dir: string,
  ) {}

  async start(nowMs: number): Promise<void> {
    const { storage, recovered } = await open(this.dir, { segmentBytesMax: 4096 });
    this.storage = storage;
    this.applied = recovered.snapshot === null ? [] : (JSON.parse(new TextDecoder().decode(recovered.snapshot.data)) as string[]);
    this.snapshotIndex = recovered.snapshot?.meta.index ?? 0;
    const random = () => voters.indexOf(this.id) / voters.length;
    this.raft = new Raft(
      { ...raftConfigDefaults, id: this.id, electionTimeoutMinMs: 1000, electionTimeoutMaxMs: 2000, heartbeatIntervalMs: 100, random },
      { ...recovered, config: { voters, learners: [], addresses: {} } },
      nowMs,
    );
  }

  async restart(nowMs: number): Promise<void> {
    const before = this.raft.status();
    await this.storage.close();
    await this.start(nowMs);
    const after = this.raft.status();
    expect({ term: after.currentTerm, vote: after.votedFor, last: after.lastIndex }).toEqual({ term: before.currentTerm, vote: before.votedFor, last: before.lastIndex });
  }

  /** Persists, applies and advances every pending batch; returns the messages it may now send. */
  async drain(): Promise<Message[]> {
    const outbox: Message[] = [];
    while (this.raft.hasReady()) {
      const ready = this.raft.ready();
      await this.storage.save({ hardState: ready.hardState, snapshot: ready.snapshot, entries: ready.entries });
      if (ready.snapshot !== null) {
        this.snapshotsReceived++;
        this.applied = JSON.parse(new TextDecoder().decode(ready.snapshot.data)) as string[];
        this.snapshotIndex = ready.snapshot.meta.index;
      }
      for (const entry of ready.committedEntries) {
        if (entry.type === EntryType.Normal) this.applied.push(new TextDecoder().decode(entry.data));
      }
      outbox.push(...ready.leaderMessages, ...ready.messages);
      this.raft.advance(ready);
    }
    await this.snapshotIfDue();
    return outbox;
  }

  private async snapshotIfDue(): Promise<void> {
    const { lastApplied } = this.raft.status();
    if (lastApplied - this.snapshotIndex < snapshotEveryEntries) return;
    const snapshot: Snapshot = {
      meta: { index: lastApplied, term: this.raft.termAt(lastApplied)!, config: { voters, learners: [], addresses: {} } },
      data: new TextEncoder().encode(JSON.stringify(this.applied)),
    };
    const retainFromIndex = Math.max(1, lastApplied + 1 - retainedEntries);
    await this.storage.saveSnapshot(snapshot, retainFromIndex);
    this.raft.compact(snapshot, retainFromIndex);
    this.snapshotIndex = lastApplied;
  }
}

class Cluster {
  nowMs = 0;
  readonly isolated = new Set<NodeId>();

  constructor(readonly nodes: Map<NodeId, DurableNode>) {}

  node(id: NodeId): DurableNode {
    return this.nodes.get(id)!;
  }

  /** Drains every node and delivers messages until nothing moves. */
  async settle(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      const messages: Message[] = [];
      for (const node of this.nodes.values()) messages.push(...(await node.drain()));
      if (messages.length === 0) return;
      for (const message of messages) {
        if (this.isolated.has(message.from) || this.isolated.has(message.to)) continue;
        this.node(message.to).raft.step(message, this.nowMs);
      }
    }
    throw new Error("the cluster did not settle in 1000 rounds");
  }

  async advance(durationMs: number): Promise<void> {
    const endMs = this.nowMs + durationMs;
    while (this.nowMs < endMs) {
      this.nowMs += 20;
      for (const node of this.nodes.values()) node.raft.tick(this.nowMs);
      await this.settle();
    }
  }

  leader(): DurableNode {
    const leaders = [...this.nodes.values()].filter((node) => node.raft.status().role === "leader");
    expect(leaders).toHaveLength(1);
    return leaders[0]!;
  }

  async propose(count: number, prefix: string): Promise<string[]> {
    const proposed: string[] = [];
    for (let k = 0; k < count; k++) {
      const data = `${prefix}-${k}`;
      expect(this.leader().raft.propose(new TextEncoder().encode(data)).ok).toBe(true);
      proposed.push(data);
      if (k % 3 === 2) await this.settle();
    }
    await this.settle();
    return proposed;
  }
}

describe("Storage under the consensus core", () => {
  it("three cores persist through Storage, restart from it, compact, and bring a lagging follower back with a snapshot", async () => {
    const nodes = new Map<NodeId, DurableNode>();
    for (const id of voters) {
      const node = new DurableNode(id, await tempDir());
      await node.start(0);
      nodes.set(id, node);
    }
    const cluster = new Cluster(nodes);
    await cluster.advance(3000);
    const leaderId = cluster.leader().id;
    const laggard = voters.find((id) => id !== leaderId)!;

    cluster.isolated.add(laggard);
    const expected = await cluster.propose(150, "a");
    // Restart every node that is in touch, one at a time, between proposals.
    for (const id of voters.filter((each) => each !== laggard)) {
      await cluster.node(id).restart(cluster.nowMs);
      await cluster.advance(3000);
      expected.push(...(await cluster.propose(10, `after-restart-${id}`)));
    }

    // The leader compacted far past the laggard's log: it must catch up through a snapshot.
    cluster.isolated.delete(laggard);
    await cluster.advance(3000);
    expected.push(...(await cluster.propose(10, "b")));
    await cluster.advance(500);
    expect(cluster.node(laggard).snapshotsReceived).toBe(1);
    // Compaction deleted the leader's first segments (4 KiB each hold about 60 of these small entries).
    expect((await segmentPaths(cluster.node(leaderId).dir))[0]).not.toMatch(/segment-0+1\.wal$/);

    for (const id of voters) await cluster.node(id).restart(cluster.nowMs);
    await cluster.advance(3000);
    for (const id of voters) expect(cluster.node(id).applied).toEqual(expected);
  }, 60_000);
});
