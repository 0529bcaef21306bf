// Requests one node sends another over the peer stream: proposals forwarded from a follower to the
// leader, and status queries for `GET /v1/cluster`. A tiny binary envelope; status bodies are JSON since
// they are small and off the replication path.

/** Most bytes of a forwarded proposal's reply or a status body. */
export const forwardedReplyBytesMax = 1 << 20;

export const RequestKind = { Propose: 1, Status: 2, ReadIndex: 3, Leader: 4, ConfigChange: 5, Transfer: 6 } as const;
export type RequestKind = (typeof RequestKind)[keyof typeof RequestKind];

export type ForwardedRequest =
  | { readonly kind: typeof RequestKind.Propose; readonly data: Uint8Array }
  | { readonly kind: typeof RequestKind.Status }
  /** A follower asks the leader for a linearizable read point, then reads its own state once it applied it. */
  | { readonly kind: typeof RequestKind.ReadIndex }
  /** Work only the leader may do that writes nothing to the log (a session keepalive); opaque here. */
  | { readonly kind: typeof RequestKind.Leader; readonly data: Uint8Array }
  /** A membership change (JSON ConfigChange), made by the leader and answered once it committed. */
  | { readonly kind: typeof RequestKind.ConfigChange; readonly data: Uint8Array }
  /** Hand leadership to another voter (JSON `{targetId}`), answered once the leader stepped down. */
  | { readonly kind: typeof RequestKind.Transfer; readonly data: Uint8Array };

/** An error a node answers instead of a result; `code` is one of the API's error codes. */
export class NodeError extends Error {
  override name = "NodeError";
  constructor(
    /** LEADERLOST: the stream to the leader closed, or another leader took over, with the request in flight; its outcome is unknown. */
    readonly code:
      | "NOLEADER"
      | "LEADERLOST"
      | "TIMEOUT"
      | "NOTCOMMITTED"
      | "TOOLARGE"
      | "SHUTTINGDOWN"
      | "UNAVAILABLE"
      /** The membership change does not apply to the current configuration (already a member, not a learner, ...). */
      | "MEMBERSHIP"
      /** Another membership change is not committed yet; retry shortly. */
      | "CHANGEPENDING"
      /** The learner is too far behind (or silent) to be promoted yet; retry once it caught up. */
      | "NOTCAUGHTUP",
    message: string,
  ) {
    super(message);
  }
}

export interface ProposalResult {
  readonly index: number;
  readonly term: number;
  readonly result: Uint8Array;
}

export function encodeRequest(request: ForwardedRequest): Uint8Array {
  if (request.kind === RequestKind.Status || request.kind === RequestKind.ReadIndex) return Uint8Array.of(request.kind);
  const bytes = new Uint8Array(1 + request.data.length);
  bytes[0] = request.kind;
  bytes.set(request.data, 1);
  return bytes;
}

/** Decodes a request from a peer; undefined for one this version does not know. */
export function decodeRequest(bytes: Uint8Array): ForwardedRequest | undefined {
  if (bytes[0] === RequestKind.Status && bytes.length === 1) return { kind: RequestKind.Status };
  if (bytes[0] === RequestKind.ReadIndex && bytes.length === 1) return { kind: RequestKind.ReadIndex };
  if (bytes[0] === RequestKind.Propose) return { kind: RequestKind.Propose, data: bytes.subarray(1) };
  if (bytes[0] === RequestKind.Leader) return { kind: RequestKind.Leader, data: bytes.subarray(1) };
  if (bytes[0] === RequestKind.ConfigChange) return { kind: RequestKind.ConfigChange, data: bytes.subarray(1) };
  if (bytes[0] === RequestKind.Transfer) return { kind: RequestKind.Transfer, data: bytes.subarray(1) };
  return undefined;
}

const replyOk = 0;
const replyError = 1;

export function encodeProposalReply(result: ProposalResult): Uint8Array {
  const bytes = new Uint8Array(17 + result.result.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = replyOk;
  view.setFloat64(1, result.index);
  view.setFloat64(9, result.term);
  bytes.set(result.result, 17);
  return bytes;
}

export function encodeJsonReply(body: unknown): Uint8Array {
  const json = Buffer.from(JSON.stringify(body));
  const bytes = new Uint8Array(1 + json.length);
  bytes[0] = replyOk;
  bytes.set(json, 1);
  return bytes;
}

export function encodeErrorReply(error: NodeError): Uint8Array {
  const json = Buffer.from(JSON.stringify({ code: error.code, message: error.message }));
  const bytes = new Uint8Array(1 + json.length);
  bytes[0] = replyError;
  bytes.set(json, 1);
  return bytes;
}

/** Throws the NodeError a peer answered, or returns the reply's body. */
function replyBody(bytes: Uint8Array): Uint8Array {
  if (bytes.length > forwardedReplyBytesMax) throw new NodeError("UNAVAILABLE", "a peer answered with an oversized reply");
  if (bytes[0] === replyError) {
    const parsed = JSON.parse(Buffer.from(bytes.subarray(1)).toString()) as { code: NodeError["code"]; message: string };
    // The leader is stopping (SIGTERM hands leadership over): to the client of another node that is a
    // leader going away with the request in flight, which that node retries on the next leader when safe.
    if (parsed.code === "SHUTTINGDOWN") throw new NodeError("LEADERLOST", `the node the request went to is shutting down (${parsed.message})`);
    throw new NodeError(parsed.code, parsed.message);
  }
  if (bytes[0] !== replyOk) throw new NodeError("UNAVAILABLE", "a peer answered in a format this version does not know");
  return bytes.subarray(1);
}

export function decodeProposalReply(bytes: Uint8Array): ProposalResult {
  const body = replyBody(bytes);
  if (body.length < 16) throw new NodeError("UNAVAILABLE", "a peer answered a proposal with a truncated reply");
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return { index: view.getFloat64(0), term: view.getFloat64(8), result: body.slice(16) };
}

/** The body of an answer to a `Leader` request. */
export function decodeBytesReply(bytes: Uint8Array): Uint8Array {
  return replyBody(bytes).slice();
}

export function encodeBytesReply(body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(1 + body.length);
  bytes[0] = replyOk;
  bytes.set(body, 1);
  return bytes;
}

export function decodeJsonReply<T>(bytes: Uint8Array): T {
  return JSON.parse(Buffer.from(replyBody(bytes)).toString()) as T;
}
