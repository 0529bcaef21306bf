// One chaos run: a real cluster behind its fault network, client processes, watch streams and the fenced
// resource; the nemesis (membership changes included) for the given time; then heal, settle the
// membership, and check everything that was recorded.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Prng } from "../sim/prng.js";
import { type ClientRecord, clientSessionTtlMs } from "./history.js";
import { ChaosCluster } from "./cluster.js";
import { checkClientsAgainstHistory, checkLockHistories } from "./checkers/locks.js";
import { checkLockHistory, type HistoryOp, type Outcome as LinearOutcome } from "./checkers/linearizability.js";
import { checkMembershipHistory } from "./checkers/membership.js";
import { checkRaftLogs, leadersSeen } from "./checkers/raft-logs.js";
import { checkSessions } from "./checkers/sessions.js";
import { checkWatchStreams, mergeWatchHistories } from "./checkers/watch.js";
import { type FaultKind, Nemesis } from "./nemesis.js";
import { FencedResource } from "./resource.js";
import { waitFor } from "../e2e/harness.js";
import { Watcher } from "./watchers.js";

const repoRoot = new URL("../..", import.meta.url).pathname;
/** How long the cluster may take to elect a leader at the start and after the faults are healed. */
const settleMs = 30_000;
/** After healing, how long clients go on: lock cycles must succeed again within it. */
const recoveryMs = 5_000;
/** How long a client process may take to finish its operation in flight once told to stop. */
const clientStopMs = 10_000;
/** How long the watch streams may take to deliver the last events once the cluster has settled. */
const watchDrainMs = 10_000;

export interface ChaosOptions {
  readonly seed: number;
  readonly timeS: number;
  readonly nodes: number;
  readonly faults: readonly FaultKind[];
  readonly clients: number;
  readonly locks: number;
  readonly runDir: string;
}

export interface ChaosReport {
  readonly violations: string[];
  readonly stats: Record<string, number | string>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function runChaos(options: ChaosOptions, log: (line: string) => void): Promise<ChaosReport> {
  if (!existsSync(join(repoRoot, "dist", "cli.js"))) throw new Error("dist/cli.js is missing: run `npm run build` first");
  const random = new Prng(options.seed);
  const locks = Array.from({ length: options.locks }, (_, k) => `chaos-${k + 1}`);
  const cluster = await ChaosCluster.start(options.runDir, options.nodes, { clock: options.faults.includes("clock"), disk: options.faults.includes("disk") });
  const resource = await FencedResource.start();
  const watchers: Watcher[] = [];
  const clients: ChildProcess[] = [];
  const violations: string[] = [];
  const stats: Record<string, number | string> = {};
  // Every node is watched from its first start; a node's streams end when it is discarded.
  const watch = (id: string): void => {
    for (const channel of ["raft:leader", ...locks.map((lock) => `lock:${lock}`)]) watchers.push(new Watcher(id, () => cluster.node(id).httpPort, channel));
  };
  const closing: Promise<void>[] = [];
  const targetsFile = join(options.runDir, "targets.json");
  const writeTargets = (ids: readonly string[]): void => {
    // Replaced whole, so a client never reads half a list.
    writeFileSync(`${targetsFile}.next`, JSON.stringify(ids.map((id) => cluster.node(id).respPort)));
    renameSync(`${targetsFile}.next`, targetsFile);
  };
  try {
    await waitFor(async () => (await cluster.agreedLeader()) ?? undefined, settleMs, "a first leader");
    for (const id of cluster.ids) watch(id);
    writeTargets(cluster.ids);
    for (let k = 1; k <= options.clients; k++) {
      const clientId = `c${k}`;
      const args = ["--import", "tsx", join(repoRoot, "test", "chaos", "client.ts"), "--id", clientId, "--targets", targetsFile, "--locks", locks.join(","),
        "--resource-port", String(resource.port), "--seed", String(random.nextUint32()), "--out", join(options.runDir, `${clientId}.jsonl`)];
      const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
      const output = createWriteStream(join(options.runDir, `${clientId}.out`));
      child.stdout?.pipe(output);
      child.stderr?.pipe(output);
      clients.push(child);
    }

    const nemesis = new Nemesis(cluster, random.fork("nemesis"), options.faults, join(options.runDir, "nemesis.jsonl"), {
      started: watch,
      targetsChanged: writeTargets,
      discarded: (id) => {
        for (const watcher of watchers) if (watcher.nodeId === id) closing.push(watcher.close());
      },
    });
    log(`faults for ${options.timeS} s: ${options.faults.join(", ")}`);
    await nemesis.run(performance.now() + options.timeS * 1000);
    stats["faults"] = [...nemesis.counts].map(([kind, count]) => `${kind} ${count}`).join(", ");
    if (options.faults.includes("disk")) stats["nodes stopped by a full disk"] = nemesis.diskStops;

    // Healed: the membership settled (every member a running voter, every running node a member: a node
    // whose removal committed after the nemesis gave up on it would never agree on the leader), a leader
    // again, and lock cycles succeed again.
    const healedAtMs = performance.timeOrigin + performance.now();
    const membership = nemesis.membership;
    if (membership !== null) {
      const settled = await membership.reconcile(performance.now() + settleMs);
      if (settled === null) violations.push(`liveness: the membership did not settle within ${settleMs / 1000} s of healing (see nemesis.jsonl)`);
      else stats["members at the end"] = settled.members.map((member) => member.id).join(",");
      stats["membership changes"] = [...membership.counts].map(([what, count]) => `${what} ${count}`).join(", ");
    }
    await waitFor(async () => (await cluster.agreedLeader()) ?? undefined, settleMs, "a leader after healing").catch((error: Error) => violations.push(`liveness: ${error.message}`));
    await sleep(recoveryMs);
    for (const child of clients) child.kill("SIGTERM");
    await Promise.all(clients.map((child) => exitOf(child, clientStopMs)));

    // Settled: every member has applied the same entries into the same state.
    const hashes = await waitFor(async () => {
      const all = await Promise.all(cluster.ids.map(async (id) => (await cluster.httpGet<{ index: number; hash: string }>(id, "/v1/cluster/hash")).body));
      return all.every((hash) => hash.index === all[0]!.index && hash.hash === all[0]!.hash) ? all[0]! : undefined;
    }, settleMs, "the same state hash on every member").catch((error: Error) => {
      violations.push(`replicas diverge or never converge: ${error.message}`);
      return null;
    });
    if (hashes !== null) stats["final applied index"] = hashes.index;
    // Every member is at the same state, so once drained the streams of one channel end at the same event.
    // A stream that never gets there is left to the watch checker, which says what it missed.
    const drained = (): boolean => {
      const lastOfChannel = new Map<string, string>();
      for (const watcher of watchers) {
        if (!watcher.open) continue;
        const last = lastOfChannel.get(watcher.channel);
        if (last === undefined) lastOfChannel.set(watcher.channel, watcher.lastEventId);
        else if (last !== watcher.lastEventId) return false;
      }
      return true;
    };
    await waitFor(drained, watchDrainMs, "every watch stream delivers the last events").catch(() => undefined);
    for (const watcher of watchers) await watcher.close();
    await Promise.all(closing);

    const records = readClientRecords(options);
    const afterHeal = records.filter((record) => record.kind === "acquire" && record.outcome.type === "ok" && record.completeMs > healedAtMs);
    if (afterHeal.length === 0) violations.push(`liveness: no lock was acquired in the ${recoveryMs} ms after the faults were healed`);

    const streams = watchers.map((watcher) => ({ nodeId: watcher.nodeId, channel: watcher.channel, segments: watcher.segments }));
    const merged = mergeWatchHistories(streams);
    // The cluster's record, for a failure report: one event per line, in log order.
    for (const [channel, events] of merged.histories) {
      writeFileSync(join(options.runDir, `watch-${channel.replace(/[^a-z0-9-]/gi, "_")}.jsonl`), events.map((event) => `${event.data}\n`).join(""));
    }
    violations.push(...merged.violations, ...checkWatchStreams(streams, merged.histories));
    const lockCheck = checkLockHistories(merged.histories);
    violations.push(...lockCheck.violations, ...checkClientsAgainstHistory(records, resource.writes, lockCheck.grants));
    violations.push(...checkRaftLogs(cluster.logEvents));
    violations.push(...checkSessions(records, clientSessionTtlMs));
    if (membership !== null) {
      violations.push(...checkMembershipHistory(membership.observations), ...membership.unexpected.map((answer) => `unexpected answer to a membership request: ${answer}`));
      stats["membership reads and changes"] = membership.observations.length;
    }
    for (const lock of locks) {
      const verdict = checkLockHistory(linearHistory(records.filter((record) => record.key === lock)));
      if (verdict.result === "violation") violations.push(`${lock} is not linearizable: ${verdict.message}`);
      if (verdict.result === "unknown") stats[`${lock} linearizability`] = `not decided: ${verdict.reason}`;
    }

    stats["operations"] = records.length;
    for (const record of records) stats[`${record.kind} ${record.outcome.type}`] = ((stats[`${record.kind} ${record.outcome.type}`] as number | undefined) ?? 0) + 1;
    stats["resource writes accepted"] = resource.writes.filter((write) => write.accepted).length;
    stats["resource writes refused (stale token)"] = resource.writes.filter((write) => !write.accepted).length;
    stats["watch events"] = [...merged.histories.values()].reduce((sum, events) => sum + events.length, 0);
    stats["watch reconnects"] = watchers.reduce((sum, watcher) => sum + watcher.segments.length - 1, 0);
    stats["leaders elected"] = leadersSeen(cluster.logEvents);
    stats["node restarts"] = [...cluster.nodes.values()].reduce((sum, node) => sum + Math.max(0, node.life), 0);
    stats["nodes started"] = cluster.nodes.size;
    if (cluster.network.unidentified > 0) stats["peer connections without a Hello (closed)"] = cluster.network.unidentified;
    return { violations, stats };
  } finally {
    for (const child of clients) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const watcher of watchers) await watcher.close();
    await cluster.close();
    await resource.close();
  }
}

function exitOf(child: ChildProcess, withinMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve();
    }, withinMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function readClientRecords(options: ChaosOptions): ClientRecord[] {
  const records: ClientRecord[] = [];
  for (let k = 1; k <= options.clients; k++) {
    const file = join(options.runDir, `c${k}.jsonl`);
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n")) if (line !== "") records.push(JSON.parse(line) as ClientRecord);
  }
  return records;
}

/** A client's lock operations in the linearizability checker's terms. */
function linearHistory(records: readonly ClientRecord[]): HistoryOp[] {
  const history: HistoryOp[] = [];
  for (const record of records) {
    if (record.kind !== "acquire" && record.kind !== "release" && record.kind !== "refresh" && record.kind !== "read") continue;
    const op = record.kind === "read" ? { kind: "read" as const } : { kind: record.kind, owner: record.client };
    let outcome: LinearOutcome;
    if (record.outcome.type === "fail") outcome = { type: "fail" };
    else if (record.outcome.type === "unknown") outcome = { type: "unknown" };
    else outcome = { type: "ok", value: okValue(record) };
    history.push({ id: history.length + 1, client: record.client, op, invokeMs: record.invokeMs, completeMs: record.completeMs, outcome });
  }
  return history;
}

function okValue(record: ClientRecord): number | boolean | { owner: string; token: number } | null {
  const value = record.outcome.type === "ok" ? record.outcome.value : null;
  switch (record.kind) {
    case "acquire":
      return typeof value === "number" ? value : null;
    case "read": {
      // LOCK.INFO over RESP2: a flat array of field, value pairs; nil when free.
      if (!Array.isArray(value)) return null;
      const fields = new Map<string, unknown>();
      for (let i = 0; i + 1 < value.length; i += 2) fields.set(String(value[i]), value[i + 1]);
      const token = Number(fields.get("token"));
      // A reply without a holder's token would be a bug of the node; the checker must not take it for data.
      if (!Number.isSafeInteger(token)) throw new Error(`LOCK.INFO answered ${JSON.stringify(value)}, without an integer token`);
      return { owner: String(fields.get("owner")), token };
    }
    default:
      return value === 1;
  }
}
