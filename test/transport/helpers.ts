// Real transports on loopback ports, with everything they report recorded for assertions.

import { pino } from "pino";
import type { LimitName } from "../../src/limit-hits.js";
import { WebSocket } from "ws";
import { type AppendRequest, EntryType, type HeartbeatRequest, type Message } from "../../src/raft/types.js";
import { decodeFrame, encodeFrame, type Frame } from "../../src/transport/codec.js";
import { type PeerAddress, peerPath, Transport, type TransportLimits, type TransportOptions } from "../../src/transport/transport.js";
import type { ReloadableTls } from "../../src/tls.js";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";

export type LogLine = Record<string, unknown> & { level: number; msg: string };

/** Small delays so that reconnect tests take milliseconds, not seconds. */
export const fastLimits: Partial<TransportLimits> = {
  reconnectDelayBaseMs: 20,
  reconnectDelayMaxMs: 200,
  handshakeTimeoutMs: 2_000,
  closeTimeoutMs: 500,
};

export function heartbeat(from: string, to: string, round: number): HeartbeatRequest {
  return { type: "heartbeat", from, to, term: 3, leaderCommit: 0, round };
}

/** An AppendEntries carrying the single entry `index` with `dataBytes` of data. */
export function append(from: string, to: string, index: number, dataBytes = 16): AppendRequest {
  const data = new Uint8Array(dataBytes).fill(index % 251);
  return { type: "append", from, to, term: 3, prevLogIndex: index - 1, prevLogTerm: 3, leaderCommit: 0, entries: [{ index, term: 3, type: EntryType.Normal, data }] };
}

/** The entry indexes carried by the appends among `messages`, in arrival order. */
export function indexes(messages: Message[]): number[] {
  return messages.flatMap((m) => (m.type === "append" ? m.entries.map((e) => e.index) : []));
}

/**
 * Polls `condition` for `durationMs` and fails with `what` as soon as it does not hold: for "nothing
 * happens", over a window derived from the limits under test (e.g. several reconnect delays).
 */
export async function holdsFor(what: string, condition: () => boolean, durationMs: number): Promise<void> {
  const endMs = Date.now() + durationMs;
  while (Date.now() < endMs) {
    if (!condition()) throw new Error(`no longer holds: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (!condition()) throw new Error(`no longer holds: ${what}`);
}

export { waitFor };

export { freePort };

export interface NodeSpec {
  readonly id: string;
  readonly clusterId?: string;
  readonly clusterToken?: string;
  readonly limits?: Partial<TransportLimits>;
  /** Peers beyond the other nodes of the test cluster (e.g. a raw test client posing as a node). */
  readonly extraPeers?: Record<string, number>;
  /** The nodes of the test cluster this one is configured with at start; all the others when absent. */
  readonly knows?: readonly string[];
  /** Mutual TLS on the peer port (listen https, dial wss). */
  readonly tls?: ReloadableTls;
}

/** One node's transport and what it reported. Restartable on the same port. */
export class TestNode {
  transport: Transport | null = null;
  readonly received: Message[] = [];
  readonly unreachable: string[] = [];
  readonly snapshotStatuses: { peerId: string; delivered: boolean }[] = [];
  readonly logs: LogLine[] = [];
  /** Every limit hit the transport reported, in order, across restarts. */
  readonly limitHits: LimitName[] = [];
  onRequest: (fromPeerId: string, payload: Uint8Array) => Promise<Uint8Array> = async (_from, payload) => payload;

  constructor(
    readonly spec: NodeSpec,
    readonly port: number,
    private readonly ports: ReadonlyMap<string, number>,
  ) {}

  get id(): string {
    return this.spec.id;
  }

  /** Where this node's peer port listens, as `addPeer` takes it. */
  get address(): PeerAddress {
    return { host: "127.0.0.1", port: this.port };
  }

  get live(): Transport {
    if (this.transport === null) throw new Error(`${this.id} is not running`);
    return this.transport;
  }

  async start(): Promise<void> {
    const peers = new Map<string, { host: string; port: number }>();
    for (const [id, port] of this.ports) if (id !== this.id && (this.spec.knows?.includes(id) ?? true)) peers.set(id, { host: "127.0.0.1", port });
    for (const [id, port] of Object.entries(this.spec.extraPeers ?? {})) peers.set(id, { host: "127.0.0.1", port });
    const logger = pino({ level: "debug", base: { nodeId: this.id } }, { write: (line: string) => void this.logs.push(JSON.parse(line) as LogLine) });
    const options: TransportOptions = {
      nodeId: this.id,
      clusterId: this.spec.clusterId ?? "test-cluster",
      listen: { host: "127.0.0.1", port: this.port },
      peers,
      logger,
      limits: { ...fastLimits, ...this.spec.limits },
      onMessage: (message) => this.received.push(message),
      onUnreachable: (peerId) => this.unreachable.push(peerId),
      onSnapshotStatus: (peerId, delivered) => this.snapshotStatuses.push({ peerId, delivered }),
      onRequest: (fromPeerId, payload) => this.onRequest(fromPeerId, payload),
      onLimitHit: (limit) => this.limitHits.push(limit),
    };
    if (this.spec.clusterToken !== undefined) options.clusterToken = this.spec.clusterToken;
    if (this.spec.tls !== undefined) options.tls = this.spec.tls;
    this.transport = await Transport.start(options);
  }

  async stop(): Promise<void> {
    const transport = this.transport;
    this.transport = null;
    await transport?.close();
  }

  logsMatching(message: RegExp): LogLine[] {
    return this.logs.filter((line) => message.test(line.msg));
  }
}

/** Nodes on fresh ports, not started yet. */
export async function testCluster(specs: NodeSpec[]): Promise<TestNode[]> {
  const ports = new Map<string, number>();
  for (const spec of specs) ports.set(spec.id, await freePort());
  return specs.map((spec) => new TestNode(spec, ports.get(spec.id)!, ports));
}

export async function startAll(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.start()));
}

export async function stopAll(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.stop()));
}

/** Waits until every running node has a stream to every other running node. */
export async function waitConnected(nodes: TestNode[]): Promise<void> {
  const live = nodes.filter((node) => node.transport !== null);
  for (const node of live) {
    const others = live.filter((other) => other !== node).map((other) => other.id).sort();
    await waitFor(`${node.id} connected to ${others.join(",")}`, () => others.every((id) => node.live.connectedPeers().includes(id)));
  }
}

/** A raw WebSocket client speaking the wire format by hand, to act as a misbehaving peer. */
export class RawPeer {
  readonly frames: Frame[] = [];
  closeEvent: { code: number; reason: string } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      this.frames.push(decodeFrame(new Uint8Array(data)));
    });
    ws.on("close", (code: number, reason: Buffer) => {
      this.closeEvent = { code, reason: reason.toString() };
    });
    ws.on("error", () => {});
  }

  static async connect(port: number, options: { autoPong?: boolean } = {}): Promise<RawPeer> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${peerPath}`, { autoPong: options.autoPong ?? true });
    const peer = new RawPeer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return peer;
  }

  /** Connects and completes the handshake as `fromNodeId`. */
  static async handshake(port: number, hello: { fromNodeId: string; toNodeId: string; clusterId?: string; clusterToken?: string }, options: { autoPong?: boolean } = {}): Promise<RawPeer> {
    const peer = await RawPeer.connect(port, options);
    peer.sendFrame({ kind: "hello", clusterId: hello.clusterId ?? "test-cluster", fromNodeId: hello.fromNodeId, toNodeId: hello.toNodeId, clusterToken: hello.clusterToken ?? null });
    await waitFor("a welcome or refusal", () => peer.frames.length > 0 || peer.closeEvent !== null);
    return peer;
  }

  sendFrame(frame: Frame): void {
    this.ws.send(encodeFrame(frame));
  }

  async closed(): Promise<{ code: number; reason: string }> {
    await waitFor("the raw peer's socket to close", () => this.closeEvent !== null);
    return this.closeEvent!;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
