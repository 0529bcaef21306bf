// Cluster configurations: single-server changes (Ongaro's thesis, §4.1), their checks, and the bytes a
// configuration entry carries.
//
// One change at a time, each adding or removing one voter, keeps any majority of the old voters and any
// majority of the new ones overlapping, so two leaders can never be elected in one term by the two
// configurations. A new node first joins as a learner (it replicates but neither votes nor counts towards
// a quorum) and is promoted once it caught up, so that adding it never stalls commits.

import { assert } from "../util/assert.js";
import type { ClusterConfig, NodeId } from "./types.js";

/** One membership change, as proposed through the leader. */
export type ConfigChange =
  | { readonly type: "add-learner"; readonly nodeId: NodeId; readonly address: string }
  | { readonly type: "promote"; readonly nodeId: NodeId }
  | { readonly type: "remove"; readonly nodeId: NodeId };

/** Most voters plus learners one configuration may list. */
export const configMembersMax = 64;
/** Longest peer address a configuration may carry ("host:port"). */
export const memberAddressBytesMax = 300;

/** Why a change cannot be made to `config`, or null when it can. */
export function configChangeProblem(config: ClusterConfig, change: ConfigChange): string | null {
  const isVoter = config.voters.includes(change.nodeId);
  const isLearner = config.learners.includes(change.nodeId);
  switch (change.type) {
    case "add-learner":
      if (isVoter) return `${change.nodeId} is already a voter`;
      if (config.voters.length + config.learners.length + (isLearner ? 0 : 1) > configMembersMax) {
        return `a cluster may have at most ${configMembersMax} members`;
      }
      return null; // adding a learner again only updates its address
    case "promote":
      if (isVoter) return `${change.nodeId} is already a voter`;
      if (!isLearner) return `${change.nodeId} is not a learner; add it as a learner first`;
      return null;
    case "remove":
      if (!isVoter && !isLearner) return `${change.nodeId} is not a member`;
      if (isVoter && config.voters.length === 1) return `${change.nodeId} is the last voter; a cluster needs at least one`;
      return null;
  }
}

/** The configuration after `change`; the caller checked it with `configChangeProblem`. */
export function applyConfigChange(config: ClusterConfig, change: ConfigChange): ClusterConfig {
  assert(configChangeProblem(config, change) === null, `invalid configuration change ${change.type} ${change.nodeId}`);
  const others = (ids: readonly NodeId[]): NodeId[] => ids.filter((id) => id !== change.nodeId);
  switch (change.type) {
    case "add-learner":
      return {
        voters: config.voters,
        learners: config.learners.includes(change.nodeId) ? config.learners : [...config.learners, change.nodeId],
        addresses: { ...config.addresses, [change.nodeId]: change.address },
      };
    case "promote":
      return { voters: [...config.voters, change.nodeId], learners: others(config.learners), addresses: config.addresses };
    case "remove": {
      const addresses = { ...config.addresses };
      delete addresses[change.nodeId];
      return { voters: others(config.voters), learners: others(config.learners), addresses };
    }
  }
}

/** Whether a node is in `config` at all (voter or learner). */
export function isMember(config: ClusterConfig, nodeId: NodeId): boolean {
  return config.voters.includes(nodeId) || config.learners.includes(nodeId);
}

/** The data of a configuration entry: UTF-8 JSON, small and readable in a log dump. */
export function encodeClusterConfig(config: ClusterConfig): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ voters: config.voters, learners: config.learners, addresses: config.addresses }));
}

/** Reads a configuration entry's data. The entry passed the log's CRC: a bad shape is a bug, not input. */
export function decodeClusterConfig(data: Uint8Array): ClusterConfig {
  const parsed = JSON.parse(new TextDecoder().decode(data)) as Partial<ClusterConfig>;
  const isIdList = (value: unknown): value is NodeId[] => Array.isArray(value) && value.every((id) => typeof id === "string" && id !== "");
  assert(isIdList(parsed.voters) && isIdList(parsed.learners), "configuration entry without voters and learners");
  const addresses = parsed.addresses ?? {};
  assert(typeof addresses === "object" && Object.values(addresses).every((address) => typeof address === "string"), "configuration entry with bad addresses");
  return { voters: parsed.voters, learners: parsed.learners, addresses };
}
