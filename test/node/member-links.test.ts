// MemberLinks logs a membership change once, when it happens: a snapshot that moves the index of an
// unchanged configuration is not one (it was logged on every snapshot, found by the benchmark runs).
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { MemberLinks } from "../../src/node/member-links.js";
import type { ClusterConfig } from "../../src/raft/types.js";
import type { Transport } from "../../src/transport/transport.js";

function config(voters: string[]): ClusterConfig {
  return { voters, learners: [], addresses: Object.fromEntries(voters.map((id, k) => [id, `127.0.0.1:${7001 + k}`])) };
}

describe("MemberLinks", () => {
  it("logs a configuration change only when the members change, not when a snapshot moves its index", () => {
    const lines: { msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
    const added: string[] = [];
    // Only the calls MemberLinks makes; a real Transport needs sockets.
    const transport = { addPeer: (id: string) => void added.push(id), removePeer: () => undefined, peerIds: () => [] } as unknown as Transport;
    const links = new MemberLinks("n1", new Map(), 1_000, () => config(["n1", "n2", "n3"]), logger);
    links.attach(transport);
    const changes = (): number => lines.filter((line) => line.msg === "cluster configuration changed").length;
    links.follow(config(["n1", "n2", "n3"]), 1, 1, 1);
    links.follow(config(["n1", "n2", "n3"]), 10_000, 10_000, 1); // a snapshot at 10,000 folded it in
    expect(changes()).toBe(0);
    links.follow(config(["n1", "n2", "n3", "n4"]), 10_001, 10_000, 1);
    expect(changes()).toBe(1);
    expect(added).toContain("n4");
  });
});
