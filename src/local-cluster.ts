// `npm start`: a local 3-node cluster on loopback with data under ./data, the addresses of api.md.
// Logs go to ./data/<id>.log; Ctrl-C stops every node gracefully.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

interface LocalNode {
  readonly id: string;
  readonly peerPort: number;
  readonly respPort: number;
  readonly httpPort: number;
}

const nodes: readonly LocalNode[] = [
  { id: "n1", peerPort: 7001, respPort: 6381, httpPort: 8381 },
  { id: "n2", peerPort: 7002, respPort: 6382, httpPort: 8382 },
  { id: "n3", peerPort: 7003, respPort: 6383, httpPort: 8383 },
];
/** How long Ctrl-C waits for the nodes to stop before killing them. */
const stopWaitMs = 10_000;

const dataRoot = join(process.cwd(), "data");
const cliPath = fileURLToPath(new URL("./cli.js", import.meta.url));
const peers = nodes.map((node) => `${node.id}=127.0.0.1:${node.peerPort}`).join(",");
mkdirSync(dataRoot, { recursive: true });

const children: ChildProcess[] = nodes.map((node) => {
  const log = createWriteStream(join(dataRoot, `${node.id}.log`), { flags: "a" });
  const args = [cliPath, "start", "--id", node.id, "--data-dir", join(dataRoot, node.id), "--peer-listen", `127.0.0.1:${node.peerPort}`, "--resp-listen", `127.0.0.1:${node.respPort}`, "--http-listen", `127.0.0.1:${node.httpPort}`, "--peers", peers];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.pipe(log);
  child.stderr?.on("data", (chunk: Buffer) => process.stderr.write(`[${node.id}] ${chunk.toString()}`));
  child.on("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`[${node.id}] exited (${signal ?? `code ${code}`}); see data/${node.id}.log\n`);
  });
  return child;
});

process.stdout.write(`raftlock: a local 3-node cluster is starting (data and logs under ${dataRoot})\n`);
for (const node of nodes) {
  process.stdout.write(`  ${node.id}  resp 127.0.0.1:${node.respPort}  http://127.0.0.1:${node.httpPort}  peers 127.0.0.1:${node.peerPort}\n`);
}
process.stdout.write(`try:  redis-cli -p 6381 LOCK.ACQUIRE db me 10000   or   curl -s http://127.0.0.1:8381/v1/cluster/leader   or   node ${cliPath} status --http 127.0.0.1:8381\nCtrl-C stops all nodes.\n`);

let stopping = false;
function stopAll(): void {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nraftlock: stopping the nodes...\n");
  for (const child of children) child.kill("SIGTERM");
  const killTimer = setTimeout(() => {
    for (const child of children) child.kill("SIGKILL");
  }, stopWaitMs);
  let running = children.filter((child) => child.exitCode === null && child.signalCode === null).length;
  if (running === 0) process.exit(0);
  for (const child of children) {
    child.once("exit", () => {
      running--;
      if (running === 0) {
        clearTimeout(killTimer);
        process.exit(0);
      }
    });
  }
}
process.on("SIGINT", stopAll);
process.on("SIGTERM", stopAll);
