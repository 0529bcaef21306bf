import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { freePort } from "./harness.js";

const repoRoot = new URL("../..", import.meta.url).pathname;
/** util-linux's `script` gives the node a terminal for stdout; Debian has it in its base system. */
const scriptPath = "/usr/bin/script";

async function startArgs(dataDir: string): Promise<string> {
  const [peerPort, httpPort] = [await freePort(), await freePort()];
  return `--id n1 --data-dir ${dataDir} --peer-listen 127.0.0.1:${peerPort} --http-listen 127.0.0.1:${httpPort} --peers n1=127.0.0.1:${peerPort}`;
}

describe("node logs", { timeout: 30_000 }, () => {
  it.skipIf(!existsSync(scriptPath))("are one readable line per event on a terminal, and JSON lines otherwise", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "raftlock-logs-"));
    try {
      // The node runs until `timeout` stops it (exit 124): long enough to start and elect itself.
      const command = `node --import tsx src/cli.ts start ${await startArgs(join(dataDir, "tty"))}`;
      const onTerminal = await promisify(execFile)(scriptPath, ["-qc", `timeout 4 ${command}`, "/dev/null"], { cwd: repoRoot }).catch((error: { stdout: string }) => error);
      const started = onTerminal.stdout.split("\n").find((line) => line.includes("node started"));
      expect(started).toMatch(/INFO/);
      expect(started).toContain("nodeId");
      expect(started!.trimStart().startsWith("{")).toBe(false);
      const piped = await promisify(execFile)("timeout", ["4", "node", "--import", "tsx", "src/cli.ts", "start", ...(await startArgs(join(dataDir, "pipe"))).split(" ")], { cwd: repoRoot }).catch((error: { stdout: string }) => error);
      const line = piped.stdout.split("\n").find((text) => text.includes("node started"))!;
      expect(JSON.parse(line)).toMatchObject({ nodeId: "n1", msg: "node started", term: 0 });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
