// A full garbage collection inside a node started with `--inspect=127.0.0.1:0`, through the inspector
// protocol (HeapProfiler.collectGarbage): after it, the heap in use is the live data, so that a memory
// figure does not depend on when V8 last collected.
import WebSocket from "ws";
import type { NodeLog } from "./node-log.js";

/** Longest a collection may take (a heap of a million locks takes a few hundred ms). */
const collectTimeoutMs = 30_000;

/** The inspector's WebSocket URL, as the node last printed it on stderr at start (a restart prints a new one). */
export function inspectorUrl(log: NodeLog): string | null {
  return [...log.lastLines(10_000).matchAll(/ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+/g)].at(-1)?.[0] ?? null;
}

/** Runs a full collection in the process behind `url` and resolves once it is done. */
export function collectGarbage(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no answer to HeapProfiler.collectGarbage from ${url} within ${collectTimeoutMs} ms`));
    }, collectTimeoutMs);
    socket.on("open", () => socket.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" })));
    socket.on("message", (data: Buffer) => {
      if ((JSON.parse(data.toString()) as { id?: number }).id !== 1) return;
      clearTimeout(timer);
      socket.close();
      resolve();
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
