// One chaos client, a separate process: over RESP (ioredis) it acquires, refreshes, reads and releases
// contended locks, writes to the fenced resource with each token it is granted, and keeps a session
// alive on a second connection. Every operation goes to a JSON-lines history with its invocation and
// completion time and its outcome: ok (with the value), fail (certainly not applied) or unknown.
//
//   tsx test/chaos/client.ts --id c1 --targets targets.json --locks a,b --resource-port 9000 --seed 7 --out c1.jsonl
//
// `--targets` names a file with the RESP ports of the cluster's voters, a JSON array that the run replaces
// as membership changes: a client leaves a node that is no longer listed, and moves among those listed.
// It stops cleanly on SIGTERM: the operation in flight completes (or times out) and the file is flushed.
import { appendFileSync, readFileSync, statSync } from "node:fs";
import { Redis } from "ioredis";
import { Prng } from "../sim/prng.js";
import { type ClientRecord, clientLockTtlMs, clientSessionTtlMs, type Outcome } from "./history.js";

/** A command with no answer after this long is an unknown outcome (a paused or partitioned node). */
const commandTimeoutMs = 6_000;
/** Consecutive failures on one node before the client moves to the next. */
const failuresBeforeSwitch = 3;

function option(name: string): string {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? process.argv[index + 1] : undefined;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

const clientId = option("id");
const targetsFile = option("targets");
const locks = option("locks").split(",");
const resourcePort = Number(option("resource-port"));
const out = option("out");
const random = new Prng(Number(option("seed")));

let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
});

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Which errors prove the command was not applied, and which leave it open. */
function classify(error: unknown): Outcome {
  const message = error instanceof Error ? error.message : String(error);
  // Refused before it was proposed: no leader, not writable (never sent), a definite refusal.
  if (/outcome unknown/.test(message)) return { type: "unknown", error: message };
  if (/^(NOLEADER|NOTCOMMITTED|ERR|NOSESSION|LIMIT|UNAVAILABLE)\b/.test(message) || /Stream isn't writeable|enableOfflineQueue/.test(message)) {
    return { type: "fail", error: message };
  }
  // Timed out, connection closed with the command in flight, or anything else: it may have happened.
  return { type: "unknown", error: message };
}

/** The targets file as last read, and which file it was (the run replaces it whole, so a new inode is a new list). */
let targets: { inode: number; ports: number[] } = { inode: -1, ports: [] };

/** The RESP ports of the cluster's voters now. */
function currentPorts(): number[] {
  try {
    const inode = statSync(targetsFile).ino;
    if (inode !== targets.inode) {
      const ports = JSON.parse(readFileSync(targetsFile, "utf8")) as unknown;
      if (Array.isArray(ports) && ports.length > 0 && ports.every((port) => Number.isInteger(port))) targets = { inode, ports: ports as number[] };
    }
  } catch {
    // Being replaced right now: the list read before is still a good one.
  }
  if (targets.ports.length === 0) throw new Error(`${targetsFile} lists no RESP ports`);
  return targets.ports;
}

class Connection {
  private redis: Redis;
  port: number;
  private failures = 0;

  constructor() {
    this.port = random.pick(currentPorts());
    this.redis = this.connect();
  }

  private connect(): Redis {
    const redis = new Redis({
      port: this.port,
      host: "127.0.0.1",
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      commandTimeout: commandTimeoutMs,
      retryStrategy: () => 200,
      lazyConnect: false,
    });
    redis.on("error", () => undefined);
    return redis;
  }

  /** Leaves a node that left the cluster (or is leaving it) before it stops answering. */
  followTargets(): void {
    if (!currentPorts().includes(this.port)) this.switchNode();
  }

  async call(args: (string | number)[]): Promise<Outcome> {
    try {
      const value: unknown = await this.redis.call(String(args[0]), ...args.slice(1).map(String));
      this.failures = 0;
      return { type: "ok", value };
    } catch (error) {
      const outcome = classify(error);
      if (++this.failures >= failuresBeforeSwitch) this.switchNode();
      return outcome;
    }
  }

  /** Moves to the next listed node after this one (the first listed, if this one is not listed). */
  private switchNode(): void {
    this.failures = 0;
    this.redis.disconnect();
    const ports = currentPorts();
    this.port = ports[(ports.indexOf(this.port) + 1) % ports.length]!;
    this.redis = this.connect();
  }

  close(): void {
    this.redis.disconnect();
  }
}

let seq = 0;
function record(entry: Omit<ClientRecord, "client" | "seq">): void {
  const line: ClientRecord = { client: clientId, seq: ++seq, ...entry };
  appendFileSync(out, `${JSON.stringify(line)}\n`);
}

async function timed(connection: Connection, key: string, kind: ClientRecord["kind"], args: (string | number)[]): Promise<Outcome> {
  connection.followTargets();
  const invokeMs = nowMs();
  const port = connection.port;
  const outcome = await connection.call(args);
  record({ key, kind, invokeMs, completeMs: nowMs(), outcome, port });
  return outcome;
}

/** Writes to the fenced resource; it refuses a token lower than the highest it accepted for the lock. */
async function writeResource(key: string, token: number): Promise<void> {
  const invokeMs = nowMs();
  let outcome: Outcome;
  try {
    const response = await fetch(`http://127.0.0.1:${resourcePort}/write?lock=${encodeURIComponent(key)}&token=${token}&client=${encodeURIComponent(clientId)}`, {
      method: "POST",
      signal: AbortSignal.timeout(2_000),
    });
    outcome = { type: "ok", value: response.status === 200 };
  } catch (error) {
    outcome = { type: "unknown", error: String(error) };
  }
  record({ key, kind: "write", invokeMs, completeMs: nowMs(), outcome, port: resourcePort, token });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Session keepalives on their own connection, so they never wait behind a blocked acquire. */
async function keepSessionAlive(): Promise<void> {
  const connection = new Connection();
  let sessionId: number | null = null;
  while (!stopping) {
    if (sessionId === null) {
      const opened = await timed(connection, "session", "session-open", ["SESSION.OPEN", clientSessionTtlMs, "LABEL", clientId]);
      if (opened.type === "ok") sessionId = Number(opened.value);
    } else {
      const kept = await timed(connection, "session", "keepalive", ["SESSION.KEEPALIVE", sessionId]);
      if (kept.type === "fail" && /NOSESSION/.test(kept.error)) sessionId = null;
    }
    await sleep(clientSessionTtlMs / 3);
  }
  connection.close();
}

async function workOnLocks(): Promise<void> {
  const connection = new Connection();
  while (!stopping) {
    const key = random.pick(locks);
    const waitMs = random.pick([0, 0, 500, 1_500]);
    const acquired = await timed(connection, key, "acquire", ["LOCK.ACQUIRE", key, clientId, clientLockTtlMs, ...(waitMs > 0 ? ["WAIT", waitMs] : [])]);
    if (acquired.type === "ok" && typeof acquired.value === "number") {
      await writeResource(key, acquired.value);
      if (random.chance(0.4)) await timed(connection, key, "refresh", ["LOCK.REFRESH", key, clientId, clientLockTtlMs]);
      if (random.chance(0.3)) await timed(connection, key, "read", ["LOCK.INFO", key]);
      await sleep(random.int(0, 30));
      await timed(connection, key, "release", ["LOCK.RELEASE", key, clientId]);
    } else if (random.chance(0.3)) {
      await timed(connection, key, "read", ["LOCK.INFO", key]);
    }
    // A stale release, as a client that lost its lock might send (etcd #22082): it must never free another's hold.
    if (random.chance(0.1)) {
      const other = random.pick(locks);
      await timed(connection, other, "release", ["LOCK.RELEASE", other, clientId]);
    }
    await sleep(random.int(5, 40));
  }
  connection.close();
}

await Promise.all([workOnLocks(), keepSessionAlive()]);
process.exit(0);
