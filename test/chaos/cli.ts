// npm run chaos -- --seed S --time SECONDS --nodes 3|5 --faults kill,pause,partition,... [--clients N] [--locks N] [--keep]
//
// Runs one chaos run (run.ts) and prints what it did and found. A failing run keeps everything in one
// folder (the nemesis schedule, every client's history, every node's log and data directory) and prints
// the command that reruns the same schedule.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { machineSupports } from "./cluster.js";
import { type FaultKind, faultKinds } from "./nemesis.js";
import { runChaos } from "./run.js";

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

function parse(argv: readonly string[]): { seed: number; timeS: number; nodes: number; faults: FaultKind[]; clients: number; locks: number; keep: boolean; dir: string | null } {
  const values = new Map<string, string>();
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--keep") keep = true;
    else if (arg.startsWith("--") && argv[i + 1] !== undefined) values.set(arg.slice(2), argv[++i]!);
    else fail(`unexpected argument "${arg}"; usage: npm run chaos -- --seed S --time SECONDS --nodes 3|5 --faults ${faultKinds.join(",")}`);
  }
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const value = Number(values.get(name) ?? fallback);
    if (!Number.isSafeInteger(value) || value < min || value > max) fail(`--${name} must be an integer from ${min} to ${max}`);
    return value;
  };
  const faultList = (values.get("faults") ?? "all") === "all" ? [...faultKinds] : values.get("faults")!.split(",");
  for (const fault of faultList) if (!(faultKinds as readonly string[]).includes(fault)) fail(`unknown fault "${fault}"; known: ${faultKinds.join(", ")} (or all)`);
  const nodes = integer("nodes", 3, 3, 5);
  if (nodes !== 3 && nodes !== 5) fail("--nodes must be 3 or 5");
  return {
    seed: integer("seed", Date.now() % 1_000_000, 0, 0xffff_ffff),
    timeS: integer("time", 60, 1, 24 * 3600),
    nodes,
    faults: faultList as FaultKind[],
    clients: integer("clients", 5, 1, 64),
    locks: integer("locks", 3, 1, 64),
    keep,
    dir: values.get("dir") ?? null,
  };
}

const options = parse(process.argv.slice(2));
const runDir = options.dir ?? mkdtempSync(join(tmpdir(), `raftlock-chaos-${options.seed}-`));
mkdirSync(runDir, { recursive: true });
// Faults that need the machine's help are left out, with the reason, when it cannot give it.
const unsupported = machineSupports(runDir);
for (const fault of ["clock", "disk"] as const) {
  const reason = unsupported[fault];
  if (reason === null || !options.faults.includes(fault)) continue;
  process.stdout.write(`chaos: the ${fault} fault is left out: ${reason}\n`);
  options.faults = options.faults.filter((kind) => kind !== fault);
}
const rerun = `npm run chaos -- --seed ${options.seed} --time ${options.timeS} --nodes ${options.nodes} --faults ${options.faults.join(",")} --clients ${options.clients} --locks ${options.locks}`;
process.stdout.write(`chaos: seed ${options.seed}, ${options.nodes} nodes, ${options.clients} clients on ${options.locks} locks, ${options.timeS} s; run folder ${runDir}\n`);

/** Setup, healing, settling and checking take well under this beyond the fault time; more means a hang. */
const overrunMs = 180_000;
const watchdog = setTimeout(() => {
  process.stdout.write(`chaos: the run did not finish within ${overrunMs / 1000} s of its fault time; something hangs\nchaos: everything is in ${runDir}\nchaos: rerun with: ${rerun}\n`);
  process.exit(1);
}, options.timeS * 1000 + overrunMs);
watchdog.unref();

let exitCode = 0;
try {
  const report = await runChaos({ ...options, runDir }, (line) => process.stdout.write(`chaos: ${line}\n`));
  for (const [name, value] of Object.entries(report.stats)) process.stdout.write(`  ${name}: ${value}\n`);
  writeFileSync(join(runDir, "report.json"), JSON.stringify(report, null, 2));
  if (report.violations.length > 0) {
    exitCode = 1;
    process.stdout.write(`chaos: ${report.violations.length} violation(s):\n${report.violations.map((violation) => `  - ${violation}`).join("\n")}\n`);
  } else {
    process.stdout.write("chaos: every check passed\n");
  }
} catch (error) {
  exitCode = 1;
  process.stdout.write(`chaos: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
}
if (exitCode !== 0) {
  process.stdout.write(`chaos: everything is in ${runDir}\nchaos: rerun with: ${rerun}\n`);
} else if (!options.keep) {
  rmSync(runDir, { recursive: true, force: true });
}
process.exit(exitCode);
