// The peer network of a chaos cluster, which the harness breaks without root. Every node's peer address
// (its `--peers` entry, or the `--peer-advertise` of a node that joined later) is its front door: a TCP
// relay to the node's real peer port. A relay learns which node dialed from the dialer's first frame (its
// Hello, src/transport/codec.ts), so faults apply per link, between two nodes, however the dialer found
// the address: from its own `--peers` or from the replicated configuration. Per link the harness can cut
// both ways, drop one direction only (a one-way partition), delay every chunk, or reset the connections.
// Bytes dropped mid-stream leave the WebSocket framing broken, so healing a one-way cut also resets the
// link's connections: the nodes then reconnect cleanly, as after a real partition.
import { createServer, type Server, type Socket, connect } from "node:net";
import { decodeFrame } from "../../src/transport/codec.js";
import { freePort } from "../support/ports.js";

/** Longest delay the harness may ask for on one link. */
export const linkDelayMsMax = 5_000;
/** The dialer's WebSocket upgrade request; a longer one is not one of our nodes. */
const upgradeBytesMax = 16 << 10;
/** The dialer's Hello frame (ids and cluster token are each at most about 1 KiB). */
const helloBytesMax = 8 << 10;

/** One relayed connection to `acceptorId`'s front door; the dialer is known once its Hello arrived. */
interface Relay {
  readonly dialer: Socket;
  readonly acceptor: Socket;
  readonly acceptorId: string;
  dialerId: string | null;
}

/** The faults on the one stream between two nodes, whichever of them dials. */
export class Link {
  readonly relays = new Set<Relay>();
  /** Nodes whose bytes to the other end are dropped. */
  private readonly blockedFrom = new Set<string>();
  private delayMsNow = 0;

  constructor(
    readonly a: string,
    readonly b: string,
  ) {}

  get delayMs(): number {
    return this.delayMsNow;
  }

  /** Whether bytes `fromId` sends over this link are dropped. */
  drops(fromId: string): boolean {
    return this.blockedFrom.has(fromId);
  }

  get fullyCut(): boolean {
    return this.blockedFrom.has(this.a) && this.blockedFrom.has(this.b);
  }

  /** Drops traffic from `fromId` to the other end; false heals that direction. */
  block(fromId: string, blocked: boolean): void {
    if (fromId !== this.a && fromId !== this.b) throw new Error(`${fromId} is not an end of the link ${this.a}-${this.b}`);
    const wasBlocked = this.blockedFrom.has(fromId);
    if (blocked) this.blockedFrom.add(fromId);
    else this.blockedFrom.delete(fromId);
    // Healing after dropped bytes: start the streams afresh rather than resume a torn frame.
    if (wasBlocked && !blocked) this.resetConnections();
  }

  /** Both directions; a full cut also closes the open connections at once, as a dead host would look after a timeout. */
  cut(cut: boolean): void {
    this.block(this.a, cut);
    this.block(this.b, cut);
    if (cut) this.resetConnections();
  }

  setDelay(delayMs: number): void {
    if (!(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= linkDelayMsMax)) throw new RangeError(`link delay must be 0 to ${linkDelayMsMax} ms (got ${delayMs})`);
    this.delayMsNow = delayMs;
  }

  /** Closes every relayed connection; the dialer reconnects (through whatever faults are set). */
  resetConnections(): void {
    for (const relay of this.relays) {
      relay.dialer.destroy();
      relay.acceptor.destroy();
    }
    this.relays.clear();
  }

  heal(): void {
    this.setDelay(0);
    this.block(this.a, false);
    this.block(this.b, false);
  }
}

interface FrontDoor {
  readonly server: Server;
  readonly port: number;
  readonly relays: Set<Relay>;
}

export class FaultNetwork {
  /** Keyed by `${lower}>${higher}`. */
  private readonly links = new Map<string, Link>();
  private readonly doors = new Map<string, FrontDoor>();
  /** Connections closed because their first bytes were not a WebSocket upgrade and a Hello. */
  unidentified = 0;

  /** Opens `nodeId`'s front door, a relay to its real `peerPort`; returns the port other nodes dial. */
  async openDoor(nodeId: string, peerPort: number): Promise<number> {
    if (this.doors.has(nodeId)) throw new Error(`${nodeId} already has a front door`);
    const port = await freePort();
    const server = createServer();
    const door: FrontDoor = { server, port, relays: new Set() };
    server.on("connection", (socket) => this.relay(door, nodeId, socket, peerPort));
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    this.doors.set(nodeId, door);
    return port;
  }

  /** Closes `nodeId`'s front door and its connections: the node is gone for good. */
  async closeDoor(nodeId: string): Promise<void> {
    const door = this.doors.get(nodeId);
    if (door === undefined) return;
    this.doors.delete(nodeId);
    for (const relay of door.relays) {
      relay.dialer.destroy();
      relay.acceptor.destroy();
    }
    await new Promise<void>((resolve) => door.server.close(() => resolve()));
  }

  link(a: string, b: string): Link {
    if (a === b) throw new Error(`a link needs two nodes (got ${a} twice)`);
    const [lower, higher] = a < b ? [a, b] : [b, a];
    const key = `${lower}>${higher}`;
    let link = this.links.get(key);
    if (link === undefined) this.links.set(key, (link = new Link(lower, higher)));
    return link;
  }

  /** Undoes every link fault. */
  healAll(): void {
    for (const link of this.links.values()) link.heal();
  }

  async close(): Promise<void> {
    for (const nodeId of [...this.doors.keys()]) await this.closeDoor(nodeId);
  }

  private relay(door: FrontDoor, acceptorId: string, dialer: Socket, peerPort: number): void {
    const acceptor = connect(peerPort, "127.0.0.1");
    const relay: Relay = { dialer, acceptor, acceptorId, dialerId: null };
    door.relays.add(relay);
    let link: Link | null = null;
    const end = (): void => {
      door.relays.delete(relay);
      link?.relays.delete(relay);
      dialer.destroy();
      acceptor.destroy();
    };
    for (const socket of [dialer, acceptor]) {
      socket.setNoDelay(true);
      socket.on("error", end);
      socket.on("close", end);
    }
    // Until the Hello names the dialer, the upgrade request and its answer pass untouched.
    const toAcceptor = this.pump(acceptor, () => (link === null ? null : { link, fromId: relay.dialerId! }));
    const toDialer = this.pump(dialer, () => (link === null ? null : { link, fromId: acceptorId }));
    acceptor.on("data", toDialer);
    let pending = Buffer.alloc(0);
    let upgradeSent = false;
    const sniff = (chunk: Buffer): void => {
      if (dialer.destroyed) return;
      pending = Buffer.concat([pending, chunk]);
      if (!upgradeSent) {
        const headerEnd = pending.indexOf("\r\n\r\n");
        if (headerEnd < 0) {
          if (pending.length > upgradeBytesMax) this.refuse(end);
          return;
        }
        acceptor.write(pending.subarray(0, headerEnd + 4));
        pending = pending.subarray(headerEnd + 4);
        upgradeSent = true;
      }
      const frame = firstWebSocketMessage(pending);
      if (frame === "incomplete") {
        if (pending.length > helloBytesMax) this.refuse(end);
        return;
      }
      let dialerId: string | null = null;
      try {
        const hello = frame === "not-a-frame" ? null : decodeFrame(frame.payload);
        if (hello?.kind === "hello") dialerId = hello.fromNodeId;
      } catch {
        // not our wire format
      }
      if (dialerId === null || dialerId === acceptorId) {
        this.refuse(end);
        return;
      }
      dialer.off("data", sniff);
      relay.dialerId = dialerId;
      link = this.link(dialerId, acceptorId);
      // While both ways are cut the acceptor is unreachable: drop the connection, as a partitioned host would time out.
      if (link.fullyCut) {
        end();
        return;
      }
      link.relays.add(relay);
      dialer.on("data", toAcceptor);
      toAcceptor(pending);
    };
    dialer.on("data", sniff);
  }

  private refuse(end: () => void): void {
    this.unidentified++;
    end();
  }

  /**
   * A writer to `to` that drops or delays each chunk as the link (once known) says; order is kept under
   * delay. One queue and one timer per direction, so delayed chunks leave in the order they came.
   */
  private pump(to: Socket, current: () => { link: Link; fromId: string } | null): (chunk: Buffer) => void {
    const queue: { readonly dueMs: number; readonly chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | null = null;
    const drain = (): void => {
      timer = null;
      while (queue.length > 0 && queue[0]!.dueMs <= performance.now()) {
        const { chunk } = queue.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, Math.max(1, queue[0]!.dueMs - performance.now()));
    };
    to.on("close", () => {
      if (timer !== null) clearTimeout(timer);
    });
    return (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      const known = current();
      if (known !== null && known.link.drops(known.fromId)) return;
      const delayMs = known?.link.delayMs ?? 0;
      if (delayMs === 0 && queue.length === 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      queue.push({ dueMs: performance.now() + delayMs, chunk });
      timer ??= setTimeout(drain, Math.max(1, queue[0]!.dueMs - performance.now()));
    };
  }
}

/**
 * The payload of the first WebSocket message in `bytes` (a client's frame: masked, RFC 6455 §5.2), or
 * why there is none yet. Our nodes send the Hello as one unfragmented binary message.
 */
export function firstWebSocketMessage(bytes: Uint8Array): { payload: Uint8Array } | "incomplete" | "not-a-frame" {
  if (bytes.length < 2) return "incomplete";
  const fin = (bytes[0]! & 0x80) !== 0;
  const opcode = bytes[0]! & 0x0f;
  if (!fin || opcode !== 0x2) return "not-a-frame";
  const masked = (bytes[1]! & 0x80) !== 0;
  let length = bytes[1]! & 0x7f;
  let offset = 2;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (length === 126) {
    if (bytes.length < 4) return "incomplete";
    length = view.getUint16(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return "incomplete";
    const long = view.getBigUint64(2);
    if (long > BigInt(helloBytesMax)) return "not-a-frame";
    length = Number(long);
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (bytes.length < offset + length) return "incomplete";
  const payload = Uint8Array.from(bytes.subarray(offset, offset + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ bytes[maskOffset + (i % 4)]!;
  return { payload };
}
