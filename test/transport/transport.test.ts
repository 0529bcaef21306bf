import { afterEach, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import type { Message, SnapshotRequest } from "../../src/raft/types.js";
import { pino } from "pino";
import { encodeMessage } from "../../src/transport/codec.js";
import { PeerUnavailableError, RemoteHandlerError, RequestLimitError, RequestTimeoutError, Transport } from "../../src/transport/transport.js";
import { append, freePort, heartbeat, indexes, startAll, stopAll, type TestNode, testCluster, waitConnected, waitFor } from "./helpers.js";

let nodes: TestNode[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  await stopAll(nodes);
  nodes = [];
});

async function cluster(...specs: Parameters<typeof testCluster>[0]): Promise<TestNode[]> {
  nodes = await testCluster(specs);
  return nodes;
}

describe("peer streams", () => {
  it("three nodes exchange messages both ways over one stream per pair", async () => {
    const [n1, n2, n3] = await cluster({ id: "n1" }, { id: "n2" }, { id: "n3" });
    await startAll(nodes);
    await waitConnected(nodes);
    expect(n1!.live.connectedPeers()).toEqual(["n2", "n3"]);

    const sent: Message[] = [];
    for (const from of nodes) {
      for (const to of nodes) if (from !== to) sent.push(heartbeat(from.id, to.id, sent.length));
    }
    for (const message of sent) nodes.find((node) => node.id === message.from)!.live.send(message);
    await waitFor("every heartbeat delivered", () => nodes.every((node) => node.received.length === 2));
    for (const node of nodes) expect(node.received).toEqual(sent.filter((m) => m.to === node.id));
    // Lower id dials: n3 accepted both of its streams, n1 dialed both of its.
    expect(n3!.logsMatching(/peer connected/).map((l) => l.role)).toEqual(["acceptor", "acceptor"]);
    expect(n1!.logsMatching(/peer connected/).map((l) => l.role)).toEqual(["dialer", "dialer"]);
    expect(n2!.logsMatching(/peer connected/).map((l) => l.role).sort()).toEqual(["acceptor", "dialer"]);
  });

  it("batches the sends of one event-loop turn into one frame, in order", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    const frames = vi.spyOn(WebSocket.prototype, "send");
    for (let index = 1; index <= 1000; index++) n1!.live.send(append("n1", "n2", index));
    await waitFor("1000 appends", () => n2!.received.length === 1000);
    expect(indexes(n2!.received)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(frames).toHaveBeenCalledTimes(1);
  });

  it("splits a batch larger than frameBytesMax into several frames and keeps the order", async () => {
    const [n1, n2] = await cluster({ id: "n1", limits: { frameBytesMax: 64 << 10, snapshotChunkBytes: 32 << 10, requestPayloadBytesMax: 32 << 10 } }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    const frames = vi.spyOn(WebSocket.prototype, "send");
    for (let index = 1; index <= 500; index++) n1!.live.send(append("n1", "n2", index, 1000));
    await waitFor("500 appends", () => n2!.received.length === 500);
    expect(indexes(n2!.received)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(frames.mock.calls.length).toBeGreaterThanOrEqual(8); // ~520 KB in frames of at most 64 KiB
    for (const [frame] of frames.mock.calls) expect((frame as Uint8Array).length).toBeLessThanOrEqual(64 << 10);
    expect(n1!.limitHits).toEqual([]); // many messages in several frames are no frame refusal
  });

  const smallFrames = { frameBytesMax: 64 << 10, snapshotChunkBytes: 32 << 10, requestPayloadBytesMax: 32 << 10 };

  it("drops a message larger than one frame before sending it, counts the refusal, and sends the next", async () => {
    const [n1, n2] = await cluster({ id: "n1", limits: smallFrames }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    n1!.live.send(append("n1", "n2", 1, 100 << 10));
    expect(n1!.limitHits).toEqual(["peer_frame_bytes"]);
    await waitFor("n2 reported unreachable", () => n1!.unreachable.includes("n2"));
    expect(n1!.logsMatching(/larger than one frame/)).toHaveLength(1);
    n1!.live.send(heartbeat("n1", "n2", 1));
    await waitFor("the heartbeat after it", () => n2!.received.length === 1);
    expect(n2!.received[0]).toMatchObject({ type: "heartbeat", round: 1 });
    expect(n1!.live.connectedPeers()).toEqual(["n2"]); // nothing went on the wire: the stream stays
    expect(n2!.limitHits).toEqual([]);
  });

  for (const receiver of ["acceptor", "dialer"] as const) {
    it(`a frame over the receiving ${receiver}'s frameBytesMax closes the stream (1009), counted there, and the stream comes back`, async () => {
      // n1 dials n2. Only the receiver has small frames: the sender's own limit lets the frame go.
      const [n1, n2] = await cluster({ id: "n1", limits: receiver === "dialer" ? smallFrames : {} }, { id: "n2", limits: receiver === "acceptor" ? smallFrames : {} });
      const [sender, target] = receiver === "acceptor" ? [n1!, n2!] : [n2!, n1!];
      await startAll(nodes);
      await waitConnected(nodes);
      sender.live.send(append(sender.id, target.id, 1, 100 << 10));
      await waitFor("the sender sees the stream closed", () => sender.unreachable.includes(target.id));
      const lost = target.logsMatching(/peer connection lost|closing peer connection/);
      expect(lost.map((line) => line.reason).join("\n")).toMatch(/Max payload size exceeded: the peer sent a frame over frameBytesMax \(65536 bytes\)/);
      expect(target.limitHits).toEqual(["peer_frame_bytes"]);
      expect(sender.limitHits).toEqual([]);
      expect(target.received).toEqual([]);
      await waitConnected(nodes);
      sender.live.send(heartbeat(sender.id, target.id, 2));
      await waitFor("a heartbeat on the new stream", () => target.received.length === 1);
      expect(target.limitHits).toEqual(["peer_frame_bytes"]);
    });
  }

  it("drops queued messages beyond queuedBytesMaxPerPeer and reports the peer unreachable, then carries on", async () => {
    const [n1, n2] = await cluster({ id: "n1", limits: { queuedBytesMaxPerPeer: 64 << 10 } }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    for (let index = 1; index <= 1000; index++) n1!.live.send(append("n1", "n2", index, 1024));
    expect(n1!.unreachable).toEqual([]); // never called back from inside send
    await waitFor("n2 reported unreachable", () => n1!.unreachable.includes("n2"));
    expect(n1!.logsMatching(/not keeping up/).length).toBeGreaterThan(0);
    n1!.live.send(heartbeat("n1", "n2", 77));
    await waitFor("the heartbeat after the overflow", () => n2!.received.some((m) => m.type === "heartbeat" && m.round === 77));
    const delivered = indexes(n2!.received);
    expect(delivered.length).toBeLessThan(1000);
    expect(delivered).toEqual([...delivered].sort((a, b) => a - b));
    // The sends of one turn see an empty socket: the queue takes `fits` messages, the next drops them all
    // and itself, and the count starts over. One hit per drop, not per message dropped.
    const fits = Math.floor((64 << 10) / encodeMessage(append("n1", "n2", 1, 1024)).length);
    const drops = Math.floor(1000 / (fits + 1));
    expect(n1!.logsMatching(/not keeping up/)).toHaveLength(drops);
    expect(n1!.limitHits).toEqual(Array<string>(drops).fill("peer_queued_bytes"));
    expect(n2!.limitHits).toEqual([]);
  });

  it("reconnects after the accepting side restarts on the same port, reporting the peer unreachable meanwhile", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    await n2!.stop();
    await waitFor("n1 notices", () => n1!.unreachable.includes("n2") && n1!.live.connectedPeers().length === 0);
    n1!.live.send(heartbeat("n1", "n2", 1)); // dropped: nobody to send it to
    await n2!.start();
    await waitConnected(nodes);
    n1!.live.send(heartbeat("n1", "n2", 2));
    n2!.live.send(heartbeat("n2", "n1", 3));
    await waitFor("messages flow again both ways", () => n2!.received.length === 1 && n1!.received.length === 1);
    expect(n2!.received[0]).toMatchObject({ round: 2 });
  });

  it("reconnects after the dialing side restarts", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    await n1!.stop();
    await waitFor("n2 notices", () => n2!.unreachable.includes("n1") && n2!.live.connectedPeers().length === 0);
    await n1!.start();
    await waitConnected(nodes);
    n2!.live.send(heartbeat("n2", "n1", 5));
    await waitFor("a message from the acceptor", () => n1!.received.length === 1);
  });

  it("refuses a dialer with the wrong cluster token, logs it without the token, and accepts the right one", async () => {
    const [n1, n2] = await cluster({ id: "n1", clusterToken: "token-of-n1-xyz" }, { id: "n2", clusterToken: "token-of-n2-abc" });
    await startAll(nodes);
    await waitFor("the refusal", () => n2!.logsMatching(/refused a peer connection/).length > 0 && n1!.logsMatching(/peer refused our connection/).length > 0);
    const refusal = n2!.logsMatching(/refused a peer connection/)[0]!;
    expect(refusal).toMatchObject({ peerId: "n1", reason: "cluster token mismatch" });
    expect(n1!.logsMatching(/peer refused our connection/)[0]).toMatchObject({ peerId: "n2", reason: "cluster token mismatch" });
    expect(n1!.live.connectedPeers()).toEqual([]);
    expect(n2!.live.connectedPeers()).toEqual([]);
    for (const line of [...n1!.logs, ...n2!.logs]) expect(JSON.stringify(line)).not.toMatch(/token-of-n/);
    await stopAll(nodes);

    nodes = await testCluster([{ id: "n1", clusterToken: "shared-secret" }, { id: "n2", clusterToken: "shared-secret" }]);
    await startAll(nodes);
    await waitConnected(nodes);
  });

  it("refuses a dialer without a token when one is configured", async () => {
    const [, n2] = await cluster({ id: "n1" }, { id: "n2", clusterToken: "secret" });
    await startAll(nodes);
    await waitFor("the refusal", () => n2!.logsMatching(/refused a peer connection/).length > 0);
    expect(n2!.live.connectedPeers()).toEqual([]);
  });
});

describe("InstallSnapshot streaming", () => {
  it("streams a snapshot of a few MiB in chunks and reports it delivered", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    const data = new Uint8Array(3 * (1 << 20) + 12345);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const snapshot: SnapshotRequest = {
      type: "snapshot",
      from: "n1",
      to: "n2",
      term: 4,
      snapshot: { meta: { index: 9000, term: 4, config: { voters: ["n1", "n2", "n3"], learners: ["n4"], addresses: { n1: "127.0.0.1:7001", n2: "[::1]:7002", n3: "n3:7003", n4: "n4:7004" } } }, data },
    };
    const frames = vi.spyOn(WebSocket.prototype, "send");
    n1!.live.send(snapshot);
    n1!.live.send(heartbeat("n1", "n2", 1)); // not stuck behind the snapshot
    await waitFor("the snapshot", () => n2!.received.some((m) => m.type === "snapshot"));
    await waitFor("the snapshot status", () => n1!.snapshotStatuses.length === 1);
    expect(n1!.snapshotStatuses).toEqual([{ peerId: "n2", delivered: true }]);
    const received = n2!.received.find((m) => m.type === "snapshot");
    if (received?.type !== "snapshot") throw new Error("no snapshot");
    // Compared as bytes: a deep toEqual over 3 MiB element by element takes longer than the transfer.
    expect(Buffer.from(received.snapshot.data).equals(data)).toBe(true);
    expect({ ...received, snapshot: { ...received.snapshot, data: null } }).toEqual({ ...snapshot, snapshot: { ...snapshot.snapshot, data: null } });
    expect(n2!.received.some((m) => m.type === "heartbeat")).toBe(true);
    expect(frames.mock.calls.length).toBeGreaterThanOrEqual(1 + 13); // begin + ceil(3.01 MiB / 256 KiB) chunks
  });

  const snapshotOf = (dataBytes: number): SnapshotRequest => ({
    type: "snapshot",
    from: "n1",
    to: "n2",
    term: 4,
    snapshot: { meta: { index: 1, term: 1, config: { voters: ["n1"], learners: [], addresses: {} } }, data: new Uint8Array(dataBytes) },
  });

  it("a receiver refuses a snapshot over its snapshotBytesMax by closing that stream, and takes a smaller one on the next", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2", limits: { snapshotBytesMax: 1 << 20 } });
    await startAll(nodes);
    await waitConnected(nodes);
    n1!.live.send(snapshotOf(2 << 20));
    await waitFor("the stream closed", () => n2!.logsMatching(/closing peer connection/).length > 0);
    expect(n2!.logsMatching(/closing peer connection/)[0]!.reason).toMatch(/exceeds snapshotBytesMax/);
    await waitFor("one snapshot status", () => n1!.snapshotStatuses.length === 1);
    expect(n2!.received).toEqual([]);
    expect(n2!.limitHits).toEqual(["peer_snapshot_bytes"]);
    expect(n1!.limitHits).toEqual([]);
    // The status may come before n1 sees the close: a snapshot sent on the old stream would be lost.
    await waitFor("n1 sees the stream closed", () => n1!.unreachable.includes("n2"));
    await waitConnected(nodes); // the dialer comes back
    n1!.live.send(snapshotOf(1 << 20));
    await waitFor("the snapshot within the limit", () => n2!.received.some((m) => m.type === "snapshot"));
    expect(n2!.limitHits).toEqual(["peer_snapshot_bytes"]);
  });

  it("a sender refuses a snapshot over its snapshotBytesMax: reported not delivered, counted, the stream kept", async () => {
    const [n1, n2] = await cluster({ id: "n1", limits: { snapshotBytesMax: 1 << 20 } }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    n1!.live.send(snapshotOf((1 << 20) + 1));
    expect(n1!.limitHits).toEqual(["peer_snapshot_bytes"]);
    await waitFor("the failed status", () => n1!.snapshotStatuses.length === 1);
    expect(n1!.snapshotStatuses).toEqual([{ peerId: "n2", delivered: false }]);
    expect(n1!.logsMatching(/exceeds snapshotBytesMax; not sent/)).toHaveLength(1);
    n1!.live.send(snapshotOf(1 << 20));
    await waitFor("the snapshot within the limit", () => n1!.snapshotStatuses.length === 2);
    expect(n1!.snapshotStatuses[1]).toEqual({ peerId: "n2", delivered: true });
    await waitFor("n2 has it", () => n2!.received.some((m) => m.type === "snapshot"));
    expect(n1!.live.connectedPeers()).toEqual(["n2"]);
    expect(n1!.limitHits).toEqual(["peer_snapshot_bytes"]);
    expect(n2!.limitHits).toEqual([]);
  });

  it("reports a snapshot to an unconnected peer as not delivered, outside send", async () => {
    const [n1] = await cluster({ id: "n1" }, { id: "n2" });
    await n1!.start();
    n1!.live.send({ type: "snapshot", from: "n1", to: "n2", term: 4, snapshot: { meta: { index: 1, term: 1, config: { voters: ["n1"], learners: [], addresses: {} } }, data: new Uint8Array(10) } });
    expect(n1!.snapshotStatuses).toEqual([]);
    await waitFor("the failed status", () => n1!.snapshotStatuses.length === 1);
    expect(n1!.snapshotStatuses).toEqual([{ peerId: "n2", delivered: false }]);
  });
});

describe("requests between nodes", () => {
  it("correlates requests and answers in both directions", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    n1!.onRequest = async (fromPeerId, payload) => new TextEncoder().encode(`n1 answers ${fromPeerId}: ${new TextDecoder().decode(payload)}`);
    n2!.onRequest = async (_from, payload) => {
      await new Promise((resolve) => setTimeout(resolve, payload[0]!)); // answers out of order
      return Uint8Array.from([...payload].reverse());
    };
    await startAll(nodes);
    await waitConnected(nodes);
    const answers = await Promise.all([n1!.live.request("n2", Uint8Array.from([30, 1, 2]), 5_000), n1!.live.request("n2", Uint8Array.from([0, 9]), 5_000)]);
    expect(answers).toEqual([Uint8Array.from([2, 1, 30]), Uint8Array.from([9, 0])]);
    const fromAcceptor = await n2!.live.request("n1", new TextEncoder().encode("ping"), 5_000);
    expect(new TextDecoder().decode(fromAcceptor)).toBe("n1 answers n2: ping");
  });

  it("rejects with the remote handler's reason, a timeout, or a limit", async () => {
    const [n1, n2] = await cluster({ id: "n1", limits: { requestsInFlightMaxPerPeer: 2 } }, { id: "n2" });
    n2!.onRequest = (_from, payload) => (payload[0] === 1 ? Promise.reject(new Error("not the leader; try n3")) : new Promise(() => {}));
    await startAll(nodes);
    await waitConnected(nodes);
    const failed = n1!.live.request("n2", Uint8Array.from([1]), 5_000);
    await expect(failed).rejects.toBeInstanceOf(RemoteHandlerError);
    await expect(failed).rejects.toThrow(/not the leader; try n3/);
    const slow = n1!.live.request("n2", Uint8Array.from([2]), 100);
    const hanging = n1!.live.request("n2", Uint8Array.from([2]), 5_000);
    await expect(n1!.live.request("n2", Uint8Array.from([2]), 5_000)).rejects.toBeInstanceOf(RequestLimitError);
    await expect(slow).rejects.toBeInstanceOf(RequestTimeoutError);
    await expect(slow).rejects.toMatchObject({ outcomeUnknown: true });
    await expect(n1!.live.request("n2", new Uint8Array((2 << 20) + 1), 5_000)).rejects.toBeInstanceOf(RequestLimitError);
    expect(n1!.limitHits).toEqual(["forwarded_requests", "peer_frame_bytes"]);
    const hangingRejects = expect(hanging).rejects.toBeInstanceOf(PeerUnavailableError);
    await n1!.stop();
    await hangingRejects;
  });

  /** n2 holds each request it gets until `release()` answers them all; later ones are answered at once. */
  function holdRequests(node: TestNode): { held: () => number; release: () => void } {
    const waiting: (() => void)[] = [];
    let holding = true;
    node.onRequest = (_from, payload) => (holding ? new Promise((resolve) => waiting.push(() => resolve(payload))) : Promise.resolve(payload));
    return {
      held: () => waiting.length,
      release: () => {
        holding = false;
        for (const answer of waiting.splice(0)) answer();
      },
    };
  }

  // The same three requests from n1 to n2, the third refused by whichever side has the limit: n1 before
  // sending it, or n2 on receiving it, answering busy. The side with the limit counts the hit.
  const inFlightLimitCases = [
    {
      limitedSide: "sender",
      name: "refuses our request beyond requestsInFlightMaxPerPeer awaiting answers, naming the limit, and takes one once answers came",
      message: "2 requests to n2 are already awaiting answers (requestsInFlightMaxPerPeer); retry later",
    },
    {
      limitedSide: "receiver",
      name: "answers a peer's request beyond requestsInFlightMaxPerPeer handled at once as busy, naming the limit, and handles one once done",
      message: 'n2 refused the request: "n2" already handles 2 requests from "n1" (requestsInFlightMaxPerPeer); retry later',
    },
  ] as const;
  for (const { limitedSide, name, message } of inFlightLimitCases) {
    it(name, async () => {
      const inFlightLimit = { requestsInFlightMaxPerPeer: 2 };
      const [n1, n2] = await cluster({ id: "n1", limits: limitedSide === "sender" ? inFlightLimit : {} }, { id: "n2", limits: limitedSide === "receiver" ? inFlightLimit : {} });
      const [limited, unlimited] = limitedSide === "sender" ? [n1!, n2!] : [n2!, n1!];
      const n2Requests = holdRequests(n2!);
      await startAll(nodes);
      await waitConnected(nodes);
      const first = n1!.live.request("n2", Uint8Array.from([1]), 5_000);
      const second = n1!.live.request("n2", Uint8Array.from([2]), 5_000);
      const refused = n1!.live.request("n2", Uint8Array.from([3]), 5_000);
      await expect(refused).rejects.toBeInstanceOf(RequestLimitError);
      await expect(refused).rejects.toMatchObject({ outcomeUnknown: false, message });
      expect(limited.limitHits).toEqual(["forwarded_requests"]);
      // n2 refuses the third only once it holds the first two; n1 refuses it before they need have arrived.
      if (limitedSide === "receiver") expect(n2Requests.held()).toBe(2);
      else await waitFor("n2 holding both", () => n2Requests.held() === 2);
      n2Requests.release();
      expect(await Promise.all([first, second])).toEqual([Uint8Array.from([1]), Uint8Array.from([2])]);
      expect(await n1!.live.request("n2", Uint8Array.from([4]), 5_000)).toEqual(Uint8Array.from([4]));
      expect(limited.limitHits).toEqual(["forwarded_requests"]);
      expect(unlimited.limitHits).toEqual([]);
    });
  }

  it("a request or an answer over requestPayloadBytesMax is refused as a frame too large, and the next one gets through", async () => {
    const [n1, n2] = await cluster({ id: "n1", limits: { requestPayloadBytesMax: 1024 } }, { id: "n2", limits: { requestPayloadBytesMax: 1024 } });
    n2!.onRequest = async (_from, payload) => (payload[0] === 1 ? new Uint8Array(1025) : payload);
    await startAll(nodes);
    await waitConnected(nodes);
    await expect(n1!.live.request("n2", new Uint8Array(1025), 5_000)).rejects.toMatchObject({
      name: "RequestLimitError",
      outcomeUnknown: false,
      message: expect.stringMatching(/request payload is 1025 bytes; the peer transport carries at most 1024 \(requestPayloadBytesMax/),
    });
    expect(n1!.limitHits).toEqual(["peer_frame_bytes"]);
    await expect(n1!.live.request("n2", Uint8Array.from([1]), 5_000)).rejects.toMatchObject({ name: "RemoteHandlerError", message: expect.stringMatching(/the answer is 1025 bytes/) });
    expect(n2!.limitHits).toEqual(["peer_frame_bytes"]);
    expect(await n1!.live.request("n2", Uint8Array.from([2]), 5_000)).toEqual(Uint8Array.from([2]));
    expect(n1!.limitHits).toEqual(["peer_frame_bytes"]);
    expect(n2!.limitHits).toEqual(["peer_frame_bytes"]);
  });

  it("refuses a request while the send queue to the peer is full, then takes one once it drained", async () => {
    const queuedBytesMaxPerPeer = 64 << 10;
    const [n1, n2] = await cluster({ id: "n1", limits: { queuedBytesMaxPerPeer } }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    // Sends of one turn wait in the queue until the turn ends: fill it to just under the limit.
    const fits = Math.floor(queuedBytesMaxPerPeer / encodeMessage(append("n1", "n2", 1, 1024)).length);
    for (let index = 1; index <= fits; index++) n1!.live.send(append("n1", "n2", index, 1024));
    const refused = n1!.live.request("n2", new Uint8Array(4096), 5_000);
    expect(n1!.limitHits).toEqual(["peer_queued_bytes"]);
    await expect(refused).rejects.toMatchObject({
      name: "RequestLimitError",
      outcomeUnknown: false,
      message: expect.stringMatching(/bytes already wait to be sent to n2 \(queuedBytesMaxPerPeer 65536\): the peer is not keeping up; retry later/),
    });
    await waitFor("the queued appends delivered", () => n2!.received.length === fits);
    expect(await n1!.live.request("n2", Uint8Array.from([7]), 5_000)).toEqual(Uint8Array.from([7]));
    expect(n1!.unreachable).toEqual([]); // a refused request drops nothing: the Raft messages all went
    expect(n1!.limitHits).toEqual(["peer_queued_bytes"]);
    expect(n2!.limitHits).toEqual([]);
  });

  it("drops an answer that would overfill the send queue (the requester times out), then answers the next", async () => {
    const queuedBytesMaxPerPeer = 64 << 10;
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2", limits: { queuedBytesMaxPerPeer } });
    const fits = Math.floor(queuedBytesMaxPerPeer / encodeMessage(append("n2", "n1", 1, 1024)).length);
    let filled = false;
    n2!.onRequest = async (_from, payload) => {
      if (!filled) {
        // The answer is queued before this turn ends, behind Raft messages that leave the queue almost full.
        filled = true;
        for (let index = 1; index <= fits; index++) n2!.live.send(append("n2", "n1", index, 1024));
        return new Uint8Array(4096);
      }
      return payload;
    };
    await startAll(nodes);
    await waitConnected(nodes);
    await expect(n1!.live.request("n2", Uint8Array.from([1]), 300)).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(n2!.limitHits).toEqual(["peer_queued_bytes"]);
    expect(n2!.logsMatching(/dropped a response/)).toHaveLength(1);
    await waitFor("the queued appends delivered", () => n1!.received.length === fits);
    expect(await n1!.live.request("n2", Uint8Array.from([2]), 5_000)).toEqual(Uint8Array.from([2]));
    expect(n2!.limitHits).toEqual(["peer_queued_bytes"]);
    expect(n1!.limitHits).toEqual([]);
  });

  it("a pending request rejects at once with PeerUnavailableError when the peer closes", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    let handled = false;
    n2!.onRequest = () => {
      handled = true;
      return new Promise(() => {});
    };
    await startAll(nodes);
    await waitConnected(nodes);
    const pending = n1!.live.request("n2", Uint8Array.from([1]), 60_000);
    const outcome = pending.then(
      () => null,
      (error: unknown) => error,
    );
    await waitFor("the peer handling it", () => handled);
    const closedAtMs = Date.now();
    await n2!.stop();
    const error = await outcome;
    expect(Date.now() - closedAtMs).toBeLessThan(2_000);
    expect(error).toBeInstanceOf(PeerUnavailableError);
    expect(error).toMatchObject({ peerId: "n2", outcomeUnknown: true });
  });

  it("a request to a peer that is not connected fails at once, as never sent", async () => {
    const [n1] = await cluster({ id: "n1" }, { id: "n2" });
    await n1!.start();
    await expect(n1!.live.request("n2", Uint8Array.from([1]), 60_000)).rejects.toMatchObject({ name: "PeerUnavailableError", outcomeUnknown: false });
    await expect(n1!.live.request("n7", Uint8Array.from([1]), 60_000)).rejects.toThrow(/not a configured peer/);
  });
});

describe("starting", () => {
  it("rejects a configuration mistake with what to change, without echoing the token", async () => {
    const [n1] = await cluster({ id: "n1" });
    const base = { nodeId: "n1", clusterId: "c", listen: { host: "127.0.0.1", port: 0 }, logger: pino({ enabled: false }) };
    const callbacks = { onMessage: () => {}, onUnreachable: () => {}, onSnapshotStatus: () => {}, onRequest: async () => new Uint8Array(0) };
    const tooLongToken = "t".repeat(2000);
    const attempt = Transport.start({ ...base, ...callbacks, peers: new Map([["n1", { host: "127.0.0.1", port: 7001 }], ["n2", { host: "", port: 0 }]]), clusterToken: tooLongToken });
    await expect(attempt).rejects.toThrow(/peers must not include this node.*peer "n2" needs a host and a port.*cluster token must be 1 to 1024 bytes \(got 2000\)/);
    await expect(attempt).rejects.not.toThrow(tooLongToken);
    await n1!.start();
    const taken = Transport.start({ ...base, ...callbacks, listen: { host: "127.0.0.1", port: n1!.port }, peers: new Map() });
    await expect(taken).rejects.toThrow(/cannot listen for peers on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    expect(n1!.live.address().port).toBe(n1!.port);
    expect(await freePort()).toBeGreaterThan(0);
  });

  it("calls nothing back after close, and close is idempotent", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2" });
    await startAll(nodes);
    await waitConnected(nodes);
    const transport = n1!.live;
    transport.send(heartbeat("n1", "n2", 1));
    await Promise.all([transport.close(), transport.close()]);
    transport.send(heartbeat("n1", "n2", 2));
    await expect(transport.request("n2", Uint8Array.from([1]), 1_000)).rejects.toThrow(/transport is closed/);
    await waitFor("n2 notices", () => n2!.unreachable.includes("n1"));
    expect(n1!.unreachable).toEqual([]);
    expect(transport.connectedPeers()).toEqual([]);
  });
});
