// Every process the harness starts (nodes, etcd members, redis-server, generators) is killed when the
// harness exits or is interrupted, so that an aborted run leaves nothing listening or writing behind.
import type { ChildProcess } from "node:child_process";

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Registers a started process; it is forgotten once it exits. */
export function trackChild<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}
