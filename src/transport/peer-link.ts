// Everything this node holds for one peer: the authenticated connection, the outbound queues, the snapshot
// streams in both directions, and the requests in flight both ways. The transport owns sockets and
// handshakes; a link only ever sees an open connection, from `attach` until `detach`.

import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { LimitHitSink } from "../limit-hits.js";
import type { Message, SnapshotRequest } from "../raft/types.js";
import { assert } from "../util/assert.js";
import {
  encodeFrame,
  encodeMessage,
  encodeMessagesFrame,
  type Frame,
  messagesFrameOverheadBytes,
  reasonBytesMax,
  type RequestFrame,
  requestOverheadBytes,
  type ResponseFrame,
  ResponseStatus,
  type SnapshotBeginFrame,
  type SnapshotChunkFrame,
  truncateUtf8,
} from "./codec.js";
import { CloseCode, type PeerConnection } from "./connection.js";
import { PeerUnavailableError, RequestLimitError } from "./errors.js";
import type { TransportLimits } from "./limits.js";
import { PendingRequests } from "./pending-requests.js";
import { OutboundSnapshot, SnapshotAssembly } from "./snapshot-stream.js";

/** What a link needs from its transport. */
export interface LinkContext {
  readonly nodeId: string;
  readonly limits: TransportLimits;
  readonly logger: Logger;
  /** Told once per refusal by a limit of this link. */
  readonly limitHit: LimitHitSink;
  onMessage(message: Message): void;
  onUnreachable(peerId: string): void;
  onSnapshotStatus(peerId: string, delivered: boolean): void;
  onRequest(fromPeerId: string, payload: Uint8Array): Promise<Uint8Array>;
  /** Runs `callback` after the current call stack (never inside `send`), unless the transport closed. */
  defer(callback: () => void): void;
  /** Closes a connection whose peer broke the protocol, logging `reason` once. */
  fail(connection: PeerConnection, code: number, reason: string): void;
}

interface ControlFrame {
  readonly frame: Uint8Array;
  /** Set for our requests: the frame is skipped if the request timed out before it was written. */
  readonly requestId: number | null;
}

const transferIdMax = 0xffff_ffff;

export class PeerLink {
  connection: PeerConnection | null = null;
  /** Frame bytes handed to this peer's sockets, and read from them once open (for metrics; WebSocket framing not counted). */
  bytesSent = 0;
  bytesReceived = 0;

  private raftQueue: Uint8Array[] = [];
  private raftQueuedBytes = 0;
  private controlQueue: ControlFrame[] = [];
  private controlQueuedBytes = 0;
  private flushScheduled = false;
  private unreachableNotifyPending = false;
  /** Set by `shutdown` or `remove`; a released link calls nothing back. */
  private released = false;

  private outboundSnapshot: OutboundSnapshot | null = null;
  private nextTransferId = 1;
  private inboundSnapshot: SnapshotAssembly | null = null;

  private readonly pendingRequests: PendingRequests;
  private inboundRequestsInFlight = 0;

  // Dialing state, used only on the side that dials this peer (see handshake.ts).
  dialing: PeerConnection | null = null;
  reconnectTimer: NodeJS.Timeout | null = null;
  reconnectAttempt = 0;
  dialFailuresInRow = 0;
  /**
   * Monotonic time since when this link has had no stream (its creation, the last detach, or our last
   * reverse dial): how long a lower id has not dialed us (handshake.ts).
   */
  streamlessSinceMs = performance.now();

  constructor(
    readonly peerId: string,
    private readonly context: LinkContext,
  ) {
    this.pendingRequests = new PendingRequests(peerId);
  }

  // ------------------------------------------------------------------------------------------
  // Connection lifecycle

  attach(connection: PeerConnection): void {
    assert(this.connection === null, "a second connection attached to a peer link");
    assert(connection.state === "open", "attached a connection that is not open");
    this.connection = connection;
  }

  /** The connection is gone: everything that depended on it fails now, not at some timeout. */
  detach(connection: PeerConnection, reason: string): void {
    if (this.connection !== connection) return;
    this.connection = null;
    this.streamlessSinceMs = performance.now();
    this.dropQueues();
    this.pendingRequests.rejectAll((written) => new PeerUnavailableError(this.peerId, `connection to ${this.peerId} closed before it answered (${reason})`, written));
    if (this.outboundSnapshot !== null) this.finishSnapshot(this.outboundSnapshot, false);
    this.inboundSnapshot = null;
    this.inboundRequestsInFlight = 0;
    this.notifyUnreachable();
  }

  /** The transport is closing: release everything without calling back into the node. */
  shutdown(): void {
    this.release(() => new PeerUnavailableError(this.peerId, "the peer transport is closed", false));
  }

  /**
   * The peer left this node's peers (`Transport.removePeer`): its pending requests fail with `reason`, and
   * nothing about it reaches the node any more, not even callbacks deferred before. The transport closes
   * its sockets.
   */
  remove(reason: string): void {
    this.release((written) => new PeerUnavailableError(this.peerId, reason, written));
  }

  private release(errorFor: (written: boolean) => PeerUnavailableError): void {
    this.released = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.connection = null;
    this.dialing = null;
    this.dropQueues();
    this.pendingRequests.rejectAll(errorFor);
    this.outboundSnapshot = null;
    this.inboundSnapshot = null;
  }

  /** `context.defer`, skipped once this link is released: a removed peer is reported to nobody. */
  private defer(callback: () => void): void {
    this.context.defer(() => {
      if (!this.released) callback();
    });
  }

  private dropQueues(): void {
    this.raftQueue = [];
    this.raftQueuedBytes = 0;
    this.controlQueue = [];
    this.controlQueuedBytes = 0;
  }

  private notifyUnreachable(): void {
    if (this.unreachableNotifyPending) return;
    this.unreachableNotifyPending = true;
    this.defer(() => {
      this.unreachableNotifyPending = false;
      this.context.onUnreachable(this.peerId);
    });
  }

  /** What this peer costs us in memory now: our queues plus what ws holds that the kernel has not taken. */
  private queuedBytes(): number {
    return this.raftQueuedBytes + this.controlQueuedBytes + (this.connection?.ws.bufferedAmount ?? 0);
  }

  // ------------------------------------------------------------------------------------------
  // Outbound

  /** Queues one Raft message; it leaves with the others of this event-loop turn. */
  send(message: Message): void {
    if (message.type === "snapshot") {
      this.sendSnapshot(message);
      return;
    }
    if (this.connection === null) {
      this.notifyUnreachable();
      return;
    }
    const encoded = encodeMessage(message);
    const { frameBytesMax, queuedBytesMaxPerPeer } = this.context.limits;
    if (encoded.length + messagesFrameOverheadBytes > frameBytesMax) {
      this.context.logger.error(
        { peerId: this.peerId, messageType: message.type, messageBytes: encoded.length, frameBytesMax },
        "dropped a Raft message larger than one frame; raise frameBytesMax above the core's append and proposal limits",
      );
      this.context.limitHit("peer_frame_bytes");
      this.notifyUnreachable();
      return;
    }
    if (this.queuedBytes() + encoded.length > queuedBytesMaxPerPeer) {
      this.context.logger.warn(
        { peerId: this.peerId, droppedMessages: this.raftQueue.length + 1, queuedBytes: this.queuedBytes(), queuedBytesMaxPerPeer },
        "peer is not keeping up; dropped its queued Raft messages (the leader resends)",
      );
      this.raftQueue = [];
      this.raftQueuedBytes = 0;
      // One hit per drop of the queue, not per message dropped with it: the leader resends them all at once.
      this.context.limitHit("peer_queued_bytes");
      this.notifyUnreachable();
      return;
    }
    this.raftQueue.push(encoded);
    this.raftQueuedBytes += encoded.length;
    this.scheduleFlush();
  }

  private sendSnapshot(message: SnapshotRequest): void {
    const dataBytes = message.snapshot.data.length;
    const { snapshotBytesMax } = this.context.limits;
    if (this.connection === null) {
      this.notifyUnreachable();
      this.defer(() => this.context.onSnapshotStatus(this.peerId, false));
      return;
    }
    if (dataBytes > snapshotBytesMax) {
      this.context.logger.error({ peerId: this.peerId, snapshotBytes: dataBytes, snapshotBytesMax }, "snapshot exceeds snapshotBytesMax; not sent");
      this.context.limitHit("peer_snapshot_bytes");
      this.defer(() => this.context.onSnapshotStatus(this.peerId, false));
      return;
    }
    // A newer snapshot replaces an unfinished one. The core tracks one pending snapshot per follower,
    // so only the newer one's outcome is reported; reporting the old one as failed would abort the new.
    this.outboundSnapshot = new OutboundSnapshot(message, this.nextTransferId, this.context.limits.snapshotChunkBytes);
    this.nextTransferId = this.nextTransferId === transferIdMax ? 1 : this.nextTransferId + 1;
    this.scheduleFlush();
  }

  private finishSnapshot(transfer: OutboundSnapshot, delivered: boolean): void {
    if (this.outboundSnapshot !== transfer) return;
    this.outboundSnapshot = null;
    this.defer(() => this.context.onSnapshotStatus(this.peerId, delivered));
  }

  request(payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const { requestPayloadBytesMax, requestsInFlightMaxPerPeer, queuedBytesMaxPerPeer } = this.context.limits;
    if (this.connection === null) {
      return Promise.reject(new PeerUnavailableError(this.peerId, `not connected to ${this.peerId}`, false));
    }
    // requestPayloadBytesMax is what keeps a request within one frame: its refusals count as frame refusals.
    if (payload.length > requestPayloadBytesMax) {
      this.context.limitHit("peer_frame_bytes");
      const message = `request payload is ${payload.length} bytes; the peer transport carries at most ${requestPayloadBytesMax} (requestPayloadBytesMax, within frameBytesMax)`;
      return Promise.reject(new RequestLimitError(this.peerId, message, false));
    }
    if (this.pendingRequests.size >= requestsInFlightMaxPerPeer) {
      this.context.limitHit("forwarded_requests");
      const message = `${requestsInFlightMaxPerPeer} requests to ${this.peerId} are already awaiting answers (requestsInFlightMaxPerPeer); retry later`;
      return Promise.reject(new RequestLimitError(this.peerId, message, false));
    }
    const queuedBytes = this.queuedBytes();
    if (queuedBytes + requestOverheadBytes + payload.length > queuedBytesMaxPerPeer) {
      this.context.limitHit("peer_queued_bytes");
      const message = `${queuedBytes} bytes already wait to be sent to ${this.peerId} (queuedBytesMaxPerPeer ${queuedBytesMaxPerPeer}): the peer is not keeping up; retry later`;
      return Promise.reject(new RequestLimitError(this.peerId, message, false));
    }
    const { requestId, answer } = this.pendingRequests.add(timeoutMs);
    this.queueControl({ frame: encodeFrame({ kind: "request", requestId, payload }), requestId });
    return answer;
  }

  private queueControl(item: ControlFrame): void {
    this.controlQueue.push(item);
    this.controlQueuedBytes += item.frame.length;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: everything `send` gets in this event-loop turn shares the frames.
    setImmediate(() => this.flush());
  }

  private hasOutbound(): boolean {
    return this.raftQueue.length > 0 || this.controlQueue.length > 0 || (this.outboundSnapshot !== null && !this.outboundSnapshot.lastFrameTaken);
  }

  /**
   * Writes while the socket keeps up. Each write's callback schedules the next flush, so a full socket
   * (bufferedAmount at socketBufferedBytesMax) pauses us until the kernel takes bytes: back-pressure.
   * Raft messages go first: heartbeats must not wait behind snapshot chunks or forwarded requests.
   */
  private flush(): void {
    this.flushScheduled = false;
    const connection = this.connection;
    if (connection === null) return;
    const { frameBytesMax, socketBufferedBytesMax } = this.context.limits;
    const socketHasRoom = (): boolean => connection.ws.bufferedAmount < socketBufferedBytesMax;

    while (this.raftQueue.length > 0 && socketHasRoom()) {
      let count = 0;
      let bodyBytes = 0;
      for (const encoded of this.raftQueue) {
        if (count > 0 && messagesFrameOverheadBytes + bodyBytes + encoded.length > frameBytesMax) break;
        count += 1;
        bodyBytes += encoded.length;
      }
      const batch = this.raftQueue.splice(0, count);
      this.raftQueuedBytes -= bodyBytes;
      this.write(connection, encodeMessagesFrame(batch));
    }

    while (this.controlQueue.length > 0 && socketHasRoom()) {
      const item = this.controlQueue.shift();
      if (item === undefined) break;
      this.controlQueuedBytes -= item.frame.length;
      if (item.requestId !== null && !this.pendingRequests.markWritten(item.requestId)) continue; // timed out while queued
      this.write(connection, item.frame);
    }

    const transfer = this.outboundSnapshot;
    while (transfer !== null && !transfer.lastFrameTaken && socketHasRoom()) {
      const frame = transfer.nextFrame();
      // "Delivered" means the last chunk reached the socket; Raft confirms it with the follower's reply.
      if (transfer.lastFrameTaken) this.write(connection, frame, (written) => this.finishSnapshot(transfer, written));
      else this.write(connection, frame);
    }
  }

  private write(connection: PeerConnection, frame: Uint8Array, onWritten?: (written: boolean) => void): void {
    this.bytesSent += frame.length;
    connection.ws.send(frame, { binary: true }, (error) => {
      onWritten?.(error == null);
      if (this.connection === connection && this.hasOutbound()) this.scheduleFlush();
    });
  }

  // ------------------------------------------------------------------------------------------
  // Inbound

  receive(connection: PeerConnection, frame: Frame): void {
    switch (frame.kind) {
      case "messages":
        this.receiveMessages(connection, frame.messages);
        return;
      case "snapshot-begin":
        this.receiveSnapshotBegin(connection, frame);
        return;
      case "snapshot-chunk":
        this.receiveSnapshotChunk(connection, frame);
        return;
      case "request":
        this.receiveRequest(connection, frame);
        return;
      case "response":
        this.pendingRequests.settle(frame);
        return;
      case "hello":
      case "welcome":
      case "refuse":
        this.context.fail(connection, CloseCode.ProtocolError, `unexpected ${frame.kind} frame after the handshake`);
        return;
    }
  }

  /** A message must travel on its own pair's stream: an authenticated peer cannot speak for another node. */
  private addressMismatch(from: string, to: string): string | null {
    if (from === this.peerId && to === this.context.nodeId) return null;
    return `message from "${from}" to "${to}" on the stream from "${this.peerId}" to "${this.context.nodeId}"`;
  }

  private receiveMessages(connection: PeerConnection, messages: readonly Message[]): void {
    for (const message of messages) {
      const mismatch = this.addressMismatch(message.from, message.to);
      if (mismatch !== null) {
        this.context.fail(connection, CloseCode.PolicyViolation, mismatch);
        return;
      }
      if (message.type === "snapshot" && message.snapshot.data.length > this.context.limits.snapshotBytesMax) {
        this.context.limitHit("peer_snapshot_bytes");
        this.context.fail(connection, CloseCode.TooBig, `snapshot of ${message.snapshot.data.length} bytes exceeds snapshotBytesMax`);
        return;
      }
    }
    for (const message of messages) {
      // The node may close the transport from inside onMessage; stop delivering once the stream is gone.
      if (this.connection !== connection) return;
      this.context.onMessage(message);
    }
  }

  private receiveSnapshotBegin(connection: PeerConnection, begin: SnapshotBeginFrame): void {
    const mismatch = this.addressMismatch(begin.from, begin.to);
    if (mismatch !== null) {
      this.context.fail(connection, CloseCode.PolicyViolation, mismatch);
      return;
    }
    const { snapshotBytesMax } = this.context.limits;
    if (begin.dataBytes > snapshotBytesMax) {
      this.context.limitHit("peer_snapshot_bytes");
      this.context.fail(connection, CloseCode.TooBig, `snapshot of ${begin.dataBytes} bytes exceeds snapshotBytesMax (${snapshotBytesMax})`);
      return;
    }
    // A new stream replaces an unfinished one: the sender gave up on the older snapshot.
    const assembly = new SnapshotAssembly(begin);
    this.inboundSnapshot = assembly;
    if (assembly.complete) this.completeSnapshot(assembly);
  }

  private receiveSnapshotChunk(connection: PeerConnection, chunk: SnapshotChunkFrame): void {
    const assembly = this.inboundSnapshot;
    const violation = assembly === null ? `snapshot chunk for transfer ${chunk.transferId}, which was never begun` : assembly.add(chunk);
    if (violation !== null) {
      this.context.fail(connection, CloseCode.ProtocolError, violation);
      return;
    }
    if (assembly !== null && assembly.complete) this.completeSnapshot(assembly);
  }

  private completeSnapshot(assembly: SnapshotAssembly): void {
    this.inboundSnapshot = null;
    this.context.onMessage(assembly.message());
  }

  private receiveRequest(connection: PeerConnection, request: RequestFrame): void {
    const { requestId } = request;
    const { requestsInFlightMaxPerPeer } = this.context.limits;
    if (this.inboundRequestsInFlight >= requestsInFlightMaxPerPeer) {
      this.context.limitHit("forwarded_requests");
      // The requester shows this reason to its caller: it names the limit, on the node that enforces it.
      const error = `"${this.context.nodeId}" already handles ${requestsInFlightMaxPerPeer} requests from "${this.peerId}" (requestsInFlightMaxPerPeer)`;
      this.respond(connection, { kind: "response", requestId, status: ResponseStatus.Busy, payload: new Uint8Array(0), error });
      return;
    }
    this.inboundRequestsInFlight += 1;
    let answer: Promise<Uint8Array>;
    try {
      answer = Promise.resolve(this.context.onRequest(this.peerId, request.payload));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (payload) => this.answerRequest(connection, requestId, payload),
      (error: unknown) => this.failRequest(connection, requestId, error),
    );
  }

  private answerRequest(connection: PeerConnection, requestId: number, payload: Uint8Array): void {
    if (this.connection !== connection) return; // the requester already got PeerUnavailableError
    this.inboundRequestsInFlight -= 1;
    assert(payload instanceof Uint8Array, "onRequest must resolve to a Uint8Array");
    const { requestPayloadBytesMax } = this.context.limits;
    if (payload.length > requestPayloadBytesMax) {
      this.context.logger.warn({ peerId: this.peerId, responseBytes: payload.length, requestPayloadBytesMax }, "request handler answered more than the transport carries");
      this.context.limitHit("peer_frame_bytes");
      const error = `the answer is ${payload.length} bytes; the peer transport carries at most ${requestPayloadBytesMax}`;
      this.respond(connection, { kind: "response", requestId, status: ResponseStatus.Failed, payload: new Uint8Array(0), error });
      return;
    }
    this.respond(connection, { kind: "response", requestId, status: ResponseStatus.Ok, payload, error: "" });
  }

  private failRequest(connection: PeerConnection, requestId: number, error: unknown): void {
    if (this.connection !== connection) return;
    this.inboundRequestsInFlight -= 1;
    this.context.logger.warn({ peerId: this.peerId, err: error }, "request handler failed");
    const message = truncateUtf8(error instanceof Error ? error.message : String(error), reasonBytesMax);
    this.respond(connection, { kind: "response", requestId, status: ResponseStatus.Failed, payload: new Uint8Array(0), error: message });
  }

  private respond(connection: PeerConnection, response: ResponseFrame): void {
    const frame = encodeFrame(response);
    if (this.queuedBytes() + frame.length > this.context.limits.queuedBytesMaxPerPeer) {
      // The peer is not reading; its request times out there. Queuing more would grow our memory.
      this.context.logger.warn({ peerId: this.peerId, queuedBytes: this.queuedBytes() }, "dropped a response: the peer is not keeping up");
      this.context.limitHit("peer_queued_bytes");
      return;
    }
    if (this.connection === connection) this.queueControl({ frame, requestId: null });
  }
}
