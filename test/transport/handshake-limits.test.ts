import { describe, expect, it } from "vitest";
import { clusterTokensMatch, dialsTo, helloRefusal } from "../../src/transport/handshake.js";
import { reconnectDelayMs, resolveLimits, transportLimitsDefault } from "../../src/transport/limits.js";
import { OutboundSnapshot, SnapshotAssembly } from "../../src/transport/snapshot-stream.js";
import { decodeFrame, type SnapshotBeginFrame, type SnapshotChunkFrame } from "../../src/transport/codec.js";
import type { SnapshotRequest } from "../../src/raft/types.js";

describe("who dials whom", () => {
  it("exactly one side of every pair dials, by string order", () => {
    for (const [a, b] of [["n1", "n2"], ["n10", "n2"], ["a", "b"]] as const) expect(dialsTo(a, b)).not.toBe(dialsTo(b, a));
    expect(dialsTo("n10", "n2")).toBe(true);
  });
});

describe("cluster token", () => {
  it("matches only the same token, and no token only with no token", () => {
    expect(clusterTokensMatch("s3cret", "s3cret")).toBe(true);
    expect(clusterTokensMatch("s3cret", "s3cre")).toBe(false);
    expect(clusterTokensMatch("s3cret", null)).toBe(false);
    expect(clusterTokensMatch(undefined, "s3cret")).toBe(false);
    expect(clusterTokensMatch(undefined, null)).toBe(true);
    expect(clusterTokensMatch(undefined, "")).toBe(false);
  });

  it("is checked before anything else, so a refusal tells a stranger nothing about the cluster", () => {
    const self = { nodeId: "n2", clusterId: "prod", clusterToken: "right" };
    const links = { peerIds: new Set(["n1"]), linksMax: 1, dialable: new Set<string>() };
    const mismatch = { reason: "cluster token mismatch", limit: null };
    expect(helloRefusal({ kind: "hello", clusterId: "other", fromNodeId: "x", toNodeId: "y", clusterToken: "wrong" }, self, links)).toEqual(mismatch);
    expect(helloRefusal({ kind: "hello", clusterId: "prod", fromNodeId: "a", toNodeId: "n2", clusterToken: "wrong" }, self, links)).toEqual(mismatch);
    expect(helloRefusal({ kind: "hello", clusterId: "prod", fromNodeId: "n1", toNodeId: "n2", clusterToken: "right" }, self, links)).toBeNull();
  });
});

describe("dialers this node was not told about", () => {
  const self = { nodeId: "n5", clusterId: "prod", clusterToken: undefined };
  const hello = (fromNodeId: string) => ({ kind: "hello", clusterId: "prod", fromNodeId, toNodeId: "n5", clusterToken: null }) as const;

  const none = new Set<string>();

  it("are accepted when authenticated, while there is room for a link", () => {
    expect(helloRefusal(hello("n1"), self, { peerIds: new Set(), linksMax: 2, dialable: none })).toBeNull();
    expect(helloRefusal(hello("n1"), self, { peerIds: new Set(["n2", "n3"]), linksMax: 2, dialable: none })).toEqual({
      reason: expect.stringMatching(/already holds 2 peer links \(linksMax 2\) and "n1" is not among its peers/),
      limit: "peer_links",
    });
    // A peer that already has a link takes no new room.
    expect(helloRefusal(hello("n2"), self, { peerIds: new Set(["n2", "n3"]), linksMax: 2, dialable: none })).toBeNull();
  });

  it("a higher id is refused only by a node that dials it itself: one that has its address", () => {
    expect(helloRefusal(hello("n9"), self, { peerIds: new Set(["n9"]), linksMax: 2, dialable: new Set(["n9"]) })).toEqual({
      reason: expect.stringMatching(/wrong dial direction: "n5" dials "n9"/),
      limit: null,
    });
    // Without its address this node could never dial it: the reverse stream is the only one there can be.
    expect(helloRefusal(hello("n9"), self, { peerIds: new Set(), linksMax: 2, dialable: none })).toBeNull();
    expect(helloRefusal(hello("n9"), self, { peerIds: new Set(["n9"]), linksMax: 2, dialable: none })).toBeNull();
  });

  it("are refused when the id they claim is not a node id, or is this node's own", () => {
    const links = { peerIds: new Set<string>(), linksMax: 2, dialable: none };
    for (const fromNodeId of ["", "~0", "-n1", "n 1", "n\u0000", "x".repeat(65)]) {
      expect(helloRefusal(hello(fromNodeId), self, links)).toEqual({ reason: expect.stringMatching(/^dialer's node id .* is not a node id: 1-64 letters/), limit: null });
    }
    expect(helloRefusal(hello("n5"), self, links)).toEqual({
      reason: 'dialer claims this node\'s own id "n5"; two nodes were started with the same --id',
      limit: null,
    });
  });
});

describe("limits", () => {
  it("reconnect delays grow exponentially to the cap, jittered between half and all of it", () => {
    const limits = transportLimitsDefault;
    expect(reconnectDelayMs(0, limits, () => 0)).toBe(50);
    expect(reconnectDelayMs(0, limits, () => 0.999999)).toBe(100);
    expect(reconnectDelayMs(3, limits, () => 0)).toBe(400);
    expect(reconnectDelayMs(10, limits, () => 0)).toBe(2_500);
    expect(reconnectDelayMs(10_000, limits, () => 0.999999)).toBe(5_000);
  });

  it("rejects inconsistent overrides by name", () => {
    expect(() => resolveLimits({ queuedBytesMaxPerPeer: 0 })).toThrow(/queuedBytesMaxPerPeer must be a positive integer/);
    expect(() => resolveLimits({ frameBytesMax: 1 << 16 })).toThrow(/snapshotChunkBytes must fit in one frame/);
    expect(() => resolveLimits({ reconnectDelayBaseMs: 10_000 })).toThrow(/reconnectDelayBaseMs must not exceed/);
    expect(resolveLimits({})).toEqual(transportLimitsDefault);
  });
});

describe("snapshot streams", () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => i % 256);
  const message: SnapshotRequest = { type: "snapshot", from: "n1", to: "n2", term: 5, snapshot: { meta: { index: 10, term: 4, config: { voters: ["n1", "n2"], learners: [], addresses: {} } }, data } };

  function framesOf(snapshot: SnapshotRequest, chunkBytes: number): (SnapshotBeginFrame | SnapshotChunkFrame)[] {
    const outbound = new OutboundSnapshot(snapshot, 7, chunkBytes);
    const frames: (SnapshotBeginFrame | SnapshotChunkFrame)[] = [];
    while (!outbound.lastFrameTaken) frames.push(decodeFrame(outbound.nextFrame()) as SnapshotBeginFrame | SnapshotChunkFrame);
    return frames;
  }

  it("cuts the data into chunks and reassembles the same message", () => {
    const [begin, ...chunks] = framesOf(message, 300);
    expect(chunks.map((chunk) => (chunk as SnapshotChunkFrame).data.length)).toEqual([300, 300, 300, 100]);
    const assembly = new SnapshotAssembly(begin as SnapshotBeginFrame);
    for (const chunk of chunks) expect(assembly.add(chunk as SnapshotChunkFrame)).toBeNull();
    expect(assembly.complete).toBe(true);
    expect(assembly.message()).toEqual(message);
  });

  it("an empty snapshot is a begin frame alone", () => {
    const empty = { ...message, snapshot: { ...message.snapshot, data: new Uint8Array(0) } };
    const frames = framesOf(empty, 300);
    expect(frames).toHaveLength(1);
    expect(new SnapshotAssembly(frames[0] as SnapshotBeginFrame).message()).toEqual(empty);
  });

  it("refuses chunks that skip, repeat, overrun or belong to another transfer", () => {
    const [begin, first, second] = framesOf(message, 300) as [SnapshotBeginFrame, SnapshotChunkFrame, SnapshotChunkFrame];
    const assembly = new SnapshotAssembly(begin);
    expect(assembly.add(second)).toMatch(/offset 300 .* does not continue 0 of 1000/);
    expect(assembly.add({ ...first, transferId: 8 })).toMatch(/never begun/);
    expect(assembly.add({ ...first, data: new Uint8Array(1001) })).toMatch(/does not continue/);
    expect(assembly.add(first)).toBeNull();
    expect(assembly.add(first)).toMatch(/offset 0 .* does not continue 300/);
  });
});
