// `--join`: a new node asks a running cluster to add it as a learner, then asks the leader to promote it
// once it caught up. Both steps are retried until they succeed or the node stops: the cluster may have
// no leader for a while, another change may be in flight, and the learner needs time to catch up.

import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { type AdminTls, sendAdminRequest } from "../admin-http.js";
import { formatAddress, type NodeConfig } from "../config.js";
import type { ReloadableTls } from "../tls.js";
import { NodeError } from "./forwarding.js";
import type { Membership, RaftNode } from "./node.js";

/** Pause between attempts to join or to be promoted. */
export const joinRetryDelayMs = 1_000;
/** How long one join request may take before the next member is tried. */
export const joinRequestTimeoutMs = 15_000;

/** Codes that mean "not yet": the promotion is retried after a pause. */
const retriedCodes: ReadonlySet<NodeError["code"]> = new Set(["NOTCAUGHTUP", "CHANGEPENDING", "NOLEADER", "LEADERLOST", "TIMEOUT", "NOTCOMMITTED", "UNAVAILABLE"]);

/**
 * Joins the cluster (if this node is not a member yet), then gets itself promoted to voter. `clientTls`:
 * this node's client-port material, presented to members that require client certificates.
 */
export async function joinAndPromote(node: RaftNode, config: NodeConfig, logger: Logger, signal: AbortSignal, clientTls?: ReloadableTls): Promise<void> {
  if (!node.isMember()) {
    const membership = await requestMembership(config, logger, signal, clientTls);
    if (membership === null) return;
    node.learnPeers(membership);
    logger.info({ members: membership.members.map((member) => member.id) }, "added to the cluster as a learner");
  }
  let attempts = 0;
  while (!signal.aborted && !node.isVoter()) {
    if (node.isMember()) {
      try {
        await node.changeMembership({ type: "promote", nodeId: config.id });
        logger.info({ attempts }, "promoted to voter");
      } catch (error) {
        if (!(error instanceof NodeError) || !retriedCodes.has(error.code)) throw error;
        if (error.code !== "NOTCAUGHTUP" && error.code !== "CHANGEPENDING") logger.debug({ err: error }, "promotion not possible yet; retrying");
      }
    }
    attempts++;
    await pause(joinRetryDelayMs, signal);
  }
}

/** POSTs this node to each `--join` address in turn until one adds it; null when stopped first. */
async function requestMembership(config: NodeConfig, logger: Logger, signal: AbortSignal, clientTls: ReloadableTls | undefined): Promise<Membership | null> {
  const body = JSON.stringify({ id: config.id, address: formatAddress(config.peerAdvertise) });
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (config.authPassword !== undefined) headers.authorization = `Bearer ${config.authPassword}`;
  const warned = new Set<string>();
  const tls = joinTls(config, clientTls);
  while (!signal.aborted) {
    for (const target of config.join) {
      try {
        const response = await sendAdminRequest(new URL(`${target}/v1/members`), "POST", headers, body, joinRequestTimeoutMs, tls, signal);
        const reply = parseReply(response.text);
        if (response.status >= 200 && response.status < 300 && Array.isArray(reply.members)) return reply as Membership;
        // Already a voter: a restart of a node whose data was lost. Nothing a retry can fix.
        if (reply.error?.code === "MEMBERSHIP") throw new NodeError("MEMBERSHIP", `${target} refused to add this node: ${reply.error.message}`);
        if (!warned.has(target)) logger.warn({ target, status: response.status, error: reply.error }, "could not join through this member yet; retrying");
      } catch (error) {
        // Stopped while asking: not a failure to join.
        if (signal.aborted) return null;
        if (error instanceof NodeError) throw error;
        if (!warned.has(target)) logger.warn({ target, err: (error as Error).message }, "could not reach this member to join; retrying");
      }
      warned.add(target);
    }
    await pause(joinRetryDelayMs, signal);
  }
  return null;
}

/** A member's answer; an empty one when it is not JSON (a proxy's error page): the status then speaks. */
function parseReply(text: string): Partial<Membership> & { error?: { code: string; message: string } } {
  try {
    return JSON.parse(text) as Partial<Membership> & { error?: { code: string; message: string } };
  } catch {
    return {};
  }
}

/**
 * How this node checks members' HTTPS certificates (`--join-tls-ca`, else the system's CAs), and the
 * certificate it presents when members require one (`--client-tls-ca`): its own client-port certificate.
 */
function joinTls(config: NodeConfig, clientTls: ReloadableTls | undefined): AdminTls | undefined {
  if (!config.join.some((target) => target.startsWith("https:"))) return undefined;
  const identity = clientTls?.current();
  return {
    ...(config.joinTlsCa === undefined ? {} : { ca: readFileSync(config.joinTlsCa) }),
    ...(identity === undefined ? {} : { cert: identity.cert, key: identity.key }),
  };
}

function pause(delayMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, delayMs);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
