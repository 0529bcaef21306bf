// InstallSnapshot on the wire: the sender cuts `snapshot.data` into SnapshotChunk frames behind one
// SnapshotBegin; the receiver checks that chunks continue each other and reassembles the whole value
// the core expects (types.ts: "the core sees the whole value").

import type { SnapshotRequest } from "../raft/types.js";
import { assert } from "../util/assert.js";
import { encodeFrame, type SnapshotBeginFrame, type SnapshotChunkFrame } from "./codec.js";

/** One snapshot being sent: hands out its frames one at a time, as the socket has room. */
export class OutboundSnapshot {
  private begun = false;
  private nextOffset = 0;
  /** Every frame has been handed out; the last one's write callback decides the outcome. */
  lastFrameTaken = false;

  constructor(
    readonly message: SnapshotRequest,
    readonly transferId: number,
    private readonly chunkBytes: number,
  ) {}

  nextFrame(): Uint8Array {
    assert(!this.lastFrameTaken, "snapshot frame taken after the last one");
    const { message } = this;
    const data = message.snapshot.data;
    if (!this.begun) {
      this.begun = true;
      this.lastFrameTaken = data.length === 0;
      return encodeFrame({
        kind: "snapshot-begin",
        transferId: this.transferId,
        from: message.from,
        to: message.to,
        term: message.term,
        meta: message.snapshot.meta,
        dataBytes: data.length,
      });
    }
    const offset = this.nextOffset;
    const chunk = data.subarray(offset, offset + this.chunkBytes);
    this.nextOffset += chunk.length;
    this.lastFrameTaken = this.nextOffset === data.length;
    return encodeFrame({ kind: "snapshot-chunk", transferId: this.transferId, offset, data: chunk });
  }
}

/** One snapshot being received. Its size was checked against snapshotBytesMax when it began. */
export class SnapshotAssembly {
  private readonly chunks: Uint8Array[] = [];
  private receivedBytes = 0;

  constructor(readonly begin: SnapshotBeginFrame) {}

  get complete(): boolean {
    return this.receivedBytes === this.begin.dataBytes;
  }

  /** Adds the next chunk; returns why it does not continue the stream, or null. */
  add(chunk: SnapshotChunkFrame): string | null {
    const { begin } = this;
    if (chunk.transferId !== begin.transferId) return `snapshot chunk for transfer ${chunk.transferId}, which was never begun`;
    if (chunk.offset !== this.receivedBytes || this.receivedBytes + chunk.data.length > begin.dataBytes) {
      return `snapshot chunk at offset ${chunk.offset} (${chunk.data.length} bytes) does not continue ${this.receivedBytes} of ${begin.dataBytes} bytes`;
    }
    this.chunks.push(chunk.data);
    this.receivedBytes += chunk.data.length;
    return null;
  }

  /** The whole InstallSnapshot message, once `complete`. */
  message(): SnapshotRequest {
    assert(this.complete, "snapshot assembled before all chunks arrived");
    const { begin } = this;
    const data = new Uint8Array(begin.dataBytes);
    let offset = 0;
    for (const chunk of this.chunks) {
      data.set(chunk, offset);
      offset += chunk.length;
    }
    assert(offset === begin.dataBytes, "reassembled snapshot differs from its announced size");
    return { type: "snapshot", from: begin.from, to: begin.to, term: begin.term, snapshot: { meta: begin.meta, data } };
  }
}
