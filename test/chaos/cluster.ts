// Real raftlock processes for the chaos harness: built `dist/cli.js`, every node behind a front door of
// the fault network (fault-proxy.ts), each node's JSON log kept in the run folder and read back for the
// Raft checks, and the operations the nemesis performs (kill -9, restart, SIGSTOP/SIGCONT, partitions,
// one-way cuts, delays, and new nodes that join with --join and old ones discarded once removed).
//
// Node ids are never reused: a node that joins gets the next ordinal (n4, n5, ...), and a removed node's
// id, log and data stay its own, so the checkers read every process's history without mixing two nodes.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, cpSync, createWriteStream, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { freePort } from "../support/ports.js";
import { FaultNetwork, type Link } from "./fault-proxy.js";

const repoRoot = new URL("../..", import.meta.url).pathname;
/** How long a killed or stopped process may take to exit. */
const exitWaitMs = 10_000;

/** Timeouts of a chaos cluster: fast failovers on loopback, so a run sees many of them. */
export const chaosNodeFlags = [
  "--election-timeout-min-ms", "300",
  "--election-timeout-max-ms", "600",
  "--heartbeat-interval-ms", "50",
  "--commit-timeout-ms", "3000",
  // Small snapshots, often: followers that were down catch up by snapshot as well as by log.
  "--snapshot-every-entries", "500",
  "--retained-entries", "200",
];

/** libfaketime's multi-threaded library (Debian's `faketime`): shifts the wall clock of one node. */
const libfaketimePath = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/** Size of each node's own small filesystem when the disk fault is on. */
const nodeDiskBytes = 256 << 20;

/** Optional faults that need something from the machine. */
export interface ClusterFeatures {
  /** Every node under libfaketime, its wall clock driven by a file the nemesis writes. */
  readonly clock: boolean;
  /** Every node's data directory on its own tmpfs, which the nemesis can fill. */
  readonly disk: boolean;
}

/** Which optional faults this machine supports, and why not when it does not. */
export function machineSupports(runDir: string): { clock: string | null; disk: string | null } {
  const clock = existsSync(libfaketimePath) ? null : `libfaketime is not installed (${libfaketimePath}; Debian package faketime)`;
  let disk: string | null = null;
  const probe = join(runDir, "mount-probe");
  mkdirSync(probe, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], { stdio: "ignore" });
    execFileSync("umount", [probe], { stdio: "ignore" });
  } catch {
    disk = "mounting a tmpfs needs root with CAP_SYS_ADMIN";
  }
  rmSync(probe, { recursive: true, force: true });
  return { clock, disk };
}

/** One line of a node's log that the Raft checks read. */
export interface NodeLogEvent {
  readonly nodeId: string;
  /** Which run of the process (0 = first start, 1 = after the first restart, ...). */
  readonly life: number;
  readonly msg: string;
  readonly term?: number;
  readonly role?: string;
  readonly commitIndex?: number;
}

export interface ChaosNode {
  readonly id: string;
  /** Where the node listens for peers; nobody dials it there directly. */
  readonly peerPort: number;
  /** Its front door in the fault network: the peer address every other node dials. */
  readonly doorPort: number;
  readonly httpPort: number;
  readonly respPort: number;
  readonly dataDir: string;
  /** HTTP addresses its `--join` names, for a node that joined a running cluster; null for a first member. */
  readonly joinTargets: readonly string[] | null;
  process: ChildProcess | null;
  life: number;
  paused: boolean;
  /** Removed from the cluster and stopped for good: never restarted, its data never used again. */
  removed: boolean;
  readonly log: WriteStream;
}

export class ChaosCluster {
  /** Every node this run started, the removed ones included. */
  readonly nodes = new Map<string, ChaosNode>();
  readonly network = new FaultNetwork();
  readonly logEvents: NodeLogEvent[] = [];
  private nextOrdinal = 1;

  private constructor(
    readonly runDir: string,
    private readonly features: ClusterFeatures,
  ) {}

  static async start(runDir: string, size: number, features: ClusterFeatures): Promise<ChaosCluster> {
    const cluster = new ChaosCluster(runDir, features);
    for (let k = 0; k < size; k++) await cluster.createNode(null);
    for (const id of cluster.ids) cluster.launch(id);
    return cluster;
  }

  /**
   * Starts a fresh node, with the next unused id, that joins the running cluster through the members
   * at `joinVia` (`--join`); it advertises its front door, so its links are faulted like anyone's.
   */
  async join(joinVia: readonly string[]): Promise<string> {
    if (joinVia.length === 0) throw new Error("a node joins through at least one member");
    const id = await this.createNode(joinVia.map((member) => `http://127.0.0.1:${this.node(member).httpPort}`));
    this.launch(id);
    return id;
  }

  private async createNode(joinTargets: readonly string[] | null): Promise<string> {
    const id = `n${this.nextOrdinal++}`;
    const dataDir = join(this.runDir, "data", id);
    mkdirSync(dataDir, { recursive: true });
    if (this.features.disk) execFileSync("mount", ["-t", "tmpfs", "-o", `size=${nodeDiskBytes}`, "tmpfs", dataDir]);
    if (this.features.clock) this.setClock(id, "+0");
    const peerPort = await freePort();
    this.nodes.set(id, {
      id,
      peerPort,
      doorPort: await this.network.openDoor(id, peerPort),
      httpPort: await freePort(),
      respPort: await freePort(),
      dataDir,
      joinTargets,
      process: null,
      life: -1,
      paused: false,
      removed: false,
      log: createWriteStream(join(this.runDir, `${id}.log`), { flags: "a" }),
    });
    return id;
  }

  /**
   * Stops a node that left the cluster (or never made it in) for good: kill -9, its front door closed,
   * its data kept in the run folder for a failure report but never used again.
   */
  async discard(id: string): Promise<void> {
    const node = this.node(id);
    if (node.removed) return;
    node.removed = true;
    await this.kill9(id);
    await this.network.closeDoor(id);
    if (this.features.disk) this.unmountDisk(node);
  }

  /** The nodes of the cluster now: its members and any node joining it, running or not; not the removed. */
  get ids(): string[] {
    return [...this.nodes.values()].filter((node) => !node.removed).map((node) => node.id);
  }

  node(id: string): ChaosNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  running(id: string): boolean {
    const child = this.node(id).process;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Starts `id` (again). A first member names every first member's front door in `--peers`; a node that
   * joined keeps its `--join` (on a restart it is a member already and only waits to be a voter).
   */
  launch(id: string): void {
    const node = this.node(id);
    if (node.removed) throw new Error(`${id} was removed from the cluster; it is never started again`);
    const membership =
      node.joinTargets === null
        ? ["--peers", [...this.nodes.values()].filter((peer) => peer.joinTargets === null).map((peer) => `${peer.id}=127.0.0.1:${peer.doorPort}`).join(",")]
        : ["--join", node.joinTargets.join(","), "--peer-advertise", `127.0.0.1:${node.doorPort}`];
    const args = [
      join(repoRoot, "dist", "cli.js"), "start",
      "--id", id, "--data-dir", node.dataDir, ...membership,
      "--peer-listen", `127.0.0.1:${node.peerPort}`, "--http-listen", `127.0.0.1:${node.httpPort}`, "--resp-listen", `127.0.0.1:${node.respPort}`,
      ...chaosNodeFlags,
    ];
    // The wall clock only: the nodes time everything on the monotonic clock, which must stay real.
    const clockEnv = this.features.clock
      ? { LD_PRELOAD: libfaketimePath, FAKETIME_TIMESTAMP_FILE: this.clockFile(id), FAKETIME_DONT_FAKE_MONOTONIC: "1", FAKETIME_CACHE_DURATION: "1" }
      : {};
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...clockEnv } });
    node.process = child;
    node.life++;
    node.paused = false;
    const life = node.life;
    let pending = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      node.log.write(chunk);
      pending += chunk.toString("utf8");
      let end: number;
      while ((end = pending.indexOf("\n")) >= 0) {
        this.readLogLine(id, life, pending.slice(0, end));
        pending = pending.slice(end + 1);
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => node.log.write(chunk));
  }

  private readLogLine(nodeId: string, life: number, line: string): void {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not one of pino's lines (a crash trace goes to the log file, and the checks see the exit)
    }
    const msg = typeof parsed["msg"] === "string" ? parsed["msg"] : "";
    if (msg !== "raft state changed" && msg !== "node started") return;
    this.logEvents.push({
      nodeId,
      life,
      msg,
      ...(typeof parsed["term"] === "number" ? { term: parsed["term"] } : {}),
      ...(typeof parsed["role"] === "string" ? { role: parsed["role"] } : {}),
      ...(typeof parsed["commitIndex"] === "number" ? { commitIndex: parsed["commitIndex"] } : {}),
    });
  }

  async kill9(id: string): Promise<void> {
    const node = this.node(id);
    if (!this.running(id)) return;
    node.process!.kill("SIGKILL");
    await this.exited(id);
  }

  /** SIGTERM: the node hands over leadership and exits 0; the exit code is returned. */
  async terminate(id: string): Promise<number | string> {
    if (!this.running(id)) return "not running";
    if (this.node(id).paused) this.resume(id);
    this.node(id).process!.kill("SIGTERM");
    return this.exited(id);
  }

  pause(id: string): void {
    if (!this.running(id) || this.node(id).paused) return;
    this.node(id).process!.kill("SIGSTOP");
    this.node(id).paused = true;
  }

  resume(id: string): void {
    if (!this.running(id) || !this.node(id).paused) return;
    this.node(id).process!.kill("SIGCONT");
    this.node(id).paused = false;
  }

  private async exited(id: string): Promise<number | string> {
    const child = this.node(id).process!;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
    return Promise.race([
      new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))),
      new Promise<string>((resolve) => setTimeout(() => resolve("did not exit"), exitWaitMs)),
    ]);
  }

  private clockFile(id: string): string {
    return join(this.runDir, `${id}.faketime`);
  }

  /** Sets `id`'s wall clock as libfaketime reads it: "+2h", "-1d", "+0 x3" (three times as fast), ... */
  setClock(id: string, spec: string): void {
    writeFileSync(this.clockFile(id), `${spec}\n`);
  }

  private ballastFile(id: string): string {
    return join(this.node(id).dataDir, "ballast");
  }

  /** Fills `id`'s filesystem to the last byte: its next WAL write fails with ENOSPC. */
  fillDisk(id: string): void {
    const fd = openSync(this.ballastFile(id), "w");
    const chunk = Buffer.alloc(1 << 20);
    try {
      for (;;) writeSync(fd, chunk);
    } catch {
      // ENOSPC: full. Top up byte by byte in smaller writes.
      try {
        for (;;) writeSync(fd, chunk.subarray(0, 512));
      } catch {
        // full to the block
      }
    } finally {
      closeSync(fd);
    }
  }

  freeDisk(id: string): void {
    rmSync(this.ballastFile(id), { force: true });
  }

  link(a: string, b: string): Link {
    return this.network.link(a, b);
  }

  /** Cuts every link between different groups; nodes in no group keep their links. */
  partition(groups: readonly (readonly string[])[]): void {
    const groupOf = new Map<string, number>();
    groups.forEach((group, index) => group.forEach((id) => groupOf.set(id, index)));
    for (const [a, b] of pairs(this.ids)) {
      const [ga, gb] = [groupOf.get(a), groupOf.get(b)];
      if (ga !== undefined && gb !== undefined && ga !== gb) this.link(a, b).cut(true);
    }
  }

  /** Drops everything `from` sends to `to`; the other way still flows. */
  blockOneWay(from: string, to: string): void {
    this.link(from, to).block(from, true);
  }

  /** Undoes every link fault. */
  healLinks(): void {
    this.network.healAll();
  }

  /** Restarts dead nodes and continues paused ones, with their clocks and disks back to normal. */
  reviveAll(): void {
    for (const id of this.ids) {
      if (this.features.clock) this.setClock(id, "+0");
      if (this.features.disk) this.freeDisk(id);
      if (this.node(id).paused) this.resume(id);
      if (!this.running(id)) this.launch(id);
    }
  }

  async httpGet<T>(id: string, path: string, timeoutMs = 2_000): Promise<{ status: number; body: T }> {
    return this.httpRequest<T>(id, "GET", path, undefined, timeoutMs);
  }

  async httpRequest<T>(id: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; body: T }> {
    const response = await fetch(`http://127.0.0.1:${this.node(id).httpPort}${path}`, {
      method,
      signal: AbortSignal.timeout(timeoutMs),
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  /** The leader the running, unpaused nodes agree on, or null. */
  async agreedLeader(): Promise<string | null> {
    const live = this.ids.filter((id) => this.running(id) && !this.node(id).paused);
    const views = await Promise.all(live.map((id) => this.httpGet<{ id: string; term: number }>(id, "/v1/cluster/leader").catch(() => null)));
    const first = views[0];
    if (first === undefined || first === null || first.status !== 200) return null;
    return views.every((view) => view !== null && view.status === 200 && view.body.id === first.body.id && view.body.term === first.body.term) ? first.body.id : null;
  }

  /** Any node's idea of the leader (for choosing whom to fault), or null. */
  async someLeader(): Promise<string | null> {
    for (const id of this.ids) {
      if (!this.running(id) || this.node(id).paused) continue;
      const view = await this.httpGet<{ id: string }>(id, "/v1/cluster/leader", 500).catch(() => null);
      if (view?.status === 200) return view.body.id;
    }
    return null;
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) {
      if (node.paused) this.resume(node.id);
      await this.kill9(node.id);
    }
    await this.network.close();
    await Promise.all([...this.nodes.values()].map((node) => new Promise<void>((resolve) => node.log.end(resolve))));
    if (this.features.disk) for (const node of this.nodes.values()) if (!node.removed) this.unmountDisk(node);
  }

  private unmountDisk(node: ChaosNode): void {
    // Keep a copy for a failure report: the tmpfs goes away with the mount.
    this.freeDisk(node.id);
    cpSync(node.dataDir, `${node.dataDir}.copy`, { recursive: true });
    execFileSync("umount", [node.dataDir]);
  }
}

/** Every unordered pair, the lower id first. */
export function pairs(ids: readonly string[]): [string, string][] {
  const result: [string, string][] = [];
  for (const a of ids) for (const b of ids) if (a < b) result.push([a, b]);
  return result;
}
