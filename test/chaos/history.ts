// What a chaos client records of each operation: one JSON line per operation in its history file.

/** Lease of every lock a client takes: long enough to outlive a failover, short enough to expire in a run. */
export const clientLockTtlMs = 2_000;
/** Session TTL, kept alive every third of it. */
export const clientSessionTtlMs = 3_000;

export type Outcome = { type: "ok"; value: unknown } | { type: "fail"; error: string } | { type: "unknown"; error: string };

/** One line of a client's history. */
export interface ClientRecord {
  readonly client: string;
  readonly seq: number;
  readonly key: string;
  readonly kind: "acquire" | "release" | "refresh" | "read" | "write" | "session-open" | "keepalive";
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly outcome: Outcome;
  readonly port: number;
  /** For writes: the token written with. */
  readonly token?: number;
}
