// RAFT.MEMBERS, RAFT.ADDLEARNER, RAFT.PROMOTE, RAFT.REMOVE and RAFT.TRANSFER: membership and leadership
// administration over RESP, the same operations as the HTTP routes in `api/http/member-routes.ts`.
import { ConfigError, formatAddress, idRule, isValidId, parseAddress } from "../../config.js";
import { NodeError } from "../../node/forwarding.js";
import type { RaftNode } from "../../node/node.js";
import type { ConfigChange } from "../../raft/cluster-config.js";
import { argument, type CommandFlag, type CommandHandler, type CommandSpec, type CommandTable } from "./command-table.js";
import { array, bulk, bulkOrNull, integer, nullArray, ok, type Reply, RespError } from "./reply.js";

/** What the membership commands need of a node; tests pass a fake. */
export type MembershipAdmin = Pick<RaftNode, "members" | "changeMembership" | "transferLeadership" | "leader" | "onSoftStateChange">;

/** How long RAFT.TRANSFER waits, after the old leader stepped down, for this node to learn of the new one. */
export const transferSettleMsDefault = 5_000;

type Leader = { readonly id: string; readonly term: number };

/**
 * The leader after a transfer to `targetId`, as this node knows it. A node that forwarded the transfer
 * hears that the old leader stepped down before it hears from the new one: wait until it knows a leader
 * that is the target or of a later term, at most `transferSettleMs`.
 */
function leaderAfterTransfer(node: MembershipAdmin, targetId: string, before: Leader | null, reported: Leader | null, transferSettleMs: number): Promise<Leader | null> {
  const settled = (leader: Leader | null): boolean => leader !== null && (leader.id === targetId || leader.term > (before?.term ?? 0));
  if (settled(reported)) return Promise.resolve(reported);
  return new Promise((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      stopListening();
      resolve(node.leader());
    };
    const timer = setTimeout(finish, transferSettleMs);
    const stopListening = node.onSoftStateChange(() => {
      if (settled(node.leader())) finish();
    });
    if (settled(node.leader())) finish();
  });
}

/** The node's errors keep their code and message: they say which change was refused and why. */
function translated(handler: CommandHandler): CommandHandler {
  return async (ctx, args) => {
    try {
      return await handler(ctx, args);
    } catch (error) {
      if (error instanceof NodeError) throw new RespError(error.code, error.message);
      throw error;
    }
  };
}

function memberId(args: readonly Buffer[], index: number): string {
  const value = argument(args, index).toString("utf8");
  if (!isValidId(value)) throw new RespError("ERR", `id must be a node id: ${idRule} (got ${JSON.stringify(value.slice(0, 128))})`);
  return value;
}

/** A peer address in canonical `host:port` form. */
function peerAddress(args: readonly Buffer[], index: number): string {
  const value = argument(args, index).toString("utf8");
  try {
    return formatAddress(parseAddress("peer-address", value));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const shown = JSON.stringify(value.slice(0, 128));
    throw new RespError("ERR", `peer-address must be the new member's --peer-listen or --peer-advertise address, host:port with a port from 1 to 65535 (got ${shown})`);
  }
}

/** The membership commands, served by `node`. */
export function memberCommandTable(node: MembershipAdmin, transferSettleMs = transferSettleMsDefault): CommandTable {
  const command = (arity: number, flags: readonly CommandFlag[], summary: string, handler: CommandHandler): CommandSpec => ({
    arity,
    flags,
    // The Redis flags already say it: a membership change is "write", RAFT.MEMBERS "readonly".
    access: flags.includes("write") ? "write" : "read",
    summary,
    group: "raftlock",
    handler: translated(handler),
  });
  const changing: readonly CommandFlag[] = ["write", "admin"];
  const change = async (proposed: ConfigChange): Promise<Reply> => {
    await node.changeMembership(proposed);
    return ok;
  };

  return new Map<string, CommandSpec>([
    [
      "raft.members",
      command(1, ["readonly", "admin"], "RAFT.MEMBERS: [id, voter|learner, peer address or nil] per member, voters first (linearizable)", async () => {
        const { members } = await node.members();
        return array(members.map((member) => array([bulk(member.id), bulk(member.voter ? "voter" : "learner"), bulkOrNull(member.address)])));
      }),
    ],
    [
      "raft.addlearner",
      command(3, changing, "RAFT.ADDLEARNER id peer-address: add a member that replicates without voting; OK once committed", (_ctx, args) =>
        change({ type: "add-learner", nodeId: memberId(args, 1), address: peerAddress(args, 2) }),
      ),
    ],
    ["raft.promote", command(2, changing, "RAFT.PROMOTE id: make a caught-up learner a voter; OK once committed", (_ctx, args) => change({ type: "promote", nodeId: memberId(args, 1) }))],
    ["raft.remove", command(2, changing, "RAFT.REMOVE id: take a voter or learner out of the cluster; OK once committed", (_ctx, args) => change({ type: "remove", nodeId: memberId(args, 1) }))],
    [
      "raft.transfer",
      command(2, changing, "RAFT.TRANSFER id: hand leadership to voter id; the leader after, [leaderId, term], or nil if none is known", async (_ctx, args) => {
        const targetId = memberId(args, 1);
        const before = node.leader();
        const leader = await leaderAfterTransfer(node, targetId, before, await node.transferLeadership(targetId), transferSettleMs);
        return leader === null ? nullArray : array([bulk(leader.id), integer(leader.term)]);
      }),
    ],
  ]);
}
