// One redis-server for `--compare redis`: append-only file with `appendfsync always` (an fsync before
// each write is acknowledged, like raftlock and etcd), no RDB snapshots, data under a temporary directory.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/support/ports.js";
import { RespConnection } from "../clients/resp-connection.js";
import { pollUntil } from "./raftlock-cluster.js";
import { trackChild } from "../child-registry.js";

/** The installed redis-server's version line, or null when there is none. */
export function redisServerVersion(): string | null {
  try {
    return execFileSync("redis-server", ["--version"]).toString().trim();
  } catch {
    return null;
  }
}

export class RedisServer {
  private constructor(
    readonly root: string,
    readonly host: string,
    readonly port: number,
    readonly process: ChildProcess,
  ) {}

  static async start(): Promise<RedisServer> {
    const root = mkdtempSync(join(tmpdir(), "raftlock-bench-redis-"));
    const port = await freePort();
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", root, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no", "--loglevel", "warning"];
    const child = trackChild(spawn("redis-server", args, { stdio: ["ignore", "ignore", "pipe"] }));
    const server = new RedisServer(root, "127.0.0.1", port, child);
    await pollUntil(
      async () => {
        const connection = await RespConnection.open(server.host, port);
        try {
          return (await connection.call("PING")) === "PONG" ? true : undefined;
        } finally {
          connection.close();
        }
      },
      10_000,
      "redis-server answering PING",
    );
    return server;
  }

  pids(): Map<string, number> {
    return this.process.pid === undefined ? new Map() : new Map([["redis", this.process.pid]]);
  }

  async close(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((resolve) => this.process.once("exit", resolve));
      this.process.kill("SIGKILL");
      await exited;
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
