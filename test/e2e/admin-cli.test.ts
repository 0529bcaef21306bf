// The administration commands as an operator runs them: the real `raftlock` CLI as a child process
// against a running 3-node cluster, and RAFT.MEMBERS over RESP.
import { execFile } from "node:child_process";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { E2eCluster, freePort, waitFor } from "./harness.js";

const e2eTimeoutMs = 90_000;
const repoRoot = new URL("../..", import.meta.url).pathname;

let cluster: E2eCluster | null = null;
const clients: Redis[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await cluster?.close();
  cluster = null;
});

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `raftlock <argv> --http <node's HTTP address>` to completion; never rejects. */
function raftlock(nodeId: string, ...argv: string[]): Promise<CliResult> {
  const http = `127.0.0.1:${cluster!.node(nodeId).httpPort}`;
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "src/cli.ts", ...argv, "--http", http], { cwd: repoRoot, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `members list`'s rows (header left out) as [id, role, address]. */
function rowsOf(listing: string): string[][] {
  return listing
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => line.split(/\s+/));
}

describe("raftlock members and transfer-leader against a running cluster", () => {
  it(
    "lists the voters, adds a learner, cannot promote it while it does not answer, removes it; RAFT.MEMBERS agrees",
    async () => {
      cluster = await E2eCluster.start(3);
      const leader = await cluster.leader();
      const follower = ["n1", "n2", "n3"].find((id) => id !== leader.id)!;

      const listed = await raftlock(follower, "members", "list");
      expect(listed, listed.stderr).toMatchObject({ code: 0, stderr: "" });
      expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+ROLE\s+ADDRESS$/);
      const voters = rowsOf(listed.stdout);
      expect(voters.map(([id, role]) => [id, role])).toEqual([
        ["n1", "voter"],
        ["n2", "voter"],
        ["n3", "voter"],
      ]);
      for (const [, , address] of voters) expect(address).toMatch(/^127\.0\.0\.1:\d+$/);

      // A learner needs no process behind its address to be added: it does not count towards a quorum.
      const learnerAddress = `127.0.0.1:${await freePort()}`;
      const added = await raftlock(follower, "members", "add", "n4", learnerAddress);
      expect(added, added.stderr).toMatchObject({ code: 0 });
      expect(added.stdout).toMatch(new RegExp(`^added n4 as a learner at ${learnerAddress.replace(/\./g, "\\.")} \\(committed at log index \\d+\\)`));
      const withLearner = await raftlock(leader.id, "members", "list");
      expect(rowsOf(withLearner.stdout)).toContainEqual(["n4", "learner", learnerAddress]);

      const resp = new Redis({ host: "127.0.0.1", port: cluster.node(follower).respPort, maxRetriesPerRequest: 0 });
      clients.push(resp);
      const members = (await resp.call("RAFT.MEMBERS")) as [string, string, string | null][];
      expect(members.map(([id, role]) => `${id} ${role}`)).toEqual(["n1 voter", "n2 voter", "n3 voter", "n4 learner"]);
      expect(members[3]).toEqual(["n4", "learner", learnerAddress]);

      const promoted = await raftlock(follower, "members", "promote", "n4");
      expect(promoted.code, promoted.stdout + promoted.stderr).toBe(1);
      expect(promoted.stderr).toMatch(/^raftlock: 127\.0\.0\.1:\d+ refused: cannot promote yet: .*\(NOTCAUGHTUP\)\n$/);
      expect(rowsOf((await raftlock(follower, "members", "list")).stdout)).toContainEqual(["n4", "learner", learnerAddress]);

      const removed = await raftlock(follower, "members", "remove", "n4");
      expect(removed, removed.stderr).toMatchObject({ code: 0 });
      expect(removed.stdout).toMatch(/^removed n4 \(committed at log index \d+\); stop its process/);
      const after = await raftlock(follower, "members", "list");
      expect(rowsOf(after.stdout).map(([id]) => id)).toEqual(["n1", "n2", "n3"]);

      const refused = await raftlock(follower, "members", "remove", "n4");
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/n4 is not a member.*\(MEMBERSHIP\)/);
    },
    e2eTimeoutMs,
  );

  it(
    "transfer-leader hands leadership to the follower it names",
    async () => {
      cluster = await E2eCluster.start(3);
      const before = await cluster.leader();
      const target = ["n1", "n2", "n3"].find((id) => id !== before.id)!;
      const asked = ["n1", "n2", "n3"].find((id) => id !== before.id && id !== target)!;

      // Asked through the third node: the request is forwarded to the leader.
      const moved = await raftlock(asked, "transfer-leader", target);
      expect(moved, moved.stderr).toMatchObject({ code: 0 });
      expect(moved.stdout).toMatch(new RegExp(`^leader ${target} in term \\d+\n$`));

      const after = await waitFor(
        async () => {
          const now = await cluster!.leader();
          return now.id === target ? now : undefined;
        },
        15_000,
        `${target} leading`,
      );
      expect(after.term).toBeGreaterThan(before.term);
      const view = await cluster.get<{ id: string; term: number }>(before.id, "/v1/cluster/leader");
      expect(view).toEqual({ status: 200, body: after });

      // Asked of the leader itself: a follower that forwards a transfer does not pass the leader's refusal on yet.
      const notVoter = await raftlock(target, "transfer-leader", "n9");
      expect(notVoter.code).toBe(1);
      expect(notVoter.stderr).toMatch(/n9 is not a voter.*\(MEMBERSHIP\)/);
    },
    e2eTimeoutMs,
  );
});
