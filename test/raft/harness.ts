// A tiny synchronous network for interaction tests of the core: every node persists each batch at once
// (it models durability only through what `ready()` hands out) and messages are delivered on request.
import { raftConfigDefaults, type RaftConfig } from "../../src/raft/config.js";
import { Raft, type RaftInitialState } from "../../src/raft/raft.js";
import { type Entry, EntryType, type HardState, type Message, type MessageType, type NodeId, type Ready, type Snapshot } from "../../src/raft/types.js";

export const electionMinMs = 1000;
export const electionMaxMs = 2000;
export const heartbeatMs = 100;

/** A deterministic stand-in for the injected PRNG: always the same draw. */
export function fixedRandom(value = 0): () => number {
  return () => value;
}

export function testConfig(id: NodeId, overrides: Partial<RaftConfig> = {}): RaftConfig {
  return {
    ...raftConfigDefaults,
    id,
    electionTimeoutMinMs: electionMinMs,
    electionTimeoutMaxMs: electionMaxMs,
    heartbeatIntervalMs: heartbeatMs,
    random: fixedRandom(),
    ...overrides,
  };
}

export function freshState(voters: NodeId[]): RaftInitialState {
  return { hardState: { currentTerm: 0, votedFor: null, commitIndex: 0 }, snapshot: null, entries: [], config: { voters, learners: [], addresses: {} } };
}

export function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(text) };
}

/** Entries 1..terms.length where entry i has term terms[i-1]. */
export function entriesWithTerms(terms: number[]): Entry[] {
  return terms.map((term, k) => entry(k + 1, term));
}

/** What one node made durable, and what it applied. */
export interface Disk {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
  applied: Entry[];
}

export class TestNet {
  readonly nodes = new Map<NodeId, Raft>();
  readonly disks = new Map<NodeId, Disk>();
  /** Messages sent and not yet delivered, in send order. */
  inflight: Message[] = [];
  /** Every message ever sent, for counting. */
  readonly sent: Message[] = [];
  readonly readies = new Map<NodeId, Ready[]>();
  nowMs = 0;
  /** Nodes cut off: messages from or to them are dropped. */
  readonly isolated = new Set<NodeId>();

  constructor(
    readonly ids: NodeId[],
    configure: (id: NodeId) => Partial<RaftConfig> = () => ({}),
    initial: (id: NodeId) => RaftInitialState = () => freshState(ids),
  ) {
    for (const id of ids) {
      const state = initial(id);
      // Staggered election timeouts: the first node times out first unless a test says otherwise.
      const random = fixedRandom(ids.indexOf(id) / ids.length);
      this.nodes.set(id, new Raft(testConfig(id, { random, ...configure(id) }), state, this.nowMs));
      this.disks.set(id, { hardState: state.hardState, snapshot: state.snapshot, entries: [...state.entries], applied: [] });
      this.readies.set(id, []);
    }
  }

  /** Starts another node (a new member joining: it knows no configuration until the leader's reaches it). */
  addNode(id: NodeId, initial: RaftInitialState = freshState([]), overrides: Partial<RaftConfig> = {}): Raft {
    const raft = new Raft(testConfig(id, overrides), initial, this.nowMs);
    this.nodes.set(id, raft);
    this.disks.set(id, { hardState: initial.hardState, snapshot: initial.snapshot, entries: [...initial.entries], applied: [] });
    this.readies.set(id, []);
    return raft;
  }

  node(id: NodeId): Raft {
    const raft = this.nodes.get(id);
    if (raft === undefined) throw new Error(`no node ${id}`);
    return raft;
  }

  /** Persists and processes every node's pending batches; sent messages queue in `inflight`. */
  flush(): void {
    let progressed = true;
    while (progressed) {
      progressed = false;
      for (const [id, raft] of this.nodes) {
        while (raft.hasReady()) {
          progressed = true;
          const ready = raft.ready();
          this.readies.get(id)!.push(ready);
          this.persist(id, ready);
          for (const message of [...ready.leaderMessages, ...ready.messages]) {
            this.sent.push(message);
            if (!this.isolated.has(message.from) && !this.isolated.has(message.to)) this.inflight.push(message);
          }
          raft.advance(ready);
        }
      }
    }
  }

  private persist(id: NodeId, ready: Ready): void {
    const disk = this.disks.get(id)!;
    if (ready.hardState !== null) disk.hardState = ready.hardState;
    if (ready.snapshot !== null) {
      disk.snapshot = ready.snapshot;
      disk.entries = [];
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0]!.index;
      disk.entries = disk.entries.filter((e) => e.index < first).concat(ready.entries);
    }
    for (const committed of ready.committedEntries) disk.applied.push(committed);
  }

  /** Delivers queued messages (those `filter` accepts; others are dropped) until none are left. */
  deliverAll(filter: (message: Message) => boolean = () => true, roundsMax = 1000): void {
    this.flush();
    for (let round = 0; round < roundsMax && this.inflight.length > 0; round++) {
      const batch = this.inflight;
      this.inflight = [];
      for (const message of batch) {
        if (this.isolated.has(message.from) || this.isolated.has(message.to)) continue;
        if (filter(message)) this.node(message.to).step(message, this.nowMs);
      }
      this.flush();
    }
  }

  /** Moves time forward in steps of `stepMs`, ticking every node and delivering everything in between. */
  advance(durationMs: number, stepMs = 10): void {
    const endMs = this.nowMs + durationMs;
    while (this.nowMs < endMs) {
      this.nowMs = Math.min(endMs, this.nowMs + stepMs);
      for (const raft of this.nodes.values()) raft.tick(this.nowMs);
      this.deliverAll();
    }
  }

  /** The node that leads now, failing the test when there is none or more than one in the newest term. */
  leader(): NodeId {
    const leaders = [...this.nodes.values()].filter((raft) => raft.status().role === "leader");
    const newestTerm = Math.max(...leaders.map((raft) => raft.status().currentTerm));
    const current = leaders.filter((raft) => raft.status().currentTerm === newestTerm);
    if (current.length !== 1) throw new Error(`expected one leader, found ${current.length}`);
    return current[0]!.id;
  }

  /** Elects `id` by letting its election timer fire first. */
  elect(id: NodeId): void {
    this.advance(electionMaxMs + 1000);
    const raft = this.node(id);
    if (raft.status().role !== "leader") throw new Error(`${id} did not become leader`);
  }

  sentOfType(type: MessageType): Message[] {
    return this.sent.filter((message) => message.type === type);
  }

  appliedData(id: NodeId): string[] {
    return this.disks
      .get(id)!
      .applied.filter((e) => e.type === EntryType.Normal)
      .map((e) => new TextDecoder().decode(e.data));
  }
}

export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
