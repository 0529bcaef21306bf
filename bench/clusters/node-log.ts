// What a node printed: the last lines for error messages, and a count of warnings and errors by message
// (pino JSON lines, level 40 and above) and of role changes, so that a benchmark run says what went wrong
// inside the nodes.

/** Output kept for error messages; older output is dropped. */
const tailBytesMax = 64 * 1024;
/** Distinct warning messages counted; later new ones are folded into one bucket. */
const distinctMessagesMax = 100;
/** pino's numeric level of `warn`. */
const warnLevel = 40;

export class NodeLog {
  private tail = "";
  private partialLine = "";
  readonly warnings = new Map<string, number>();
  /** Wall-clock time (pino's `time`, epoch ms) each message was first logged at, for start-up phases. */
  readonly firstLoggedAtMs = new Map<string, number>();
  /** When the node first logged that it knows a leader (a "raft state changed" with one), epoch ms. */
  leaderKnownAtMs: number | null = null;

  append(chunk: Buffer): void {
    const text = chunk.toString("utf8");
    this.tail = (this.tail + text).slice(-tailBytesMax);
    const lines = (this.partialLine + text).split("\n");
    this.partialLine = lines.pop() ?? "";
    for (const line of lines) this.count(line);
  }

  lastLines(count: number): string {
    return this.tail.split("\n").slice(-count).join("\n");
  }

  /** Forgets the counts (at the start of a measured window). */
  resetWarnings(): void {
    this.warnings.clear();
  }

  /** Forgets everything counted and timed (before a restart of the node). */
  reset(): void {
    this.warnings.clear();
    this.firstLoggedAtMs.clear();
    this.leaderKnownAtMs = null;
  }

  private count(line: string): void {
    if (!line.startsWith("{")) {
      if (line.trim().length > 0) this.bump(`(not JSON) ${line.slice(0, 120)}`);
      return;
    }
    try {
      const record = JSON.parse(line) as { level?: number; msg?: string; time?: number; leader?: unknown };
      if (this.leaderKnownAtMs === null && record.msg === "raft state changed" && typeof record.leader === "string") this.leaderKnownAtMs = record.time ?? null;
      if (record.msg !== undefined && record.time !== undefined && !this.firstLoggedAtMs.has(record.msg) && this.firstLoggedAtMs.size < distinctMessagesMax) {
        this.firstLoggedAtMs.set(record.msg, record.time);
      }
      if ((record.level ?? 0) >= warnLevel) this.bump(`${record.level! >= 50 ? "error" : "warn"}: ${record.msg ?? "(no message)"}`);
      // Role changes are logged at info: counted too, so that an election under load says who started it.
      else if (record.msg === "raft state changed") this.bump(`info: raft state changed to ${String((record as { role?: unknown }).role)}`);
    } catch {
      this.bump(`(unparsable) ${line.slice(0, 120)}`);
    }
  }

  private bump(key: string): void {
    const bucket = this.warnings.has(key) || this.warnings.size < distinctMessagesMax ? key : "(other messages)";
    this.warnings.set(bucket, (this.warnings.get(bucket) ?? 0) + 1);
  }
}
