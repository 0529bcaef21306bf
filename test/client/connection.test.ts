// The client's RESP connection against a server that is not a well-behaved raftlock node: whatever it
// sends, the call fails with a CONNECTION error and the application's process goes on.
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { RespConnection, replyBytesMax } from "../../src/client/connection.js";

let server: Server | null = null;

afterEach(async () => {
  await new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve())));
  server = null;
});

/** A server that answers the first bytes it reads by calling `answer` on the socket. */
async function hostileServer(answer: (socket: Socket) => void): Promise<number> {
  const listening = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => answer(socket));
  });
  server = listening;
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  const address = listening.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("client connection against a hostile server", () => {
  it.each([
    ["an array length no Array can have", "*99999999999\r\n"],
    ["arrays nested deeper than the stack", "*1\r\n".repeat(200_000) + ":1\r\n"],
    ["a reply that is not RESP", "HTTP/1.1 400 Bad Request\r\n\r\n"],
  ])("%s: the call fails with CONNECTION", async (_what, reply) => {
    const port = await hostileServer((socket) => socket.write(reply));
    const connection = await RespConnection.open({ host: "127.0.0.1", port });
    await expect(connection.call(["PING"])).rejects.toMatchObject({ code: "CONNECTION" });
    expect(connection.closed).toBe(true);
  });

  it("a reply longer than the limit is not buffered without bound", async () => {
    const chunk = Buffer.alloc(1 << 20, 0x61);
    const port = await hostileServer((socket) => {
      socket.write(`$${2 * replyBytesMax}\r\n`);
      const more = (sent: number): void => {
        // Stop once the client hung up (or after twice the limit, should it never).
        if (socket.destroyed || sent > 2 * replyBytesMax) return;
        if (socket.write(chunk)) setImmediate(() => more(sent + chunk.length));
        else socket.once("drain", () => more(sent + chunk.length));
      };
      more(0);
    });
    const connection = await RespConnection.open({ host: "127.0.0.1", port });
    await expect(connection.call(["GET", "orders"])).rejects.toMatchObject({ code: "CONNECTION", message: expect.stringContaining("replyBytesMax") });
  });
});
