// A local raftlock cluster for benchmarks: real node processes of the built CLI (dist/cli.js, so no
// TypeScript loader runs in them) on free loopback ports, data under a temporary directory on the same
// disk as everything else (fsync before acknowledgement, as in production). test/e2e/harness.ts starts
// nodes from the sources through tsx instead, which adds the loader's start time and memory to each node.
// With a fault network, every node's `--peers` entry is its front door (the chaos harness's TCP relay,
// test/chaos/fault-proxy.ts), so the harness can partition nodes without root; clients still dial the
// nodes' HTTP and RESP ports directly.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FaultNetwork } from "../../test/chaos/fault-proxy.js";
import { freePort } from "../../test/support/ports.js";
import { HttpJsonClient } from "../clients/http-json.js";
import { NodeLog } from "./node-log.js";
import { trackChild } from "../child-registry.js";

const cliPath = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
/** Poll interval while waiting for a leader or readiness: short against a 1-2 s election timeout. */
const pollIntervalMs = 20;
/** How long a SIGTERM'd node may take to hand over and exit before it is killed. */
const stopWaitMs = 15_000;

export interface RaftlockNode {
  readonly id: string;
  readonly host: string;
  /** Where the node listens for peers. */
  readonly peerPort: number;
  /** The port other nodes dial: its front door on the fault network, or `peerPort` without one. */
  readonly peerDialPort: number;
  readonly httpPort: number;
  readonly respPort: number;
  readonly dataDir: string;
  process: ChildProcess | null;
  readonly log: NodeLog;
}

export interface LeaderView {
  readonly id: string;
  readonly term: number;
}

/** Polls `condition` every `pollIntervalMs` until it yields a value; throws after `withinMs`. */
export async function pollUntil<T>(condition: () => Promise<T | undefined>, withinMs: number, what: string): Promise<T> {
  const deadlineMs = performance.now() + withinMs;
  let lastError: unknown;
  while (performance.now() < deadlineMs) {
    try {
      const value = await condition();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
  }
  throw new Error(`${what} did not happen within ${withinMs} ms${lastError === undefined ? "" : ` (last error: ${String(lastError)})`}`);
}

export class RaftlockCluster {
  readonly nodes: RaftlockNode[] = [];
  private readonly http = new Map<string, HttpJsonClient>();

  private constructor(
    readonly root: string,
    private readonly extraArgs: readonly string[],
    private readonly nodeOptions: readonly string[],
    /** The relays between the nodes' peer ports, when the cluster was started with `faultNetwork`. */
    readonly network: FaultNetwork | null,
  ) {}

  /**
   * Starts `size` nodes with `extraArgs` added to each one's `raftlock start` (none: all defaults) and
   * `nodeOptions` given to Node itself (the memory figures use `--inspect` to collect garbage); with
   * `faultNetwork`, the nodes reach each other only through front doors that `network` can cut.
   */
  static async start(size: number, extraArgs: readonly string[] = [], nodeOptions: readonly string[] = [], faultNetwork = false): Promise<RaftlockCluster> {
    if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run \`npm run build\` first`);
    const network = faultNetwork ? new FaultNetwork() : null;
    const cluster = new RaftlockCluster(mkdtempSync(join(tmpdir(), "raftlock-bench-")), extraArgs, nodeOptions, network);
    for (let k = 1; k <= size; k++) {
      const id = `n${k}`;
      const peerPort = await freePort();
      const peerDialPort = network === null ? peerPort : await network.openDoor(id, peerPort);
      cluster.nodes.push({ id, host: "127.0.0.1", peerPort, peerDialPort, httpPort: await freePort(), respPort: await freePort(), dataDir: join(cluster.root, id), process: null, log: new NodeLog() });
    }
    for (const node of cluster.nodes) cluster.launch(node.id);
    return cluster;
  }

  node(id: string): RaftlockNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** The pids of the running nodes, by id. */
  pids(): Map<string, number> {
    const pids = new Map<string, number>();
    for (const node of this.nodes) if (this.isRunning(node.id) && node.process?.pid !== undefined) pids.set(node.id, node.process.pid);
    return pids;
  }

  isRunning(id: string): boolean {
    const child = this.node(id).process;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  /** Starts (or restarts) `id`'s process on its data directory, with `moreArgs` after the cluster's own. */
  launch(id: string, moreArgs: readonly string[] = []): ChildProcess {
    const node = this.node(id);
    const peers = this.nodes.map((peer) => `${peer.id}=${peer.host}:${peer.peerDialPort}`).join(",");
    const args = [...this.nodeOptions, cliPath, "start", "--id", id, "--data-dir", node.dataDir, "--peer-listen", `${node.host}:${node.peerPort}`];
    args.push("--http-listen", `${node.host}:${node.httpPort}`, "--resp-listen", `${node.host}:${node.respPort}`, "--peers", peers);
    args.push("--log-level", "warn", ...this.extraArgs, ...moreArgs);
    const child = trackChild(spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] }));
    node.process = child;
    child.stdout?.on("data", (chunk: Buffer) => node.log.append(chunk));
    child.stderr?.on("data", (chunk: Buffer) => node.log.append(chunk));
    return child;
  }

  httpClient(id: string): HttpJsonClient {
    let client = this.http.get(id);
    if (client === undefined) {
      const node = this.node(id);
      client = new HttpJsonClient(node.host, node.httpPort, 4);
      this.http.set(id, client);
    }
    return client;
  }

  /** The leader every running node (or every one of `among`) agrees on, other than `excluding`, waiting up to `withinMs`. */
  async leader(among: readonly string[] = this.nodes.filter((node) => this.isRunning(node.id)).map((node) => node.id), withinMs = 30_000, excluding?: string): Promise<LeaderView> {
    return pollUntil(
      async () => {
        const views = await Promise.all(among.map((id) => this.httpClient(id).get("/v1/cluster/leader")));
        const first = views[0]?.body as LeaderView | undefined;
        if (first === undefined || first.id === excluding || views.some((view) => view.status !== 200)) return undefined;
        return views.every((view) => (view.body as LeaderView).id === first.id && (view.body as LeaderView).term === first.term) ? first : undefined;
      },
      withinMs,
      `a leader agreed on by ${among.join(", ")}`,
    );
  }

  /** Whether `id` answers /readyz with 200 (a leader is known and it applied what was committed at its start). */
  async isReady(id: string): Promise<boolean> {
    try {
      return (await this.httpClient(id).get("/readyz")).status === 200;
    } catch {
      return false;
    }
  }

  async waitReady(id: string, withinMs = 120_000): Promise<void> {
    await pollUntil(async () => ((await this.isReady(id)) ? true : undefined), withinMs, `${id} ready`);
  }

  /** Waits until every running node applied the same index as the leader's commit index; returns it. */
  async settled(withinMs = 30_000): Promise<number> {
    return pollUntil(
      async () => {
        const { body } = await this.httpClient((await this.leader()).id).get("/v1/cluster");
        const members = (body as { members: { reachable: boolean; commitIndex?: number; appliedIndex?: number }[] }).members;
        const indexes = new Set(members.flatMap((member) => [member.commitIndex, member.appliedIndex]));
        return members.every((member) => member.reachable) && indexes.size === 1 ? [...indexes][0] : undefined;
      },
      withinMs,
      "every member at the same applied index",
    );
  }

  async kill9(id: string): Promise<void> {
    await this.stop(id, "SIGKILL");
  }

  /** SIGTERM: the node hands leadership over, flushes and exits. */
  async terminate(id: string): Promise<void> {
    await this.stop(id, "SIGTERM");
  }

  /** Sends `signal` and waits for the exit (killing the process if a SIGTERM is not obeyed in time). */
  async stop(id: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.node(id).process;
    if (child === null || !this.isRunning(id)) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), stopWaitMs);
    await exited;
    clearTimeout(timer);
    this.http.get(id)?.close();
    this.http.delete(id);
  }

  /** Stops every node (SIGKILL unless `signal` says otherwise) and removes the data. */
  async close(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.stop(node.id, signal)));
    for (const client of this.http.values()) client.close();
    this.http.clear();
    await this.network?.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}
