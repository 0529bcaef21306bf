// RAFT.MEMBERS, RAFT.ADDLEARNER, RAFT.PROMOTE, RAFT.REMOVE and RAFT.TRANSFER over raw sockets, served by a
// fake node: the exact replies in RESP2 and RESP3, argument checks, and the node's refusals as -CODE message.

import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mergeCommandTables, validateCommandTable } from "../../../src/api/resp/command-table.js";
import { genericCommands } from "../../../src/api/resp/generic-commands.js";
import { memberCommandTable, type MembershipAdmin } from "../../../src/api/resp/member-commands.js";
import { RespServer } from "../../../src/api/resp/server.js";
import { NodeError } from "../../../src/node/forwarding.js";
import type { Membership } from "../../../src/node/node.js";
import type { ConfigChange } from "../../../src/raft/cluster-config.js";
import { Role, type SoftState } from "../../../src/raft/types.js";
import { command, RawClient, waitFor } from "./helpers.js";

type Leader = { id: string; term: number };

/** Answers like a RaftNode whose leader is n1 in term 2, and records the changes it was asked for. */
class FakeNode implements MembershipAdmin {
  membership: Membership = {
    configIndex: 5,
    members: [
      { id: "n1", voter: true, address: "127.0.0.1:7001" },
      { id: "n2", voter: true, address: "[::1]:7002" },
      { id: "n4", voter: false, address: null },
    ],
  };
  readonly changes: ConfigChange[] = [];
  readonly transfers: string[] = [];
  /** What the next call fails with, if anything. */
  refusal: NodeError | null = null;
  /** The leader this node knows of. */
  known: Leader | null = { id: "n1", term: 2 };
  /** What transferLeadership answers: the leader this node knows of once the old one stepped down. */
  leaderAfterTransfer: Leader | null = { id: "n2", term: 3 };
  private readonly listeners = new Set<(softState: SoftState) => void>();

  leader(): Leader | null {
    return this.known;
  }

  onSoftStateChange(listener: (softState: SoftState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** This node hears of a new leader. */
  learnLeader(leader: Leader | null): void {
    this.known = leader;
    for (const listener of this.listeners) listener({ role: Role.Follower, leaderId: leader?.id ?? null, currentTerm: leader?.term ?? 0 });
  }

  get listening(): number {
    return this.listeners.size;
  }

  async members(): Promise<Membership> {
    this.refuse();
    return this.membership;
  }

  async changeMembership(change: ConfigChange): Promise<{ index: number; term: number }> {
    this.refuse();
    this.changes.push(change);
    return { index: 7, term: 2 };
  }

  async transferLeadership(targetId: string): Promise<{ id: string; term: number } | null> {
    this.refuse();
    this.transfers.push(targetId);
    return this.leaderAfterTransfer;
  }

  private refuse(): void {
    const refusal = this.refusal;
    this.refusal = null;
    if (refusal !== null) throw refusal;
  }
}

/** How long RAFT.TRANSFER waits to hear of the new leader, shortened for the tests. */
const transferSettleMs = 300;
let node: FakeNode;
let server: RespServer;
const clients: RawClient[] = [];

beforeAll(async () => {
  const fake: MembershipAdmin = {
    members: () => node.members(),
    changeMembership: (change) => node.changeMembership(change),
    transferLeadership: (id) => node.transferLeadership(id),
    leader: () => node.leader(),
    onSoftStateChange: (listener) => node.onSoftStateChange(listener),
  };
  const commands = mergeCommandTables(genericCommands, memberCommandTable(fake, transferSettleMs));
  server = await RespServer.start({ listen: { host: "127.0.0.1", port: 0 }, logger: pino({ level: "silent" }), commands });
});
afterAll(() => server.close());
beforeEach(() => {
  node = new FakeNode();
});
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

async function connect(protocol: 2 | 3 = 2): Promise<RawClient> {
  const client = await RawClient.connect(server.address().port);
  clients.push(client);
  if (protocol === 3) {
    client.send(command("HELLO", "3"));
    await client.receive("modules\r\n*0\r\n");
  }
  return client;
}

/** Sends `request` and expects exactly `expected` back. */
async function expectReply(client: RawClient, request: string, expected: string): Promise<void> {
  expect(await client.ask(request, expected)).toBe(expected);
}

describe("RESP membership commands", () => {
  it("the member table is well formed and merges with the generic commands", () => {
    expect(() => validateCommandTable(memberCommandTable(node))).not.toThrow();
    expect(() => mergeCommandTables(genericCommands, memberCommandTable(node))).not.toThrow();
  });

  it("RAFT.MEMBERS answers [id, voter|learner, address] per member, nil for an unknown address (RESP2)", async () => {
    const client = await connect();
    const expected =
      "*3\r\n" +
      "*3\r\n$2\r\nn1\r\n$5\r\nvoter\r\n$14\r\n127.0.0.1:7001\r\n" +
      "*3\r\n$2\r\nn2\r\n$5\r\nvoter\r\n$10\r\n[::1]:7002\r\n" +
      "*3\r\n$2\r\nn4\r\n$7\r\nlearner\r\n$-1\r\n";
    await expectReply(client, command("RAFT.MEMBERS"), expected);
  });

  it("RAFT.MEMBERS has the same shape in RESP3, with RESP3's null", async () => {
    const client = await connect(3);
    node.membership = { configIndex: 5, members: [{ id: "n4", voter: false, address: null }] };
    await expectReply(client, command("raft.members"), "*1\r\n*3\r\n$2\r\nn4\r\n$7\r\nlearner\r\n_\r\n");
  });

  it("RAFT.ADDLEARNER proposes the learner with its address in canonical form and answers OK once committed", async () => {
    const client = await connect();
    await expectReply(client, command("RAFT.ADDLEARNER", "n5", " 10.0.0.5:7005"), "+OK\r\n");
    await expectReply(client, command("RAFT.ADDLEARNER", "n6", "[::1]:7006"), "+OK\r\n");
    expect(node.changes).toEqual([
      { type: "add-learner", nodeId: "n5", address: "10.0.0.5:7005" },
      { type: "add-learner", nodeId: "n6", address: "[::1]:7006" },
    ]);
  });

  it("RAFT.PROMOTE and RAFT.REMOVE propose their change and answer OK", async () => {
    const client = await connect(3);
    await expectReply(client, command("RAFT.PROMOTE", "n4"), "+OK\r\n");
    await expectReply(client, command("RAFT.REMOVE", "n4"), "+OK\r\n");
    expect(node.changes).toEqual([
      { type: "promote", nodeId: "n4" },
      { type: "remove", nodeId: "n4" },
    ]);
  });

  it("refuses a malformed id or address before proposing anything, saying what a valid one looks like", async () => {
    const client = await connect();
    const badId = '-ERR id must be a node id: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (got "-n4")\r\n';
    await expectReply(client, command("RAFT.PROMOTE", "-n4"), badId);
    const badAddress =
      "-ERR peer-address must be the new member's --peer-listen or --peer-advertise address, host:port with a port from 1 to 65535 (got \"10.0.0.5\")\r\n";
    await expectReply(client, command("RAFT.ADDLEARNER", "n5", "10.0.0.5"), badAddress);
    await expectReply(client, command("RAFT.ADDLEARNER", "n5", "10.0.0.5:70000"), badAddress.replace('"10.0.0.5"', '"10.0.0.5:70000"'));
    await expectReply(client, command("RAFT.TRANSFER", "n".repeat(65)), badId.replace('"-n4"', `"${"n".repeat(65)}"`));
    expect(node.changes).toEqual([]);
    expect(node.transfers).toEqual([]);
  });

  it("checks arity as Redis 7 words it", async () => {
    const client = await connect();
    await expectReply(client, command("RAFT.ADDLEARNER", "n5"), "-ERR wrong number of arguments for 'raft.addlearner' command\r\n");
    await expectReply(client, command("RAFT.MEMBERS", "extra"), "-ERR wrong number of arguments for 'raft.members' command\r\n");
    await expectReply(client, command("RAFT.REMOVE"), "-ERR wrong number of arguments for 'raft.remove' command\r\n");
  });

  it("answers the node's refusals as -CODE message, unchanged", async () => {
    const client = await connect();
    node.refusal = new NodeError("NOTCAUGHTUP", "cannot promote yet: n4 is 120 entries behind; retry once it caught up");
    await expectReply(client, command("RAFT.PROMOTE", "n4"), "-NOTCAUGHTUP cannot promote yet: n4 is 120 entries behind; retry once it caught up\r\n");
    node.refusal = new NodeError("MEMBERSHIP", "cannot remove n9: n9 is not a member");
    await expectReply(client, command("RAFT.REMOVE", "n9"), "-MEMBERSHIP cannot remove n9: n9 is not a member\r\n");
    node.refusal = new NodeError("CHANGEPENDING", "another membership change is not committed yet; retry shortly");
    await expectReply(client, command("RAFT.ADDLEARNER", "n5", "10.0.0.5:7005"), "-CHANGEPENDING another membership change is not committed yet; retry shortly\r\n");
    node.refusal = new NodeError("NOLEADER", "no leader is elected yet; retry");
    await expectReply(client, command("RAFT.MEMBERS"), "-NOLEADER no leader is elected yet; retry\r\n");
    node.refusal = new NodeError("TIMEOUT", "n3 did not take over within 4000 ms; this node still leads");
    await expectReply(client, command("RAFT.TRANSFER", "n3"), "-TIMEOUT n3 did not take over within 4000 ms; this node still leads\r\n");
    expect(node.changes).toEqual([]);
  });

  it("RAFT.TRANSFER answers the new leader as [id, term]", async () => {
    const client = await connect();
    await expectReply(client, command("RAFT.TRANSFER", "n2"), "*2\r\n$2\r\nn2\r\n:3\r\n");
    expect(node.transfers).toEqual(["n2"]);
  });

  it("RAFT.TRANSFER forwarded by a follower waits until the follower hears from the new leader", async () => {
    const client = await connect(3);
    node.leaderAfterTransfer = { id: "n1", term: 2 }; // the old leader stepped down; this node has not heard of n2 yet
    const reply = client.ask(command("RAFT.TRANSFER", "n2"), "*2\r\n$2\r\nn2\r\n:3\r\n");
    await waitFor("RAFT.TRANSFER to wait for the new leader", () => node.listening === 1);
    node.learnLeader(null);
    node.learnLeader({ id: "n2", term: 3 });
    expect(await reply).toBe("*2\r\n$2\r\nn2\r\n:3\r\n");
    expect(node.listening).toBe(0);
  });

  it("RAFT.TRANSFER answers nil when no leader is known once it stopped waiting", async () => {
    node.leaderAfterTransfer = null;
    node.known = null;
    await expectReply(await connect(), command("RAFT.TRANSFER", "n2"), "*-1\r\n");
    await expectReply(await connect(3), command("RAFT.TRANSFER", "n2"), "_\r\n");
    expect(node.listening).toBe(0);
  });

  it("COMMAND DOCS and COMMAND INFO describe the commands, for redis-cli's help", async () => {
    const client = await connect();
    const docs = await client.ask(command("COMMAND", "DOCS", "raft.addlearner"), "*2\r\n$15\r\nraft.addlearner\r\n*4\r\n");
    expect(docs).toContain("RAFT.ADDLEARNER id peer-address");
    expect(docs).toContain("$8\r\nraftlock\r\n");
    const info = await client.ask(command("COMMAND", "INFO", "raft.members"), "*1\r\n*10\r\n$12\r\nraft.members\r\n:1\r\n");
    expect(info).toMatch(/^\*1\r\n\*10\r\n\$12\r\nraft\.members\r\n:1\r\n\*2\r\n\+readonly\r\n\+admin\r\n/);
  });
});
