import { describe, expect, it } from "vitest";
import { Cluster } from "./cluster.js";

describe("simulated cluster smoke test", () => {
  it("a 3-node cluster elects exactly one leader and commits 10 proposals on all nodes", () => {
    const cluster = Cluster.create({ nodes: 3, seed: 1 });
    cluster.runUntil(() => cluster.leader() !== undefined, 5_000, "a leader is elected");
    expect(cluster.leaders()).toHaveLength(1);

    const values = Array.from({ length: 10 }, (_, i) => `value-${i + 1}`);
    const proposals = values.map((value) => cluster.propose(value));
    expect(proposals.map((proposal) => proposal.status)).toEqual(values.map(() => "pending"));

    cluster.runUntil(
      () => cluster.ids.every((id) => values.every((value) => cluster.node(id).stateMachine.has(value))),
      5_000,
      "all 10 values are applied on every node",
    );
    expect(proposals.every((proposal) => proposal.status === "acked")).toBe(true);
    for (const id of cluster.ids) expect(cluster.appliedValues(id)).toEqual(values);
    expect(cluster.leaders()).toHaveLength(1);
  });
});
