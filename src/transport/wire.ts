// Byte-level primitives of the peer wire format: big-endian integers, length-prefixed bytes and strings.
// Encoding runs every body twice, once through a counter and once through a writer, so that each frame is
// allocated once at its exact size (replication frames carry up to megabytes of entries).

import { assert } from "../util/assert.js";

/** A peer sent bytes that are not a valid frame of the version we speak. Expected; never a bug of ours. */
export class CodecError extends Error {
  override name = "CodecError";
}

/** Node ids and the cluster id, on the wire and in configuration (wire format limits, fixed per version). */
export const idBytesMax = 255;
/** The shared cluster token. */
export const clusterTokenBytesMax = 1024;
/** Refusal reasons and remote error messages; longer texts are cut (see `truncateUtf8`). */
export const reasonBytesMax = 1024;

/** Largest integer a u64 field may carry: JavaScript numbers are exact only up to 2^53 - 1. */
const u64HighWordMax = 0x1f_ffff;
const twoTo32 = 0x1_0000_0000;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Where encoded fields go: either counted (to size the frame) or written. */
export interface Sink {
  u8(value: number): void;
  u16(value: number): void;
  u32(value: number): void;
  u64(value: number): void;
  bool(value: boolean): void;
  /** Raw bytes without a length prefix. */
  raw(bytes: Uint8Array): void;
  /** A u32 length, then the bytes. */
  bytes(bytes: Uint8Array): void;
  /** A u16 length, then UTF-8; `bytesMax` is the format's limit for this field. */
  string(value: string, bytesMax: number): void;
}

class ByteCounter implements Sink {
  byteLength = 0;
  u8(): void {
    this.byteLength += 1;
  }
  u16(): void {
    this.byteLength += 2;
  }
  u32(): void {
    this.byteLength += 4;
  }
  u64(): void {
    this.byteLength += 8;
  }
  bool(): void {
    this.byteLength += 1;
  }
  raw(bytes: Uint8Array): void {
    this.byteLength += bytes.length;
  }
  bytes(bytes: Uint8Array): void {
    this.byteLength += 4 + bytes.length;
  }
  string(value: string, bytesMax: number): void {
    const length = Buffer.byteLength(value, "utf8");
    assert(length <= bytesMax, `string field of ${length} bytes exceeds its wire limit of ${bytesMax}`);
    this.byteLength += 2 + length;
  }
}

class ByteWriter implements Sink {
  private readonly buffer: Uint8Array;
  private readonly view: DataView;
  private offset = 0;

  constructor(byteLength: number) {
    this.buffer = new Uint8Array(byteLength);
    this.view = new DataView(this.buffer.buffer);
  }

  u8(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xff, `u8 out of range: ${value}`);
    this.view.setUint8(this.offset, value);
    this.offset += 1;
  }
  u16(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, `u16 out of range: ${value}`);
    this.view.setUint16(this.offset, value);
    this.offset += 2;
  }
  u32(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value < twoTo32, `u32 out of range: ${value}`);
    this.view.setUint32(this.offset, value);
    this.offset += 4;
  }
  u64(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, `u64 field must be a non-negative safe integer: ${value}`);
    this.view.setUint32(this.offset, Math.floor(value / twoTo32));
    this.view.setUint32(this.offset + 4, value % twoTo32);
    this.offset += 8;
  }
  bool(value: boolean): void {
    this.u8(value ? 1 : 0);
  }
  raw(bytes: Uint8Array): void {
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
  }
  bytes(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }
  string(value: string, bytesMax: number): void {
    const lengthOffset = this.offset;
    this.offset += 2;
    const { written } = textEncoder.encodeInto(value, this.buffer.subarray(this.offset));
    assert(written <= bytesMax, `string field of ${written} bytes exceeds its wire limit of ${bytesMax}`);
    this.view.setUint16(lengthOffset, written);
    this.offset += written;
  }

  finish(): Uint8Array {
    assert(this.offset === this.buffer.length, "encoded size differs from the counted size");
    return this.buffer;
  }
}

/** Runs `write` once to size the output and once to fill it. `write` must be deterministic. */
export function encodeWith(write: (sink: Sink) => void): Uint8Array {
  const counter = new ByteCounter();
  write(counter);
  const writer = new ByteWriter(counter.byteLength);
  write(writer);
  return writer.finish();
}

/** Reads fields in order; every read checks that the bytes are there, so truncation is a CodecError. */
export class Reader {
  private readonly view: DataView;
  private offset = 0;

  constructor(private readonly input: Uint8Array) {
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  }

  get remainingBytes(): number {
    return this.input.length - this.offset;
  }

  private need(byteLength: number, what: string): void {
    if (byteLength > this.remainingBytes) {
      throw new CodecError(`truncated frame: ${what} needs ${byteLength} bytes at offset ${this.offset}, ${this.remainingBytes} left`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    const value = this.view.getUint8(this.offset);
    this.offset += 1;
    return value;
  }
  u16(what: string): number {
    this.need(2, what);
    const value = this.view.getUint16(this.offset);
    this.offset += 2;
    return value;
  }
  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }
  u64(what: string): number {
    this.need(8, what);
    const high = this.view.getUint32(this.offset);
    const low = this.view.getUint32(this.offset + 4);
    if (high > u64HighWordMax) throw new CodecError(`${what} does not fit a safe integer`);
    this.offset += 8;
    return high * twoTo32 + low;
  }
  bool(what: string): boolean {
    const value = this.u8(what);
    if (value > 1) throw new CodecError(`${what} must be 0 or 1 (got ${value})`);
    return value === 1;
  }
  /** A u32 length and that many bytes. `copy` detaches the result from the frame it came in. */
  bytes(what: string, copy: boolean): Uint8Array {
    const length = this.u32(`${what} length`);
    return this.raw(length, what, copy);
  }
  raw(length: number, what: string, copy: boolean): Uint8Array {
    this.need(length, what);
    const view = this.input.subarray(this.offset, this.offset + length);
    this.offset += length;
    return copy ? new Uint8Array(view) : view;
  }
  string(what: string, bytesMax: number): string {
    const length = this.u16(`${what} length`);
    if (length > bytesMax) throw new CodecError(`${what} is ${length} bytes; the limit is ${bytesMax}`);
    const utf8 = this.raw(length, what, false);
    try {
      return textDecoder.decode(utf8);
    } catch {
      throw new CodecError(`${what} is not valid UTF-8`);
    }
  }
  /** A count of items that each take at least `itemBytesMin`: a lying count cannot make us allocate. */
  count(what: string, itemBytesMin: number): number {
    const count = this.u32(what);
    if (count * itemBytesMin > this.remainingBytes) {
      throw new CodecError(`truncated frame: ${what} says ${count} but only ${this.remainingBytes} bytes are left`);
    }
    return count;
  }

  expectEnd(what: string): void {
    if (this.remainingBytes !== 0) throw new CodecError(`${this.remainingBytes} trailing bytes after ${what}`);
  }
}
