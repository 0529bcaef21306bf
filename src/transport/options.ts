// Checks of the transport's configuration, and where a peer is reached.

import { clusterTokenBytesMax, idBytesMax } from "./codec.js";
import type { PeerAddress, TransportOptions } from "./transport.js";

/** The HTTP path peers upgrade on; anything else on the peer port is refused. */
export const peerPath = "/raftlock/peer";

/** The URL a dialer opens: `wss` when the peer port speaks TLS. */
export function peerUrl(address: PeerAddress, tls = false): string {
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `${tls ? "wss" : "ws"}://${host}:${address.port}${peerPath}`;
}

/** Configuration mistakes are reported when the node starts, with what to change. */
export function validateOptions(options: TransportOptions, linksMax: number): void {
  const problems: (string | null)[] = [idProblem("node id", options.nodeId), idProblem("cluster id", options.clusterId)];
  if (!isPort(options.listen.port, true)) problems.push(`peer listen port must be an integer from 0 to 65535 (got ${options.listen.port})`);
  for (const [peerId, address] of options.peers) problems.push(...peerProblems(options.nodeId, peerId, address));
  if (options.peers.size > linksMax) problems.push(`at most ${linksMax} peers are supported (linksMax; got ${options.peers.size})`);
  if (options.clusterToken !== undefined) {
    const bytes = Buffer.byteLength(options.clusterToken, "utf8");
    // Never echo the token itself: it would end up in logs.
    if (bytes === 0 || bytes > clusterTokenBytesMax) problems.push(`cluster token must be 1 to ${clusterTokenBytesMax} bytes (got ${bytes})`);
  }
  const found = problems.filter((problem) => problem !== null);
  if (found.length > 0) throw new Error(`invalid peer transport configuration: ${found.join("; ")}`);
}

/** What is wrong with peer `peerId` at `address` as a peer of `nodeId`; empty when nothing is. */
export function peerProblems(nodeId: string, peerId: string, address: PeerAddress): string[] {
  const problems: string[] = [];
  const idWrong = idProblem("peer id", peerId);
  if (idWrong !== null) problems.push(idWrong);
  if (peerId === nodeId) problems.push(`the peers must not include this node ("${peerId}")`);
  if (address.host.length === 0 || !isPort(address.port, false)) problems.push(`peer "${peerId}" needs a host and a port from 1 to 65535`);
  else if (!URL.canParse(peerUrl(address))) problems.push(`peer "${peerId}" has an invalid host "${address.host}"`);
  return problems;
}

function idProblem(what: string, id: string): string | null {
  const bytes = Buffer.byteLength(id, "utf8");
  return bytes === 0 || bytes > idBytesMax ? `${what} must be 1 to ${idBytesMax} bytes (got "${id}")` : null;
}

function isPort(port: number, zeroAllowed: boolean): boolean {
  return Number.isInteger(port) && port <= 65535 && (port > 0 || (zeroAllowed && port === 0));
}
