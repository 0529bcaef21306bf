// Builds large states straight into stopped nodes' data directories with raftlock's own storage and
// state machine code (the real on-disk format): a long log of lock commands, or a snapshot holding many
// held locks. Driving a cluster to 1 million entries or locks would take many minutes, and a cluster
// with default limits refuses more than 100,000 locks (fsmLimitsDefaults.locksMax).
import { encodeCommand, type Command } from "../../src/fsm/commands.js";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import { fsmLimitsDefaults, ttlMsMinFor } from "../../src/fsm/limits.js";
import { decodeResult } from "../../src/fsm/results.js";
import { raftConfigDefaults } from "../../src/raft/config.js";
import { decodeClusterConfig } from "../../src/raft/cluster-config.js";
import { EntryType, type ClusterConfig, type Entry, type Snapshot } from "../../src/raft/types.js";
import { Storage } from "../../src/storage/storage.js";

/** Entries per save() while writing a long log: one fdatasync each, a few MB. */
const entriesPerSave = 20_000;

interface NodeDir {
  readonly id: string;
  readonly dataDir: string;
}

interface LogEnd {
  readonly lastIndex: number;
  readonly currentTerm: number;
}

/**
 * Where every stopped node's durable log ends; all must agree. The cluster was settled before the stop
 * (every member applied its whole log), so the whole log is committed even where the durable commit index
 * lags behind it (a node may defer writing a batch that only advances the commit index).
 */
async function commonLogEnd(nodes: readonly NodeDir[]): Promise<LogEnd> {
  const ends: LogEnd[] = [];
  for (const node of nodes) {
    const { storage, recovered } = await Storage.open({ dir: node.dataDir });
    await storage.close();
    ends.push({ lastIndex: recovered.entries.at(-1)?.index ?? recovered.snapshot?.meta.index ?? 0, currentTerm: recovered.hardState.currentTerm });
  }
  const first = ends[0]!;
  if (ends.some((end) => end.lastIndex !== first.lastIndex || end.currentTerm !== first.currentTerm)) throw new Error(`the stopped nodes' logs end differently: ${JSON.stringify(ends)}`);
  return first;
}

/** The k-th command of a long log: acquires and releases of 1000 locks, as a steady lock workload writes. */
function cycleCommand(k: number): Command {
  const name = `restart-${Math.floor(k / 2) % 1000}`;
  return k % 2 === 0 ? { type: "lock-acquire", name, owner: "owner", ttlMs: 30_000, wait: false, waiterId: `bench.w${k}` } : { type: "lock-release", name, owner: "owner" };
}

/** Appends `count` committed lock-command entries to every node's log, in the current term. */
export async function appendCommittedEntries(nodes: readonly NodeDir[], count: number): Promise<void> {
  const end = await commonLogEnd(nodes);
  for (const node of nodes) {
    const { storage, recovered } = await Storage.open({ dir: node.dataDir });
    try {
      for (let from = 0; from < count; from += entriesPerSave) {
        const entries: Entry[] = [];
        for (let k = from; k < Math.min(count, from + entriesPerSave); k++) {
          entries.push({ index: end.lastIndex + 1 + k, term: end.currentTerm, type: EntryType.Normal, data: encodeCommand(cycleCommand(k), `bench.r${k}`) });
        }
        const hardState = { currentTerm: end.currentTerm, votedFor: recovered.hardState.votedFor, commitIndex: entries.at(-1)!.index };
        await storage.save({ hardState, snapshot: null, entries });
      }
    } finally {
      await storage.close();
    }
  }
}

/** The configuration in force at the end of a recovered log: its last configuration entry, else the snapshot's. */
function configAtEnd(entries: readonly Entry[], snapshot: Snapshot | null, bootstrap: ClusterConfig): ClusterConfig {
  for (let k = entries.length - 1; k >= 0; k--) if (entries[k]!.type === EntryType.Config) return decodeClusterConfig(entries[k]!.data);
  return snapshot?.meta.config ?? bootstrap;
}

/**
 * Gives every node a snapshot in which `locks` distinct locks are held (each with its own lease of
 * `ttlMs`), as if that many acquires had been applied after the current log: the nodes' own state machine
 * code applies them, with the lock and session limits raised to fit.
 */
export async function installLockSnapshot(nodes: readonly NodeDir[], locks: number, ttlMs: number, bootstrap: ClusterConfig): Promise<{ snapshotBytes: number }> {
  const end = await commonLogEnd(nodes);
  const { storage, recovered } = await Storage.open({ dir: nodes[0]!.dataDir });
  await storage.close();
  const fsm = new CoordinationStateMachine({
    ...fsmLimitsDefaults,
    ttlMsMin: ttlMsMinFor(raftConfigDefaults.electionTimeoutMaxMs),
    locksMax: locks + fsmLimitsDefaults.locksMax,
    sessionsMax: locks + fsmLimitsDefaults.sessionsMax,
  });
  const snapshotIndex = recovered.snapshot?.meta.index ?? 0;
  if (recovered.snapshot !== null) fsm.restore(recovered.snapshot.data);
  for (const entry of recovered.entries) if (entry.index > snapshotIndex && entry.type === EntryType.Normal) fsm.apply(entry);
  for (let k = 0; k < locks; k++) {
    const command: Command = { type: "lock-acquire", name: `lock-${k}`, owner: `owner-${k}`, ttlMs, wait: false, waiterId: `bench.w${k}` };
    const result = fsm.apply({ index: end.lastIndex + 1 + k, term: end.currentTerm, type: EntryType.Normal, data: encodeCommand(command, `bench.r${k}`) });
    if (k === locks - 1 && decodeResult(result).kind !== "granted") throw new Error(`lock ${k} was not granted: ${JSON.stringify(decodeResult(result))}`);
  }
  const index = end.lastIndex + locks;
  const snapshot: Snapshot = { meta: { index, term: end.currentTerm, config: configAtEnd(recovered.entries, recovered.snapshot, bootstrap) }, data: fsm.snapshot() };
  for (const node of nodes) {
    const opened = await Storage.open({ dir: node.dataDir });
    try {
      // The path of a follower installing its leader's snapshot: the log is replaced by the snapshot.
      await opened.storage.save({ hardState: { ...opened.recovered.hardState, commitIndex: index }, snapshot, entries: [] });
    } finally {
      await opened.storage.close();
    }
  }
  return { snapshotBytes: snapshot.data.length };
}
