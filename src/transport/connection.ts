// One WebSocket to a peer and where it stands in its life: handshaking, open (authenticated), closed.

import type { WebSocket } from "ws";

export type ConnectionRole = "dialer" | "acceptor";
export type ConnectionState = "handshaking" | "open" | "closed";

/** WebSocket close codes we send (RFC 6455 section 7.4, and 4000-4999 for our own). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  PolicyViolation: 1008,
  TooBig: 1009,
  /** The dialer opened a newer stream; this one is a leftover. */
  Replaced: 4000,
} as const;

/** WebSocket close reasons are limited to 123 bytes by the protocol. */
export const closeReasonBytesMax = 123;

export class PeerConnection {
  state: ConnectionState = "handshaking";
  /** Known from the start when dialing; for an acceptor, the id the Hello claims. */
  peerId: string | null;
  /** Monotonic time of the last frame, ping or pong from the peer. */
  lastHeardAtMs: number;
  /** When the handshake completed (null before), for the reconnect backoff. */
  openedAtMs: number | null = null;
  /** The last socket error, used as the reason when the socket then closes. */
  lastError: string | null = null;
  handshakeTimer: NodeJS.Timeout | null = null;
  closeTimer: NodeJS.Timeout | null = null;
  /** Resolves when the socket has closed (the 'close' event), however it ended. */
  readonly closed: Promise<void>;
  markClosed!: () => void;

  constructor(
    readonly ws: WebSocket,
    readonly role: ConnectionRole,
    peerId: string | null,
    /** For logs: host:port dialed, or the remote address of an accepted socket. */
    readonly remoteAddress: string,
    nowMs: number,
  ) {
    this.peerId = peerId;
    this.lastHeardAtMs = nowMs;
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
  }
}
