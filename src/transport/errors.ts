// Why `Transport.request` failed. Every failure is one of these, so the node driver can decide between
// retrying (nothing reached the peer) and answering "outcome unknown" (the peer may have acted).

/** Base class: a request to `peerId` did not produce an answer. */
export class RequestError extends Error {
  override name = "RequestError";
  constructor(
    readonly peerId: string,
    message: string,
    /** True when the request may have reached the peer and been acted on. */
    readonly outcomeUnknown: boolean,
  ) {
    super(message);
  }
}

/** No usable connection to the peer: not connected, the connection closed, or this transport closed. */
export class PeerUnavailableError extends RequestError {
  override name = "PeerUnavailableError";
}

/** The peer did not answer within the request's timeout; it may still act on the request. */
export class RequestTimeoutError extends RequestError {
  override name = "RequestTimeoutError";
}

/** The peer's request handler failed; `message` carries its reason. The request may have had effects. */
export class RemoteHandlerError extends RequestError {
  override name = "RemoteHandlerError";
}

/**
 * A limit refused the request before the peer acted on it (payload too large, too many in flight, send queue
 * full, peer busy): nothing happened, and the message names the limit. Retrying later is safe.
 */
export class RequestLimitError extends RequestError {
  override name = "RequestLimitError";
}
