// What every fuzz part shares: its options, its report, and running a fast-check property so that a
// failure comes back as a replay command instead of an exception.

import fc from "fast-check";
import { type Level, type Logger, pino } from "pino";

export interface FuzzOptions {
  /** Inputs to feed; a part that sends several inputs per property run divides by its batch size. */
  readonly count: number;
  readonly seed: number;
  /** fast-check's counterexample path of an earlier failure: replays just that case (with the same seed). */
  readonly path?: string;
}

export interface FuzzFailure {
  readonly message: string;
  readonly counterexample: string;
  readonly replay: string;
}

export interface FuzzReport {
  readonly part: string;
  /** What one input is, for the summary: "RESP inputs to the request reader". */
  readonly inputsAre: string;
  readonly inputs: number;
  readonly seed: number;
  readonly durationMs: number;
  readonly failure: FuzzFailure | null;
  /** Counts worth reporting besides pass/fail (how many inputs were refused, connections closed...). */
  readonly stats: Readonly<Record<string, number>>;
}

export interface FuzzPart {
  readonly name: string;
  readonly inputsAre: string;
  run(options: FuzzOptions): Promise<FuzzReport>;
}

/** Counters a property bumps while it runs; reported next to the input count. */
export class Stats {
  private readonly counts = new Map<string, number>();

  add(name: string, by = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + by);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** The command that replays one failing case of `part`. */
export function replayCommand(part: string, seed: number, path: string | null, count: number): string {
  return `npm run fuzz -- --target ${part} --count ${count} --seed ${seed}${path === null ? "" : ` --path ${path}`}`;
}

/**
 * Runs `property` `runs` times and reports. `inputsPerRun` converts runs back to inputs for the summary;
 * `count` (the inputs asked for) goes into the replay command so that the replay draws the same cases.
 */
export async function checkProperty<T>(
  part: FuzzPart,
  options: FuzzOptions,
  property: fc.IProperty<T> | fc.IAsyncProperty<T>,
  runs: number,
  inputsPerRun: number,
  stats: Stats,
): Promise<FuzzReport> {
  const startedMs = performance.now();
  const details = await fc.check(property as fc.IAsyncProperty<T>, {
    numRuns: runs,
    seed: options.seed,
    ...(options.path === undefined ? {} : { path: options.path }),
    // Shrinking a batch of socket exchanges takes minutes; their failures name the one input that failed.
    endOnFailure: property.isAsync(),
  });
  const durationMs = performance.now() - startedMs;
  let failure: FuzzFailure | null = null;
  if (details.failed) {
    const error = details.errorInstance;
    failure = {
      message: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ""}` : String(error),
      counterexample: fc.stringify(details.counterexample),
      replay: replayCommand(part.name, options.seed, details.counterexamplePath, options.count),
    };
  }
  return {
    part: part.name,
    inputsAre: part.inputsAre,
    inputs: (details.failed ? details.numRuns : runs) * inputsPerRun,
    seed: options.seed,
    durationMs,
    failure,
    stats: stats.snapshot(),
  };
}


/**
 * A logger at `level` for the code under test, and the error-level lines it writes (message, then error
 * message): no input may make that code log an error, so a part fails on any.
 */
export function errorLogCapture(level: Level): { logger: Logger; errorLogs: string[] } {
  const errorLogs: string[] = [];
  const logger = pino({ level }, { write: (line: string) => {
    const parsed = JSON.parse(line) as { level: number; msg: string; err?: { message?: string } };
    if (parsed.level >= 50) errorLogs.push(`${parsed.msg}: ${parsed.err?.message ?? ""}`);
  } });
  return { logger, errorLogs };
}

/** Hex of at most the first `bytesMax` bytes, for failure messages. */
export function hexPreview(bytes: Uint8Array, bytesMax = 64): string {
  const hex = Buffer.from(bytes.subarray(0, bytesMax)).toString("hex");
  return bytes.length > bytesMax ? `${hex}... (${bytes.length} bytes)` : hex;
}
