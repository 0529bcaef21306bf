// A 3-member etcd cluster on loopback for `--compare etcd`: the installed `etcd` binary with its default
// timeouts and fsync, data under a temporary directory, stopped and removed by `close()`.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/support/ports.js";
import { HttpJsonClient } from "../clients/http-json.js";
import { NodeLog } from "./node-log.js";
import { pollUntil } from "./raftlock-cluster.js";
import { trackChild } from "../child-registry.js";

export interface EtcdMember {
  readonly name: string;
  readonly host: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly process: ChildProcess;
  readonly log: NodeLog;
}

/** The installed etcd's version line, or null when there is none. */
export function etcdVersion(): string | null {
  try {
    return execFileSync("etcd", ["--version"]).toString().split("\n")[0]!.trim();
  } catch {
    return null;
  }
}

export class EtcdCluster {
  private constructor(
    readonly root: string,
    readonly members: EtcdMember[],
  ) {}

  static async start(size = 3): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), "raftlock-bench-etcd-"));
    const ports = [];
    for (let k = 1; k <= size; k++) ports.push({ name: `e${k}`, clientPort: await freePort(), peerPort: await freePort() });
    const initialCluster = ports.map((member) => `${member.name}=http://127.0.0.1:${member.peerPort}`).join(",");
    const members = ports.map(({ name, clientPort, peerPort }): EtcdMember => {
      const args = ["--name", name, "--data-dir", join(root, name), "--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", "raftlock-bench"];
      args.push("--listen-client-urls", `http://127.0.0.1:${clientPort}`, "--advertise-client-urls", `http://127.0.0.1:${clientPort}`);
      args.push("--listen-peer-urls", `http://127.0.0.1:${peerPort}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`);
      args.push("--logger", "zap", "--log-level", "warn");
      const child = trackChild(spawn("etcd", args, { stdio: ["ignore", "pipe", "pipe"] }));
      const log = new NodeLog();
      child.stdout?.on("data", (chunk: Buffer) => log.append(chunk));
      child.stderr?.on("data", (chunk: Buffer) => log.append(chunk));
      return { name, host: "127.0.0.1", clientPort, peerPort, process: child, log };
    });
    const cluster = new EtcdCluster(root, members);
    await cluster.leader();
    return cluster;
  }

  pids(): Map<string, number> {
    return new Map(this.members.flatMap((member) => (member.process.pid === undefined ? [] : [[member.name, member.process.pid] as [string, number]])));
  }

  /** The member that is leader, once all of them agree on one. */
  async leader(withinMs = 30_000): Promise<EtcdMember> {
    return pollUntil(
      async () => {
        const statuses = await Promise.all(
          this.members.map(async (member) => {
            const client = new HttpJsonClient(member.host, member.clientPort);
            try {
              const { status, body } = await client.post("/v3/maintenance/status", "{}");
              const answer = body as { header?: { member_id?: string }; leader?: string };
              return status === 200 ? { member, id: answer.header?.member_id, leader: answer.leader } : undefined;
            } finally {
              client.close();
            }
          }),
        );
        const leaderId = statuses[0]?.leader;
        if (leaderId === undefined || leaderId === "0" || statuses.some((status) => status?.leader !== leaderId)) return undefined;
        return statuses.find((status) => status?.id === leaderId)?.member;
      },
      withinMs,
      "an etcd leader",
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.members.map(async (member) => {
        if (member.process.exitCode !== null || member.process.signalCode !== null) return;
        const exited = new Promise((resolve) => member.process.once("exit", resolve));
        member.process.kill("SIGKILL");
        await exited;
      }),
    );
    rmSync(this.root, { recursive: true, force: true });
  }
}
