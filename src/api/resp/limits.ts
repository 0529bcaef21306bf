// Every bound of the RESP server in one place, each checked where data enters: the request reader checks
// the sizes and counts of requests, the connection its replies and output, the server its connections.

export interface RespLimits {
  /** Client connections at once; one more is answered `-ERR max number of clients reached` and closed. */
  readonly connectionsMax: number;
  /** Arguments of one request, the command name included (a multibulk count or the words of an inline line). */
  readonly argumentsMax: number;
  /** Bytes of one argument: checked against the `$<length>` header before any of it is buffered. */
  readonly bulkBytesMax: number;
  /** Bytes of all arguments of one request together: what one request can make the parser buffer. */
  readonly requestBytesMax: number;
  /** Bytes of one inline request (a line of words typed into `nc` or telnet), without its line ending. */
  readonly inlineBytesMax: number;
  /** A connection with nothing to read or write for this long is closed; 0 = never (as Redis's `timeout 0`). */
  readonly idleTimeoutMs: number;
  /**
   * Requests of one connection read but not yet answered. At the limit the connection stops reading (the
   * kernel's buffers then push back on the client) until an answer has gone out.
   */
  readonly pendingRepliesMax: number;
  /** Reply bytes waiting for the socket above which the connection stops reading requests until they drain. */
  readonly outputBytesSoftMax: number;
  /**
   * Reply bytes waiting for the socket above which the connection is closed. Only data nobody asked for
   * (push messages to a client that does not read) can grow past `outputBytesSoftMax`; Redis closes such
   * a pub/sub client at 32 MiB too.
   */
  readonly outputBytesMax: number;
}

export const respLimitsDefault: RespLimits = {
  connectionsMax: 10_000,
  argumentsMax: 1024,
  // Names, owners and values are at most a few KiB (src/fsm/limits.ts); a Raft proposal at most 1 MiB.
  bulkBytesMax: 1 << 20,
  requestBytesMax: 4 << 20,
  inlineBytesMax: 64 << 10,
  idleTimeoutMs: 0,
  pendingRepliesMax: 1024,
  outputBytesSoftMax: 64 << 10,
  outputBytesMax: 32 << 20,
};

/** The defaults with `overrides` applied; throws an Error naming the first inconsistent limit. */
export function resolveRespLimits(overrides: Partial<RespLimits> = {}): RespLimits {
  const limits: RespLimits = { ...respLimitsDefault, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    const smallest = name === "idleTimeoutMs" ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < smallest) {
      throw new Error(`RESP limit ${name} must be an integer of at least ${smallest} (got ${String(value)})`);
    }
  }
  const checks: [boolean, string][] = [
    [limits.argumentsMax >= 2, "argumentsMax must allow a command and one argument (at least 2)"],
    [limits.bulkBytesMax <= limits.requestBytesMax, "bulkBytesMax must not exceed requestBytesMax"],
    [
      limits.outputBytesSoftMax + limits.bulkBytesMax < limits.outputBytesMax,
      "outputBytesMax must exceed outputBytesSoftMax + bulkBytesMax: one reply echoing an argument may go out past the soft limit",
    ],
  ];
  for (const [ok, message] of checks) if (!ok) throw new Error(`RESP limits: ${message}`);
  return limits;
}
