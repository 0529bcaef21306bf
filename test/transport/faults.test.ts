import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import type { LimitName } from "../../src/limit-hits.js";
import { encodeMessages, FrameType, wireVersion } from "../../src/transport/codec.js";
import { peerSocketsMax, transportLimitsDefault } from "../../src/transport/limits.js";
import { append, freePort, holdsFor, RawPeer, startAll, stopAll, type TestNode, testCluster, waitConnected, waitFor } from "./helpers.js";

let nodes: TestNode[] = [];
let raws: RawPeer[] = [];
let sockets: Socket[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const raw of raws) raw.terminate();
  raws = [];
  for (const socket of sockets) socket.destroy();
  sockets = [];
  await stopAll(nodes);
  nodes = [];
});

/** n1, n2, n3 connected; n3 also lists "n0", a peer played by a raw test client. */
async function clusterWithImpostor(n3Limits = {}): Promise<TestNode[]> {
  nodes = await testCluster([{ id: "n1" }, { id: "n2" }, { id: "n3", extraPeers: { n0: await freePort() }, limits: n3Limits }]);
  await startAll(nodes);
  await waitConnected(nodes);
  return nodes;
}

async function rawAsN0(port: number): Promise<RawPeer> {
  const raw = await RawPeer.handshake(port, { fromNodeId: "n0", toNodeId: "n3" });
  raws.push(raw);
  expect(raw.frames[0]).toMatchObject({ kind: "welcome", nodeId: "n3" });
  return raw;
}

/** A misbehaviour, the reason n3 logs, and the limit hits it counts (only a limit's refusal is one). */
const malformed: [string, (raw: RawPeer) => void, RegExp, LimitName[]?][] = [
  ["a bad version", (raw) => raw.ws.send(Uint8Array.from([9, FrameType.Messages, 0, 0, 0, 0])), /unsupported wire version 9/],
  ["a truncated frame", (raw) => raw.ws.send(encodeMessages([{ type: "timeout-now", from: "n0", to: "n3", term: 1 }]).subarray(0, 12)), /truncated/],
  ["an unknown frame type", (raw) => raw.ws.send(Uint8Array.from([wireVersion, 200])), /unknown frame type 200/],
  ["a text frame", (raw) => raw.ws.send("hello?"), /text frame/],
  ["a frame over frameBytesMax", (raw) => raw.ws.send(new Uint8Array(80 << 10)), /Max payload size exceeded: the peer sent a frame over frameBytesMax/, ["peer_frame_bytes"]],
  ["a message claiming another sender", (raw) => raw.ws.send(encodeMessages([{ type: "timeout-now", from: "n1", to: "n3", term: 1 }])), /message from "n1" to "n3" on the stream from "n0"/],
  ["a second hello", (raw) => raw.sendFrame({ kind: "hello", clusterId: "test-cluster", fromNodeId: "n0", toNodeId: "n3", clusterToken: null }), /unexpected hello/],
  ["a chunk of a snapshot never begun", (raw) => raw.sendFrame({ kind: "snapshot-chunk", transferId: 5, offset: 0, data: new Uint8Array(3) }), /never begun/],
  [
    "a snapshot over snapshotBytesMax inside a messages frame",
    (raw) => raw.sendFrame({ kind: "messages", messages: [{ type: "snapshot", from: "n0", to: "n3", term: 1, snapshot: { meta: { index: 1, term: 1, config: { voters: ["n0"], learners: [], addresses: {} } }, data: new Uint8Array(2048) } }] }),
    /snapshot of 2048 bytes exceeds snapshotBytesMax/,
    ["peer_snapshot_bytes"],
  ],
];

describe("a misbehaving peer", () => {
  for (const [what, misbehave, reason, limitHits = []] of malformed) {
    it(`${what} closes only that peer's stream, with a logged reason`, async () => {
      const [n1, , n3] = await clusterWithImpostor({ frameBytesMax: 64 << 10, snapshotChunkBytes: 32 << 10, requestPayloadBytesMax: 32 << 10, snapshotBytesMax: 1024 });
      const raw = await rawAsN0(n3!.port);
      await waitFor("n3 sees n0", () => n3!.live.connectedPeers().includes("n0"));
      misbehave(raw);
      await raw.closed();
      await waitFor("n3 reports n0 unreachable", () => n3!.unreachable.includes("n0"));
      const logged = n3!.logs.filter((line) => line.peerId === "n0" && line.level >= 40);
      expect(logged.map((line) => line.reason).join("\n")).toMatch(reason);
      expect(n3!.received).toEqual([]);
      // The other streams are untouched.
      expect(n3!.live.connectedPeers()).toEqual(["n1", "n2"]);
      n1!.live.send({ type: "timeout-now", from: "n1", to: "n3", term: 2 });
      await waitFor("n1's message still arrives", () => n3!.received.length === 1);
      expect(n3!.limitHits).toEqual(limitHits);
    });
  }

  it("garbage instead of a hello is refused before any handshake", async () => {
    const [, , n3] = await clusterWithImpostor();
    const raw = await RawPeer.connect(n3!.port);
    raws.push(raw);
    raw.ws.send(Uint8Array.from([0xde, 0xad, 0xbe, 0xef]));
    expect((await raw.closed()).code).toBe(1002);
    expect(n3!.logsMatching(/closing peer connection/)[0]!.reason).toMatch(/malformed frame: unsupported wire version 222/);
    expect(n3!.live.connectedPeers()).toEqual(["n1", "n2"]);
  });

  it("refuses hellos that do not fit this cluster, each with its reason", async () => {
    const [, , n3] = await clusterWithImpostor();
    const cases: [Parameters<typeof RawPeer.handshake>[1], RegExp][] = [
      [{ fromNodeId: "n0", toNodeId: "n3", clusterId: "other" }, /cluster id mismatch/],
      [{ fromNodeId: "n0", toNodeId: "n9" }, /dialed node "n9" but reached "n3"/],
      [{ fromNodeId: "n0", toNodeId: "n3", clusterToken: "unexpected" }, /cluster token mismatch/],
    ];
    for (const [hello, reason] of cases) {
      const raw = await RawPeer.handshake(n3!.port, hello);
      raws.push(raw);
      expect(raw.frames[0]).toMatchObject({ kind: "refuse" });
      expect(raw.frames[0]!.kind === "refuse" && raw.frames[0]!.reason).toMatch(reason);
      expect((await raw.closed()).code).toBe(1008);
      expect(n3!.logsMatching(/refused a peer connection/).at(-1)).toMatchObject({ peerId: hello.fromNodeId });
    }
    expect(n3!.live.connectedPeers()).toEqual(["n1", "n2"]);
  });

  it("refuses a higher id that dials a lower one: exactly one stream per pair", async () => {
    const [n1] = await clusterWithImpostor();
    const raw = await RawPeer.handshake(n1!.port, { fromNodeId: "n2", toNodeId: "n1" });
    raws.push(raw);
    expect(raw.frames[0]).toMatchObject({ kind: "refuse", reason: expect.stringMatching(/wrong dial direction/) });
    expect(n1!.live.connectedPeers()).toEqual(["n2", "n3"]);
  });

  it("a newer stream from the same dialer replaces the older one", async () => {
    const [, , n3] = await clusterWithImpostor();
    const first = await rawAsN0(n3!.port);
    const second = await rawAsN0(n3!.port);
    expect((await first.closed()).code).toBe(4000);
    await waitFor("n3 keeps one stream to n0", () => n3!.live.connectedPeers().includes("n0"));
    second.ws.send(encodeMessages([{ type: "timeout-now", from: "n0", to: "n3", term: 1 }]));
    await waitFor("a message on the newer stream", () => n3!.received.length === 1);
  });

  it("a socket that never says hello is closed after handshakeTimeoutMs", async () => {
    const [, , n3] = await clusterWithImpostor({ handshakeTimeoutMs: 200 });
    const raw = await RawPeer.connect(n3!.port);
    raws.push(raw);
    await raw.closed();
    expect(n3!.logsMatching(/closing peer connection/)[0]!.reason).toMatch(/handshake not completed within 200 ms/);
  });

  it("a peer that stops answering pings is dropped as dead", async () => {
    const [, , n3] = await clusterWithImpostor({ keepaliveIntervalMs: 50, peerSilenceMsMax: 300 });
    // The socket stays open but never answers a ping: a half-open connection, as after a peer's host died.
    const silent = await RawPeer.handshake(n3!.port, { fromNodeId: "n0", toNodeId: "n3" }, { autoPong: false });
    raws.push(silent);
    await silent.closed();
    expect(n3!.logsMatching(/closing peer connection/).some((line) => /no frame or pong/.test(String(line.reason)))).toBe(true);
    await waitFor("n3 reports n0 unreachable", () => n3!.unreachable.includes("n0"));
    expect(n3!.live.connectedPeers()).toEqual(["n1", "n2"]);
  });

  it("a peer that stops reading gets back-pressure, then its queued messages dropped: memory stays bounded", async () => {
    const socketBufferedBytesMax = 256 << 10;
    const queuedBytesMaxPerPeer = 1 << 20;
    const [, , n3] = await clusterWithImpostor({ socketBufferedBytesMax, queuedBytesMaxPerPeer });
    const raw = await rawAsN0(n3!.port);
    await waitFor("n3 sees n0", () => n3!.live.connectedPeers().includes("n0"));
    (raw.ws as unknown as { _socket: Socket })._socket.pause(); // the peer's process stalls; the kernel buffers fill

    const original = WebSocket.prototype.send;
    const bufferedAtSendBytes: number[] = [];
    vi.spyOn(WebSocket.prototype, "send").mockImplementation(function (this: WebSocket, ...args: Parameters<WebSocket["send"]>) {
      bufferedAtSendBytes.push(this.bufferedAmount);
      original.apply(this, args);
    });
    const deadline = Date.now() + 10_000;
    let index = 1;
    while (!n3!.unreachable.includes("n0")) {
      if (Date.now() > deadline) throw new Error("the sender never gave up on a peer that does not read");
      for (let i = 0; i < 64; i++) n3!.live.send(append("n3", "n0", index++, 4096)); // 256 KiB per turn
      await new Promise((resolve) => setImmediate(resolve));
    }
    // Only frames handed over while the socket had room; the rest waited in the bounded queue, then went.
    expect(bufferedAtSendBytes.length).toBeGreaterThan(0);
    for (const bufferedBytes of bufferedAtSendBytes) expect(bufferedBytes).toBeLessThan(socketBufferedBytesMax);
    const drop = n3!.logsMatching(/not keeping up/)[0]!;
    expect(drop.peerId).toBe("n0");
    expect(drop.queuedBytes as number).toBeLessThanOrEqual(queuedBytesMaxPerPeer);
    expect(drop.droppedMessages as number).toBeGreaterThan(0);
    expect(n3!.limitHits).toEqual(Array<LimitName>(n3!.logsMatching(/not keeping up/).length).fill("peer_queued_bytes"));
    expect(n3!.live.connectedPeers()).toContain("n0"); // slow is not dead: the stream stays
  });

  it("refuses sockets beyond handshakesPendingMax before they can say anything", async () => {
    const [, , n3] = await clusterWithImpostor({ handshakesPendingMax: 2 });
    raws.push(await RawPeer.connect(n3!.port), await RawPeer.connect(n3!.port));
    await expect(RawPeer.connect(n3!.port)).rejects.toThrow(/503/);
    expect(n3!.logsMatching(/too many handshakes pending/)).toHaveLength(1);
    expect(n3!.limitHits).toEqual(["peer_handshakes_pending"]);
    raws.pop()!.terminate();
    // Once the server has seen that socket close, its slot takes a new connection.
    let refusals = 1;
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        raws.push(await RawPeer.connect(n3!.port));
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        refusals += 1;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    expect(n3!.limitHits).toEqual(Array<LimitName>(refusals).fill("peer_handshakes_pending"));
    expect(n3!.live.connectedPeers()).toEqual(["n1", "n2"]);
  });

  it("a socket that never sends its upgrade request is closed after handshakeTimeoutMs, and open streams outlive that timeout", async () => {
    const handshakeTimeoutMs = 300;
    const [, , n3] = await clusterWithImpostor({ handshakeTimeoutMs });
    const silent = await silentSocket(n3!.port);
    // Node's own default would hold it for 60 s, before the transport's handshake timer even starts.
    await waitFor("n3 to close the silent socket", () => silent.closed, handshakeTimeoutMs + 3_000);
    await holdsFor("n3's streams from n1 and n2 stay open", () => n3!.live.connectedPeers().length === 2, 3 * handshakeTimeoutMs);
  });

  it("past peerSocketsMax a new socket is closed as it is accepted, and counted", async () => {
    const limits = { linksMax: 3, handshakesPendingMax: 2 };
    const [, , n3] = await clusterWithImpostor(limits);
    // n1 and n2 each hold one stream to n3, so that many fewer silent sockets fit under the ceiling.
    const room = peerSocketsMax({ ...transportLimitsDefault, ...limits }) - 2;
    const held = [];
    for (let socket = 0; socket < room; socket++) held.push(await silentSocket(n3!.port));
    const refused = await silentSocket(n3!.port);
    try {
      await waitFor("n3 to close the socket past the ceiling", () => refused.closed);
      expect(n3!.limitHits).toEqual(["peer_handshakes_pending"]);
      expect(held.every((socket) => !socket.closed)).toBe(true);
      expect(n3!.live.connectedPeers()).toEqual(["n1", "n2"]);
    } finally {
      for (const socket of [...held, refused]) socket.socket.destroy();
    }
  });
});

/** A TCP connection to `port` that sends nothing; `closed` turns true when the node closes it. */
async function silentSocket(port: number): Promise<{ socket: Socket; closed: boolean }> {
  const socket = connect({ host: "127.0.0.1", port });
  const silent = { socket, closed: false };
  socket.once("close", () => (silent.closed = true));
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  sockets.push(socket);
  return silent;
}
