// The replicated application of the simulation: an append-only list of client values.
// Small and deterministic, so that two nodes that applied the same prefix hold byte-identical state,
// and so that "is every acknowledged value on every node" is a direct lookup.

import { EntryType, type Entry } from "../../src/raft/types.js";
import { hashBytes, hashNumbers } from "./hash.js";
import { InvariantViolation } from "./invariants.js";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeValue(value: string): Uint8Array {
  return textEncoder.encode(value);
}

export function decodeValue(data: Uint8Array): string {
  return textDecoder.decode(data);
}

interface SnapshotBody {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  readonly stateHash: number;
  readonly values: readonly string[];
}

export class ValueLog {
  /** Index of the last entry applied (or covered by the restored snapshot), Empty entries included. */
  appliedIndex = 0;
  appliedTerm = 0;
  /** Rolling hash over the applied values in order; equal on two nodes iff they applied the same values. */
  stateHash = 0;
  private readonly values: string[] = [];
  private readonly valueSet = new Set<string>();

  /** Applies the next committed entry; the caller has checked that it is `appliedIndex + 1`. */
  apply(entry: Entry): void {
    this.appliedIndex = entry.index;
    this.appliedTerm = entry.term;
    if (entry.type !== EntryType.Normal) return; // empty and configuration entries carry no value
    const value = decodeValue(entry.data);
    this.values.push(value);
    this.valueSet.add(value);
    this.stateHash = hashNumbers(this.stateHash, hashBytes(entry.data));
  }

  has(value: string): boolean {
    return this.valueSet.has(value);
  }

  get count(): number {
    return this.values.length;
  }

  appliedValues(): readonly string[] {
    return this.values;
  }

  snapshot(): Uint8Array {
    const body: SnapshotBody = {
      appliedIndex: this.appliedIndex,
      appliedTerm: this.appliedTerm,
      stateHash: this.stateHash,
      values: this.values,
    };
    return textEncoder.encode(JSON.stringify(body));
  }

  static restore(data: Uint8Array): ValueLog {
    const body = JSON.parse(textDecoder.decode(data)) as SnapshotBody;
    const log = new ValueLog();
    log.appliedIndex = body.appliedIndex;
    log.appliedTerm = body.appliedTerm;
    for (const value of body.values) {
      log.values.push(value);
      log.valueSet.add(value);
      log.stateHash = hashNumbers(log.stateHash, hashBytes(encodeValue(value)));
    }
    // Recomputed rather than trusted, so a snapshot that lost or reordered values fails the check below.
    if (log.stateHash !== body.stateHash) {
      throw new InvariantViolation(`snapshot at index ${body.appliedIndex} is corrupt: its values do not hash to its stateHash`);
    }
    return log;
  }
}
