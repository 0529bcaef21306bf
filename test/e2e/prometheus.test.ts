// A real Prometheus server (Debian `prometheus`) scrapes a real 3-node cluster behind --auth-password,
// and raftlock_has_leader is queried through its HTTP API. Skipped, saying so, when prometheus is absent.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { E2eCluster, fastTimeouts, freePort, waitFor } from "./harness.js";

const prometheusPresent = spawnSync("prometheus", ["--version"]).status === 0;
if (!prometheusPresent) console.warn("prometheus not found (Debian package `prometheus`): skipped the real-Prometheus scrape test");
const password = "prometheus-e2e-pw-9d04";
const ids = ["n1", "n2", "n3"];

let cluster: E2eCluster | null = null;
let prometheus: ChildProcess | null = null;
let root = "";
afterEach(async () => {
  if (prometheus !== null && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus!.once("exit", resolve));
    prometheus.kill("SIGTERM");
    await exited;
  }
  prometheus = null;
  await cluster?.close();
  cluster = null;
  if (root !== "") rmSync(root, { recursive: true, force: true });
});

interface Vector {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

async function query(port: number, expression: string): Promise<Vector[]> {
  const response = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expression)}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as { status: string; data?: { result: Vector[] } };
  return body.status === "success" ? body.data!.result : [];
}

describe.skipIf(!prometheusPresent)("a real Prometheus server", { timeout: 90_000 }, () => {
  it("scrapes every node with the password and reads raftlock_has_leader 1 from each, with one leader", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, "--auth-password", password]);
    root = mkdtempSync(join(tmpdir(), "raftlock-prometheus-"));
    const targets = ids.map((id) => `"127.0.0.1:${cluster!.node(id).httpPort}"`).join(", ");
    const config = join(root, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global: { scrape_interval: 1s, scrape_timeout: 1s }",
        "scrape_configs:",
        "  - job_name: raftlock",
        `    authorization: { credentials: "${password}" }`,
        `    static_configs: [{ targets: [${targets}] }]`,
        "",
      ].join("\n"),
    );
    const port = await freePort();
    let output = "";
    prometheus = spawn("prometheus", [`--config.file=${config}`, `--storage.tsdb.path=${join(root, "data")}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
    prometheus.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    prometheus.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));

    try {
      const up = await waitFor(async () => {
        const result = await query(port, "up").catch(() => []);
        return result.length === 3 && result.every((sample) => sample.value[1] === "1") ? result : undefined;
      }, 45_000, "Prometheus scraping all three nodes (up == 1)");
      expect(up.map((sample) => sample.metric.instance).sort()).toEqual(ids.map((id) => `127.0.0.1:${cluster!.node(id).httpPort}`).sort());
      const hasLeader = await waitFor(async () => {
        const result = await query(port, "raftlock_has_leader");
        return result.length === 3 && result.every((sample) => sample.value[1] === "1") ? result : undefined;
      }, 20_000, "raftlock_has_leader 1 on all three nodes");
      expect(hasLeader).toHaveLength(3);
      const leaders = await waitFor(async () => {
        const result = await query(port, "sum(raftlock_is_leader)");
        return result[0]?.value[1] === "1" ? result : undefined;
      }, 20_000, "exactly one node reporting raftlock_is_leader 1");
      expect(leaders).toHaveLength(1);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nprometheus output:\n${output.slice(-3000)}`);
    }
  });
});
