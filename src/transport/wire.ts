// The peer wire format's fixed parts: its byte order, its field limits and its decode error. Frames and
// messages (codec.ts, message-codec.ts) are written and read through these two functions only, so that
// every field is big-endian and every undecodable byte is a CodecError.

import { ByteReader, DecodeError, encodeWith, type ByteSink } from "../util/bytes.js";

/** A peer sent bytes that are not a valid frame of the version we speak. Expected; never a bug of ours. */
export class CodecError extends Error {
  override name = "CodecError";
}

/** Node ids and the cluster id, on the wire and in configuration (wire format limits, fixed per version). */
export const idBytesMax = 255;
/** A member's peer address in a cluster configuration, `host:port` (a DNS name is at most 253 bytes). */
export const addressBytesMax = 300;
/** The shared cluster token. */
export const clusterTokenBytesMax = 1024;
/** Refusal reasons and remote error messages; longer texts are cut (see `truncateUtf8`). */
export const reasonBytesMax = 1024;

/** Network byte order: integers are big-endian on the wire. */
const wireByteOrder = "big-endian";

/** Encodes the fields `write` emits, in an array of exactly their size. */
export function encodeWire(write: (sink: ByteSink) => void): Uint8Array {
  return encodeWith(wireByteOrder, write);
}

/** Runs `read` over `bytes`; bytes that do not decode throw a CodecError, never another exception. */
export function decodeWire<T>(bytes: Uint8Array, read: (reader: ByteReader) => T): T {
  try {
    return read(new ByteReader(bytes, 0, bytes.length, wireByteOrder));
  } catch (error) {
    if (error instanceof DecodeError) throw new CodecError(error.message, { cause: error });
    throw error;
  }
}
