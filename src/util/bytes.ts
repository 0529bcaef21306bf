// Binary writing and bounds-checked reading, shared by the on-disk formats (WAL, snapshot files: little-endian)
// and the peer wire format (big-endian). Each format picks its byte order once; the field layouts are the
// formats' own. Integers that Raft counts (indexes, terms) travel as 8-byte `u53` fields: two u32 words
// in the format's byte order, below 2^53, the largest integer a JavaScript number holds exactly.

import { assert } from "./assert.js";

/** Order of the bytes of every multi-byte integer in one format. */
export type ByteOrder = "little-endian" | "big-endian";

const wordSpan = 2 ** 32;
/** Largest high word of an integer below 2^53: anything above it cannot have been written by us. */
const u53HighWordMax = 0x1f_ffff;

const textEncoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the string; dropped, "\uFEFForders" and "orders" would be one lock.
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/**
 * Strings up to this many characters are tried as ASCII by hand first: lock names, owners and ids are
 * short and ASCII, and a call into the UTF-8 encoder or decoder costs several times a loop over them.
 */
const asciiFastPathCharsMax = 64;
// Node's Buffer method works on any Uint8Array; for ASCII bytes latin1 and UTF-8 decode alike.
const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;

function isShortAscii(text: string): boolean {
  if (text.length > asciiFastPathCharsMax) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return false;
  return true;
}

function isShortAsciiBytes(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start > asciiFastPathCharsMax) return false;
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

/**
 * Bytes that do not decode. Each layer maps it to its own error: storage to a StorageCorruptError naming the
 * file, the transport to a CodecError that closes the connection.
 */
export class DecodeError extends Error {
  override name = "DecodeError";

  constructor(
    message: string,
    /** Offset in the buffer being decoded where the problem was found. */
    readonly offsetBytes: number,
  ) {
    super(message);
  }
}

/** Where encoded fields go: counted (to size a buffer exactly) or written. */
export interface ByteSink {
  u8(value: number): void;
  u16(value: number): void;
  u32(value: number): void;
  /** A non-negative safe integer in 8 bytes. */
  u53(value: number): void;
  bool(value: boolean): void;
  /** Bytes without a length prefix. */
  raw(data: Uint8Array): void;
  /** A u32 length, then the bytes. */
  bytes(data: Uint8Array): void;
  /** A u16 byte length, then UTF-8; `bytesMax` is the format's limit for this field. */
  string(text: string, bytesMax: number): void;
}

function utf8Bytes(text: string, bytesMax: number): number {
  const lengthBytes = isShortAscii(text) ? text.length : Buffer.byteLength(text, "utf8");
  assert(lengthBytes <= bytesMax, `string field of ${lengthBytes} bytes is above its limit of ${bytesMax}`);
  return lengthBytes;
}

/** Counts the bytes that writing the same fields to a ByteWriter would take. */
export class ByteCounter implements ByteSink {
  lengthBytes = 0;

  u8(): void {
    this.lengthBytes += 1;
  }
  u16(): void {
    this.lengthBytes += 2;
  }
  u32(): void {
    this.lengthBytes += 4;
  }
  u53(): void {
    this.lengthBytes += 8;
  }
  bool(): void {
    this.lengthBytes += 1;
  }
  raw(data: Uint8Array): void {
    this.lengthBytes += data.length;
  }
  bytes(data: Uint8Array): void {
    this.lengthBytes += 4 + data.length;
  }
  string(text: string, bytesMax: number): void {
    this.lengthBytes += 2 + utf8Bytes(text, bytesMax);
  }
}

/** A buffer written front to back, growing as needed; `view()` returns the bytes written so far without copying. */
export class ByteWriter implements ByteSink {
  private buffer: Uint8Array;
  private data: DataView;
  private lengthBytes = 0;
  private readonly littleEndian: boolean;

  constructor(capacityBytes = 4096, byteOrder: ByteOrder = "little-endian") {
    this.buffer = new Uint8Array(capacityBytes);
    this.data = new DataView(this.buffer.buffer);
    this.littleEndian = byteOrder === "little-endian";
  }

  get length(): number {
    return this.lengthBytes;
  }

  u8(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xff, `u8 out of range: ${value}`);
    this.ensure(1);
    this.buffer[this.lengthBytes++] = value;
  }

  u16(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, `u16 out of range: ${value}`);
    this.ensure(2);
    this.data.setUint16(this.lengthBytes, value, this.littleEndian);
    this.lengthBytes += 2;
  }

  u32(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value < wordSpan, `u32 out of range: ${value}`);
    this.ensure(4);
    this.data.setUint32(this.lengthBytes, value, this.littleEndian);
    this.lengthBytes += 4;
  }

  u53(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, `not an integer in [0, 2^53): ${value}`);
    const low = value % wordSpan;
    const high = (value - low) / wordSpan;
    this.ensure(8);
    this.data.setUint32(this.lengthBytes, this.littleEndian ? low : high, this.littleEndian);
    this.data.setUint32(this.lengthBytes + 4, this.littleEndian ? high : low, this.littleEndian);
    this.lengthBytes += 8;
  }

  bool(value: boolean): void {
    this.u8(value ? 1 : 0);
  }

  raw(data: Uint8Array): void {
    this.ensure(data.length);
    this.buffer.set(data, this.lengthBytes);
    this.lengthBytes += data.length;
  }

  bytes(data: Uint8Array): void {
    this.u32(data.length);
    this.raw(data);
  }

  string(text: string, bytesMax: number): void {
    const lengthBytes = utf8Bytes(text, bytesMax);
    this.u16(lengthBytes);
    this.ensure(lengthBytes);
    if (lengthBytes === text.length && lengthBytes <= asciiFastPathCharsMax) {
      // As many bytes as characters: every character is ASCII, one byte each.
      for (let i = 0; i < lengthBytes; i++) this.buffer[this.lengthBytes + i] = text.charCodeAt(i);
    } else {
      textEncoder.encodeInto(text, this.buffer.subarray(this.lengthBytes, this.lengthBytes + lengthBytes));
    }
    this.lengthBytes += lengthBytes;
  }

  /** Skips `count` zero bytes to be filled in later with `setU32At`; returns their offset. */
  reserve(count: number): number {
    this.ensure(count);
    const offset = this.lengthBytes;
    this.buffer.fill(0, offset, offset + count);
    this.lengthBytes += count;
    return offset;
  }

  setU32At(offset: number, value: number): void {
    assert(offset + 4 <= this.lengthBytes, "setU32At outside the written bytes");
    this.data.setUint32(offset, value >>> 0, this.littleEndian);
  }

  /** The bytes written so far (a view: valid until the next write). */
  view(start = 0, end = this.lengthBytes): Buffer {
    assert(start >= 0 && start <= end && end <= this.lengthBytes, "view outside the written bytes");
    return Buffer.from(this.buffer.buffer, this.buffer.byteOffset + start, end - start);
  }

  /** The written bytes when they fill the whole capacity: the buffer itself, not a view of a larger one. */
  filled(): Uint8Array {
    assert(this.lengthBytes === this.buffer.length, "written bytes differ from the capacity they were sized for");
    return this.buffer;
  }

  private ensure(extraBytes: number): void {
    const neededBytes = this.lengthBytes + extraBytes;
    if (neededBytes <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(neededBytes, this.buffer.length * 2));
    grown.set(this.buffer.subarray(0, this.lengthBytes));
    this.buffer = grown;
    this.data = new DataView(grown.buffer);
  }
}

/**
 * Runs `write` once to size the output and once to fill it, so that the result is allocated once at its
 * exact size (replication frames carry up to megabytes of entries). `write` must be deterministic.
 */
export function encodeWith(byteOrder: ByteOrder, write: (sink: ByteSink) => void): Uint8Array {
  const counter = new ByteCounter();
  write(counter);
  const writer = new ByteWriter(counter.lengthBytes, byteOrder);
  write(writer);
  return writer.filled();
}

/** Reads `[start, end)` of a buffer; every read past `end` throws a DecodeError naming what was being read. */
export class ByteReader {
  private readonly data: DataView;
  private readonly littleEndian: boolean;
  private offset: number;

  constructor(
    private readonly buffer: Uint8Array,
    start = 0,
    private readonly end = buffer.length,
    byteOrder: ByteOrder = "little-endian",
  ) {
    assert(start >= 0 && start <= end && end <= buffer.length, "reader range outside the buffer");
    this.data = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.littleEndian = byteOrder === "little-endian";
    this.offset = start;
  }

  get position(): number {
    return this.offset;
  }

  get remainingBytes(): number {
    return this.end - this.offset;
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buffer[this.offset++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const value = this.data.getUint16(this.offset, this.littleEndian);
    this.offset += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.data.getUint32(this.offset, this.littleEndian);
    this.offset += 4;
    return value;
  }

  u53(what: string): number {
    this.need(8, what);
    const first = this.data.getUint32(this.offset, this.littleEndian);
    const second = this.data.getUint32(this.offset + 4, this.littleEndian);
    const [low, high] = this.littleEndian ? [first, second] : [second, first];
    if (high > u53HighWordMax) {
      throw new DecodeError(`${what} is ${high} * 2^32 + ${low}, above the largest safe integer (2^53 - 1)`, this.offset);
    }
    this.offset += 8;
    return high * wordSpan + low;
  }

  bool(what: string): boolean {
    const at = this.offset;
    const value = this.u8(what);
    if (value > 1) throw new DecodeError(`${what} must be 0 or 1 (got ${value})`, at);
    return value === 1;
  }

  /**
   * The next `count` bytes. `copy` detaches the result from the buffer being read, so that a small value
   * does not keep a large frame or file alive; without it the result is a view.
   */
  raw(count: number, what: string, copy: boolean): Uint8Array {
    this.need(count, what);
    const view = this.buffer.subarray(this.offset, this.offset + count);
    this.offset += count;
    return copy ? new Uint8Array(view) : view;
  }

  /** A u32 length and that many bytes (see `raw` for `copy`). */
  bytes(what: string, copy: boolean): Uint8Array {
    const count = this.u32(`${what} length`);
    return this.raw(count, what, copy);
  }

  /** A u16 byte length and that much UTF-8. */
  string(what: string, bytesMax: number): string {
    const at = this.offset;
    const lengthBytes = this.u16(`${what} length`);
    if (lengthBytes > bytesMax) throw new DecodeError(`${what} is ${lengthBytes} bytes long, above the limit of ${bytesMax}`, at);
    this.need(lengthBytes, what);
    const start = this.offset;
    const end = start + lengthBytes;
    this.offset = end;
    // No subarray for the fast path: most strings decoded while applying entries are short ASCII.
    if (isShortAsciiBytes(this.buffer, start, end)) return latin1Slice.call(this.buffer, start, end);
    try {
      return textDecoder.decode(this.buffer.subarray(start, end));
    } catch {
      throw new DecodeError(`${what} is not valid UTF-8`, at);
    }
  }

  /** A u32 count of items that each take at least `itemBytesMin`: a lying count cannot make us allocate. */
  count(what: string, itemBytesMin: number): number {
    const at = this.offset;
    const count = this.u32(what);
    if (count * itemBytesMin > this.remainingBytes) {
      throw new DecodeError(`truncated: ${what} says ${count} but only ${this.remainingBytes} bytes are left`, at);
    }
    return count;
  }

  /** Every byte of the range must have been read: trailing bytes mean a different layout than ours. */
  expectEnd(what: string): void {
    if (this.offset !== this.end) throw new DecodeError(`${this.end - this.offset} trailing bytes after the ${what}`, this.offset);
  }

  private need(count: number, what: string): void {
    if (count > this.remainingBytes) {
      throw new DecodeError(`truncated: ${what} needs ${count} bytes at offset ${this.offset}, but only ${this.remainingBytes} are left`, this.offset);
    }
  }
}

/** Offset of the last non-zero byte in `[start, buffer.length)`, or -1 when the range is all zeros. */
export function lastNonZeroOffset(buffer: Uint8Array, start: number): number {
  for (let offset = buffer.length - 1; offset >= start; offset--) {
    if (buffer[offset] !== 0) return offset;
  }
  return -1;
}
