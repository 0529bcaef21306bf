// A TCP relay on the one peer stream between two nodes (the lower id dials the higher: src/transport/
// handshake.ts), which the chaos harness uses to break the network without root: cut the link both
// ways, drop the bytes of one direction only (a one-way partition), delay every chunk, or reset the
// connections. Bytes dropped mid-stream leave the WebSocket framing broken, so healing a one-way cut
// also resets the connections: the nodes then reconnect cleanly, as after a real partition.
import { createServer, type Server, type Socket, connect } from "node:net";
import { freePort } from "../support/ports.js";

/** Longest delay the harness may ask for on one link. */
export const linkDelayMsMax = 5_000;

interface Relay {
  readonly dialer: Socket;
  readonly acceptor: Socket;
}

/** The link between `dialerId` (lower id) and `acceptorId`; traffic either way goes through it. */
export class FaultProxy {
  private readonly relays = new Set<Relay>();
  /** Direction blocked: bytes from the dialer to the acceptor (`forward`) or back (`backward`) are dropped. */
  private blocked = { forward: false, backward: false };
  private delayMs = 0;

  private constructor(
    readonly dialerId: string,
    readonly acceptorId: string,
    private readonly server: Server,
    /** Where the dialer connects: the dialer's `--peers` names this port for the acceptor. */
    readonly port: number,
  ) {}

  static async start(dialerId: string, acceptorId: string, acceptorPeerPort: number): Promise<FaultProxy> {
    const port = await freePort();
    const server = createServer();
    const proxy = new FaultProxy(dialerId, acceptorId, server, port);
    server.on("connection", (socket) => proxy.relay(socket, acceptorPeerPort));
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return proxy;
  }

  /** Drops traffic from `fromId` to the other end; false heals that direction. */
  block(fromId: string, blocked: boolean): void {
    const direction = fromId === this.dialerId ? "forward" : "backward";
    const wasBlocked = this.blocked[direction];
    this.blocked = { ...this.blocked, [direction]: blocked };
    // Healing after dropped bytes: start the streams afresh rather than resume a torn frame.
    if (wasBlocked && !blocked) this.resetConnections();
  }

  /** Both directions; a full cut also closes the open connections at once, as a dead host would look after a timeout. */
  cut(cut: boolean): void {
    this.block(this.dialerId, cut);
    this.block(this.acceptorId, cut);
    if (cut) this.resetConnections();
  }

  setDelay(delayMs: number): void {
    if (!(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= linkDelayMsMax)) throw new RangeError(`link delay must be 0 to ${linkDelayMsMax} ms (got ${delayMs})`);
    this.delayMs = delayMs;
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
    this.block(this.dialerId, false);
    this.block(this.acceptorId, false);
  }

  async close(): Promise<void> {
    this.resetConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(dialer: Socket, acceptorPeerPort: number): void {
    // While both ways are cut the acceptor is unreachable: refuse, as a partitioned host would time out.
    if (this.blocked.forward && this.blocked.backward) {
      dialer.destroy();
      return;
    }
    const acceptor = connect(acceptorPeerPort, "127.0.0.1");
    const relay: Relay = { dialer, acceptor };
    this.relays.add(relay);
    const end = (): void => {
      this.relays.delete(relay);
      dialer.destroy();
      acceptor.destroy();
    };
    for (const socket of [dialer, acceptor]) {
      socket.setNoDelay(true);
      socket.on("error", end);
      socket.on("close", end);
    }
    this.pump(dialer, acceptor, "forward");
    this.pump(acceptor, dialer, "backward");
  }

  /** Copies `from` to `to` chunk by chunk, dropping or delaying as set; order is kept under delay. */
  private pump(from: Socket, to: Socket, direction: "forward" | "backward"): void {
    // One queue and one timer per direction, so delayed chunks leave in the order they came.
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
    from.on("data", (chunk: Buffer) => {
      if (this.blocked[direction]) return;
      if (this.delayMs === 0 && queue.length === 0) {
        to.write(chunk);
        return;
      }
      queue.push({ dueMs: performance.now() + this.delayMs, chunk });
      timer ??= setTimeout(drain, Math.max(1, queue[0]!.dueMs - performance.now()));
    });
    from.on("close", () => {
      if (timer !== null) clearTimeout(timer);
    });
  }
}
