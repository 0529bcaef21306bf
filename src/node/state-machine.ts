import type { Entry } from "../raft/types.js";

/**
 * What the driver applies committed entries to. Deterministic: the same entries in the same order give
 * byte-identical snapshots on every node, and nothing in it reads a clock.
 */
export interface StateMachine {
  /** Applies one committed entry (never an empty leader entry); returns the reply for its proposer. */
  apply(entry: Entry): Uint8Array;
  /** The whole state, for a snapshot at the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void;
}
