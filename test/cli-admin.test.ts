// `raftlock status`, `members list|add|promote|remove` and `transfer-leader` against a fake node's HTTP API:
// the requests they send, what they print, and how they fail (exit 2 for usage, 1 for a refusal).

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { clientCommands, RequestFailedError } from "../src/cli-admin.js";
import { ConfigError } from "../src/config.js";

const repoRoot = new URL("..", import.meta.url).pathname;

interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly body: unknown;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/** The fake node's answer to every request but GET /v1/cluster/leader; the default lists three members. */
let answer: Answer;
/** Its answers to GET /v1/cluster/leader, one per request, the last one repeated. */
let leaderAnswers: Answer[];
const requests: Recorded[] = [];
let server: Server;
let http: string;

const membership = {
  configIndex: 9,
  members: [
    { id: "n1", voter: true, address: "127.0.0.1:7001" },
    { id: "n2", voter: true, address: "127.0.0.1:7002" },
    { id: "node-four", voter: false, address: null },
  ],
};

async function bodyOf(request: IncomingMessage): Promise<unknown> {
  let text = "";
  for await (const chunk of request) text += String(chunk);
  return text === "" ? undefined : JSON.parse(text);
}

beforeAll(async () => {
  server = createServer(async (request, response) => {
    const recorded = { method: request.method!, url: request.url!, authorization: request.headers.authorization, body: await bodyOf(request) };
    const asksLeader = recorded.method === "GET" && recorded.url === "/v1/cluster/leader";
    const { status, body } = asksLeader ? (leaderAnswers.length > 1 ? leaderAnswers.shift()! : leaderAnswers[0]!) : answer;
    if (!asksLeader) requests.push(recorded);
    response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  http = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  requests.length = 0;
  answer = { status: 200, body: membership };
  leaderAnswers = [{ status: 200, body: { id: "n1", term: 3 } }];
});

/** Runs `raftlock <argv>` in this process; what it printed. */
async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const [command, ...rest] = argv;
  const client = clientCommands.get(command!);
  if (client === undefined) throw new Error(`no client command ${command}`);
  let output = "";
  await client(rest, env, (text) => (output += text));
  return output;
}

async function failureOf(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Error> {
  try {
    await run(argv, env);
  } catch (error) {
    return error as Error;
  }
  throw new Error(`raftlock ${argv.join(" ")} succeeded`);
}

describe("raftlock members", () => {
  it("list prints every member's id, role and peer address as a table", async () => {
    const output = await run(["members", "list", "--http", http]);
    expect(output).toBe(["ID         ROLE     ADDRESS", "n1         voter    127.0.0.1:7001", "n2         voter    127.0.0.1:7002", "node-four  learner  -", ""].join("\n"));
    expect(requests).toEqual([{ method: "GET", url: "/v1/members", authorization: undefined, body: undefined }]);
  });

  it("reads the node's address from RAFTLOCK_HTTP and sends RAFTLOCK_AUTH_PASSWORD as a bearer token", async () => {
    await run(["members", "list"], { RAFTLOCK_HTTP: http, RAFTLOCK_AUTH_PASSWORD: "s3cret" });
    await run(["members", "list", `--http=${http}`], { RAFTLOCK_HTTP: "127.0.0.1:1", RAFTLOCK_AUTH_PASSWORD: "s3cret" });
    expect(requests.map((request) => request.authorization)).toEqual(["Bearer s3cret", "Bearer s3cret"]);
  });

  it("reads the password from RAFTLOCK_AUTH_PASSWORD_FILE (a mounted Secret), not both", async () => {
    const dir = mkdtempSync(join(tmpdir(), "raftlock-admin-secret-"));
    try {
      const file = join(dir, "auth-password");
      writeFileSync(file, "fr0m-file\n");
      await run(["members", "list"], { RAFTLOCK_HTTP: http, RAFTLOCK_AUTH_PASSWORD_FILE: file });
      expect(requests.map((request) => request.authorization)).toEqual(["Bearer fr0m-file"]);
      const both = await failureOf(["members", "list"], { RAFTLOCK_HTTP: http, RAFTLOCK_AUTH_PASSWORD: "x", RAFTLOCK_AUTH_PASSWORD_FILE: file });
      expect(both).toBeInstanceOf(ConfigError);
      expect(both.message).toBe("give either RAFTLOCK_AUTH_PASSWORD or RAFTLOCK_AUTH_PASSWORD_FILE, not both");
      expect((await failureOf(["members", "list"], { RAFTLOCK_HTTP: http, RAFTLOCK_AUTH_PASSWORD_FILE: join(dir, "gone") })).message).toMatch(/^RAFTLOCK_AUTH_PASSWORD_FILE .*gone cannot be read \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("add posts the learner with its address in canonical form and says how it becomes a voter", async () => {
    answer = { status: 200, body: { ...membership, committedIndex: 12 } };
    const output = await run(["members", "add", "n4", "[::1]:7004", "--http", http]);
    expect(requests).toEqual([{ method: "POST", url: "/v1/members", authorization: undefined, body: { id: "n4", address: "[::1]:7004" } }]);
    expect(output).toMatch(/^added n4 as a learner at \[::1\]:7004 \(committed at log index 12\); .*raftlock members promote n4/);
  });

  it("promote and remove address the member by id", async () => {
    answer = { status: 200, body: { ...membership, committedIndex: 13 } };
    expect(await run(["members", "promote", "node-four", "--http", http])).toBe("node-four is a voter now (committed at log index 13)\n");
    expect(await run(["members", "remove", "--http", http, "node-four"])).toMatch(/^removed node-four \(committed at log index 13\); stop its process/);
    expect(requests.map((request) => `${request.method} ${request.url}`)).toEqual(["POST /v1/members/node-four/promote", "DELETE /v1/members/node-four"]);
  });

  it("a refusal carries the node's message and code", async () => {
    answer = { status: 409, body: { error: { code: "NOTCAUGHTUP", message: "cannot promote yet: n4 is not answering; retry once it caught up" } } };
    const error = await failureOf(["members", "promote", "n4", "--http", http]);
    expect(error).toBeInstanceOf(RequestFailedError);
    expect(error.message).toBe(`${http} refused: cannot promote yet: n4 is not answering; retry once it caught up (NOTCAUGHTUP)`);
  });

  it("a 401 says which environment variable carries the password", async () => {
    answer = { status: 401, body: { error: { code: "NOAUTH", message: "authentication required: send Authorization: Bearer <password>" } } };
    expect((await failureOf(["members", "list", "--http", http])).message).toMatch(/\(NOAUTH\); set RAFTLOCK_AUTH_PASSWORD$/);
  });

  it("refuses malformed arguments as usage errors, before sending anything", async () => {
    const usage = async (argv: string[]): Promise<string> => {
      const error = await failureOf(argv);
      expect(error).toBeInstanceOf(ConfigError);
      return error.message;
    };
    expect(await usage(["members", "add", "n4", "--http", http])).toBe("missing <peer-host:port>; usage: raftlock members add <id> <peer-host:port> [--http host:port]");
    expect(await usage(["members", "add", "n4", "127.0.0.1", "--http", http])).toBe('<peer-host:port> must be host:port with a port from 1 to 65535 (got "127.0.0.1")');
    expect(await usage(["members", "remove", "n 4", "--http", http])).toMatch(/^<id> must be a node id: .* \(got "n 4"\)$/);
    expect(await usage(["members", "list", "extra", "--http", http])).toBe('unexpected argument "extra"; usage: raftlock members list [--http host:port]');
    expect(await usage(["members", "list", "--password", "x"])).toMatch(/^unknown option "--password"/);
    expect(await usage(["members", "rename", "n4"])).toMatch(/^unknown subcommand "members rename"; one of list, add, promote, remove/);
    expect(await usage(["members"])).toMatch(/^raftlock members needs a subcommand/);
    expect(await usage(["transfer-leader", "--http", "nowhere"])).toBe("missing <id>; usage: raftlock transfer-leader <id> [--http host:port]");
    expect(await usage(["status", "--http", `https://${http}`, "--tls-cert", "client.pem"])).toMatch(/^--tls-cert and --tls-key go together/);
    expect(await usage(["status", "--http", http, "--tls-ca", "/nonexistent/ca.pem"])).toMatch(/^cannot read --tls-ca \/nonexistent\/ca\.pem \(ENOENT\)/);
    expect(requests).toEqual([]);
  });

  it("--http http:// and RAFTLOCK_HTTP with a scheme reach the same plain node", async () => {
    expect(await run(["members", "list", "--http", `http://${http}`])).toMatch(/^ID +ROLE/);
    expect(await run(["members", "list"], { RAFTLOCK_HTTP: `http://${http}/` })).toMatch(/^ID +ROLE/);
    expect(requests).toHaveLength(2);
  });

  it("an unreachable node is a failed request, not a usage error", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await failureOf(["members", "list", "--http", `127.0.0.1:${port}`]);
    expect(error).toBeInstanceOf(RequestFailedError);
    expect(error.message).toMatch(/^could not reach a raftlock node at 127\.0\.0\.1:\d+ \(.*\); is it running/);
  });
});

describe("raftlock transfer-leader and status", () => {
  it("transfer-leader posts the target and prints the new leader", async () => {
    answer = { status: 200, body: { leader: { id: "n2", term: 4 } } };
    expect(await run(["transfer-leader", "n2", "--http", http])).toBe("leader n2 in term 4\n");
    expect(requests).toEqual([{ method: "POST", url: "/v1/cluster/transfer", authorization: undefined, body: { id: "n2" } }]);
  });

  it("transfer-leader waits until the node it asked knows the new leader", async () => {
    answer = { status: 200, body: { leader: null } };
    const noLeader = { status: 503, body: { error: { code: "NOLEADER", message: "no leader is elected yet; retry" } } };
    leaderAnswers = [{ status: 200, body: { id: "n1", term: 3 } }, noLeader, { status: 200, body: { id: "n1", term: 3 } }, { status: 200, body: { id: "n2", term: 4 } }];
    expect(await run(["transfer-leader", "n2", "--http", http])).toBe("leader n2 in term 4\n");
    expect(leaderAnswers).toHaveLength(1);
  });

  it("transfer-leader fails when another member took over instead", async () => {
    answer = { status: 200, body: { leader: { id: "n3", term: 4 } } };
    const error = await failureOf(["transfer-leader", "n2", "--http", http]);
    expect(error).toBeInstanceOf(RequestFailedError);
    expect(error.message).toBe("leadership went to n3 in term 4, not n2; retry to move it");
  });

  it("status prints the cluster table and sends the bearer token too", async () => {
    answer = {
      status: 200,
      body: {
        leader: { id: "n1", term: 2 },
        members: [
          { id: "n1", reachable: true, role: "leader", term: 2, commitIndex: 10, appliedIndex: 10 },
          { id: "n2", reachable: false, matchIndex: 8 },
        ],
      },
    };
    const output = await run(["status", "--http", http], { RAFTLOCK_AUTH_PASSWORD: "pw" });
    expect(output).toBe(["ID  ROLE         TERM  COMMIT  APPLIED  MATCH", "n1  leader       2     10      10       -", "n2  unreachable  -     -       -        8", "leader n1 in term 2", ""].join("\n"));
    expect(requests[0]?.authorization).toBe("Bearer pw");
  });
});

describe("the raftlock process", () => {
  const raftlock = (argv: string[]) => promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli.ts", ...argv], { cwd: repoRoot, env: { ...process.env, RAFTLOCK_HTTP: http } });

  it("exits 2 on a usage error and 1 on a refused request, with the reason on stderr", async () => {
    await expect(raftlock(["members", "add", "n4"])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("missing <peer-host:port>") });
    answer = { status: 409, body: { error: { code: "MEMBERSHIP", message: "cannot remove n9: n9 is not a member" } } };
    await expect(raftlock(["members", "remove", "n9"])).rejects.toMatchObject({ code: 1, stderr: `raftlock: ${http} refused: cannot remove n9: n9 is not a member (MEMBERSHIP)\n` });
    const { stdout } = await raftlock(["members", "--help"]);
    expect(stdout).toContain("raftlock members add <id> <peer-host:port>");
  }, 30_000);
});
