// Our requests to one peer that await an answer, keyed by request id.

import { type ResponseFrame, ResponseStatus } from "./codec.js";
import { RemoteHandlerError, RequestLimitError, RequestTimeoutError } from "./errors.js";

interface PendingRequest {
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
  /** Handed to the socket: from then on the peer may have acted on it. */
  written: boolean;
}

const requestIdMax = 0xffff_ffff;

export class PendingRequests {
  private readonly byId = new Map<number, PendingRequest>();
  private nextRequestId = 1;

  constructor(private readonly peerId: string) {}

  get size(): number {
    return this.byId.size;
  }

  /** Registers a request; it rejects by itself with RequestTimeoutError after `timeoutMs`. */
  add(timeoutMs: number): { requestId: number; answer: Promise<Uint8Array> } {
    // Ids wrap after 2^32 requests; skipping ids still pending keeps them unique among those in flight.
    while (this.byId.has(this.nextRequestId)) this.nextRequestId = nextId(this.nextRequestId);
    const requestId = this.nextRequestId;
    this.nextRequestId = nextId(requestId);
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        const pending = this.byId.get(requestId);
        if (pending === undefined) return;
        this.byId.delete(requestId);
        reject(new RequestTimeoutError(this.peerId, `${this.peerId} did not answer within ${timeoutMs} ms`, pending.written));
      }, timeoutMs);
      this.byId.set(requestId, { resolve, reject, timer, written: false });
    });
    return { requestId, answer };
  }

  /** Notes that the request's frame went to the socket; false when it already timed out (skip the frame). */
  markWritten(requestId: number): boolean {
    const pending = this.byId.get(requestId);
    if (pending === undefined) return false;
    pending.written = true;
    return true;
  }

  /** Settles the request `response` answers; an answer after the timeout is ignored. */
  settle(response: ResponseFrame): void {
    const pending = this.byId.get(response.requestId);
    if (pending === undefined) return;
    this.byId.delete(response.requestId);
    clearTimeout(pending.timer);
    switch (response.status) {
      case ResponseStatus.Ok:
        pending.resolve(response.payload);
        return;
      case ResponseStatus.Failed:
        pending.reject(new RemoteHandlerError(this.peerId, `${this.peerId} could not handle the request: ${response.error}`, true));
        return;
      case ResponseStatus.Busy:
        pending.reject(new RequestLimitError(this.peerId, `${this.peerId} refused the request: ${response.error}; retry later`, false));
        return;
    }
  }

  /** Rejects every pending request at once; `errorFor` learns whether each had been written. */
  rejectAll(errorFor: (written: boolean) => Error): void {
    for (const pending of this.byId.values()) {
      clearTimeout(pending.timer);
      pending.reject(errorFor(pending.written));
    }
    this.byId.clear();
  }
}

function nextId(requestId: number): number {
  return requestId === requestIdMax ? 1 : requestId + 1;
}
