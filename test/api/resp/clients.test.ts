// Real clients against the RESP server, each with its defaults: ioredis 5 (RESP2, INFO ready check),
// ioredis 6 (HELLO 3 by default), node-redis 5 (RESP2, and RESP3 with `RESP: 3`) and redis-cli.

import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { Redis as IoRedis5 } from "ioredis";
import { Redis as IoRedis6 } from "ioredis6";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "./helpers.js";

const password = "cli3nt-Secret";
let server: TestServer;
let securedServer: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  securedServer = await startTestServer({ authPassword: password });
});
afterAll(async () => {
  await server.close();
  await securedServer.close();
});

/** The commands a client ran on the server, found by the id it reports with CLIENT ID. */
function commandsOf(target: TestServer, clientId: number): string[] {
  return target.commandsRun.get(clientId) ?? [];
}

describe("ioredis 5 with its defaults (RESP2, ready check with INFO)", () => {
  it("connects, becomes ready, and runs generic and custom commands", async () => {
    const redis = new IoRedis5({ host: "127.0.0.1", port: server.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await redis.connect();
      expect(redis.status).toBe("ready");
      expect(await redis.ping()).toBe("PONG");
      expect(await redis.echo("hi there")).toBe("hi there");
      expect(await redis.call("TEST.ECHO2", "a", "b")).toEqual(["a", "b"]);
      expect(await redis.client("SETNAME", "io5")).toBe("OK");
      expect(await redis.client("GETNAME")).toBe("io5");
      const clientId = (await redis.client("ID")) as number;
      // The handshake ioredis 5 sent: its library name and version, then INFO for the ready check.
      expect(commandsOf(server, clientId).slice(0, 3).sort()).toEqual(["client|setinfo", "client|setinfo", "info"]);
      expect(await redis.client("INFO")).toMatch(/ name=io5 .* resp=2 lib-name=ioredis lib-ver=5\.\d+\.\d+/);
      const hello = (await redis.call("HELLO")) as unknown[];
      expect(hello.slice(0, 6)).toEqual(["server", "raftlock", "version", "7.2.0", "proto", 2]);
    } finally {
      redis.disconnect();
    }
  });

  it("keeps pipelined replies in order", async () => {
    const redis = new IoRedis5({ host: "127.0.0.1", port: server.port, lazyConnect: true });
    try {
      await redis.connect();
      const results = await redis.pipeline().call("TEST.SLOW", "60", "a").ping().call("TEST.SLOW", "0", "b").echo("c").exec();
      expect(results).toEqual([
        [null, "a"],
        [null, "PONG"],
        [null, "b"],
        [null, "c"],
      ]);
      await expect(redis.call("TEST.ECHO2", "only-one")).rejects.toThrow("ERR wrong number of arguments for 'test.echo2' command");
    } finally {
      redis.disconnect();
    }
  });

  it("authenticates with a password, and reports a wrong one", async () => {
    const redis = new IoRedis5({ host: "127.0.0.1", port: securedServer.port, password, lazyConnect: true });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe("PONG");
    } finally {
      redis.disconnect();
    }
    const wrong = new IoRedis5({ host: "127.0.0.1", port: securedServer.port, password: "nope", lazyConnect: true, retryStrategy: () => null });
    const errors: string[] = [];
    wrong.on("error", (error: Error) => errors.push(error.message));
    try {
      await expect(wrong.connect()).rejects.toThrow();
      expect(errors).toContain("WRONGPASS invalid username-password pair or user is disabled.");
    } finally {
      wrong.disconnect();
    }
  });
});

describe("ioredis 6 (HELLO 3 by default)", () => {
  it("negotiates RESP3 and runs generic and custom commands", async () => {
    const redis = new IoRedis6({ host: "127.0.0.1", port: server.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await redis.connect();
      expect(redis.status).toBe("ready");
      expect(await redis.ping()).toBe("PONG");
      expect(await redis.echo("hi")).toBe("hi");
      expect(await redis.call("TEST.ECHO2", "a", "b")).toEqual(["a", "b"]);
      expect(await redis.client("SETNAME", "io6")).toBe("OK");
      expect(await redis.client("GETNAME")).toBe("io6");
      const clientId = (await redis.client("ID")) as number;
      expect(commandsOf(server, clientId).slice(0, 4).sort()).toEqual(["client|setinfo", "client|setinfo", "hello", "info"]);
      expect(String(await redis.client("INFO"))).toMatch(/ name=io6 .* resp=3 lib-name=ioredis lib-ver=6\.\d+\.\d+/);
      // ioredis 6 maps RESP3 replies to RESP2 shapes by default: a map is a flat array, nil is null.
      expect(await redis.call("TEST.TYPES")).toEqual(["nothing", null, "yes", 1, "ratio", "3.5", "list", [1, "two"]]);
    } finally {
      redis.disconnect();
    }
  });

  it("authenticates through HELLO 3 AUTH", async () => {
    const redis = new IoRedis6({ host: "127.0.0.1", port: securedServer.port, password, lazyConnect: true });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe("PONG");
      const clientId = (await redis.client("ID")) as number;
      expect(commandsOf(securedServer, clientId)[0]).toBe("hello");
    } finally {
      redis.disconnect();
    }
  });

  it("speaks RESP2 with protocol: 2", async () => {
    const redis = new IoRedis6({ host: "127.0.0.1", port: server.port, protocol: 2, lazyConnect: true });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe("PONG");
      expect(String(await redis.client("INFO"))).toContain(" resp=2 ");
    } finally {
      redis.disconnect();
    }
  });
});

describe("node-redis 5", () => {
  // The default sends no HELLO and speaks RESP2; `RESP: 2` sends HELLO 2, `RESP: 3` HELLO 3.
  for (const resp of [undefined, 2, 3] as const) {
    it(`connects with ${resp === undefined ? "the default protocol" : `RESP: ${resp}`} and runs generic and custom commands`, async () => {
      const errors: Error[] = [];
      const client = createClient({ socket: { host: "127.0.0.1", port: server.port, reconnectStrategy: false }, ...(resp === undefined ? {} : { RESP: resp }), name: `nr${resp ?? ""}` });
      client.on("error", (error: Error) => errors.push(error));
      try {
        await client.connect();
        expect(await client.ping()).toBe("PONG");
        expect(await client.echo("hi")).toBe("hi");
        expect(await client.sendCommand(["TEST.ECHO2", "a", "b"])).toEqual(["a", "b"]);
        expect(await client.clientGetName()).toBe(`nr${resp ?? ""}`);
        expect(await client.clientSetName(`renamed${resp}`)).toBe("OK");
        expect(await client.clientGetName()).toBe(`renamed${resp}`);
        const clientId = await client.clientId();
        // Default: CLIENT SETNAME then CLIENT SETINFO ×2. With RESP: HELLO <n> SETNAME then CLIENT SETINFO ×2
        // (RESP 3 adds CLIENT MAINT_NOTIFICATIONS, answered "unknown subcommand" before any handler runs,
        // which node-redis ignores).
        const handshake = commandsOf(server, clientId).slice(0, 3);
        expect(handshake).toEqual([resp === undefined ? "client|setname" : "hello", "client|setinfo", "client|setinfo"]);
        expect(String(await client.sendCommand(["CLIENT", "INFO"]))).toMatch(new RegExp(` resp=${resp ?? 2} lib-name=node-redis lib-ver=5\\.`));
        const types = await client.sendCommand(["TEST.TYPES"]);
        if (resp === 3) expect(types).toEqual({ nothing: null, yes: true, ratio: 3.5, list: [1, "two"] });
        else expect(types).toEqual(["nothing", null, "yes", 1, "ratio", "3.5", "list", [1, "two"]]);
        const [slow, pong] = await Promise.all([client.sendCommand(["TEST.SLOW", "50", "slow"]), client.ping()]);
        expect([slow, pong]).toEqual(["slow", "PONG"]);
        expect(errors).toEqual([]);
      } finally {
        client.destroy();
      }
    });
  }

  it("authenticates with a password in RESP2 (AUTH) and RESP3 (HELLO 3 AUTH)", async () => {
    for (const resp of [2, 3] as const) {
      const client = createClient({ socket: { host: "127.0.0.1", port: securedServer.port, reconnectStrategy: false }, RESP: resp, password });
      client.on("error", () => {});
      try {
        await client.connect();
        expect(await client.ping()).toBe("PONG");
      } finally {
        client.destroy();
      }
    }
  });
});

const redisCli = spawnSync("redis-cli", ["--version"], { encoding: "utf8" });
const redisCliMissing = redisCli.error !== undefined || redisCli.status !== 0;
if (redisCliMissing) console.warn("redis-cli is not installed (apt-get install -y redis-tools): skipping the redis-cli tests");

describe.skipIf(redisCliMissing)("redis-cli", () => {
  const run = promisify(execFile);
  async function cli(...args: string[]): Promise<string> {
    const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", ...args], { timeout: 5_000 });
    return stdout;
  }

  it("PING, a command with arguments, and an error", async () => {
    expect(await cli("-p", String(server.port), "PING")).toBe("PONG\n");
    expect(await cli("-p", String(server.port), "TEST.ECHO2", "a", "b c")).toBe("a\nb c\n");
    expect(await cli("-p", String(server.port), "TEST.ECHO2", "a")).toBe("ERR wrong number of arguments for 'test.echo2' command\n\n");
  });

  it("-3 negotiates RESP3 with HELLO 3", async () => {
    const output = await cli("-3", "-p", String(server.port), "--no-raw", "TEST.TYPES");
    expect(output).toBe('1# "nothing" => (nil)\n2# "yes" => (true)\n3# "ratio" => (double) 3.5\n4# "list" => \n   1) (integer) 1\n   2) "two"\n');
    expect(await cli("-3", "-p", String(server.port), "CLIENT", "INFO")).toContain(" resp=3 ");
  });

  it("-a authenticates", async () => {
    expect(await cli("-p", String(securedServer.port), "--no-auth-warning", "-a", password, "PING")).toBe("PONG\n");
    expect(await cli("-p", String(securedServer.port), "PING")).toBe("NOAUTH Authentication required.\n\n");
  });

  it("COMMAND DOCS gives redis-cli what its help reads", async () => {
    const output = await cli("-p", String(server.port), "--no-raw", "COMMAND", "DOCS", "test.echo2");
    expect(output).toContain('"Answers its two arguments as an array."');
  });
});
