// The fenced resource the chaos clients write to: per lock, it accepts a write only with a token at
// least as high as the highest it accepted before (the storage side of fencing, as in Kleppmann's
// "How to do distributed locking"). It records every write it was asked for.
import { createServer, type Server } from "node:http";
import { freePort } from "../support/ports.js";

export interface ResourceWrite {
  readonly lock: string;
  readonly token: number;
  readonly client: string;
  readonly atMs: number;
  readonly accepted: boolean;
}

export class FencedResource {
  readonly writes: ResourceWrite[] = [];
  private readonly highest = new Map<string, number>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FencedResource> {
    const port = await freePort();
    const server = createServer();
    const resource = new FencedResource(server, port);
    server.on("request", (request, response) => {
      const url = new URL(request.url ?? "/", "http://resource");
      const lock = url.searchParams.get("lock");
      const token = Number(url.searchParams.get("token"));
      const client = url.searchParams.get("client");
      if (request.method !== "POST" || url.pathname !== "/write" || lock === null || client === null || !Number.isSafeInteger(token)) {
        response.writeHead(400).end("POST /write?lock=&token=&client=");
        return;
      }
      const accepted = resource.write(lock, token, client);
      response.writeHead(accepted ? 200 : 409).end(accepted ? "accepted" : "stale token");
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return resource;
  }

  /** Accepts `token` unless a higher one was accepted for `lock` before. */
  write(lock: string, token: number, client: string): boolean {
    const accepted = token >= (this.highest.get(lock) ?? 0);
    if (accepted) this.highest.set(lock, token);
    this.writes.push({ lock, token, client, atMs: performance.timeOrigin + performance.now(), accepted });
    return accepted;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
