// The raftlock cluster a suite measures: one it starts on loopback, or an existing one (--endpoints),
// whose processes it cannot see (no CPU or memory figures then).
import { HttpJsonClient } from "../clients/http-json.js";
import { RespConnection } from "../clients/resp-connection.js";
import type { NodeLog } from "../clusters/node-log.js";
import { type LeaderView, RaftlockCluster } from "../clusters/raftlock-cluster.js";
import type { Endpoint } from "../load/workloads.js";
import type { ServerSet } from "../usage-window.js";

export interface Member {
  readonly id: string;
  readonly http: Endpoint;
  readonly resp: Endpoint;
}

function endpointOf(address: string): Endpoint {
  const at = address.lastIndexOf(":");
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

export class RaftlockTarget {
  private constructor(
    readonly members: readonly Member[],
    readonly cluster: RaftlockCluster | null,
  ) {}

  /** Starts a 3-node cluster; `lease` adds `--read-mode lease`. Every other setting but the log level is the default. */
  static async local(readMode: "read-index" | "lease"): Promise<RaftlockTarget> {
    // Info level adds a line per snapshot and per role change: the role changes explain an election under load.
    const cluster = await RaftlockCluster.start(3, [...(readMode === "lease" ? ["--read-mode", "lease"] : []), "--log-level", "info"]);
    await cluster.leader();
    for (const node of cluster.nodes) await cluster.waitReady(node.id);
    const members = cluster.nodes.map((node) => ({ id: node.id, http: { host: node.host, port: node.httpPort }, resp: { host: node.host, port: node.respPort } }));
    return new RaftlockTarget(members, cluster);
  }

  static async external(httpAddresses: readonly string[], respAddresses: readonly string[]): Promise<RaftlockTarget> {
    const members: Member[] = [];
    for (const [k, address] of httpAddresses.entries()) {
      const http = endpointOf(address);
      const client = new HttpJsonClient(http.host, http.port);
      try {
        const { body } = await client.get("/v1/cluster");
        members.push({ id: (body as { id: string }).id, http, resp: endpointOf(respAddresses[k]!) });
      } finally {
        client.close();
      }
    }
    return new RaftlockTarget(members, null);
  }

  member(id: string): Member {
    const member = this.members.find((candidate) => candidate.id === id);
    if (member === undefined) throw new Error(`the leader ${id} is not among the given endpoints`);
    return member;
  }

  async leader(): Promise<LeaderView> {
    if (this.cluster !== null) return this.cluster.leader();
    const first = this.members[0]!;
    const client = new HttpJsonClient(first.http.host, first.http.port);
    try {
      const { status, body } = await client.get("/v1/cluster/leader");
      if (status !== 200) throw new Error(`no leader is known to ${first.id} (HTTP ${status})`);
      return body as LeaderView;
    } finally {
      client.close();
    }
  }

  /** The nodes' processes with their roles, `leaderId` being the leader. */
  servers(leaderId: string): ServerSet {
    const cluster = this.cluster;
    const logs = new Map<string, NodeLog>(cluster?.nodes.map((node) => [node.id, node.log]) ?? []);
    const roles = new Map(this.members.map((member) => [member.id, member.id === leaderId ? "leader" : "follower"]));
    return { pids: () => cluster?.pids() ?? new Map(), roles, logs };
  }

  /** One RESP command on a fresh connection to `id` (setup and cleanup, not measured). */
  async call(id: string, ...args: (string | number)[]): Promise<unknown> {
    const { host, port } = this.member(id).resp;
    const connection = await RespConnection.open(host, port);
    try {
      return await connection.call(...args);
    } finally {
      connection.close();
    }
  }

  async settled(): Promise<void> {
    if (this.cluster !== null) await this.cluster.settled();
  }

  async close(): Promise<void> {
    await this.cluster?.close();
  }
}
