// Errors the storage layer reports to the node driver and, through its log, to the operator. Each one says
// what happened, where, and what the operator can do; bugs are assertions (src/util/assert.ts), not these.

/** An expected failure of the storage layer: bad options, an oversized value, a failed write. */
export class StorageError extends Error {
  override name = "StorageError";
}

/**
 * What an operator can do about a damaged log or snapshot. Deleting files by hand is not among the options:
 * the log holds the votes and entries this node promised to the cluster, and a node that forgets them can
 * elect a second leader in one term or lose a committed entry.
 */
export const corruptionAdvice =
  "raftlock will not start on data it cannot trust. Keep the damaged file for diagnosis, then either restore " +
  "this node's data directory from a backup, or remove the node from the cluster, empty its data directory " +
  "and add it back so that it catches up from the leader. Do not delete or edit files by hand.";

/** Durable state that fails its checks and is not a torn tail that recovery may cut: the node refuses to start. */
export class StorageCorruptError extends StorageError {
  override name = "StorageCorruptError";

  constructor(
    /** Path of the damaged file (or of the data directory when the damage is a missing file). */
    readonly file: string,
    /** Byte offset of the damage in `file`, or null when the problem is not at one place. */
    readonly offsetBytes: number | null,
    /** What is wrong, as a sentence fragment: "the record's checksum does not match its contents". */
    readonly problem: string,
  ) {
    const where = offsetBytes === null ? file : `${file} at byte ${offsetBytes}`;
    super(`damaged durable state in ${where}: ${problem}. ${corruptionAdvice}`);
  }
}
