// Real raftlock processes on loopback ports chosen free at run time, with a TCP proxy on every link so a
// test can cut a node off from its peers. Everything is cleaned up in `close()`.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../support/ports.js";

const repoRoot = new URL("../..", import.meta.url).pathname;
/** Poll interval of `waitFor`: short enough for a quick test, long enough not to busy-wait. */
const pollIntervalMs = 50;
/** How long a stopped process may take to exit before it is killed. */
const exitWaitMs = 10_000;

/** Test-sized timeouts: fast failover on loopback, still 6 heartbeats per minimum election timeout. */
export const fastTimeouts = ["--election-timeout-min-ms", "300", "--election-timeout-max-ms", "600", "--heartbeat-interval-ms", "50"];

export { freePort };

/** Polls `condition` until it holds; fails with `what` after `withinMs`. */
export async function waitFor<T>(condition: () => Promise<T | undefined | false> | T | undefined | false, withinMs: number, what: string): Promise<T> {
  const deadline = Date.now() + withinMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
  }
  throw new Error(`${what} did not happen within ${withinMs} ms${lastError === undefined ? "" : ` (last error: ${String(lastError)})`}`);
}

/** A one-way TCP relay to one node's peer port that can be cut and restored. */
class LinkProxy {
  private readonly sockets = new Set<Socket>();
  private cut = false;
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<LinkProxy> {
    const port = await freePort();
    const server = createServer();
    const proxy = new LinkProxy(server, port);
    server.on("connection", (client) => proxy.relay(client, targetPort));
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return proxy;
  }

  private relay(client: Socket, targetPort: number): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  setCut(cut: boolean): void {
    this.cut = cut;
    if (cut) for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.setCut(true);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface NodeHandle {
  readonly id: string;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly respPort: number;
  readonly dataDir: string;
  process: ChildProcess | null;
  output: string;
}

export interface MemberStatus {
  id: string;
  reachable: boolean;
  role?: string;
  term?: number;
  leader?: string | null;
  commitIndex?: number;
  appliedIndex?: number;
  snapshotIndex?: number;
}

/** A cluster of real node processes. */
export class E2eCluster {
  readonly nodes = new Map<string, NodeHandle>();
  /** proxies.get(`${from}>${to}`): the link `from` uses to reach `to`. */
  private readonly proxies = new Map<string, LinkProxy>();
  private constructor(
    readonly root: string,
    private readonly extraArgs: string[],
  ) {}

  /** Starts `size` nodes; `proxied: false` connects them directly (benchmarks), without cuttable links. */
  static async start(size: number, extraArgs: string[] = fastTimeouts, proxied = true): Promise<E2eCluster> {
    const cluster = new E2eCluster(mkdtempSync(join(tmpdir(), "raftlock-e2e-")), extraArgs);
    const ids = Array.from({ length: size }, (_, k) => `n${k + 1}`);
    for (const id of ids) {
      cluster.nodes.set(id, { id, peerPort: await freePort(), httpPort: await freePort(), respPort: await freePort(), dataDir: join(cluster.root, id), process: null, output: "" });
    }
    for (const from of proxied ? ids : []) {
      for (const to of ids) {
        if (from !== to) cluster.proxies.set(`${from}>${to}`, await LinkProxy.start(cluster.node(to).peerPort));
      }
    }
    for (const id of ids) cluster.launch(id);
    return cluster;
  }

  node(id: string): NodeHandle {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Arguments of `raftlock start` for `id`: it reaches every peer through its own proxy. */
  startArgs(id: string): string[] {
    const node = this.node(id);
    const peers = [...this.nodes.values()]
      .map((peer) => `${peer.id}=127.0.0.1:${this.proxies.get(`${id}>${peer.id}`)?.port ?? peer.peerPort}`)
      .join(",");
    return ["--id", id, "--data-dir", node.dataDir, "--peer-listen", `127.0.0.1:${node.peerPort}`, "--http-listen", `127.0.0.1:${node.httpPort}`, "--resp-listen", `127.0.0.1:${node.respPort}`, "--peers", peers, ...this.extraArgs];
  }

  /**
   * Starts a new node that joins the running cluster through `viaId`'s HTTP address (`--join`). It is
   * reached directly, without proxies: the members learn its address from the replicated configuration.
   */
  async join(id: string, viaId: string): Promise<NodeHandle> {
    const node: NodeHandle = { id, peerPort: await freePort(), httpPort: await freePort(), respPort: await freePort(), dataDir: join(this.root, id), process: null, output: "" };
    this.nodes.set(id, node);
    const args = ["--id", id, "--data-dir", node.dataDir, "--peer-listen", `127.0.0.1:${node.peerPort}`, "--http-listen", `127.0.0.1:${node.httpPort}`];
    this.launch(id, [...args, "--resp-listen", `127.0.0.1:${node.respPort}`, "--join", `127.0.0.1:${this.node(viaId).httpPort}`, ...this.extraArgs]);
    return node;
  }

  /** Starts `id`'s process (again). */
  launch(id: string, args: string[] = this.startArgs(id)): ChildProcess {
    const node = this.node(id);
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "start", ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    node.process = child;
    node.output = "";
    child.stdout?.on("data", (chunk: Buffer) => (node.output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (node.output += chunk.toString()));
    return child;
  }

  /** Waits for `id`'s process to exit; returns its exit code (or the signal's name). */
  async exited(id: string): Promise<number | string> {
    const child = this.node(id).process;
    if (child === null) throw new Error(`${id} was never started`);
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
    return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")));
  }

  async kill9(id: string): Promise<void> {
    this.node(id).process?.kill("SIGKILL");
    await this.exited(id);
  }

  /** SIGTERM, and the exit code. */
  async terminate(id: string): Promise<number | string> {
    this.node(id).process?.kill("SIGTERM");
    return this.exited(id);
  }

  /** Cuts every link to and from `id` (closing open peer connections), or restores them. */
  setCut(id: string, cut: boolean): void {
    for (const [key, proxy] of this.proxies) {
      const [from, to] = key.split(">");
      if (from === id || to === id) proxy.setCut(cut);
    }
  }

  async get<T>(id: string, path: string): Promise<{ status: number; body: T }> {
    const response = await fetch(`http://127.0.0.1:${this.node(id).httpPort}${path}`, { signal: AbortSignal.timeout(5_000) });
    return { status: response.status, body: (await response.json()) as T };
  }

  async post<T>(id: string, path: string, body: unknown = {}): Promise<{ status: number; body: T }> {
    const response = await fetch(`http://127.0.0.1:${this.node(id).httpPort}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  /** The status `id` reports of itself. */
  async self(id: string): Promise<MemberStatus> {
    const { body } = await this.get<{ members: MemberStatus[] }>(id, "/v1/cluster");
    return body.members.find((member) => member.id === id)!;
  }

  /** Waits until every running node names the same leader in the same term; returns it. */
  async leader(running: string[] = [...this.nodes.keys()], withinMs = 15_000, excluding?: string): Promise<{ id: string; term: number }> {
    return waitFor(
      async () => {
        const views = await Promise.all(running.map((id) => this.get<{ id: string; term: number }>(id, "/v1/cluster/leader")));
        const first = views[0]!;
        if (first.status !== 200 || first.body.id === excluding) return undefined;
        return views.every((view) => view.status === 200 && view.body.id === first.body.id && view.body.term === first.body.term) ? first.body : undefined;
      },
      withinMs,
      `a leader agreed on by ${running.join(", ")}`,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${this.describe()}`);
    });
  }

  /** Each node's process state and last log lines, for failure messages. */
  describe(): string {
    return [...this.nodes.values()]
      .map((node) => {
        const state = node.process === null ? "never started" : (node.process.exitCode ?? node.process.signalCode ?? "running");
        return `--- ${node.id} (${state}):\n${node.output.split("\n").slice(-8).join("\n")}`;
      })
      .join("\n");
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) {
      const child = node.process;
      if (child !== null && child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await Promise.race([this.exited(node.id), new Promise((resolve) => setTimeout(resolve, exitWaitMs))]);
      }
    }
    for (const proxy of this.proxies.values()) await proxy.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}
