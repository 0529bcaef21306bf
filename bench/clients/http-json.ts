// JSON over HTTP/1.1 keep-alive connections, for the load generator and the cluster launchers. Each
// generator client holds its own agent with one socket, like a RESP client holds its own connection.
import { Agent, request } from "node:http";

/** How long a request may take before it counts as failed (longer than raftlock's 10 s commit timeout). */
const requestTimeoutMs = 15_000;

export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
}

/** An HTTP failure without a response (refused, reset, timed out): `code` names it in error counts. */
export class HttpTransportError extends Error {
  constructor(readonly code: string) {
    super(`HTTP request failed: ${code}`);
  }
}

export class HttpJsonClient {
  private readonly agent: Agent;

  constructor(
    private readonly host: string,
    private readonly port: number,
    socketsMax = 1,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: socketsMax });
  }

  post(path: string, body: string | Buffer = "{}"): Promise<JsonResponse> {
    return this.send("POST", path, body);
  }

  /**
   * A GET, sent once more when the connection was reset: a keep-alive socket left idle for the server's
   * keep-alive timeout (Node's: 5 s) can be closed by the server just as the client reuses it.
   */
  async get(path: string): Promise<JsonResponse> {
    try {
      return await this.send("GET", path, null);
    } catch (error) {
      if (!(error instanceof HttpTransportError) || (error.code !== "ECONNRESET" && error.code !== "EPIPE")) throw error;
      return this.send("GET", path, null);
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, path: string, body: string | Buffer | null): Promise<JsonResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = body === null ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
      const outgoing = request({ host: this.host, port: this.port, method, path, agent: this.agent, headers, timeout: requestTimeoutMs }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = text.length === 0 ? null : JSON.parse(text);
          } catch {
            // Not JSON (a proxy's error page): keep the text for the error message.
          }
          resolve({ status: response.statusCode ?? 0, body: parsed });
        });
        response.on("error", (error: NodeJS.ErrnoException) => reject(new HttpTransportError(error.code ?? "ERESPONSE")));
      });
      outgoing.on("timeout", () => outgoing.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
      outgoing.on("error", (error: NodeJS.ErrnoException) => reject(new HttpTransportError(error.code ?? "EREQUEST")));
      outgoing.end(body ?? undefined);
    });
  }
}

/** The `error.code` of a raftlock error body, or the status. */
export function errorCodeOf(response: JsonResponse): string {
  const body = response.body as { error?: { code?: unknown } } | null;
  return typeof body?.error?.code === "string" ? body.error.code : `HTTP${response.status}`;
}
