// The peer wire format, version 2 (version 1 had no member addresses in a snapshot's meta). Every WebSocket binary message is one frame:
//
//   u8 version (2) | u8 frame type | body
//
// Integers are big-endian; 8-byte (u53) fields carry JavaScript safe integers; strings are a u16 byte length
// and UTF-8; byte arrays are a u32 length and the bytes. A frame must be consumed exactly (no trailing bytes).
// A receiver that meets another version closes the connection: versions change only with a new frame
// layout, and mixed-version clusters are upgraded by restarting nodes onto a version both sides speak.

import type { Message, SnapshotMeta } from "../raft/types.js";
import type { ByteReader } from "../util/bytes.js";
import { messageBytesMin, readMessage, readSnapshotMeta, writeMessage, writeSnapshotMeta } from "./message-codec.js";
import { clusterTokenBytesMax, CodecError, decodeWire, encodeWire, idBytesMax, reasonBytesMax } from "./wire.js";

export { addressBytesMax, clusterTokenBytesMax, CodecError, idBytesMax, reasonBytesMax } from "./wire.js";

export const wireVersion = 2;

/** Default for the largest frame a peer may send; the transport may configure another limit. */
export const frameBytesMaxDefault = 4 << 20;

export const FrameType = {
  /** Dialer → acceptor: who I am, whom I meant to reach, and the cluster token. */
  Hello: 1,
  /** Acceptor → dialer: handshake accepted. */
  Welcome: 2,
  /** Acceptor → dialer: handshake refused, with a reason; the acceptor closes the socket. */
  Refuse: 3,
  /** One or more Raft messages, in the order `send` was called. */
  Messages: 4,
  /** Starts an InstallSnapshot stream: the message without its data, and the data's size. */
  SnapshotBegin: 5,
  /** The next `data` bytes of the snapshot stream `transferId`, at `offset`. */
  SnapshotChunk: 6,
  Request: 7,
  Response: 8,
} as const;

/** How a request ended on the peer that handled it. */
export const ResponseStatus = {
  Ok: 0,
  /** The peer's request handler failed; `error` says why. */
  Failed: 1,
  /** The peer already handles as many of our requests as it allows. */
  Busy: 2,
} as const;
export type ResponseStatus = (typeof ResponseStatus)[keyof typeof ResponseStatus];

export interface HelloFrame {
  readonly kind: "hello";
  readonly clusterId: string;
  readonly fromNodeId: string;
  readonly toNodeId: string;
  /** Null when the dialer has no token configured. */
  readonly clusterToken: string | null;
}
export interface WelcomeFrame {
  readonly kind: "welcome";
  readonly clusterId: string;
  readonly nodeId: string;
}
export interface RefuseFrame {
  readonly kind: "refuse";
  readonly reason: string;
}
export interface MessagesFrame {
  readonly kind: "messages";
  readonly messages: readonly Message[];
}
export interface SnapshotBeginFrame {
  readonly kind: "snapshot-begin";
  readonly transferId: number;
  readonly from: string;
  readonly to: string;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly dataBytes: number;
}
export interface SnapshotChunkFrame {
  readonly kind: "snapshot-chunk";
  readonly transferId: number;
  readonly offset: number;
  /** A view into the received frame; the receiver copies it into the reassembled snapshot. */
  readonly data: Uint8Array;
}
export interface RequestFrame {
  readonly kind: "request";
  readonly requestId: number;
  readonly payload: Uint8Array;
}
export interface ResponseFrame {
  readonly kind: "response";
  readonly requestId: number;
  readonly status: ResponseStatus;
  /** The handler's answer when `status` is Ok, else empty. */
  readonly payload: Uint8Array;
  /** Why the request failed when `status` is not Ok, else empty. */
  readonly error: string;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | RefuseFrame
  | MessagesFrame
  | SnapshotBeginFrame
  | SnapshotChunkFrame
  | RequestFrame
  | ResponseFrame;

/** Version byte, frame type byte. */
export const frameHeaderBytes = 2;
/** Header and message count of a Messages frame: what a batch adds to its encoded messages. */
export const messagesFrameOverheadBytes = frameHeaderBytes + 4;
/** Header, transfer id, offset and length of a SnapshotChunk frame. */
export const snapshotChunkOverheadBytes = frameHeaderBytes + 4 + 8 + 4;
/** Header, request id and length of a Request frame. */
export const requestOverheadBytes = frameHeaderBytes + 4 + 4;

// ---------------------------------------------------------------------------------------------
// Encoding. Values come from this node (the core, the configuration), so a value the format cannot
// carry is a bug and asserts.

/** One Raft message without a frame around it; `encodeMessagesFrame` batches these. */
export function encodeMessage(message: Message): Uint8Array {
  return encodeWire((sink) => writeMessage(sink, message));
}

/** A Messages frame from messages encoded by `encodeMessage`, in order. */
export function encodeMessagesFrame(encodedMessages: readonly Uint8Array[]): Uint8Array {
  let byteLength = messagesFrameOverheadBytes;
  for (const encoded of encodedMessages) byteLength += encoded.length;
  const frame = new Uint8Array(byteLength);
  const view = new DataView(frame.buffer);
  view.setUint8(0, wireVersion);
  view.setUint8(1, FrameType.Messages);
  view.setUint32(2, encodedMessages.length);
  let offset = messagesFrameOverheadBytes;
  for (const encoded of encodedMessages) {
    frame.set(encoded, offset);
    offset += encoded.length;
  }
  return frame;
}

/** A Messages frame carrying `messages` in order. */
export function encodeMessages(messages: readonly Message[]): Uint8Array {
  return encodeMessagesFrame(messages.map(encodeMessage));
}

export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.kind === "messages") return encodeMessages(frame.messages);
  return encodeWire((sink) => {
    sink.u8(wireVersion);
    switch (frame.kind) {
      case "hello":
        sink.u8(FrameType.Hello);
        sink.string(frame.clusterId, idBytesMax);
        sink.string(frame.fromNodeId, idBytesMax);
        sink.string(frame.toNodeId, idBytesMax);
        sink.bool(frame.clusterToken !== null);
        if (frame.clusterToken !== null) sink.string(frame.clusterToken, clusterTokenBytesMax);
        return;
      case "welcome":
        sink.u8(FrameType.Welcome);
        sink.string(frame.clusterId, idBytesMax);
        sink.string(frame.nodeId, idBytesMax);
        return;
      case "refuse":
        sink.u8(FrameType.Refuse);
        sink.string(frame.reason, reasonBytesMax);
        return;
      case "snapshot-begin":
        sink.u8(FrameType.SnapshotBegin);
        sink.u32(frame.transferId);
        sink.string(frame.from, idBytesMax);
        sink.string(frame.to, idBytesMax);
        sink.u53(frame.term);
        writeSnapshotMeta(sink, frame.meta);
        sink.u53(frame.dataBytes);
        return;
      case "snapshot-chunk":
        sink.u8(FrameType.SnapshotChunk);
        sink.u32(frame.transferId);
        sink.u53(frame.offset);
        sink.bytes(frame.data);
        return;
      case "request":
        sink.u8(FrameType.Request);
        sink.u32(frame.requestId);
        sink.bytes(frame.payload);
        return;
      case "response":
        sink.u8(FrameType.Response);
        sink.u32(frame.requestId);
        sink.u8(frame.status);
        if (frame.status === ResponseStatus.Ok) sink.bytes(frame.payload);
        else sink.string(frame.error, reasonBytesMax);
        return;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Decoding. Bytes come from the network: anything wrong is a CodecError, never another exception.

/** Decodes one frame; throws CodecError for a frame that is too large, truncated or not version 1. */
export function decodeFrame(bytes: Uint8Array, frameBytesMax: number = frameBytesMaxDefault): Frame {
  if (bytes.length > frameBytesMax) throw new CodecError(`frame is ${bytes.length} bytes; the limit is ${frameBytesMax}`);
  if (bytes.length === 0) throw new CodecError("empty frame");
  return decodeWire(bytes, (reader) => {
    const version = reader.u8("version");
    if (version !== wireVersion) throw new CodecError(`unsupported wire version ${version} (this node speaks version ${wireVersion})`);
    const frameType = reader.u8("frame type");
    const frame = readFrameBody(reader, frameType);
    reader.expectEnd(`${frame.kind} frame`);
    return frame;
  });
}

function readFrameBody(reader: ByteReader, frameType: number): Frame {
  switch (frameType) {
    case FrameType.Hello: {
      const clusterId = reader.string("cluster id", idBytesMax);
      const fromNodeId = reader.string("from node id", idBytesMax);
      const toNodeId = reader.string("to node id", idBytesMax);
      const clusterToken = reader.bool("token flag") ? reader.string("cluster token", clusterTokenBytesMax) : null;
      return { kind: "hello", clusterId, fromNodeId, toNodeId, clusterToken };
    }
    case FrameType.Welcome:
      return { kind: "welcome", clusterId: reader.string("cluster id", idBytesMax), nodeId: reader.string("node id", idBytesMax) };
    case FrameType.Refuse:
      return { kind: "refuse", reason: reader.string("refusal reason", reasonBytesMax) };
    case FrameType.Messages: {
      const count = reader.count("message count", messageBytesMin);
      const messages: Message[] = [];
      for (let i = 0; i < count; i++) messages.push(readMessage(reader));
      return { kind: "messages", messages };
    }
    case FrameType.SnapshotBegin: {
      const transferId = reader.u32("transfer id");
      const from = reader.string("from", idBytesMax);
      const to = reader.string("to", idBytesMax);
      const term = reader.u53("term");
      const meta = readSnapshotMeta(reader);
      const dataBytes = reader.u53("snapshot size");
      return { kind: "snapshot-begin", transferId, from, to, term, meta, dataBytes };
    }
    case FrameType.SnapshotChunk: {
      const transferId = reader.u32("transfer id");
      const offset = reader.u53("chunk offset");
      const data = reader.bytes("chunk", false);
      return { kind: "snapshot-chunk", transferId, offset, data };
    }
    case FrameType.Request:
      return { kind: "request", requestId: reader.u32("request id"), payload: reader.bytes("request payload", true) };
    case FrameType.Response: {
      const requestId = reader.u32("request id");
      const status = reader.u8("response status");
      if (status === ResponseStatus.Ok) {
        return { kind: "response", requestId, status, payload: reader.bytes("response payload", true), error: "" };
      }
      if (status === ResponseStatus.Failed || status === ResponseStatus.Busy) {
        return { kind: "response", requestId, status, payload: new Uint8Array(0), error: reader.string("response error", reasonBytesMax) };
      }
      throw new CodecError(`unknown response status ${status}`);
    }
    default:
      throw new CodecError(`unknown frame type ${frameType}`);
  }
}

/** `text` cut to at most `bytesMax` bytes of UTF-8, on a character boundary. */
export function truncateUtf8(text: string, bytesMax: number): string {
  if (Buffer.byteLength(text, "utf8") <= bytesMax) return text;
  let cut = text.slice(0, bytesMax);
  while (Buffer.byteLength(cut, "utf8") > bytesMax - 3) cut = cut.slice(0, -1);
  return `${cut}...`;
}
