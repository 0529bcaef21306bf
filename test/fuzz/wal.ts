// Fuzzing WAL recovery: logs written by the real storage layer, one segment damaged, recovered by the real
// recovery code from a real directory.
//
// Two kinds of damage:
//   - raw: bit flips, truncations, garbage, lying lengths, duplicated ranges, as a disk or a crash leaves
//     them. Recovery must refuse with a StorageCorruptError naming the file (and leave the directory as it
//     was), or recover exactly the log and a hard state as they stood after one of the saves: a torn tail
//     cut, never a silently different log.
//   - re-checksummed: one record's payload (or the segment header) damaged and its checksums recomputed,
//     as a bug or an attacker with write access would leave it. No checksum helps here; recovery must
//     still refuse or come back with a log the core can start from (contiguous, ending at the last index,
//     its commit index and terms within it).
// Whatever recovery repaired, a second recovery finds nothing to repair and the same state.

import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { type Entry, EntryType, type HardState } from "../../src/raft/types.js";
import { recoverDirectory, type Recovery } from "../../src/storage/recovery.js";
import { Storage, StorageCorruptError, StorageError, segmentBytesMaxLowest } from "../../src/storage/storage.js";
import { checkFrame, frameHeaderBytes, parseSegmentFileName, segmentHeaderBytes } from "../../src/storage/wal-format.js";
import { applyMutations, concat, type Mutation, mutationsArb } from "./mutate.js";
import { checkProperty, type FuzzOptions, type FuzzPart, type FuzzReport, Stats } from "./run.js";

/** Logs written per fuzz run; each case damages one of them. */
const historiesPerRun = 8;
/** The smallest segment size storage accepts: saves roll over to new segments often. */
const segmentBytesMax = segmentBytesMaxLowest;

/** A fast, disposable file system when there is one: recovery syncs, and the fuzz recovers many times. */
export async function scratchRoot(prefix: string): Promise<string> {
  const base = await fs.stat("/dev/shm").then((stat) => (stat.isDirectory() ? "/dev/shm" : os.tmpdir()), () => os.tmpdir());
  return fs.mkdtemp(path.join(base, prefix));
}

// ---------------------------------------------------------------------------------------------
// Histories

interface SaveStep {
  readonly conflict: boolean;
  readonly count: number;
  readonly dataBytes: number;
  readonly vote: boolean;
  readonly termBump: boolean;
  /** Where in the allowed range the conflict starts and the commit index moves to, from 0 to 1. */
  readonly conflictAt: number;
  readonly commitAt: number;
}

const saveStepArb: fc.Arbitrary<SaveStep> = fc.record({
  conflict: fc.boolean(),
  count: fc.integer({ min: 1, max: 6 }),
  dataBytes: fc.nat({ max: 400 }),
  vote: fc.boolean(),
  termBump: fc.boolean(),
  conflictAt: fc.double({ min: 0, max: 1, noNaN: true }),
  commitAt: fc.double({ min: 0, max: 1, noNaN: true }),
});

interface LogState {
  readonly entries: readonly Entry[];
  readonly hardState: HardState;
}

interface History {
  readonly files: ReadonlyMap<string, Buffer>;
  /** The log after each save (and before the first). */
  readonly states: readonly LogState[];
  /** Hard states a torn save can leave: each save's, and its term and vote with the commit index before it. */
  readonly hardStates: readonly HardState[];
}

function entryData(index: number, term: number, dataBytes: number): Uint8Array {
  const data = new Uint8Array(dataBytes);
  for (let k = 0; k < dataBytes; k++) data[k] = (index * 31 + term * 7 + k) & 0xff;
  return data;
}

async function writeHistory(dir: string, steps: readonly SaveStep[]): Promise<History> {
  const { storage } = await Storage.open({ dir, segmentBytesMax });
  let entries: Entry[] = [];
  let hardState: HardState = { currentTerm: 1, votedFor: null, commitIndex: 0 };
  const states: LogState[] = [{ entries: [], hardState: { currentTerm: 0, votedFor: null, commitIndex: 0 } }];
  const hardStates: HardState[] = [states[0]!.hardState];
  try {
    for (const step of steps) {
      const lastIndex = entries.at(-1)?.index ?? 0;
      let term = hardState.currentTerm + (step.termBump ? 1 : 0);
      let first = lastIndex + 1;
      if (step.conflict && lastIndex > hardState.commitIndex) {
        // A new leader overwrites an uncommitted suffix with entries of its own, higher term.
        first = hardState.commitIndex + 1 + Math.floor(step.conflictAt * (lastIndex - hardState.commitIndex));
        term += 1;
      }
      const batch: Entry[] = [];
      for (let index = first; index < first + step.count; index++) batch.push({ index, term, type: EntryType.Normal, data: entryData(index, term, step.dataBytes) });
      const newLast = first + step.count - 1;
      const commitIndex = hardState.commitIndex + Math.floor(step.commitAt * (newLast - hardState.commitIndex));
      const previousCommit = hardState.commitIndex;
      hardState = { currentTerm: term, votedFor: step.vote ? "n1" : null, commitIndex };
      await storage.save({ hardState, snapshot: null, entries: batch });
      entries = [...entries.slice(0, first - 1), ...batch];
      states.push({ entries, hardState });
      hardStates.push(hardState, { currentTerm: term, votedFor: hardState.votedFor, commitIndex: previousCommit });
    }
  } finally {
    await storage.close();
  }
  const files = new Map<string, Buffer>();
  for (const name of (await fs.readdir(dir)).sort()) {
    if (parseSegmentFileName(name) !== null) files.set(name, await fs.readFile(path.join(dir, name)));
  }
  return { files, states, hardStates };
}

// ---------------------------------------------------------------------------------------------
// Damage

interface Damage {
  readonly history: number;
  readonly file: number;
  readonly recomputeChecksums: boolean;
  /** Which record of the file (wrapped; one past the last means the segment header) re-checksummed damage hits. */
  readonly record: number;
  readonly mutations: readonly Mutation[];
}

const damageArb: fc.Arbitrary<Damage> = fc.record({
  history: fc.nat(),
  file: fc.nat(),
  recomputeChecksums: fc.boolean(),
  record: fc.nat(),
  mutations: mutationsArb,
});

/** The records' frame offsets of an undamaged segment. */
function frameOffsets(segment: Buffer): number[] {
  const offsets: number[] = [];
  for (let offset = segmentHeaderBytes; offset < segment.length; ) {
    const frame = checkFrame(segment, offset);
    if (!frame.ok) throw new Error(`the undamaged segment has a bad frame at ${offset}`);
    offsets.push(offset);
    offset = frame.end;
  }
  return offsets;
}

function damage(segment: Buffer, choice: Damage): Buffer {
  if (!choice.recomputeChecksums) return Buffer.from(applyMutations(segment, choice.mutations));
  const offsets = frameOffsets(segment);
  const target = choice.record % (offsets.length + 1);
  if (target === offsets.length) {
    // The segment header, with its checksum recomputed over the damaged fields.
    const fields = applyMutations(segment.subarray(0, 20), choice.mutations);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(crc32(fields));
    return Buffer.from(concat([fields, header, segment.subarray(segmentHeaderBytes)]));
  }
  const frameStart = offsets[target]!;
  const payloadEnd = offsets[target + 1] ?? segment.length;
  const payload = applyMutations(segment.subarray(frameStart + frameHeaderBytes, payloadEnd), choice.mutations);
  const frame = Buffer.alloc(frameHeaderBytes);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  frame.writeUInt32LE(crc32(frame.subarray(0, 8)), 8);
  return Buffer.from(concat([segment.subarray(0, frameStart), frame, payload, segment.subarray(payloadEnd)]));
}

// ---------------------------------------------------------------------------------------------
// Checks

function sameEntries(a: readonly Entry[], b: readonly Entry[]): boolean {
  return a.length === b.length && a.every((entry, k) => {
    const other = b[k]!;
    return entry.index === other.index && entry.term === other.term && entry.type === other.type && Buffer.from(entry.data).equals(Buffer.from(other.data));
  });
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.currentTerm === b.currentTerm && a.votedFor === b.votedFor && a.commitIndex === b.commitIndex;
}

function describeLog(recovery: Recovery): string {
  const { entries, hardState } = recovery.recovered;
  return JSON.stringify({ hardState, lastIndex: recovery.lastIndex, entries: entries.map((entry) => `${entry.index}@${entry.term}`) });
}

/** What the core asserts of a log it starts from. */
function startableProblem(recovery: Recovery): string | null {
  const { entries, hardState } = recovery.recovered;
  for (let k = 1; k < entries.length; k++) {
    if (entries[k]!.index !== entries[k - 1]!.index + 1) return `entries are not contiguous at ${entries[k]!.index}`;
    if (entries[k]!.term < entries[k - 1]!.term) return `entry ${entries[k]!.index}'s term goes down`;
  }
  const last = entries.at(-1);
  if (last !== undefined && last.index !== recovery.lastIndex) return `the entries end at ${last.index} but the last index is ${recovery.lastIndex}`;
  if (hardState.commitIndex > recovery.lastIndex) return `commit index ${hardState.commitIndex} is past the last index ${recovery.lastIndex}`;
  if (last !== undefined && last.term > hardState.currentTerm) return `the last entry's term ${last.term} is above the current term ${hardState.currentTerm}`;
  return null;
}

async function directoryContents(dir: string): Promise<string> {
  const names = (await fs.readdir(dir)).sort();
  const parts = await Promise.all(names.map(async (name) => `${name}:${(await fs.readFile(path.join(dir, name))).toString("base64")}`));
  return parts.join("\n");
}

export const walPart: FuzzPart = {
  name: "wal",
  inputsAre: "damaged WAL directories recovered",
  async run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const root = await scratchRoot("raftlock-fuzz-wal-");
    try {
      const plans = fc.sample(fc.array(saveStepArb, { minLength: 3, maxLength: 16 }), { seed: options.seed, numRuns: historiesPerRun });
      const histories: History[] = [];
      for (const [k, plan] of plans.entries()) histories.push(await writeHistory(path.join(root, `history-${k}`), plan));
      const dir = path.join(root, "case");
      const property = fc.asyncProperty(damageArb, async (choice) => {
        const history = histories[choice.history % histories.length]!;
        const names = [...history.files.keys()];
        const damagedName = names[choice.file % names.length]!;
        await fs.rm(dir, { recursive: true, force: true });
        await fs.mkdir(dir);
        const damaged = damage(history.files.get(damagedName)!, choice);
        for (const [name, bytes] of history.files) await fs.writeFile(path.join(dir, name), name === damagedName ? damaged : bytes);
        const before = await directoryContents(dir);
        let recovery: Recovery;
        try {
          recovery = await recoverDirectory(dir);
        } catch (error) {
          if (!(error instanceof StorageCorruptError)) {
            if (error instanceof StorageError) throw new Error(`recovery failed with a StorageError that is not a refusal of damage: ${error.message}`);
            throw error;
          }
          const segmentPaths = names.map((name) => path.join(dir, name));
          if (error.file !== dir && !segmentPaths.includes(error.file)) throw new Error(`the refusal names "${error.file}", not the directory or one of its segments: ${error.message}`);
          const fileBytes = path.basename(error.file) === damagedName ? damaged.length : (history.files.get(path.basename(error.file))?.length ?? 0);
          if (error.offsetBytes !== null && !(error.offsetBytes >= 0 && error.offsetBytes <= fileBytes)) {
            throw new Error(`the refusal names byte ${error.offsetBytes}, outside the file: ${error.message}`);
          }
          if ((await directoryContents(dir)) !== before) throw new Error(`a refusal changed the directory: ${error.message}`);
          stats.add(`refused (${choice.recomputeChecksums ? "re-checksummed" : "raw"} damage)`);
          return;
        }
        const problem = startableProblem(recovery);
        if (problem !== null) throw new Error(`recovered a log the core cannot start from: ${problem}; ${describeLog(recovery)}`);
        if (!choice.recomputeChecksums) {
          const { entries, hardState } = recovery.recovered;
          if (!history.states.some((state) => sameEntries(state.entries, entries))) throw new Error(`recovered a log that was never written: ${describeLog(recovery)}`);
          if (!history.hardStates.some((each) => sameHardState(each, hardState))) throw new Error(`recovered a hard state that was never written: ${describeLog(recovery)}`);
        }
        const again = await recoverDirectory(dir);
        if (again.repairedTail !== null) throw new Error(`a second recovery repaired again: ${JSON.stringify(again.repairedTail)}`);
        if (!sameEntries(again.recovered.entries, recovery.recovered.entries) || !sameHardState(again.recovered.hardState, recovery.recovered.hardState)) {
          throw new Error(`a second recovery found another state: ${describeLog(again)} after ${describeLog(recovery)}`);
        }
        stats.add(`recovered${recovery.repairedTail === null ? "" : " after cutting a torn tail"} (${choice.recomputeChecksums ? "re-checksummed" : "raw"} damage)`);
      });
      return await checkProperty(this, options, property, options.count, 1, stats);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  },
};
