// Command line of `npm run bench -- [suite] [--flag value ...]`.
import { scenarios, type ScenarioId } from "./scenarios.js";
import { type FailoverKind, failoverKinds } from "./suites/failover.js";

export const suites = ["cycles", "failover", "restart", "memory", "all", "chart"] as const;
export type Suite = (typeof suites)[number];

export interface BenchOptions {
  readonly suite: Suite;
  readonly clients: readonly number[];
  readonly durationS: number;
  readonly warmupS: number;
  readonly generators: number;
  readonly compare: readonly ("etcd" | "redis")[];
  readonly scenarios: readonly ScenarioId[];
  /** An existing cluster's HTTP addresses (and RESP addresses, same order) instead of a local one. */
  readonly httpEndpoints: readonly string[];
  readonly respEndpoints: readonly string[];
  readonly contendedLocks: number;
  readonly lockTtlMs: number;
  readonly waitMs: number;
  readonly jsonPath: string | null;
  readonly chartPath: string;
  readonly rounds: number;
  readonly failoverClients: number;
  readonly failoverKinds: readonly FailoverKind[];
  readonly logEntries: number;
  readonly snapshotLocks: number;
  readonly memoryLocks: number;
  readonly fromPath: string | null;
  /** Longest wait for a quiet machine before each figure. */
  readonly quietWaitS: number;
  /** Rewrite the "Latest results" section of bench/README.md from this run (or from `chart --from`). */
  readonly updateReadme: boolean;
}

export const usage = `usage: npm run bench -- [${suites.join("|")}] [options]
  cycles (default)       the table: lock cycles, keepalives and reads at each client count (+ --compare)
  failover               kill -9 / SIGTERM / partition of the leader under load: time until lock cycles succeed again
  restart                restart time with --log-entries log entries, and with a snapshot of --snapshot-locks locks
  memory                 resident memory per held lock
  all                    all of the above into one JSON file
  chart --from F.json    draw the chart again from a results file (F.json,G.json: G's suites replace F's)
options:
  --clients 1,16,64,256  concurrent clients (each its own connection)
  --duration 10          seconds measured per figure, after --warmup 2 seconds
  --generators 2         Node load generator processes (clients are dealt among them)
  --compare etcd,redis   also run the cycle against a local 3-member etcd / a redis-server (appendfsync always)
  --scenarios a,b        only these (${scenarios.map((scenario) => scenario.id).join(", ")})
  --endpoints h:p,...    HTTP addresses of an existing cluster (with --resp-endpoints h:p,... in the same order)
  --contended-locks 4    shared locks of the *-contended scenarios
  --json PATH            results file (default bench/results/<date>-<suite>.json)
  --chart PATH           chart file (default bench/chart.svg)
  --rounds 5             failover rounds per kind;  --failover-clients 16
  --failover-kinds ${failoverKinds.join(",")}   what happens to the leader (default: all three)
  --log-entries 1000000  --snapshot-locks 1000000  --memory-locks 100000
  --update-readme        rewrite the "Latest results" section of bench/README.md from this run
  --quiet-wait 300       before each figure, wait up to this many seconds until other processes are idle
  --lock-ttl-ms 30000    --wait-ms 10000 (blocking acquires of the contended scenarios)`;

function numberList(text: string, flag: string): number[] {
  const values = text.split(",").map(Number);
  if (values.some((value) => !Number.isSafeInteger(value) || value < 1)) throw new Error(`--${flag} wants positive integers separated by commas (got "${text}")`);
  return values;
}

function positive(text: string, flag: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`--${flag} wants a positive number (got "${text}")`);
  return value;
}

/** The options of `argv` (after `bench/cli.ts`), checked; throws with the usage on a bad one. */
export function parseOptions(argv: readonly string[]): BenchOptions {
  const values = new Map<string, string[]>();
  let suite: Suite = "cycles";
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k]!;
    if (arg === "--help" || arg === "-h") throw new Error(usage);
    if (arg === "--update-readme") continue;
    if (!arg.startsWith("--")) {
      if (!(suites as readonly string[]).includes(arg)) throw new Error(`unknown suite "${arg}"\n${usage}`);
      suite = arg as Suite;
      continue;
    }
    const value = argv[k + 1];
    if (value === undefined) throw new Error(`${arg} wants a value\n${usage}`);
    values.set(arg.slice(2), [...(values.get(arg.slice(2)) ?? []), value]);
    k++;
  }
  const known = new Set(["clients", "duration", "warmup", "generators", "compare", "scenarios", "endpoints", "resp-endpoints", "contended-locks", "json", "chart", "rounds", "failover-clients", "failover-kinds", "log-entries", "snapshot-locks", "memory-locks", "from", "lock-ttl-ms", "wait-ms", "quiet-wait"]);
  for (const flag of values.keys()) if (!known.has(flag)) throw new Error(`unknown option --${flag}\n${usage}`);
  const one = (flag: string): string | undefined => values.get(flag)?.at(-1);
  const compare = (values.get("compare") ?? []).flatMap((value) => value.split(","));
  for (const system of compare) if (system !== "etcd" && system !== "redis") throw new Error(`--compare takes etcd or redis (got "${system}")`);
  const chosen = one("scenarios")?.split(",") ?? scenarios.filter((scenario) => scenario.system === "raftlock").map((scenario) => scenario.id);
  for (const id of chosen) if (!scenarios.some((scenario) => scenario.id === id)) throw new Error(`unknown scenario "${id}"\n${usage}`);
  const withCompared = [...chosen, ...(compare.includes("etcd") ? ["etcd-cycle"] : []), ...(compare.includes("redis") ? ["redis-cycle"] : [])];
  const kinds = one("failover-kinds")?.split(",") ?? [...failoverKinds];
  for (const kind of kinds) if (!(failoverKinds as readonly string[]).includes(kind)) throw new Error(`--failover-kinds takes ${failoverKinds.join(", ")} (got "${kind}")`);
  const httpEndpoints = one("endpoints")?.split(",") ?? [];
  const respEndpoints = one("resp-endpoints")?.split(",") ?? [];
  if (httpEndpoints.length !== respEndpoints.length) throw new Error("--endpoints and --resp-endpoints name the same nodes, in the same order");
  return {
    suite,
    clients: numberList(one("clients") ?? "1,16,64,256", "clients"),
    durationS: positive(one("duration") ?? "10", "duration"),
    warmupS: Number(one("warmup") ?? "2"),
    generators: Math.round(positive(one("generators") ?? "2", "generators")),
    compare: compare as ("etcd" | "redis")[],
    scenarios: [...new Set(withCompared)] as ScenarioId[],
    httpEndpoints,
    respEndpoints,
    contendedLocks: Math.round(positive(one("contended-locks") ?? "4", "contended-locks")),
    lockTtlMs: Math.round(positive(one("lock-ttl-ms") ?? "30000", "lock-ttl-ms")),
    waitMs: Math.round(positive(one("wait-ms") ?? "10000", "wait-ms")),
    jsonPath: one("json") ?? null,
    chartPath: one("chart") ?? new URL("./chart.svg", import.meta.url).pathname,
    rounds: Math.round(positive(one("rounds") ?? "5", "rounds")),
    failoverClients: Math.round(positive(one("failover-clients") ?? "16", "failover-clients")),
    failoverKinds: [...new Set(kinds)] as FailoverKind[],
    logEntries: Math.round(positive(one("log-entries") ?? "1000000", "log-entries")),
    snapshotLocks: Math.round(positive(one("snapshot-locks") ?? "1000000", "snapshot-locks")),
    memoryLocks: Math.round(positive(one("memory-locks") ?? "100000", "memory-locks")),
    fromPath: one("from") ?? null,
    quietWaitS: Number(one("quiet-wait") ?? "300"),
    updateReadme: argv.includes("--update-readme"),
  };
}
