// Who may open a stream to whom, and the checks of the first frame each side receives.
//
// Exactly one stream per pair: the node with the lower id (JavaScript string order, so "n10" < "n2"; any
// order works as long as both sides compute the same) dials, the higher one accepts. Only the dialer
// reconnects. An acceptor that gets a second authenticated stream from the same peer keeps the newer one:
// the dialer opens a stream only after its previous one is gone, so the older one is a half-open leftover.
//
// Unless the lower id cannot dial: it has no address for the higher one. A member that was down or cut
// off while a node with a higher id joined holds a configuration without it, and learns the newcomer's
// address only from entries that this very stream would carry; if the newcomer leads, neither would ever
// dial. So the higher id dials in reverse once a stream it expects has stayed away for longer than the
// lower id's longest reconnect backoff, and the lower id accepts such a stream only while it has no
// address for the dialer. One stream per pair still: a node that has an address dials and refuses reverse
// streams, and a node that accepted one does not dial while it is open.
//
// The acceptor takes authenticated dialers it has no link for yet: a node joining a cluster does not know
// the members, and those with lower ids dial it. Their number is bounded by `linksMax`.

import { createHash, timingSafeEqual } from "node:crypto";
import { idLengthMax, idRule, isValidId } from "../config.js";
import type { LimitName } from "../limit-hits.js";
import type { HelloFrame, WelcomeFrame } from "./codec.js";

/** Whether `selfId` dials `peerId` (true) or waits for it to dial (false). */
export function dialsTo(selfId: string, peerId: string): boolean {
  return selfId < peerId;
}

/**
 * Token comparison in constant time. Hashing first gives both sides the same length, so neither the
 * content nor the length of the expected token leaks through timing.
 */
export function clusterTokensMatch(expected: string | undefined, received: string | null): boolean {
  const expectedDigest = createHash("sha256").update(expected ?? "").digest();
  const receivedDigest = createHash("sha256").update(received ?? "").digest();
  const sameContent = timingSafeEqual(expectedDigest, receivedDigest);
  return sameContent && (expected === undefined) === (received === null);
}

export interface AcceptorIdentity {
  readonly nodeId: string;
  readonly clusterId: string;
  readonly clusterToken: string | undefined;
}

/** The peers the acceptor holds a link for (a Map or Set of ids), and how many it may hold. */
export interface AcceptorLinks {
  readonly peerIds: { has(peerId: string): boolean; readonly size: number };
  readonly linksMax: number;
  /** The peers the acceptor has an address for: those it dials itself when its id is the lower. */
  readonly dialable: { has(peerId: string): boolean };
}

/** Why the acceptor refuses a hello. */
export interface HelloRefusal {
  /** Goes to the log and back to the dialer: never the token. */
  readonly reason: string;
  /** The named limit that refused it, to be counted; null for a hello that does not fit this node. */
  readonly limit: LimitName | null;
}

/** Why the acceptor refuses `hello`, or null to accept. */
export function helloRefusal(hello: HelloFrame, self: AcceptorIdentity, links: AcceptorLinks): HelloRefusal | null {
  const mismatch = (reason: string): HelloRefusal => ({ reason, limit: null });
  // The token first: a dialer without it learns nothing else about this cluster from the refusal.
  if (!clusterTokensMatch(self.clusterToken, hello.clusterToken)) return mismatch("cluster token mismatch");
  if (hello.clusterId !== self.clusterId) return mismatch(`cluster id mismatch: dialer is in "${hello.clusterId}", this node in "${self.clusterId}"`);
  if (hello.toNodeId !== self.nodeId) return mismatch(`dialed node "${hello.toNodeId}" but reached "${self.nodeId}"; check the --peers addresses`);
  // An authenticated dialer still gets a link under the id it claims, which then names it in logs, metrics
  // and membership: it must be an id a node could have been started with, and not this node's own.
  if (!isValidId(hello.fromNodeId)) return mismatch(`dialer's node id ${JSON.stringify(hello.fromNodeId.slice(0, idLengthMax))} is not a node id: ${idRule}`);
  if (hello.fromNodeId === self.nodeId) return mismatch(`dialer claims this node's own id "${self.nodeId}"; two nodes were started with the same --id`);
  if (!dialsTo(hello.fromNodeId, self.nodeId) && links.dialable.has(hello.fromNodeId)) {
    return mismatch(`wrong dial direction: "${self.nodeId}" dials "${hello.fromNodeId}", not the other way`);
  }
  if (!links.peerIds.has(hello.fromNodeId) && links.peerIds.size >= links.linksMax) {
    const reason = `"${self.nodeId}" already holds ${links.peerIds.size} peer links (linksMax ${links.linksMax}) and "${hello.fromNodeId}" is not among its peers; remove departed peers or raise linksMax`;
    return { reason, limit: "peer_links" };
  }
  return null;
}

/** Why the dialer drops the stream after `welcome`, or null when the expected peer answered. */
export function welcomeMismatch(welcome: WelcomeFrame, expectedPeerId: string, clusterId: string): string | null {
  if (welcome.clusterId !== clusterId) return `cluster id mismatch: peer is in "${welcome.clusterId}", this node in "${clusterId}"`;
  if (welcome.nodeId !== expectedPeerId) return `expected "${expectedPeerId}" at this address but "${welcome.nodeId}" answered`;
  return null;
}
