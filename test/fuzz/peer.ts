// Fuzzing the peer wire: frames (valid, damaged, random) decoded directly, and sent to a real transport by a
// peer that completed the handshake with the cluster token.
//
// Properties (the decoder):
//   - it throws nothing but CodecError, whatever the bytes;
//   - a frame it accepts re-encodes to exactly the bytes it came in: the encoding is canonical, so no
//     field was read from outside the frame and no length or count allocated more than the frame holds.
// Properties (a live transport, frames from an authenticated peer):
//   - the node closes the connection exactly when the frame breaks the protocol, with the close code that
//     says why (1002 malformed or out of order, 1008 speaking for another node, 1009 too big), and logs
//     the reason once; every other frame is delivered, and the connection stays open;
//   - after each close the peer reconnects and is accepted again; the node's other link keeps working;
//   - a damaged first frame (a hello) is accepted only when it still carries the right token and ids.

import fc from "fast-check";
import { pino } from "pino";
import { WebSocket } from "ws";
import { EntryType, type Entry, type Message, type SnapshotMeta } from "../../src/raft/types.js";
import { CodecError, decodeFrame, encodeFrame, type Frame, ResponseStatus } from "../../src/transport/codec.js";
import { CloseCode } from "../../src/transport/connection.js";
import { isValidId } from "../../src/config.js";
import { dialsTo } from "../../src/transport/handshake.js";
import { transportLimitsDefault } from "../../src/transport/limits.js";
import { peerPath, Transport, type TransportLimits } from "../../src/transport/transport.js";
import { hostileBytes } from "./mutate.js";
import { checkProperty, type FuzzOptions, type FuzzPart, type FuzzReport, hexPreview, Stats } from "./run.js";
import { waitFor } from "../support/wait.js";

// ---------------------------------------------------------------------------------------------
// Frames

const smallIndex = fc.nat({ max: 10_000 });
const u53Arb = fc.oneof({ weight: 4, arbitrary: smallIndex }, { weight: 1, arbitrary: fc.maxSafeNat() });
const otherIdArb = fc.oneof(fc.constantFrom("n0", "n1", "n2", "n9", ""), fc.string({ maxLength: 12 }));

const metaArb: fc.Arbitrary<SnapshotMeta> = fc.record({
  index: u53Arb,
  term: u53Arb,
  config: fc.record({
    voters: fc.array(otherIdArb, { maxLength: 4 }),
    learners: fc.array(otherIdArb, { maxLength: 2 }),
    addresses: fc.dictionary(otherIdArb, fc.constantFrom("127.0.0.1:7001", "n2.raftlock:7000", ""), { maxKeys: 3 }),
  }),
});

function entriesArb(prevLogIndex: number): fc.Arbitrary<Entry[]> {
  return fc.array(fc.record({ term: smallIndex, type: fc.constantFrom(EntryType.Normal, EntryType.Empty, EntryType.Config), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 4 })
    .map((entries) => entries.map((entry, i) => ({ index: prevLogIndex + 1 + i, ...entry })));
}

/** A Raft message; mostly from `from` to `to`, sometimes claiming other ends. */
function messageArb(from: string, to: string): fc.Arbitrary<Message> {
  const ends = fc.oneof({ weight: 9, arbitrary: fc.constant({ from, to }) }, { weight: 1, arbitrary: fc.record({ from: otherIdArb, to: otherIdArb }) });
  return fc.tuple(ends, u53Arb).chain(([{ from: sender, to: receiver }, term]) => {
    const header = { from: sender, to: receiver, term };
    return fc.oneof(
      fc.record({ type: fc.constantFrom("vote" as const, "pre-vote" as const), lastLogIndex: u53Arb, lastLogTerm: u53Arb, transfer: fc.boolean() }).map((body) => ({ ...header, ...body })),
      fc.record({ type: fc.constantFrom("vote-response" as const, "pre-vote-response" as const), granted: fc.boolean() }).map((body) => ({ ...header, ...body })),
      fc.tuple(smallIndex, smallIndex, smallIndex).chain(([prevLogIndex, prevLogTerm, leaderCommit]) =>
        entriesArb(prevLogIndex).map((entries) => ({ ...header, type: "append" as const, prevLogIndex, prevLogTerm, leaderCommit, entries })),
      ),
      fc.record({ type: fc.constant("append-response" as const), success: fc.boolean(), index: u53Arb, conflictTerm: u53Arb, conflictIndex: u53Arb }).map((body) => ({ ...header, ...body })),
      fc.record({ type: fc.constant("heartbeat" as const), leaderCommit: u53Arb, round: u53Arb }).map((body) => ({ ...header, ...body })),
      fc.record({ type: fc.constant("heartbeat-response" as const), round: u53Arb }).map((body) => ({ ...header, ...body })),
      fc.record({ meta: metaArb, data: fc.uint8Array({ maxLength: 64 }) }).map((snapshot) => ({ ...header, type: "snapshot" as const, snapshot })),
      fc.constant({ ...header, type: "timeout-now" as const }),
    );
  });
}

/** Frames a peer may send after the handshake, valid as encodings (not necessarily as protocol). */
export function frameArb(from: string, to: string, snapshotBytesMax: number): fc.Arbitrary<Frame> {
  const transferId = fc.nat({ max: 3 });
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(messageArb(from, to), { maxLength: 4 }).map((messages): Frame => ({ kind: "messages", messages })) },
    {
      weight: 3,
      arbitrary: fc.record({
        transferId,
        ends: fc.oneof({ weight: 9, arbitrary: fc.constant({ from, to }) }, { weight: 1, arbitrary: fc.record({ from: otherIdArb, to: otherIdArb }) }),
        term: u53Arb,
        meta: metaArb,
        dataBytes: fc.oneof(fc.nat({ max: 96 }), fc.integer({ min: snapshotBytesMax - 8, max: snapshotBytesMax + 8 }), fc.maxSafeNat()),
      }).map(({ ends, ...rest }): Frame => ({ kind: "snapshot-begin", ...ends, ...rest })),
    },
    { weight: 4, arbitrary: fc.record({ transferId, offset: fc.oneof(fc.nat({ max: 96 }), u53Arb), data: fc.uint8Array({ maxLength: 48 }) }).map((chunk): Frame => ({ kind: "snapshot-chunk", ...chunk })) },
    { weight: 2, arbitrary: fc.record({ requestId: fc.nat({ max: 0xffff_ffff }), payload: fc.uint8Array({ maxLength: 64 }) }).map((request): Frame => ({ kind: "request", ...request })) },
    {
      weight: 2,
      arbitrary: fc.record({ requestId: fc.nat({ max: 0xffff_ffff }), status: fc.constantFrom(ResponseStatus.Ok, ResponseStatus.Failed, ResponseStatus.Busy), payload: fc.uint8Array({ maxLength: 64 }), error: fc.string({ maxLength: 40 }) })
        .map((response): Frame => ({ kind: "response", ...response, payload: response.status === ResponseStatus.Ok ? response.payload : new Uint8Array(0), error: response.status === ResponseStatus.Ok ? "" : response.error })),
    },
    { weight: 1, arbitrary: fc.record({ clusterId: otherIdArb, fromNodeId: otherIdArb, toNodeId: otherIdArb, clusterToken: fc.option(fc.string({ maxLength: 20 })) }).map((hello): Frame => ({ kind: "hello", ...hello })) },
    { weight: 1, arbitrary: fc.record({ clusterId: otherIdArb, nodeId: otherIdArb }).map((welcome): Frame => ({ kind: "welcome", ...welcome })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((reason): Frame => ({ kind: "refuse", reason })) },
  );
}

/** Decodes like the transport does; null for a frame it refuses as malformed. */
function decodeOrNull(bytes: Uint8Array, frameBytesMax?: number): Frame | null {
  try {
    return decodeFrame(bytes, frameBytesMax);
  } catch (error) {
    if (error instanceof CodecError) return null;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// The decoder

export const peerDecodePart: FuzzPart = {
  name: "peer-decode",
  inputsAre: "peer frames decoded directly",
  run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const bytesArb = hostileBytes(frameArb("n0", "n1", 4096).map(encodeFrame), 300);
    const property = fc.property(bytesArb, (bytes) => {
      const frame = decodeOrNull(bytes);
      if (frame === null) {
        stats.add("frames refused (CodecError)");
        return;
      }
      stats.add(`frames decoded: ${frame.kind}`);
      const again = encodeFrame(frame);
      if (!Buffer.from(again).equals(Buffer.from(bytes))) {
        throw new Error(`a decoded frame re-encodes differently: ${hexPreview(bytes, 400)} became ${hexPreview(again, 400)}`);
      }
    });
    return checkProperty(this, options, property, options.count, 1, stats);
  },
};

// ---------------------------------------------------------------------------------------------
// A live transport

const clusterId = "fuzz-cluster";
const clusterToken = "fuzz-token";
/** The fuzzing peer: its id sorts below the node's, so it dials. */
const fuzzPeerId = "n0";
const nodeId = "n1";
const goodPeerId = "n2";
/** The peers the node under test is started with: it has their addresses. */
const configuredPeerIds: readonly string[] = [fuzzPeerId, goodPeerId];

const liveLimits: Partial<TransportLimits> = {
  frameBytesMax: 64 << 10,
  snapshotChunkBytes: 16 << 10,
  snapshotBytesMax: 4096,
  requestPayloadBytesMax: 32 << 10,
  handshakeTimeoutMs: 5_000,
  reconnectDelayBaseMs: 10,
  reconnectDelayMaxMs: 100,
  closeTimeoutMs: 500,
  // Long, so that a busy machine does not make the well-behaved link drop for silence mid-run.
  keepaliveIntervalMs: 1_000,
  peerSilenceMsMax: 30_000,
};
const snapshotBytesMax = liveLimits.snapshotBytesMax!;
const linksMax = transportLimitsDefault.linksMax;
const frameBytesMax = liveLimits.frameBytesMax!;

/** The term of probe heartbeats: fuzzed heartbeats (small terms, or random 53-bit ones) do not hit it. */
const probeTerm = 987_654_321;

/** Frames one property run sends; the connection is checked (a probe) after the last. */
export const peerFramesPerRun = 24;

/** What the node must do with one frame on an open connection, given the snapshot stream so far. */
interface InboundSnapshotModel {
  readonly transferId: number;
  readonly dataBytes: number;
  receivedBytes: number;
}

type Expectation = { readonly close: number; readonly why: string } | { readonly delivered: number };

function expectFrame(frame: Frame, model: { snapshot: InboundSnapshotModel | null }): Expectation {
  const mismatch = (from: string, to: string): boolean => from !== fuzzPeerId || to !== nodeId;
  switch (frame.kind) {
    case "hello":
    case "welcome":
    case "refuse":
      return { close: CloseCode.ProtocolError, why: `unexpected ${frame.kind} frame` };
    case "messages":
      for (const message of frame.messages) {
        if (mismatch(message.from, message.to)) return { close: CloseCode.PolicyViolation, why: "message from" };
        if (message.type === "snapshot" && message.snapshot.data.length > snapshotBytesMax) return { close: CloseCode.TooBig, why: "snapshot of" };
      }
      return { delivered: frame.messages.length };
    case "snapshot-begin":
      if (mismatch(frame.from, frame.to)) return { close: CloseCode.PolicyViolation, why: "message from" };
      if (frame.dataBytes > snapshotBytesMax) return { close: CloseCode.TooBig, why: "snapshot of" };
      if (frame.dataBytes === 0) {
        model.snapshot = null;
        return { delivered: 1 };
      }
      model.snapshot = { transferId: frame.transferId, dataBytes: frame.dataBytes, receivedBytes: 0 };
      return { delivered: 0 };
    case "snapshot-chunk": {
      const stream = model.snapshot;
      if (stream === null || stream.transferId !== frame.transferId) return { close: CloseCode.ProtocolError, why: "snapshot chunk for transfer" };
      if (frame.offset !== stream.receivedBytes || stream.receivedBytes + frame.data.length > stream.dataBytes) return { close: CloseCode.ProtocolError, why: "snapshot chunk at offset" };
      stream.receivedBytes += frame.data.length;
      if (stream.receivedBytes < stream.dataBytes) return { delivered: 0 };
      model.snapshot = null;
      return { delivered: 1 };
    }
    case "request":
    case "response":
      return { delivered: 0 };
  }
}

/** A peer speaking the wire format by hand. */
class RawPeer {
  closeEvent: { code: number; reason: string } | null = null;
  welcomed = false;
  refused = false;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      const frame = decodeOrNull(new Uint8Array(data));
      if (frame?.kind === "welcome") this.welcomed = true;
      if (frame?.kind === "refuse") this.refused = true;
    });
    ws.on("close", (code: number, reason: Buffer) => {
      this.closeEvent = { code, reason: reason.toString() };
    });
    ws.on("error", () => {});
  }

  static async connect(port: number): Promise<RawPeer> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${peerPath}`, { perMessageDeflate: false });
    const peer = new RawPeer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return peer;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN && this.closeEvent === null;
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  async closed(what: string): Promise<{ code: number; reason: string }> {
    await waitFor(what, () => this.closeEvent !== null);
    return this.closeEvent!;
  }

  terminate(): void {
    this.ws.terminate();
  }
}

const goodHello: Frame = { kind: "hello", clusterId, fromNodeId: fuzzPeerId, toNodeId: nodeId, clusterToken };

interface LiveCluster {
  readonly node: Transport;
  readonly goodPeer: Transport;
  /** Raft messages the node delivered from the fuzzing peer, and heartbeat rounds it saw from it. */
  delivered: number;
  lastRound: number;
  goodPeerRounds: number;
  readonly closeReasons: string[];
  readonly errorLogs: string[];
}

async function startLiveCluster(): Promise<LiveCluster> {
  const logLines = (onLine: (line: { level: number; msg: string; reason?: string; err?: { message?: string } }) => void) =>
    pino({ level: "info" }, { write: (text: string) => onLine(JSON.parse(text) as { level: number; msg: string }) });
  const common = { clusterId, clusterToken, limits: liveLimits, onUnreachable: () => {}, onSnapshotStatus: () => {} };
  let cluster: LiveCluster | null = null;
  const goodPeer = await Transport.start({
    ...common,
    nodeId: goodPeerId,
    listen: { host: "127.0.0.1", port: 0 },
    // The node dials this one; its own address for the node is never used.
    peers: new Map([[nodeId, { host: "127.0.0.1", port: 1 }]]),
    logger: logLines(() => {}),
    onMessage: (message) => {
      if (cluster !== null && message.type === "heartbeat") cluster.goodPeerRounds = message.round;
    },
    onRequest: async (_from, payload) => payload,
  });
  const closeReasons: string[] = [];
  const errorLogs: string[] = [];
  const node = await Transport.start({
    ...common,
    nodeId,
    listen: { host: "127.0.0.1", port: 0 },
    peers: new Map([
      [fuzzPeerId, { host: "127.0.0.1", port: 1 }],
      [goodPeerId, goodPeer.address()],
    ]),
    logger: logLines((line) => {
      if (line.msg === "closing peer connection" && line.reason !== undefined) closeReasons.push(line.reason);
      if (line.level >= 50) errorLogs.push(`${line.msg}: ${line.err?.message ?? ""}`);
    }),
    onMessage: (message) => {
      if (cluster === null || message.from !== fuzzPeerId) return;
      cluster.delivered += 1;
      if (message.type === "heartbeat" && message.term === probeTerm) cluster.lastRound = message.round;
    },
    onRequest: async (_from, payload) => payload,
  });
  cluster = { node, goodPeer, delivered: 0, lastRound: -1, goodPeerRounds: -1, closeReasons, errorLogs };
  await waitFor("the node connected to its well-behaved peer", () => node.connectedPeers().includes(goodPeerId), 10_000);
  return cluster;
}

async function handshake(port: number): Promise<RawPeer> {
  const peer = await RawPeer.connect(port);
  peer.send(encodeFrame(goodHello));
  await waitFor("the node's welcome", () => peer.welcomed || peer.closeEvent !== null);
  if (!peer.welcomed) throw new Error(`the node refused a correct hello: ${JSON.stringify(peer.closeEvent)}`);
  return peer;
}

export interface PeerRunInput {
  readonly frames: readonly Uint8Array[];
  /** A damaged hello, sent as the first frame of a fresh connection before the run's frames. */
  readonly firstFrame: Uint8Array;
}

export const peerRunInputArb: fc.Arbitrary<PeerRunInput> = fc.record({
  frames: fc.array(
    fc.oneof(
      // Valid frames too, so that connections live long enough for streams (snapshots) to span frames.
      { weight: 30, arbitrary: frameArb(fuzzPeerId, nodeId, snapshotBytesMax).map(encodeFrame) },
      { weight: 50, arbitrary: hostileBytes(frameArb(fuzzPeerId, nodeId, snapshotBytesMax).map(encodeFrame), 200) },
      // Now and then a frame over the limit: ws refuses it by its header, before buffering it.
      { weight: 1, arbitrary: fc.integer({ min: frameBytesMax + 1, max: frameBytesMax + 64 }).map((length) => new Uint8Array(length).fill(4)) },
    ),
    { minLength: peerFramesPerRun, maxLength: peerFramesPerRun },
  ),
  firstFrame: hostileBytes(fc.constant(encodeFrame(goodHello)), 64),
});

export const peerLinkPart: FuzzPart = {
  name: "peer-link",
  inputsAre: "peer frames sent to a live transport on authenticated connections",
  async run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const cluster = await startLiveCluster();
    const port = cluster.node.address().port;
    let peer: RawPeer | null = null;
    let round = 0;
    let expectedDelivered = 0;
    const model: { snapshot: InboundSnapshotModel | null } = { snapshot: null };
    const reconnect = async (): Promise<RawPeer> => {
      model.snapshot = null;
      stats.add("handshakes");
      return handshake(port);
    };
    try {
      const property = fc.asyncProperty(peerRunInputArb, async ({ frames, firstFrame }) => {
        // A damaged hello on a fresh connection: accepted only when it still has the token, names this
        // cluster and this node, and a dialer with a valid id of its own that dials this node: one below
        // it, or one the node has no address for (a joining node is dialed by members it does not know
        // yet; a member that missed a joiner is dialed by it in reverse), while there is room for a link.
        {
          const stranger = await RawPeer.connect(port);
          stranger.send(firstFrame);
          const decoded = decodeOrNull(firstFrame, frameBytesMax);
          const peerIds = cluster.node.peerIds();
          const acceptable = decoded?.kind === "hello" && decoded.clusterToken === clusterToken && decoded.clusterId === clusterId &&
            decoded.toNodeId === nodeId && isValidId(decoded.fromNodeId) && decoded.fromNodeId !== nodeId &&
            (dialsTo(decoded.fromNodeId, nodeId) || !configuredPeerIds.includes(decoded.fromNodeId)) &&
            (peerIds.includes(decoded.fromNodeId) || peerIds.length < linksMax);
          await waitFor("an answer to a first frame", () => stranger.welcomed || stranger.closeEvent !== null);
          if (stranger.welcomed !== acceptable) throw new Error(`first frame ${hexPreview(firstFrame)} (${JSON.stringify(decoded)}) was ${stranger.welcomed ? "accepted" : "refused"}`);
          stats.add(acceptable ? "first frames accepted (a hello with the token)" : "first frames refused");
          stranger.terminate();
          await stranger.closed("the stranger's socket to close");
          // An accepted hello from the fuzzing peer's id replaced its stream, as a reconnecting dialer's does.
          if (acceptable && decoded?.kind === "hello" && decoded.fromNodeId === fuzzPeerId && peer !== null) {
            await peer.closed("the replaced stream to close");
            peer = null;
          }
        }
        for (const bytes of frames) {
          if (peer === null || !peer.open) peer = await reconnect();
          const frame = decodeOrNull(bytes, frameBytesMax);
          const expectation: Expectation = bytes.length > frameBytesMax
            ? { close: CloseCode.TooBig, why: "" }
            : frame === null
              ? { close: CloseCode.ProtocolError, why: "malformed frame" }
              : expectFrame(frame, model);
          peer.send(bytes);
          stats.add("frames sent");
          if ("delivered" in expectation) {
            expectedDelivered += expectation.delivered;
            continue;
          }
          const closeEvent = await peer.closed(`the node to close the connection (${expectation.why})`);
          if (closeEvent.code !== expectation.close) {
            throw new Error(`frame ${hexPreview(bytes)} closed with ${closeEvent.code} "${closeEvent.reason}", expected ${expectation.close} (${expectation.why})`);
          }
          if (expectation.why !== "" && !closeEvent.reason.startsWith(expectation.why.slice(0, 20))) {
            throw new Error(`frame ${hexPreview(bytes)} closed for "${closeEvent.reason}", expected "${expectation.why}..."`);
          }
          stats.add(`connections closed with ${expectation.close}`);
          peer = null;
        }
        // A probe: every frame before it was handled, and nothing closed the connection unexpectedly.
        if (peer === null || !peer.open) peer = await reconnect();
        round += 1;
        peer.send(encodeFrame({ kind: "messages", messages: [{ type: "heartbeat", from: fuzzPeerId, to: nodeId, term: probeTerm, leaderCommit: 0, round }] }));
        expectedDelivered += 1;
        const probe = peer;
        await waitFor(`the probe heartbeat ${round}`, () => cluster.lastRound === round || probe.closeEvent !== null);
        if (probe.closeEvent !== null) throw new Error(`the node closed the connection unexpectedly: ${JSON.stringify(probe.closeEvent)}`);
        if (cluster.delivered !== expectedDelivered) throw new Error(`the node delivered ${cluster.delivered} messages from the peer; the frames sent carry ${expectedDelivered}`);
        // The node's own link to a well-behaved peer was never disturbed.
        cluster.node.send({ type: "heartbeat", from: nodeId, to: goodPeerId, term: 1, leaderCommit: 0, round });
        await waitFor(`the well-behaved peer to hear heartbeat ${round}`, () => cluster.goodPeerRounds === round);
        if (cluster.errorLogs.length > 0) throw new Error(`the node logged errors: ${cluster.errorLogs.join("; ")}`);
      });
      return await checkProperty(this, options, property, Math.ceil(options.count / peerFramesPerRun), peerFramesPerRun, stats);
    } finally {
      (peer as RawPeer | null)?.terminate();
      await cluster.node.close();
      await cluster.goodPeer.close();
    }
  },
};
