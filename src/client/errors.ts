// The errors a raftlock client sees: the server's `-CODE message` replies keep their code, and the client's
// own failures (connection lost, request timed out, lock lost) have codes of their own.

/** Server codes that mean "the cluster had no leader or could not commit": the request may be retried. */
const unavailableCodes = new Set(["NOLEADER", "TIMEOUT", "LEADERLOST"]);

/** An error with a code: the server's (`NOLEADER`, `TIMEOUT`, `NOSESSION`, `ERR`, ...) or the client's own (`CONNECTION`, `REQUESTTIMEOUT`, `LOCKLOST`, `CLOSED`). */
export class RaftlockError extends Error {
  override readonly name = "RaftlockError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** Whether the cluster (or the link to it) was unavailable, rather than the request being refused. */
  get unavailable(): boolean {
    return unavailableCodes.has(this.code) || this.code === "CONNECTION" || this.code === "REQUESTTIMEOUT";
  }

  /** Whether the outcome is unknown: the request may or may not have been applied (`TIMEOUT`, a lost connection, a request timeout). */
  get outcomeUnknown(): boolean {
    return this.code === "TIMEOUT" || this.code === "LEADERLOST" || this.code === "CONNECTION" || this.code === "REQUESTTIMEOUT";
  }
}

/** Turns a `-CODE message` error reply into a RaftlockError with that code. */
export function errorFromReply(text: string): RaftlockError {
  const space = text.indexOf(" ");
  const code = space < 0 ? text : text.slice(0, space);
  return new RaftlockError(/^[A-Z]+$/.test(code) ? code : "ERR", text);
}
