import { afterEach, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import type { Message, SnapshotRequest } from "../../src/raft/types.js";
import { pino } from "pino";
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
  });

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

  it("a receiver refuses a snapshot over its snapshotBytesMax by closing that stream", async () => {
    const [n1, n2] = await cluster({ id: "n1" }, { id: "n2", limits: { snapshotBytesMax: 1 << 20 } });
    await startAll(nodes);
    await waitConnected(nodes);
    const data = new Uint8Array(2 << 20);
    n1!.live.send({ type: "snapshot", from: "n1", to: "n2", term: 4, snapshot: { meta: { index: 1, term: 1, config: { voters: ["n1"], learners: [], addresses: {} } }, data } });
    await waitFor("the stream closed", () => n2!.logsMatching(/closing peer connection/).length > 0);
    expect(n2!.logsMatching(/closing peer connection/)[0]!.reason).toMatch(/exceeds snapshotBytesMax/);
    await waitFor("one snapshot status", () => n1!.snapshotStatuses.length === 1);
    expect(n2!.received).toEqual([]);
    await waitConnected(nodes); // the dialer comes back
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
    const hangingRejects = expect(hanging).rejects.toBeInstanceOf(PeerUnavailableError);
    await n1!.stop();
    await hangingRejects;
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
