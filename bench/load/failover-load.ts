// The load of the failover suite: clients cycling in a closed loop, and fresh cycles started at a steady
// pace. A closed-loop client whose request is stuck behind a fault (a proposal forwarded to a leader that
// no longer answers waits for the node's commit timeout) starts nothing else meanwhile, so the closed
// loop shows what connected clients see; the fresh cycles show when the cluster takes a new one again.
import { errorBackoffMs, errorCode, type LoadClient, openClient, type WorkloadSpec } from "./workloads.js";

/** One fresh cycle begins this often: fine against a 1-2 s election timeout, light against the load. */
const freshCycleIntervalMs = 50;
/** Fresh cycles in flight at once; with more stuck, none begins until one ends (a 10 s commit timeout holds 200). */
const freshCyclesInFlightMax = 256;

export interface CycleRecord {
  readonly beganMs: number;
  readonly endedMs: number;
}

/** Clients cycling in a closed loop until stopped, recording every success and counting errors. */
export class SteadyLoad {
  readonly successes: CycleRecord[] = [];
  readonly errors: Record<string, number> = {};
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(private readonly clients: readonly LoadClient[]) {
    this.loops = clients.map(async (client) => {
      while (this.running) {
        const beganMs = performance.now();
        try {
          await client.run();
          this.successes.push({ beganMs, endedMs: performance.now() });
        } catch (error) {
          const code = errorCode(error);
          this.errors[code] = (this.errors[code] ?? 0) + 1;
          await new Promise((resolve) => setTimeout(resolve, errorBackoffMs));
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((client) => client.close()));
  }
}

/**
 * A cycle begins every `freshCycleIntervalMs` on a client that is not busy (a new connection when every
 * one is), alternating between the endpoints; a cycle stuck behind the fault never holds back the next.
 */
export class FreshCycles {
  readonly successes: CycleRecord[] = [];
  private readonly idle: LoadClient[] = [];
  private readonly opened: Promise<LoadClient>[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;

  /** Clients take indexes from `firstClientIndex` on, so their locks are not the closed loop's. */
  constructor(
    private readonly spec: WorkloadSpec,
    private readonly firstClientIndex: number,
  ) {
    this.timer = setInterval(() => this.begin(), freshCycleIntervalMs);
  }

  private begin(): void {
    if (this.inFlight.size >= freshCyclesInFlightMax) return;
    const beganMs = performance.now();
    const cycle = (async () => {
      const client = this.idle.pop() ?? (await this.open());
      try {
        await client.run();
        this.successes.push({ beganMs, endedMs: performance.now() });
      } catch {
        // the closed loop counts the errors; a fresh cycle only says when one succeeds again
      }
      this.idle.push(client);
    })().catch(() => undefined); // a connection refused is a failed fresh cycle too
    this.inFlight.add(cycle);
    void cycle.finally(() => this.inFlight.delete(cycle));
  }

  private open(): Promise<LoadClient> {
    const client = openClient(this.spec, this.firstClientIndex + this.opened.length);
    this.opened.push(client);
    return client;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.inFlight);
    const clients = await Promise.allSettled(this.opened);
    await Promise.all(clients.flatMap((client) => (client.status === "fulfilled" ? [client.value.close()] : [])));
  }
}
