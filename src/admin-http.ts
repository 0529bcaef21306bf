// One HTTP or HTTPS request of the admin subcommands and of `--join`, with a deadline. node:http(s)
// rather than fetch: fetch in Node 20 cannot be given a CA or a client certificate, which a node with
// --client-tls-* needs.

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

/** Largest answer read from a node; the biggest, /v1/cluster of 15 members, is a few KiB. */
export const adminReplyBytesMax = 1 << 20;

/** PEM bytes for HTTPS: `ca` to trust the node's certificate, `cert` and `key` when it asks for one. */
export interface AdminTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** The node did not answer within the deadline. */
export class AdminTimeoutError extends Error {
  override name = "TimeoutError";
}

export interface AdminReply {
  readonly status: number;
  readonly text: string;
}

/**
 * Sends one request to `url` (`http:` or `https:`) and reads the whole answer; rejects on a network or TLS
 * failure, and with `signal`'s reason when it is aborted first.
 */
export function sendAdminRequest(url: URL, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number, tls: AdminTls | undefined, signal?: AbortSignal): Promise<AdminReply> {
  return new Promise((resolve, reject) => {
    const options = { method, headers: { ...headers, ...(body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) }) } };
    const onResponse = (response: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > adminReplyBytesMax) request.destroy(new Error(`the answer is larger than ${adminReplyBytesMax} bytes (adminReplyBytesMax)`));
        else chunks.push(chunk);
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      response.on("error", reject);
    };
    const request = url.protocol === "https:" ? httpsRequest(url, { ...options, ...tls }, onResponse) : httpRequest(url, options, onResponse);
    const timer = setTimeout(() => request.destroy(new AdminTimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const abort = (): void => void request.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal?.addEventListener("abort", abort, { once: true });
    if (signal?.aborted === true) abort();
    request.on("close", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
    });
    request.on("error", reject);
    request.end(body);
  });
}
