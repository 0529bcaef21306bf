// Every bound of the peer transport in one place. Each is checked where data enters: `send` and `request`
// on the way out, the WebSocket `maxPayload` and the codec on the way in.

import {
  frameBytesMaxDefault,
  messagesFrameOverheadBytes,
  requestOverheadBytes,
  snapshotChunkOverheadBytes,
} from "./codec.js";

export interface TransportLimits {
  /** Largest frame either side sends or accepts; also the ws `maxPayload` of server and client. */
  readonly frameBytesMax: number;
  /**
   * Bytes waiting for one peer: our queue plus what ws has buffered but the kernel has not taken. When a
   * Raft message would exceed it, the queued Raft messages are dropped and the peer reported unreachable;
   * the core resends from its own log once the peer answers again (raft-pitfalls 12).
   */
  readonly queuedBytesMaxPerPeer: number;
  /** We hand frames to the socket only while `ws.bufferedAmount` is below this; the rest waits in our queue. */
  readonly socketBufferedBytesMax: number;
  /** Data bytes per SnapshotChunk frame. */
  readonly snapshotChunkBytes: number;
  /** Largest snapshot we send or reassemble; the receiver holds a snapshot in memory until it is whole. */
  readonly snapshotBytesMax: number;
  /** Our requests awaiting an answer from one peer, and that peer's requests we handle at once. */
  readonly requestsInFlightMaxPerPeer: number;
  /** Largest request or response payload. */
  readonly requestPayloadBytesMax: number;
  /** From dialing (or accepting) a socket to a completed handshake. */
  readonly handshakeTimeoutMs: number;
  /** Accepted sockets that have not completed the handshake yet; more are refused at once. */
  readonly handshakesPendingMax: number;
  /**
   * Peers this node holds a link for: configured ones and authenticated dialers it was not told about
   * (a joining node is dialed by members it does not know yet). Far above the largest cluster (peersMax).
   */
  readonly linksMax: number;
  /** First reconnect delay; it doubles per failed attempt up to the max, with jitter. */
  readonly reconnectDelayBaseMs: number;
  readonly reconnectDelayMaxMs: number;
  /** Each side pings every interval; a connection silent for `peerSilenceMsMax` is dropped as dead. */
  readonly keepaliveIntervalMs: number;
  readonly peerSilenceMsMax: number;
  /** How long `close()` waits for peers to acknowledge the WebSocket close before cutting the sockets. */
  readonly closeTimeoutMs: number;
}

export const transportLimitsDefault: TransportLimits = {
  // One AppendEntries carries up to appendBytesMax (1 MiB) of entries, or one entry of up to
  // proposalBytesMax (1 MiB); a forwarded proposal is at most 2 MiB. 4 MiB leaves room for headers.
  frameBytesMax: frameBytesMaxDefault,
  queuedBytesMaxPerPeer: 64 << 20,
  socketBufferedBytesMax: 4 << 20,
  snapshotChunkBytes: 256 << 10,
  snapshotBytesMax: 512 << 20,
  requestsInFlightMaxPerPeer: 1024,
  requestPayloadBytesMax: 2 << 20,
  handshakeTimeoutMs: 5_000,
  handshakesPendingMax: 64,
  linksMax: 64,
  reconnectDelayBaseMs: 100,
  reconnectDelayMaxMs: 5_000,
  keepaliveIntervalMs: 1_000,
  peerSilenceMsMax: 10_000,
  closeTimeoutMs: 1_000,
};

/**
 * Sockets the peer port holds at once, a hard ceiling past which a new socket is closed as it is accepted:
 * a stream per link plus a replaced one not yet closed, and twice the handshakes the transport counts, for
 * sockets still in their TLS handshake or upgrade request (which it cannot count yet).
 */
export function peerSocketsMax(limits: TransportLimits): number {
  return 2 * (limits.linksMax + limits.handshakesPendingMax);
}

/** The defaults with `overrides` applied; throws an Error naming the first inconsistent limit. */
export function resolveLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  const limits: TransportLimits = { ...transportLimitsDefault, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`transport limit ${name} must be a positive integer (got ${String(value)})`);
  }
  const checks: [boolean, string][] = [
    [limits.frameBytesMax > messagesFrameOverheadBytes + 64, "frameBytesMax is too small to carry a message"],
    [limits.snapshotChunkBytes + snapshotChunkOverheadBytes <= limits.frameBytesMax, "snapshotChunkBytes must fit in one frame (frameBytesMax)"],
    [limits.requestPayloadBytesMax + requestOverheadBytes <= limits.frameBytesMax, "requestPayloadBytesMax must fit in one frame (frameBytesMax)"],
    [limits.reconnectDelayBaseMs <= limits.reconnectDelayMaxMs, "reconnectDelayBaseMs must not exceed reconnectDelayMaxMs"],
    [limits.keepaliveIntervalMs < limits.peerSilenceMsMax, "keepaliveIntervalMs must be shorter than peerSilenceMsMax"],
  ];
  for (const [ok, message] of checks) if (!ok) throw new Error(`transport limits: ${message}`);
  return limits;
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from the base, capped, with "equal
 * jitter" (between half and all of it) so that nodes restarted together do not dial in lockstep.
 */
export function reconnectDelayMs(attempt: number, limits: TransportLimits, random: () => number = Math.random): number {
  const ceilingMs = Math.min(limits.reconnectDelayMaxMs, limits.reconnectDelayBaseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceilingMs / 2 + (random() * ceilingMs) / 2);
}
