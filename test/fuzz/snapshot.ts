// Fuzzing snapshots: snapshot files (the storage layer's frame around the state) and the coordination
// state inside them (the state machine's decoder), damaged.
//
// Properties (files):
//   - decoding never throws: it answers a problem, or a snapshot;
//   - raw damage is refused, or changed nothing (the checksum covers every byte);
//   - with the checksum recomputed, a file that decodes re-encodes to exactly its bytes: every field was
//     read from where the writer put it, and no count or length claimed more than the file holds.
// Properties (state):
//   - decoding throws nothing but DecodeError: a snapshot that breaks the state's invariants is refused
//     as bytes, not by a failed assertion;
//   - a state that decodes re-encodes to bytes that decode to the same bytes again, and a state machine
//     restored from it keeps applying commands without a failed assertion.

import { crc32 } from "node:zlib";
import fc from "fast-check";
import { CoordinationStateMachine } from "../../src/fsm/coordination.js";
import type { Command } from "../../src/fsm/commands.js";
import type { FsmLimits } from "../../src/fsm/limits.js";
import { decodeState, encodeState } from "../../src/fsm/snapshot.js";
import type { ClusterConfig, Snapshot } from "../../src/raft/types.js";
import { decodeSnapshotFile, encodeSnapshotHeader, snapshotFormatVersion } from "../../src/storage/snapshot-file.js";
import { DecodeError } from "../../src/util/bytes.js";
import { FsmHarness, testLimits } from "../fsm/harness.js";
import { applyMutations, concat, hostileBytes, mutationsArb } from "./mutate.js";
import { checkProperty, type FuzzOptions, type FuzzPart, type FuzzReport, hexPreview, Stats } from "./run.js";

// ---------------------------------------------------------------------------------------------
// Files

const memberIdArb = fc.oneof(fc.constantFrom("n1", "n2", "n3", "__proto__", "constructor"), fc.string({ minLength: 1, maxLength: 8 }));

const configArb: fc.Arbitrary<ClusterConfig> = fc.record({
  voters: fc.uniqueArray(memberIdArb, { maxLength: 5 }),
  learners: fc.uniqueArray(memberIdArb, { maxLength: 2 }),
  addresses: fc.array(fc.tuple(memberIdArb, fc.constantFrom("127.0.0.1:7001", "n2.raftlock.svc:7000")), { maxLength: 4 })
    .map((pairs) => Object.fromEntries(pairs)),
});

const snapshotArb: fc.Arbitrary<Snapshot> = fc.record({
  meta: fc.record({ index: fc.nat({ max: 1_000_000 }), term: fc.nat({ max: 1000 }), config: configArb }),
  data: fc.uint8Array({ maxLength: 200 }),
});

/** The file `writeSnapshotFile` writes for `snapshot`. */
export function snapshotFileBytes(snapshot: Snapshot): Buffer {
  const header = encodeSnapshotHeader(snapshot);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc32(snapshot.data, crc32(header)));
  return Buffer.concat([header, snapshot.data, trailer]);
}

function withChecksum(body: Uint8Array): Buffer {
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc32(body));
  return Buffer.from(concat([body, trailer]));
}

function sameSnapshot(read: ReturnType<typeof decodeSnapshotFile>, snapshot: Snapshot): boolean {
  if (!read.ok) return false;
  const shape = ({ meta, data }: Snapshot): string => {
    const addresses = Object.entries(meta.config.addresses).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return JSON.stringify({ ...meta, config: { ...meta.config, addresses }, data: Buffer.from(data).toString("hex") });
  };
  return shape(read.snapshot) === shape(snapshot);
}

export const snapshotFilePart: FuzzPart = {
  name: "snapshot-file",
  inputsAre: "damaged snapshot files decoded",
  run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const caseArb = fc.record({ snapshot: snapshotArb, mutations: mutationsArb, recomputeChecksum: fc.boolean() });
    const property = fc.property(caseArb, ({ snapshot, mutations, recomputeChecksum }) => {
      const original = snapshotFileBytes(snapshot);
      const damaged = recomputeChecksum
        ? withChecksum(applyMutations(original.subarray(0, original.length - 4), mutations))
        : Buffer.from(applyMutations(original, mutations));
      const read = decodeSnapshotFile(damaged, snapshot.meta.index);
      if (!read.ok) {
        stats.add(`refused (${recomputeChecksum ? "re-checksummed" : "raw"} damage)`);
        return;
      }
      const again = snapshotFileBytes(read.snapshot);
      const version = damaged.readUInt16LE(4);
      if (!recomputeChecksum && !again.equals(original)) throw new Error(`raw damage was accepted: ${hexPreview(damaged, 200)}`);
      // Member addresses are a record: an id that reads as an integer ("11") comes first whatever the file's
      // order, so only their order may differ; every byte must still be accounted for.
      if (version === snapshotFormatVersion && !again.equals(damaged) && !(again.length === damaged.length && sameSnapshot(decodeSnapshotFile(again, snapshot.meta.index), read.snapshot))) {
        throw new Error(`a decoded file re-encodes differently: ${hexPreview(damaged, 300)} became ${hexPreview(again, 300)} (${JSON.stringify(read.snapshot.meta)})`);
      }
      stats.add(`decoded (${recomputeChecksum ? "re-checksummed" : "raw"} damage, version ${version})`);
    });
    return checkProperty(this, options, property, options.count, 1, stats);
  },
};

// ---------------------------------------------------------------------------------------------
// State

const nameArb = fc.constantFrom("orders", "billing", "a", "b");
const ownerArb = fc.constantFrom("alice", "bob", "carol", "n1", "n2");
const ttlArb = fc.integer({ min: testLimits.ttlMsMin, max: testLimits.ttlMsMin + 20_000 });
const sessionIdArb = fc.integer({ min: 1, max: 8 });

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ type: fc.constant("session-open" as const), ttlMs: ttlArb }, { requiredKeys: ["type", "ttlMs"] }),
  fc.record({ type: fc.constant("session-close" as const), sessionId: sessionIdArb }),
  fc.record({ type: fc.constant("sessions-expire" as const), sessionIds: fc.uniqueArray(sessionIdArb, { maxLength: 3 }) }),
  fc.record(
    { type: fc.constant("lock-acquire" as const), name: nameArb, owner: ownerArb, ttlMs: ttlArb, sessionId: sessionIdArb, wait: fc.boolean(), waiterId: fc.string({ minLength: 1, maxLength: 6 }) },
    { requiredKeys: ["type", "name", "owner", "ttlMs", "wait", "waiterId"] },
  ),
  fc.record({ type: fc.constant("lock-release" as const), name: nameArb, owner: ownerArb }),
  fc.record({ type: fc.constant("lock-cancel" as const), name: nameArb, waiterId: fc.string({ minLength: 1, maxLength: 6 }) }),
  fc.record(
    { type: fc.constant("elect-campaign" as const), election: nameArb, candidate: ownerArb, ttlMs: ttlArb, value: fc.string({ maxLength: 8 }), sessionId: sessionIdArb, wait: fc.boolean(), waiterId: fc.string({ minLength: 1, maxLength: 6 }) },
    { requiredKeys: ["type", "election", "candidate", "ttlMs", "wait", "waiterId"] },
  ),
  fc.record({ type: fc.constant("elect-resign" as const), election: nameArb, candidate: ownerArb }),
  fc.record({ type: fc.constant("leader-changed" as const), leaderId: ownerArb, term: fc.integer({ min: 1, max: 50 }) }),
);

/** Small tables: a state machine preallocates its request-result cache, and the fuzz builds thousands. */
const fuzzFsmLimits: FsmLimits = { ...testLimits, watchHistoryEventsMax: 8, requestResultsMax: 16 };

/** A state machine after `commands` (refused ones change nothing), as a snapshot. */
function stateBytes(commands: readonly Command[]): Uint8Array {
  const harness = new FsmHarness(fuzzFsmLimits);
  for (const command of commands) harness.run(command);
  return harness.fsm.snapshot();
}

/** Commands a restored state machine must take without a failed assertion, whatever it holds. */
const afterRestore: readonly Command[] = [
  { type: "sessions-expire", sessionIds: [1, 2, 3, 4, 5, 6, 7, 8] },
  { type: "lock-acquire", name: "orders", owner: "dave", ttlMs: testLimits.ttlMsMin, wait: true, waiterId: "after-1" },
  { type: "lock-release", name: "orders", owner: "alice" },
  { type: "elect-resign", election: "orders", candidate: "alice" },
  { type: "session-open", ttlMs: testLimits.ttlMsMin },
];

export const snapshotStatePart: FuzzPart = {
  name: "snapshot-state",
  inputsAre: "damaged coordination states decoded",
  run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const bytesArb = hostileBytes(fc.array(commandArb, { maxLength: 12 }).map(stateBytes), 200);
    const property = fc.property(bytesArb, (bytes) => {
      let decoded: Uint8Array;
      try {
        decoded = encodeState(decodeState(bytes, fuzzFsmLimits));
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        stats.add("refused (DecodeError)");
        return;
      }
      const again = encodeState(decodeState(decoded, fuzzFsmLimits));
      if (!Buffer.from(again).equals(Buffer.from(decoded))) throw new Error(`re-encoding is not stable: ${hexPreview(decoded, 300)} became ${hexPreview(again, 300)}`);
      const harness = new FsmHarness({}, new CoordinationStateMachine(fuzzFsmLimits));
      harness.fsm.restore(bytes);
      harness.lastIndex = harness.fsm.appliedIndex;
      // A log never reaches 2^53; a state that claims to have applied that far has no entries to come.
      if (harness.lastIndex + afterRestore.length > Number.MAX_SAFE_INTEGER) return;
      for (const command of afterRestore) harness.run(command);
      stats.add("decoded, restored and applied commands");
    });
    return checkProperty(this, options, property, options.count, 1, stats);
  },
};
