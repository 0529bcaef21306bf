// What one simulated client does, over and over: a lock acquire+release cycle, a keepalive or a read, on
// raftlock (RESP or HTTP), etcd (its JSON gateway) or redis. A spec is plain data, so that it can be sent
// to a generator process; `openClient` turns it into a client there.
import { HttpJsonClient, errorCodeOf } from "../clients/http-json.js";
import { encodeCommand, RespConnection, RespReplyError, type RespValue } from "../clients/resp-connection.js";

export type WorkloadKind =
  | "resp-cycle"
  | "http-cycle"
  | "resp-contended"
  | "http-contended"
  | "resp-keepalive"
  | "resp-read"
  | "resp-acquire-only"
  | "etcd-cycle"
  | "redis-cycle";

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface WorkloadSpec {
  readonly kind: WorkloadKind;
  /** Clients are spread over these round-robin (client k uses endpoint k mod length). */
  readonly endpoints: readonly Endpoint[];
  /** Prefix of every lock name, so that runs never share a lock. */
  readonly runId: string;
  readonly lockTtlMs: number;
  /** `*-contended`: how many locks all clients share. */
  readonly contendedLocks: number;
  /** `*-contended`: how long a blocked acquire waits in the lock's FIFO queue. */
  readonly waitMs: number;
  /** `resp-read`: the connection's read mode; lease reads are linearizable reads on a `--read-mode lease` cluster. */
  readonly consistency: "linearizable" | "serializable";
  /** `resp-read`: the held lock every client reads. */
  readonly readLock: string;
}

/** A failed operation; `code` is what the error counts are keyed by. */
export class OperationError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

export interface LoadClient {
  /** One operation (a cycle is one operation); throws an OperationError or a transport error. */
  run(): Promise<void>;
  close(): Promise<void>;
}

/** Pause after a failed operation: keeps a client that sees NOLEADER from spinning (no retry storm). */
export const errorBackoffMs = 10;

/** Locks `resp-acquire-only` spreads over: redis-benchmark's `-r 1000` draws from the same 1000 names. */
export const acquireOnlyLocks = 1000;

/** The error-count key of anything an operation threw. */
export function errorCode(error: unknown): string {
  if (error instanceof OperationError || error instanceof RespReplyError) return error.code;
  if (error !== null && typeof error === "object" && "code" in error && typeof error.code === "string") return error.code;
  return error instanceof Error && /closed/.test(error.message) ? "CONNECTION-CLOSED" : "OTHER";
}

/** A RESP connection opened again on the next command after a transport failure (a node restarted). */
class ReconnectingResp {
  private connection: RespConnection | null = null;
  constructor(
    private readonly endpoint: Endpoint,
    private readonly onConnect: (connection: RespConnection) => Promise<void> = async () => undefined,
  ) {}

  async send(command: Buffer): Promise<RespValue> {
    if (this.connection === null) {
      const connection = await RespConnection.open(this.endpoint.host, this.endpoint.port);
      await this.onConnect(connection);
      this.connection = connection;
    }
    try {
      return await this.connection.send(command);
    } catch (error) {
      if (!(error instanceof RespReplyError)) {
        this.connection.close();
        this.connection = null;
      }
      throw error;
    }
  }

  close(): void {
    this.connection?.close();
  }
}

function expect(condition: boolean, code: string): void {
  if (!condition) throw new OperationError(code);
}

function lockNameOf(spec: WorkloadSpec, clientIndex: number): string {
  return spec.kind.endsWith("contended") ? `${spec.runId}:hot${clientIndex % spec.contendedLocks}` : `${spec.runId}:c${clientIndex}`;
}

function respLockCycle(spec: WorkloadSpec, endpoint: Endpoint, clientIndex: number): LoadClient {
  const lock = lockNameOf(spec, clientIndex);
  const owner = `o${clientIndex}`;
  const wait = spec.kind === "resp-contended" ? ["WAIT", spec.waitMs] : [];
  const acquire = encodeCommand(["LOCK.ACQUIRE", lock, owner, spec.lockTtlMs, ...wait]);
  const release = encodeCommand(["LOCK.RELEASE", lock, owner]);
  const resp = new ReconnectingResp(endpoint);
  return {
    async run() {
      const token = await resp.send(acquire);
      expect(typeof token === "number", spec.kind === "resp-contended" ? "WAITEXPIRED" : "NOTACQUIRED");
      expect((await resp.send(release)) === 1, "NOTRELEASED");
    },
    async close() {
      resp.close();
    },
  };
}

function httpLockCycle(spec: WorkloadSpec, endpoint: Endpoint, clientIndex: number): LoadClient {
  const lock = encodeURIComponent(lockNameOf(spec, clientIndex));
  const owner = `o${clientIndex}`;
  const acquireBody = JSON.stringify(spec.kind === "http-contended" ? { owner, ttlMs: spec.lockTtlMs, waitMs: spec.waitMs } : { owner, ttlMs: spec.lockTtlMs });
  const releaseBody = JSON.stringify({ owner });
  const http = new HttpJsonClient(endpoint.host, endpoint.port);
  return {
    async run() {
      const acquired = await http.post(`/v1/locks/${lock}/acquire`, acquireBody);
      if (acquired.status === 409) throw new OperationError(spec.kind === "http-contended" ? "WAITEXPIRED" : "NOTACQUIRED");
      expect(acquired.status === 200, errorCodeOf(acquired));
      const released = await http.post(`/v1/locks/${lock}/release`, releaseBody);
      expect(released.status === 200, errorCodeOf(released));
      expect((released.body as { released?: boolean }).released === true, "NOTRELEASED");
    },
    async close() {
      http.close();
    },
  };
}

async function respKeepalive(spec: WorkloadSpec, endpoint: Endpoint): Promise<LoadClient> {
  const resp = new ReconnectingResp(endpoint);
  const sessionId = await resp.send(encodeCommand(["SESSION.OPEN", spec.lockTtlMs, "LABEL", `${spec.runId}-keepalive`]));
  expect(typeof sessionId === "number", "NOSESSION");
  const keepalive = encodeCommand(["SESSION.KEEPALIVE", sessionId as number]);
  return {
    async run() {
      expect(typeof (await resp.send(keepalive)) === "number", "NOSESSION");
    },
    async close() {
      await resp.send(encodeCommand(["SESSION.CLOSE", sessionId as number])).catch(() => undefined);
      resp.close();
    },
  };
}

function respRead(spec: WorkloadSpec, endpoint: Endpoint): LoadClient {
  const setMode = encodeCommand(["CONSISTENCY", spec.consistency]);
  const resp = new ReconnectingResp(endpoint, async (connection) => {
    await connection.send(setMode);
  });
  const info = encodeCommand(["LOCK.INFO", spec.readLock]);
  return {
    async run() {
      expect(Array.isArray(await resp.send(info)), "NOTHELD");
    },
    async close() {
      resp.close();
    },
  };
}

/** The command redis-benchmark sends in the cross-check, with `__rand_int__` drawn the same way (12 digits). */
export function acquireOnlyCommand(spec: Pick<WorkloadSpec, "runId" | "lockTtlMs">): string[] {
  return ["LOCK.ACQUIRE", `${spec.runId}:a:__rand_int__`, "rb", String(spec.lockTtlMs)];
}

function respAcquireOnly(spec: WorkloadSpec, endpoint: Endpoint): LoadClient {
  const commands = Array.from({ length: acquireOnlyLocks }, (_, k) =>
    encodeCommand(acquireOnlyCommand(spec).map((arg) => arg.replace("__rand_int__", String(k).padStart(12, "0")))),
  );
  const resp = new ReconnectingResp(endpoint);
  return {
    async run() {
      const token = await resp.send(commands[Math.floor(Math.random() * acquireOnlyLocks)]!);
      expect(typeof token === "number", "NOTACQUIRED");
    },
    async close() {
      resp.close();
    },
  };
}

async function etcdCycle(spec: WorkloadSpec, endpoint: Endpoint, clientIndex: number): Promise<LoadClient> {
  const http = new HttpJsonClient(endpoint.host, endpoint.port);
  // One lease per client, granted once: the lock key is put under it, as etcd's own lock recipe does with
  // its session's lease; the cycle is then exactly one txn and one delete, each one Raft write.
  const grant = await http.post("/v3/lease/grant", JSON.stringify({ TTL: Math.ceil(spec.lockTtlMs / 1000) * 4 }));
  const leaseId = (grant.body as { ID?: string }).ID;
  expect(grant.status === 200 && leaseId !== undefined, `ETCD-LEASE-${grant.status}`);
  const key = Buffer.from(`${spec.runId}/c${clientIndex}`).toString("base64");
  const value = Buffer.from(`o${clientIndex}`).toString("base64");
  const acquireBody = JSON.stringify({
    compare: [{ key, target: "CREATE", result: "EQUAL", create_revision: "0" }],
    success: [{ request_put: { key, value, lease: leaseId } }],
  });
  const releaseBody = JSON.stringify({ key });
  return {
    async run() {
      const acquired = await http.post("/v3/kv/txn", acquireBody);
      expect(acquired.status === 200, `ETCD-${acquired.status}`);
      expect((acquired.body as { succeeded?: boolean }).succeeded === true, "NOTACQUIRED");
      const released = await http.post("/v3/kv/deleterange", releaseBody);
      expect(released.status === 200, `ETCD-${released.status}`);
      expect((released.body as { deleted?: string }).deleted === "1", "NOTRELEASED");
    },
    async close() {
      await http.post("/v3/lease/revoke", JSON.stringify({ ID: leaseId })).catch(() => undefined);
      http.close();
    },
  };
}

/** The standard compare-and-delete release of a Redis lock (the one redlock and redis-py send). */
const redisReleaseScript = 'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end';

async function redisCycle(spec: WorkloadSpec, endpoint: Endpoint, clientIndex: number): Promise<LoadClient> {
  const resp = new ReconnectingResp(endpoint);
  const sha = await resp.send(encodeCommand(["SCRIPT", "LOAD", redisReleaseScript]));
  expect(typeof sha === "string", "NOSCRIPT");
  const lock = `${spec.runId}:c${clientIndex}`;
  const owner = `o${clientIndex}`;
  const acquire = encodeCommand(["SET", lock, owner, "NX", "PX", spec.lockTtlMs]);
  const release = encodeCommand(["EVALSHA", sha as string, 1, lock, owner]);
  return {
    async run() {
      expect((await resp.send(acquire)) === "OK", "NOTACQUIRED");
      expect((await resp.send(release)) === 1, "NOTRELEASED");
    },
    async close() {
      resp.close();
    },
  };
}

/** Client `clientIndex` of a workload, connected (and with its session or lease, where it has one). */
export async function openClient(spec: WorkloadSpec, clientIndex: number): Promise<LoadClient> {
  const endpoint = spec.endpoints[clientIndex % spec.endpoints.length]!;
  switch (spec.kind) {
    case "resp-cycle":
    case "resp-contended":
      return respLockCycle(spec, endpoint, clientIndex);
    case "http-cycle":
    case "http-contended":
      return httpLockCycle(spec, endpoint, clientIndex);
    case "resp-keepalive":
      return respKeepalive(spec, endpoint);
    case "resp-read":
      return respRead(spec, endpoint);
    case "resp-acquire-only":
      return respAcquireOnly(spec, endpoint);
    case "etcd-cycle":
      return etcdCycle(spec, endpoint, clientIndex);
    case "redis-cycle":
      return redisCycle(spec, endpoint, clientIndex);
  }
}
