// Long fuzz runs: `npm run fuzz -- --target resp|peer|wal|snapshot|http|all --count N --seed S [--path P]`.
// A target is a group of parts (`resp` = `resp-reader` and `resp-server`); a part can be named alone, as
// the replay command of a failure does. Every part runs `--count` inputs, one part at a time. Exits 1 on
// a failure, 2 on a usage error.

import { fuzzTargets, partsOf } from "./parts.js";
import type { FuzzReport } from "./run.js";

const usage = `usage: npm run fuzz -- --target <${Object.keys(fuzzTargets).join("|")}|part> [--count N] [--seed S] [--path P]
  --count  inputs per part (default 10000)
  --seed   fast-check seed (default: random, printed)
  --path   counterexample path of a failure to replay (with its seed and count)`;

/** Inputs per part when --count is not given. */
const countDefault = 10_000;

function parseArgs(argv: readonly string[]): { target: string; count: number; seed: number; path: string | undefined } {
  const values = new Map<string, string>();
  for (let k = 0; k < argv.length; k += 2) {
    const name = argv[k];
    const value = argv[k + 1];
    if (name === undefined || !name.startsWith("--") || value === undefined) throw new Error(`expected --name value pairs (got ${JSON.stringify(argv.slice(k))})`);
    values.set(name.slice(2), value);
  }
  for (const name of values.keys()) if (!["target", "count", "seed", "path"].includes(name)) throw new Error(`unknown option --${name}`);
  const target = values.get("target");
  if (target === undefined) throw new Error("--target is required");
  const count = Number(values.get("count") ?? countDefault);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`--count must be a positive integer (got ${values.get("count")})`);
  const seed = Number(values.get("seed") ?? Math.floor(Math.random() * 2 ** 31));
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer (got ${values.get("seed")})`);
  return { target, count, seed, path: values.get("path") };
}

function printReport(report: FuzzReport): void {
  const seconds = (report.durationMs / 1000).toFixed(1);
  const rate = Math.round(report.inputs / (report.durationMs / 1000));
  console.log(`${report.failure === null ? "PASS" : "FAIL"} ${report.part}: ${report.inputs} ${report.inputsAre}, seed ${report.seed}, ${seconds} s (${rate}/s)`);
  for (const [name, value] of Object.entries(report.stats)) console.log(`       ${name}: ${value}`);
  if (report.failure !== null) {
    console.log(`  failure: ${report.failure.message}`);
    console.log(`  counterexample: ${report.failure.counterexample.slice(0, 4000)}`);
    console.log(`  replay: ${report.failure.replay}`);
  }
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  const parts = partsOf(args.target);
  if (parts === null) {
    console.error(`unknown target "${args.target}"\n${usage}`);
    return 2;
  }
  // Anything thrown outside a property (a crash of the code under test in a callback) fails the run.
  const crashes: unknown[] = [];
  process.on("uncaughtException", (error) => crashes.push(error));
  process.on("unhandledRejection", (error) => crashes.push(error));
  let failed = false;
  for (const part of parts) {
    console.log(`running ${part.name}: ${args.count} ${part.inputsAre}, seed ${args.seed}`);
    const report = await part.run({ count: args.count, seed: args.seed, ...(args.path === undefined ? {} : { path: args.path }) });
    printReport(report);
    if (report.failure !== null) failed = true;
    if (crashes.length > 0) {
      console.log(`FAIL ${part.name}: uncaught errors: ${crashes.map((error) => (error instanceof Error ? error.stack : String(error))).join("\n")}`);
      crashes.length = 0;
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

// Node ends a process whose top-level await can no longer settle with code 13 and no word: say what it means.
process.on("exit", (code) => {
  if (code === 13) console.log("FAIL: the run stalled with nothing left to wait for (a connection or promise the code under test never settled)");
});
process.exitCode = await main();
