// The RESP server over raw sockets: the exact bytes Redis 7 would send, pipelining, limits and auth.

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { pubsubCommandTable, subscriptionsPerConnectionMax } from "../../../src/api/resp/pubsub-commands.js";
import { unauthenticatedArgumentsMax, unauthenticatedBulkBytesMax } from "../../../src/api/resp/request-reader.js";
import { CoordinationStateMachine } from "../../../src/fsm/coordination.js";
import type { LimitName } from "../../../src/limit-hits.js";
import { NodeMetrics } from "../../../src/metrics.js";
import { command, RawClient, startTestServer, type TestServer, waitFor } from "./helpers.js";

const clients: RawClient[] = [];
async function connectTo(server: TestServer): Promise<RawClient> {
  const client = await RawClient.connect(server.port);
  clients.push(client);
  return client;
}
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** Checks that a server that just refused something still serves: a new connection gets an answer to PING. */
async function expectServing(server: TestServer, password?: string): Promise<void> {
  const client = await connectTo(server);
  if (password !== undefined) expect(await client.ask(command("AUTH", password), "+OK\r\n")).toBe("+OK\r\n");
  expect(await client.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
}

describe("RESP server: requests and replies", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it("answers an inline command typed into nc or telnet", async () => {
    const client = await connectTo(server);
    expect(await client.ask("PING\r\n", "+PONG\r\n")).toBe("+PONG\r\n");
    expect(await client.ask('echo "hello world"\n', "$11\r\nhello world\r\n")).toBe("$11\r\nhello world\r\n");
  });

  it("answers pipelined requests in request order, whatever order their handlers finish in", async () => {
    const client = await connectTo(server);
    const requests = command("TEST.SLOW", "80", "first") + command("TEST.SLOW", "0", "second") + "PING\r\n" + command("TEST.SLOW", "20", "third") + command("ECHO", "fourth");
    const expected = "$5\r\nfirst\r\n$6\r\nsecond\r\n+PONG\r\n$5\r\nthird\r\n$6\r\nfourth\r\n";
    expect(await client.ask(requests, expected)).toBe(expected);
  });

  it("answers a request split over many writes", async () => {
    const client = await connectTo(server);
    const request = command("TEST.ECHO2", "a".repeat(3000), "b");
    for (let start = 0; start < request.length; start += 500) client.send(request.slice(start, start + 500));
    const expected = `*2\r\n$3000\r\n${"a".repeat(3000)}\r\n$1\r\nb\r\n`;
    await client.receive(expected);
    expect(client.received).toBe(expected);
  });

  it("checks arity and names the command as the client typed it, lower-cased, as Redis 7 does", async () => {
    const client = await connectTo(server);
    const arity = "-ERR wrong number of arguments for 'test.echo2' command\r\n";
    expect(await client.ask(command("Test.Echo2", "a"), arity)).toBe(arity);
    const subcommand = "-ERR wrong number of arguments for 'client|setname' command\r\n";
    expect(await client.ask(command("CLIENT", "SETNAME"), subcommand)).toBe(subcommand);
    const tooMany = "-ERR wrong number of arguments for 'ping' command\r\n";
    expect(await client.ask(command("PING", "a", "b"), tooMany)).toBe(tooMany);
  });

  it("words unknown commands and subcommands as Redis 7 does", async () => {
    const client = await connectTo(server);
    const unknown = "-ERR unknown command 'LOCK.NOPE', with args beginning with: 'a' 'b c' \r\n";
    expect(await client.ask(command("LOCK.NOPE", "a", "b c"), unknown)).toBe(unknown);
    const bare = "-ERR unknown command 'nope', with args beginning with: \r\n";
    expect(await client.ask(command("nope"), bare)).toBe(bare);
    const subcommand = "-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n";
    expect(await client.ask(command("client", "MAINT_NOTIFICATIONS", "ON"), subcommand)).toBe(subcommand);
    const withNewline = "-ERR unknown command 'a  b', with args beginning with: \r\n";
    expect(await client.ask(command("a\r\nb"), withNewline)).toBe(withNewline);
  });

  it("answers an expected failure a handler throws as its error, and a bug as a generic error logged once", async () => {
    const client = await connectTo(server);
    const refused = "-NOLEADER no leader is elected yet; retry\r\n";
    expect(await client.ask(command("TEST.REFUSE"), refused)).toBe(refused);
    const failed = "-ERR internal error in 'test.fail'; the server log has the details\r\n";
    expect(await client.ask(command("TEST.FAIL"), failed)).toBe(failed);
    expect(server.logs.filter((line) => line.msg === "RESP command failed" && line.command === "test.fail")).toHaveLength(1);
  });

  it("PING and ECHO", async () => {
    const client = await connectTo(server);
    expect(await client.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
    expect(await client.ask(command("PING", "hi"), "$2\r\nhi\r\n")).toBe("$2\r\nhi\r\n");
    expect(await client.ask(command("ECHO", ""), "$0\r\n\r\n")).toBe("$0\r\n\r\n");
  });

  it("HELLO switches the protocol, and its own reply is already in the new one", async () => {
    const client = await connectTo(server);
    const hello2 = await client.ask(command("HELLO"), "*14\r\n");
    expect(hello2).toMatch(/^\*14\r\n\$6\r\nserver\r\n\$8\r\nraftlock\r\n\$7\r\nversion\r\n\$5\r\n7\.2\.0\r\n\$5\r\nproto\r\n:2\r\n\$2\r\nid\r\n:\d+\r\n\$4\r\nmode\r\n\$10\r\nstandalone\r\n\$4\r\nrole\r\n\$6\r\nmaster\r\n\$7\r\nmodules\r\n\*0\r\n$/);
    await waitFor("the whole HELLO reply", () => client.received.endsWith("modules\r\n*0\r\n"));
    const before = client.received.length;
    client.send(command("HELLO", "3") + command("TEST.TYPES") + command("HELLO", "2") + command("TEST.TYPES"));
    const resp3Types = "%4\r\n$7\r\nnothing\r\n_\r\n$3\r\nyes\r\n#t\r\n$5\r\nratio\r\n,3.5\r\n$4\r\nlist\r\n*2\r\n:1\r\n$3\r\ntwo\r\n";
    const resp2Types = "*8\r\n$7\r\nnothing\r\n$-1\r\n$3\r\nyes\r\n:1\r\n$5\r\nratio\r\n$3\r\n3.5\r\n$4\r\nlist\r\n*2\r\n:1\r\n$3\r\ntwo\r\n";
    await client.receive(resp3Types + "*14\r\n");
    await client.receive(resp2Types);
    const answers = client.received.slice(before);
    expect(answers).toMatch(/^%7\r\n\$6\r\nserver\r\n.*\$5\r\nproto\r\n:3\r\n/s);
    expect(answers.indexOf(resp3Types)).toBeGreaterThan(0);
    expect(answers.endsWith(resp2Types)).toBe(true);
  });

  it("HELLO refuses an unknown protocol version or option as Redis 7 does, and sets the name with SETNAME", async () => {
    const client = await connectTo(server);
    const noProto = "-NOPROTO unsupported protocol version\r\n";
    expect(await client.ask(command("HELLO", "4"), noProto)).toBe(noProto);
    const notInteger = "-ERR Protocol version is not an integer or out of range\r\n";
    expect(await client.ask(command("HELLO", "three"), notInteger)).toBe(notInteger);
    const badOption = "-ERR Syntax error in HELLO option 'FOO'\r\n";
    expect(await client.ask(command("HELLO", "2", "FOO"), badOption)).toBe(badOption);
    await client.ask(command("HELLO", "2", "SETNAME", "worker-1"), "*14\r\n");
    await waitFor("the whole HELLO reply", () => client.received.endsWith("*0\r\n"));
    expect(await client.ask(command("CLIENT", "GETNAME"), "$8\r\nworker-1\r\n")).toBe("$8\r\nworker-1\r\n");
  });

  it("CLIENT SETNAME, GETNAME, ID, SETINFO and INFO", async () => {
    const client = await connectTo(server);
    expect(await client.ask(command("CLIENT", "GETNAME"), "$-1\r\n")).toBe("$-1\r\n");
    expect(await client.ask(command("CLIENT", "SETNAME", "w1"), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("CLIENT", "GETNAME"), "$2\r\nw1\r\n")).toBe("$2\r\nw1\r\n");
    const badName = "-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
    expect(await client.ask(command("CLIENT", "SETNAME", "w 1"), badName)).toBe(badName);
    expect(await client.ask(command("CLIENT", "SETNAME", ""), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("CLIENT", "GETNAME"), "$-1\r\n")).toBe("$-1\r\n");
    expect(await client.askLine(command("CLIENT", "ID"))).toMatch(/^:\d+\r\n$/);
    expect(await client.ask(command("CLIENT", "SETINFO", "LIB-NAME", "rawtest"), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("CLIENT", "SETINFO", "lib-ver", "1.2.3"), "+OK\r\n")).toBe("+OK\r\n");
    const unknownOption = "-ERR Unrecognized option 'LIB-COLOR'\r\n";
    expect(await client.ask(command("CLIENT", "SETINFO", "LIB-COLOR", "red"), unknownOption)).toBe(unknownOption);
    const info = await client.ask(command("CLIENT", "INFO"), "$100\r\n");
    await waitFor("the whole CLIENT INFO", () => client.received.endsWith("\n\r\n"));
    expect(client.received).toMatch(/id=\d+ addr=127\.0\.0\.1:\d+ name= age=\d+ db=0 sub=0 user=default resp=2 lib-name=rawtest lib-ver=1\.2\.3\n\r\n$/);
    expect(info.startsWith("$")).toBe(true);
  });

  it("SELECT 0 only", async () => {
    const client = await connectTo(server);
    expect(await client.ask(command("SELECT", "0"), "+OK\r\n")).toBe("+OK\r\n");
    const outOfRange = "-ERR DB index is out of range\r\n";
    expect(await client.ask(command("SELECT", "1"), outOfRange)).toBe(outOfRange);
    const notInteger = "-ERR value is not an integer or out of range\r\n";
    expect(await client.ask(command("SELECT", "x"), notInteger)).toBe(notInteger);
  });

  it("COMMAND COUNT, INFO and DOCS describe the table the server runs", async () => {
    const client = await connectTo(server);
    const count = server.server.commands.size;
    expect(await client.ask(command("COMMAND", "COUNT"), `:${count}\r\n`)).toBe(`:${count}\r\n`);
    // Its access is stated as Redis does: "readonly" for a read, "write" for a write.
    const info = "*1\r\n*10\r\n$10\r\ntest.echo2\r\n:3\r\n*1\r\n+readonly\r\n:0\r\n:0\r\n:0\r\n*0\r\n*0\r\n*0\r\n*0\r\n";
    expect(await client.ask(command("COMMAND", "INFO", "TEST.ECHO2"), info)).toBe(info);
    const write = "*1\r\n*10\r\n$10\r\ntest.write\r\n:1\r\n*1\r\n+write\r\n:0\r\n:0\r\n:0\r\n*0\r\n*0\r\n*0\r\n*0\r\n";
    expect(await client.ask(command("COMMAND", "INFO", "TEST.WRITE"), write)).toBe(write);
    expect(await client.ask(command("COMMAND", "INFO", "nope"), "*1\r\n$-1\r\n")).toBe("*1\r\n$-1\r\n");
    const docs = "*2\r\n$10\r\ntest.echo2\r\n*4\r\n$7\r\nsummary\r\n$38\r\nAnswers its two arguments as an array.\r\n$5\r\ngroup\r\n$4\r\ntest\r\n";
    expect(await client.ask(command("COMMAND", "DOCS", "test.echo2", "nope"), docs)).toBe(docs);
    const all = await client.ask(command("COMMAND"), `*${count}\r\n`);
    expect(all.startsWith(`*${count}\r\n`)).toBe(true);
  });

  it("INFO has a Server section with redis_version, and answers only the sections asked for", async () => {
    const client = await connectTo(server);
    client.send(command("INFO"));
    await client.receive("loading:0\r\n\r\n");
    expect(client.received).toMatch(/^\$\d+\r\n# Server\r\nredis_version:7\.2\.0\r\nraftlock_version:\d+\.\d+\.\d+\r\nredis_mode:standalone\r\n/);
    expect(client.received).toContain("\r\n# Clients\r\nconnected_clients:");
    const before = client.received.length;
    client.send(command("INFO", "persistence"));
    await waitFor("INFO persistence", () => client.received.length - before >= "$26\r\n# Persistence\r\nloading:0\r\n\r\n".length);
    expect(client.received.slice(before)).toBe("$26\r\n# Persistence\r\nloading:0\r\n\r\n");
    expect(await client.ask(command("INFO", "nosuchsection"), "$0\r\n\r\n")).toBe("$0\r\n\r\n");
  });

  it("QUIT answers OK, then closes without reading what followed it", async () => {
    const client = await connectTo(server);
    client.send(command("QUIT") + command("PING"));
    await client.waitClosed();
    expect(client.received).toBe("+OK\r\n");
  });

  it("runs a close hook once at close, and never one removed before (no hook piles up per request)", async () => {
    const before = server.closeHooksRun();
    const client = await connectTo(server);
    client.send(command("TEST.ONCLOSE", "keep") + command("TEST.ONCLOSE", "drop").repeat(100) + command("TEST.ONCLOSE", "keep"));
    await client.receive("+OK\r\n".repeat(102));
    client.close();
    // The connection runs all its close hooks in one synchronous pass: once the kept ones ran, a dropped one would have too.
    await waitFor("the kept hooks ran", () => server.closeHooksRun() - before >= 2);
    expect(server.closeHooksRun() - before).toBe(2);
  });

  it("a client that shuts down its sending side still gets every reply", async () => {
    const client = await connectTo(server);
    client.socket.end(command("TEST.SLOW", "50", "late") + "PING\r\n");
    await client.waitClosed();
    expect(client.received).toBe("$4\r\nlate\r\n+PONG\r\n");
  });

  it("push: a RESP3 push (>), a plain array in RESP2 after the replies before it", async () => {
    const resp2 = await connectTo(server);
    const inResp2 = "+OK\r\n*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$2\r\nhi\r\n";
    expect(await resp2.ask(command("TEST.PUSH", "hi"), inResp2)).toBe(inResp2);
    const resp3 = await connectTo(server);
    await resp3.ask(command("HELLO", "3"), "%7\r\n");
    await waitFor("the whole HELLO reply", () => resp3.received.endsWith("*0\r\n"));
    const inResp3 = ">3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$2\r\nhi\r\n+OK\r\n";
    expect(await resp3.ask(command("TEST.PUSH", "hi"), inResp3)).toBe(inResp3);
  });

  it("a RESP3 push overtakes replies still being computed; a RESP2 message waits behind them", async () => {
    const message = "*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$2\r\nhi\r\n";
    const resp2 = await connectTo(server);
    const inResp2 = "$4\r\nslow\r\n+OK\r\n" + message;
    expect(await resp2.ask(command("TEST.SLOW", "50", "slow") + command("TEST.PUSH", "hi"), inResp2)).toBe(inResp2);
    const resp3 = await connectTo(server);
    await resp3.ask(command("HELLO", "3"), "%7\r\n");
    await waitFor("the whole HELLO reply", () => resp3.received.endsWith("*0\r\n"));
    const inResp3 = ">" + message.slice(1) + "$4\r\nslow\r\n+OK\r\n";
    expect(await resp3.ask(command("TEST.SLOW", "50", "slow") + command("TEST.PUSH", "hi"), inResp3)).toBe(inResp3);
  });

  it("a subscribed RESP2 connection may run only the commands allowed in that mode, as in Redis", async () => {
    const client = await connectTo(server);
    const subscribed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    expect(await client.ask(command("TEST.SUBSCRIBE", "ch"), subscribed)).toBe(subscribed);
    const refused = "-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
    expect(await client.ask(command("ECHO", "x"), refused)).toBe(refused);
    const pong = "*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    expect(await client.ask(command("PING"), pong)).toBe(pong);
  });

  it("closes a connection that sends an HTTP request, without an answer", async () => {
    const client = await connectTo(server);
    client.send("POST / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await client.waitClosed();
    expect(client.received).toBe("");
  });
});

describe("RESP server: protocol errors close that connection only", () => {
  const metrics = new NodeMetrics();
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ limits: { bulkBytesMax: 1024, requestBytesMax: 2048, argumentsMax: 4, inlineBytesMax: 64 }, metrics });
  });
  afterAll(() => server.close());

  /** `request` closes its connection with `reply`, counted as a hit of `limit` when it is over one. */
  async function expectProtocolError(request: string, reply: string, limit?: LimitName): Promise<void> {
    const bystander = await connectTo(server);
    expect(await bystander.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
    const hitsBefore = limit === undefined ? 0 : await metrics.limitHitCount(limit);
    const offender = await connectTo(server);
    offender.send(command("PING") + request);
    await offender.waitClosed();
    expect(offender.received).toBe(`+PONG\r\n${reply}`);
    if (limit !== undefined) expect((await metrics.limitHitCount(limit)) - hitsBefore).toBe(1);
    expect(await bystander.ask(command("ECHO", "still here"), "$10\r\nstill here\r\n")).toBe("$10\r\nstill here\r\n");
    await expectServing(server);
  }

  it("a count that is not a number", async () => {
    await expectProtocolError("*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
  });

  it("an argument longer than bulkBytesMax, refused on its header before its bytes are sent", async () => {
    await expectProtocolError("*2\r\n$4\r\nECHO\r\n$2000\r\n", "-ERR Protocol error: invalid bulk length: an argument of 2000 bytes, more than the limit of 1024 (bulkBytesMax)\r\n", "resp_bulk_bytes");
  });

  it("more arguments than argumentsMax, in a multibulk or an inline request", async () => {
    await expectProtocolError("*5\r\n", "-ERR Protocol error: invalid multibulk length: 5 arguments, more than the limit of 4 (argumentsMax)\r\n", "resp_arguments");
    await expectProtocolError("echo a b c d\r\n", "-ERR Protocol error: too many arguments in an inline request: 5, more than the limit of 4 (argumentsMax)\r\n", "resp_arguments");
  });

  it("arguments of one request together over requestBytesMax, refused on the header that passes it", async () => {
    // 4 + 1024 + 1024 bytes: each argument within bulkBytesMax, together over requestBytesMax.
    const request = `*3\r\n$4\r\nECHO\r\n$1024\r\n${"x".repeat(1024)}\r\n$1024\r\n`;
    await expectProtocolError(request, "-ERR Protocol error: request too big: more than 2048 bytes of arguments (requestBytesMax)\r\n", "resp_request_bytes");
  });

  it("an inline request longer than inlineBytesMax, with or without its line feed", async () => {
    const reply = "-ERR Protocol error: too big inline request (more than 64 bytes without a line feed; inlineBytesMax)\r\n";
    await expectProtocolError(`ECHO ${"x".repeat(100)}`, reply, "resp_inline_bytes");
    await expectProtocolError(`ECHO ${"x".repeat(60)}\r\n`, reply, "resp_inline_bytes");
  });

  it("something other than bulk strings inside a request", async () => {
    await expectProtocolError("*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n");
  });

  it("the protocol error comes after the replies to the requests before it", async () => {
    const client = await connectTo(server);
    client.send(command("TEST.SLOW", "50", "first") + "*x\r\n");
    await client.waitClosed();
    expect(client.received).toBe("$5\r\nfirst\r\n-ERR Protocol error: invalid multibulk length\r\n");
  });
});

describe("RESP server: limits", () => {
  // Found by the RESP fuzz target: reading stopped between two requests once a read's replies passed
  // outputBytesSoftMax, but when uncork() handed them all to the kernel at once, reading was never
  // paused, and the rest waited for the next read, whose bytes were then parsed first.
  it("answers every pipelined request, in order, when a read's replies pass outputBytesSoftMax", async () => {
    const server = await startTestServer({ limits: { outputBytesSoftMax: 16 } });
    try {
      const client = await connectTo(server);
      const pongs = "+PONG\r\n".repeat(5);
      expect(await client.ask("PING\r\n".repeat(5), pongs, 1_000)).toBe(pongs);
      expect(await client.ask("ECHO a\r\n", "$1\r\na\r\n", 1_000)).toBe("$1\r\na\r\n");
    } finally {
      await server.close();
    }
  });

  it("refuses connections past connectionsMax with an error and serves again once one closes", async () => {
    const metrics = new NodeMetrics();
    const server = await startTestServer({ limits: { connectionsMax: 2 }, metrics });
    try {
      const first = await connectTo(server);
      const second = await connectTo(server);
      expect(await first.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
      expect(await second.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
      const third = await connectTo(server);
      await third.waitClosed();
      expect(third.received).toBe("-ERR max number of clients reached (2, connectionsMax); retry later\r\n");
      expect(await metrics.limitHitCount("resp_connections")).toBe(1);
      expect(await first.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
      first.close();
      await waitFor("the server to count the closed connection", () => server.server.connectionsOpen() === 1);
      const fourth = await connectTo(server);
      expect(await fourth.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
      expect(await metrics.limitHitCount("resp_connections")).toBe(1);
    } finally {
      await server.close();
    }
  });

  it("closes a connection idle for idleTimeoutMs, but not one waiting for a reply or subscribed", async () => {
    const server = await startTestServer({ limits: { idleTimeoutMs: 150 } });
    try {
      const idle = await connectTo(server);
      const waiting = await connectTo(server);
      const subscribed = await connectTo(server);
      expect(await idle.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
      await subscribed.ask(command("TEST.SUBSCRIBE", "ch"), "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
      waiting.send(command("TEST.SLOW", "600", "patience"));
      await idle.waitClosed(3_000);
      expect(waiting.isOpen).toBe(true);
      await waiting.receive("$8\r\npatience\r\n");
      await waiting.waitClosed(3_000);
      expect(subscribed.isOpen).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("stops reading a connection with pendingRepliesMax replies pending, and resumes once they go out", async () => {
    const server = await startTestServer({ limits: { pendingRepliesMax: 3 } });
    try {
      const client = await connectTo(server);
      client.send(command("TEST.GATE") + command("TEST.COUNT").repeat(10));
      // The gate holds the first reply, so replies 2 and 3 wait behind it and nothing more is read.
      await waitFor("two counts behind the gate", () => server.counted() === 2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(server.counted()).toBe(2);
      server.openGate();
      const expected = "+OK\r\n" + Array.from({ length: 10 }, (_, index) => `:${index + 1}\r\n`).join("");
      await client.receive(expected);
      expect(client.received).toBe(expected);
    } finally {
      await server.close();
    }
  });

  it("closes a client that does not read while pushes pile up past outputBytesMax", async () => {
    const metrics = new NodeMetrics();
    const server = await startTestServer({ limits: { outputBytesMax: 1 << 20, bulkBytesMax: 64 << 10, requestBytesMax: 64 << 10 }, metrics });
    try {
      const client = await connectTo(server);
      await client.ask(command("HELLO", "3"), "%7\r\n");
      await waitFor("the whole HELLO reply", () => client.received.endsWith("*0\r\n"));
      client.socket.pause();
      client.send(command("TEST.FLOOD", "32", String(256 << 10)));
      await waitFor("the server to drop the client", () => server.server.connectionsOpen() === 0);
      expect(server.logs.filter((line) => line.msg === "closed a RESP client that does not read its replies")).toHaveLength(1);
      // Once per closed client, however many pushes were still coming.
      expect(await metrics.limitHitCount("resp_output_bytes")).toBe(1);
      await expectServing(server);
    } finally {
      await server.close();
    }
  });

  it("refuses a SUBSCRIBE or PSUBSCRIBE past subscriptionsPerConnectionMax whole, leaving the connection as it was", async () => {
    const metrics = new NodeMetrics();
    const server = await startTestServer({ metrics, commands: pubsubCommandTable(new CoordinationStateMachine()) });
    try {
      const channels = Array.from({ length: subscriptionsPerConnectionMax }, (_, index) => `lock:${index}`);
      const full = await connectTo(server);
      full.send(command("SUBSCRIBE", ...channels));
      await full.receive(`:${subscriptionsPerConnectionMax}\r\n`);
      const refused = (has: number, asked: number): string =>
        `-ERR at most ${subscriptionsPerConnectionMax} subscriptions per connection (subscriptionsPerConnectionMax): this one has ${has} and asked for ${asked} more; unsubscribe from some, or watch several channels with one PSUBSCRIBE pattern\r\n`;
      const oneMore = refused(subscriptionsPerConnectionMax, 1);
      expect(await full.ask(command("SUBSCRIBE", "lock:one-more"), oneMore)).toBe(oneMore);
      expect(await full.ask(command("PSUBSCRIBE", "lock:*"), oneMore)).toBe(oneMore);
      // A channel it already has is no new subscription.
      const again = `*3\r\n$9\r\nsubscribe\r\n$6\r\nlock:0\r\n:${subscriptionsPerConnectionMax}\r\n`;
      expect(await full.ask(command("SUBSCRIBE", "lock:0"), again)).toBe(again);
      // One request asking for more than the limit at once adds none of its channels: PING still answers
      // +PONG, not the subscribed-mode array.
      const fresh = await connectTo(server);
      const tooMany = [...channels, "lock:one-more"];
      expect(await fresh.ask(command("SUBSCRIBE", ...tooMany), refused(0, tooMany.length))).toBe(refused(0, tooMany.length));
      expect(await fresh.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
      expect(await metrics.limitHitCount("subscriptions_per_connection")).toBe(3);
      await expectServing(server);
    } finally {
      await server.close();
    }
  });
});

describe("RESP server: authentication", () => {
  const password = "s3cret-Pa55";
  const metrics = new NodeMetrics();
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ authPassword: password, metrics });
  });
  afterAll(() => server.close());

  it("answers -NOAUTH before AUTH, even to PING, and serves after AUTH", async () => {
    const client = await connectTo(server);
    const noAuth = "-NOAUTH Authentication required.\r\n";
    expect(await client.ask(command("PING"), noAuth)).toBe(noAuth);
    expect(await client.ask(command("CLIENT", "SETINFO", "LIB-NAME", "x"), noAuth)).toBe(noAuth);
    const wrong = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    expect(await client.ask(command("AUTH", "guess"), wrong)).toBe(wrong);
    expect(await client.ask(command("AUTH", "admin", password), wrong)).toBe(wrong);
    expect(await client.ask(command("PING"), noAuth)).toBe(noAuth);
    expect(await client.ask(command("AUTH", password), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
    // Two refusals from one address within a minute: logged once, and never a password.
    const refusals = server.logs.filter((line) => String(line.msg).startsWith("refused RESP client authentication"));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ remote: "127.0.0.1", failures: 1 });
    expect(JSON.stringify(server.logs)).not.toContain("guess");
    const other = await connectTo(server);
    expect(await other.ask(command("AUTH", "default", password), "+OK\r\n")).toBe("+OK\r\n");
    const syntax = "-ERR syntax error\r\n";
    expect(await other.ask(command("AUTH", "a", "b", "c"), syntax)).toBe(syntax);
  });

  it("HELLO negotiates without AUTH only once authenticated, and authenticates with HELLO AUTH", async () => {
    const client = await connectTo(server);
    const noAuth =
      "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
    expect(await client.ask(command("HELLO", "3"), noAuth)).toBe(noAuth);
    const wrong = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    expect(await client.ask(command("HELLO", "3", "AUTH", "default", "nope"), wrong)).toBe(wrong);
    expect(await client.ask(command("HELLO", "3", "AUTH", "default", password), "%7\r\n")).toMatch(/^%7\r\n/);
    await waitFor("the whole HELLO reply", () => client.received.endsWith("*0\r\n"));
    expect(await client.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
  });

  it("QUIT works before AUTH; unknown commands are still unknown (Redis checks existence first)", async () => {
    const client = await connectTo(server);
    const unknown = "-ERR unknown command 'nope', with args beginning with: \r\n";
    expect(await client.ask(command("nope"), unknown)).toBe(unknown);
    client.send(command("QUIT"));
    await client.waitClosed();
    expect(client.received).toBe(unknown + "+OK\r\n");
  });

  it("holds unauthenticated clients to small requests, counted as hits of the same limits", async () => {
    const [argumentsBefore, bulkBefore] = [await metrics.limitHitCount("resp_arguments"), await metrics.limitHitCount("resp_bulk_bytes")];
    const bulky = await connectTo(server);
    bulky.send("*2\r\n$4\r\nAUTH\r\n$100000\r\n");
    await bulky.waitClosed();
    expect(bulky.received).toBe(`-ERR Protocol error: unauthenticated bulk length: an argument of 100000 bytes before AUTH, more than ${unauthenticatedBulkBytesMax}; AUTH first\r\n`);
    const wordy = await connectTo(server);
    const tooManyArguments = unauthenticatedArgumentsMax + 1;
    wordy.send(`*${tooManyArguments}\r\n`);
    await wordy.waitClosed();
    expect(wordy.received).toBe(
      `-ERR Protocol error: unauthenticated multibulk length: ${tooManyArguments} arguments before AUTH, more than ${unauthenticatedArgumentsMax}; AUTH first\r\n`,
    );
    expect(await metrics.limitHitCount("resp_bulk_bytes")).toBe(bulkBefore + 1);
    expect(await metrics.limitHitCount("resp_arguments")).toBe(argumentsBefore + 1);
    await expectServing(server, password);
  });

  it("never writes the password to the log", async () => {
    const client = await connectTo(server);
    await client.ask(command("AUTH", password), "+OK\r\n");
    await client.ask(command("TEST.FAIL"), "-ERR internal error in 'test.fail'; the server log has the details\r\n");
    expect(server.logs.length).toBeGreaterThan(0);
    expect(JSON.stringify(server.logs)).not.toContain(password);
  });
});

describe("RESP server: the read-only password", () => {
  const password = "full-Pa55";
  const readOnlyPassword = "reader-Pa55";
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ authPassword: password, authReadOnlyPassword: readOnlyPassword });
  });
  afterAll(() => server.close());

  it("AUTH with it allows reads and refuses writes with -NOPERM; AUTH with the full password lifts that", async () => {
    const client = await connectTo(server);
    expect(await client.ask(command("AUTH", readOnlyPassword), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("TEST.COUNT"), ":1\r\n")).toBe(":1\r\n");
    const refused = "-NOPERM this connection authenticated with the read-only password; it may not run TEST.WRITE\r\n";
    expect(await client.ask(command("TEST.WRITE"), refused)).toBe(refused);
    expect(await client.ask(command("CLIENT", "SETNAME", "reader"), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("AUTH", "default", password), "+OK\r\n")).toBe("+OK\r\n");
    expect(await client.ask(command("TEST.WRITE"), "+OK\r\n")).toBe("+OK\r\n");
  });

  it("HELLO 3 AUTH with it authenticates read-only too", async () => {
    const client = await connectTo(server);
    expect(await client.ask(command("HELLO", "3", "AUTH", "default", readOnlyPassword), "%7\r\n")).toMatch(/^%7\r\n/);
    await waitFor("the whole HELLO reply", () => client.received.endsWith("*0\r\n"));
    const refused = "-NOPERM this connection authenticated with the read-only password; it may not run TEST.WRITE\r\n";
    expect(await client.ask(command("TEST.WRITE"), refused)).toBe(refused);
  });

  it("is refused without a full password, and must differ from it", async () => {
    await expect(startTestServer({ authReadOnlyPassword: readOnlyPassword })).rejects.toThrow("a RESP read-only password needs a full password too");
    await expect(startTestServer({ authPassword: password, authReadOnlyPassword: password })).rejects.toThrow("the read-only password must differ from the full password");
  });
});

describe("RESP server: failed AUTH is limited per client address", () => {
  const password = "s3cret-Pa55";
  const wrong = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

  it("after failuresMax failures in a window, AUTH is refused unchecked, the right password too, until the window passes", async () => {
    let nowMs = 0;
    const metrics = new NodeMetrics();
    const server = await startTestServer({ authPassword: password, authLimits: { failuresMax: 3, failureWindowMs: 10_000, logIntervalMs: 60_000, addressesMax: 100 }, nowMs: () => nowMs, metrics });
    try {
      const client = await connectTo(server);
      for (let attempt = 0; attempt < 3; attempt++) expect(await client.ask(command("AUTH", `guess-${attempt}`), wrong)).toBe(wrong);
      nowMs = 2_500;
      const limited = "-ERR too many failed AUTH attempts from 127.0.0.1; retry in 8 s\r\n";
      expect(await client.ask(command("AUTH", password), limited)).toBe(limited);
      // A new connection from the same address is limited too: the count is per address, not per connection.
      const other = await connectTo(server);
      expect(await other.ask(command("HELLO", "3", "AUTH", "default", password), limited)).toBe(limited);
      // The two refused attempts; the three wrong passwords checked before were within the limit.
      expect(await metrics.limitHitCount("auth_failures")).toBe(2);
      nowMs = 10_000;
      expect(await other.ask(command("AUTH", password), "+OK\r\n")).toBe("+OK\r\n");
      await expectServing(server, password);
      expect(await metrics.limitHitCount("auth_failures")).toBe(2);
    } finally {
      await server.close();
    }
  });

  it("logs refusals once per address per interval, with the count since the previous line and never a password", async () => {
    let nowMs = 0;
    const server = await startTestServer({ authPassword: password, authLimits: { failuresMax: 100, failureWindowMs: 1_000, logIntervalMs: 60_000, addressesMax: 100 }, nowMs: () => nowMs });
    try {
      const client = await connectTo(server);
      const refusals = (): Record<string, unknown>[] => server.logs.filter((line) => String(line.msg).startsWith("refused RESP client authentication"));
      for (let attempt = 0; attempt < 5; attempt++) await client.ask(command("AUTH", `guess-${attempt}`), wrong);
      expect(refusals()).toHaveLength(1);
      nowMs = 59_999;
      await client.ask(command("AUTH", "guess-5"), wrong);
      expect(refusals()).toHaveLength(1);
      nowMs = 60_000;
      await client.ask(command("AUTH", "guess-6"), wrong);
      expect(refusals()).toHaveLength(2);
      expect(refusals().map((line) => line.failures)).toEqual([1, 6]);
      expect(JSON.stringify(server.logs)).not.toMatch(/guess|s3cret/);
    } finally {
      await server.close();
    }
  });
});

describe("RESP server: without a password", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it("AUTH password is an error, AUTH default anything succeeds, as with Redis's nopass default user", async () => {
    const client = await connectTo(server);
    const noPassword = "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n";
    expect(await client.ask(command("AUTH", "x"), noPassword)).toBe(noPassword);
    expect(await client.ask(command("AUTH", "default", "x"), "+OK\r\n")).toBe("+OK\r\n");
    const wrong = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    expect(await client.ask(command("AUTH", "admin", "x"), wrong)).toBe(wrong);
  });

  it("close() cuts every connection", async () => {
    const own = await startTestServer();
    const client = await RawClient.connect(own.port);
    expect(await client.ask(command("PING"), "+PONG\r\n")).toBe("+PONG\r\n");
    await own.close();
    await client.waitClosed();
  });
});
