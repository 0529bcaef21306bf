// The fault network on real loopback sockets: a front door tells dialers apart by their Hello, so faults
// hold per link even when every node dials the same address.
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { decodeFrame, encodeFrame } from "../../src/transport/codec.js";
import { waitFor } from "../e2e/harness.js";
import { freePort } from "../support/ports.js";
import { FaultNetwork, firstWebSocketMessage } from "./fault-proxy.js";

const hello = (fromNodeId: string, toNodeId: string): Uint8Array => encodeFrame({ kind: "hello", clusterId: "chaos", fromNodeId, toNodeId, clusterToken: null });

let network: FaultNetwork | null = null;
let server: WebSocketServer | null = null;
afterEach(async () => {
  await network?.close();
  await new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve())));
  network = null;
  server = null;
});

/** n3 behind its front door; returns the door's port and what n3 received, per dialer. */
async function acceptor(): Promise<{ doorPort: number; received: Map<string, number> }> {
  const peerPort = await freePort();
  const received = new Map<string, number>();
  server = new WebSocketServer({ port: peerPort, host: "127.0.0.1" });
  server.on("connection", (socket) => {
    let from: string | null = null;
    socket.on("message", (data: Buffer) => {
      if (from === null) {
        const first = decodeFrame(data);
        if (first.kind !== "hello") throw new Error(`expected a Hello first, got ${first.kind}`);
        from = first.fromNodeId;
      }
      received.set(from, (received.get(from) ?? 0) + 1);
      socket.send("ack");
    });
  });
  network = new FaultNetwork();
  return { doorPort: await network.openDoor("n3", peerPort), received };
}

/** Dials the door as `fromId`, sends its Hello and one more message; resolves with the acks it got back. */
async function dial(doorPort: number, fromId: string): Promise<{ acks: number; closed: boolean; socket: WebSocket }> {
  const socket = new WebSocket(`ws://127.0.0.1:${doorPort}/`);
  const state = { acks: 0, closed: false, socket };
  socket.on("message", () => state.acks++);
  socket.on("close", () => (state.closed = true));
  socket.on("error", () => undefined);
  await new Promise<void>((resolve) => socket.once("open", () => resolve()));
  socket.send(hello(fromId, "n3"));
  socket.send(Buffer.from("payload"));
  return state;
}

describe("the fault network's front doors", () => {
  it("relays every dialer until a fault names its link", async () => {
    const { doorPort, received } = await acceptor();
    const [n1, n2] = [await dial(doorPort, "n1"), await dial(doorPort, "n2")];
    await waitFor(() => n1.acks === 2 && n2.acks === 2, 5_000, "both dialers acknowledged");
    expect(received).toEqual(new Map([["n1", 2], ["n2", 2]]));
    n1.socket.close();
    n2.socket.close();
  });

  it("cuts one link only: the other dialer of the same node still gets through", async () => {
    const { doorPort, received } = await acceptor();
    network!.link("n1", "n3").cut(true);
    const [n1, n2] = [await dial(doorPort, "n1"), await dial(doorPort, "n2")];
    await waitFor(() => n2.acks === 2 && n1.closed, 5_000, "n2 acknowledged and n1 dropped");
    expect(received.get("n1")).toBeUndefined();
    n2.socket.close();
  });

  it("drops one direction of a link: the acceptor hears the dialer but its answers are lost", async () => {
    const { doorPort, received } = await acceptor();
    network!.link("n1", "n3").block("n3", true);
    const n1 = await dial(doorPort, "n1");
    await waitFor(() => received.get("n1") === 2, 5_000, "n3 received both messages");
    expect(n1.acks).toBe(0);
    // Healing the direction resets the torn stream: the dialer sees its connection close.
    network!.link("n1", "n3").heal();
    await waitFor(() => n1.closed, 5_000, "the stream reset on healing");
  });
});

describe("reading a client's first WebSocket message", () => {
  const frame = (payload: Uint8Array, mask: number[]): Uint8Array => {
    const header = payload.length < 126 ? [0x82, 0x80 | payload.length] : [0x82, 0x80 | 126, payload.length >> 8, payload.length & 0xff];
    return Uint8Array.from([...header, ...mask, ...payload.map((byte, i) => byte ^ mask[i % 4]!)]);
  };

  it("unmasks a whole frame, short or with a 16-bit length", () => {
    const short = hello("n1", "n3");
    expect(firstWebSocketMessage(frame(short, [1, 2, 3, 4]))).toEqual({ payload: short });
    const long = new Uint8Array(300).fill(7);
    expect(firstWebSocketMessage(frame(long, [9, 8, 7, 6]))).toEqual({ payload: long });
  });

  it("waits for the rest of a frame, and refuses what is not one unfragmented binary frame", () => {
    const bytes = frame(hello("n1", "n3"), [1, 2, 3, 4]);
    expect(firstWebSocketMessage(bytes.subarray(0, 1))).toBe("incomplete");
    expect(firstWebSocketMessage(bytes.subarray(0, bytes.length - 1))).toBe("incomplete");
    expect(firstWebSocketMessage(Uint8Array.from([0x81, 0x80, 0, 0, 0, 0]))).toBe("not-a-frame"); // text
    expect(firstWebSocketMessage(Uint8Array.from([0x02, 0x80, 0, 0, 0, 0]))).toBe("not-a-frame"); // not final
  });
});
