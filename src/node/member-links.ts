// Which members this node keeps peer streams to, following the configuration in force.
import type { Logger } from "pino";
import { type Address, parseAddress } from "../config.js";
import { isMember } from "../raft/cluster-config.js";
import type { ClusterConfig, NodeId } from "../raft/types.js";
import type { Transport } from "../transport/transport.js";

/** A member as a join reply or `GET /v1/members` lists it. */
export interface ListedMember {
  readonly id: NodeId;
  readonly address: string | null;
}

/**
 * Keeps the transport's peers in step with the configuration (pitfall 18: in force from the moment its
 * entry is appended): dials new members at once, and lets go of removed ones only `departedGraceMs`
 * after their removal committed, so that a removed leader can still commit its removal, hand over and
 * answer what was forwarded to it. Notices when this node itself was removed.
 */
export class MemberLinks {
  private transport: Transport | null = null;
  private addedAtConfigIndex = -1;
  /** The members and addresses of the configuration last taken on, to log only real changes. */
  private loggedMembers = "";
  private prunedAtConfigIndex = -1;
  /** Whether a configuration this node held ever listed it (a joining node's first ones do not). */
  private wasMember = false;
  private removedFlag = false;

  constructor(
    private readonly selfId: NodeId,
    /** `--peers`: how this node reaches those members; wins over the configuration's addresses. */
    private readonly localPeers: ReadonlyMap<NodeId, Address>,
    private readonly departedGraceMs: number,
    private readonly currentConfig: () => ClusterConfig,
    private readonly logger: Logger,
  ) {}

  /** Whether a committed configuration no longer lists this node. */
  get removed(): boolean {
    return this.removedFlag;
  }

  /** Starts following with `transport`, whose initial peers came from `addresses`. */
  attach(transport: Transport): void {
    this.transport = transport;
  }

  /**
   * Every other member's peer address: as this node's `--peers` names it (the path may differ from node
   * to node, e.g. through a proxy), else from the configuration.
   */
  addresses(config: ClusterConfig): Map<NodeId, Address> {
    const addresses = new Map<NodeId, Address>();
    for (const [id, text] of Object.entries(config.addresses)) {
      if (id === this.selfId) continue;
      const local = this.localPeers.get(id);
      if (local !== undefined) {
        addresses.set(id, local);
        continue;
      }
      try {
        addresses.set(id, parseAddress("peers", text));
      } catch {
        this.logger.warn({ peerId: id, address: text }, "the configuration holds an address that does not parse; this node cannot dial that member");
      }
    }
    return addresses;
  }

  /** Called after every batch the node processed, with the core's configuration and commit index. */
  follow(config: ClusterConfig, configIndex: number, commitIndex: number, term: number): void {
    if (isMember(config, this.selfId)) {
      this.wasMember = true;
    } else if (this.wasMember && configIndex <= commitIndex && !this.removedFlag) {
      // Only a removed leader learns of its own removal: the leader stops replicating to a removed follower.
      this.removedFlag = true;
      this.logger.warn({ term, configIndex }, "this node was removed from the cluster; stop it");
    }
    const transport = this.transport;
    if (transport === null) return;
    if (configIndex !== this.addedAtConfigIndex) {
      // Once per configuration this node takes on (when appended: it may still be undone before it commits).
      // A snapshot moves the index of an unchanged configuration: only a change of members is news.
      const membersNow = membershipKey(config);
      if (this.addedAtConfigIndex !== -1 && membersNow !== this.loggedMembers) {
        this.logger.info({ term, configIndex, voters: config.voters, learners: config.learners }, "cluster configuration changed");
      }
      this.loggedMembers = membersNow;
      this.addedAtConfigIndex = configIndex;
      for (const [id, address] of this.addresses(config)) transport.addPeer(id, address);
    }
    if (configIndex <= commitIndex && configIndex !== this.prunedAtConfigIndex) {
      this.prunedAtConfigIndex = configIndex;
      const departed = transport.peerIds().filter((id) => !isMember(config, id));
      if (departed.length === 0) return;
      const timer = setTimeout(() => {
        const current = this.currentConfig();
        for (const id of departed) if (!isMember(current, id)) transport.removePeer(id);
      }, this.departedGraceMs);
      timer.unref();
    }
  }

  /** Dials the members a join reply named, before their configuration reaches this node through the log. */
  learn(members: readonly ListedMember[]): void {
    for (const member of members) {
      if (member.id === this.selfId || member.address === null) continue;
      try {
        this.transport?.addPeer(member.id, parseAddress("peers", member.address));
      } catch {
        this.logger.warn({ peerId: member.id, address: member.address }, "a member's address does not parse; waiting for the log's configuration");
      }
    }
  }
}

function membershipKey(config: ClusterConfig): string {
  return JSON.stringify([config.voters, config.learners, config.addresses]);
}
