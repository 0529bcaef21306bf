// Little-endian binary writing and bounds-checked reading for the WAL and snapshot formats.
// Integers that Raft counts (indexes, terms) are stored as two u32 words and must stay below 2^53, the
// largest integer a JavaScript number holds exactly.

import { assert } from "../util/assert.js";

const wordSpan = 2 ** 32;
/** Largest high word of an integer below 2^53: anything above it cannot have been written by us. */
const u53HighWordMax = 0x1f_ffff;

/** Bytes that do not decode: the caller turns this into a StorageCorruptError naming the file. */
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

/** A growable buffer written front to back; `view()` returns the bytes written so far without copying. */
export class ByteWriter {
  private buffer: Buffer;
  private lengthBytes = 0;

  constructor(capacityBytes = 4096) {
    this.buffer = Buffer.allocUnsafe(capacityBytes);
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
    this.lengthBytes = this.buffer.writeUInt16LE(value, this.lengthBytes);
  }

  u32(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value < wordSpan, `u32 out of range: ${value}`);
    this.ensure(4);
    this.lengthBytes = this.buffer.writeUInt32LE(value, this.lengthBytes);
  }

  /** A non-negative safe integer, low word first. */
  u53(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, `not an integer in [0, 2^53): ${value}`);
    const low = value % wordSpan;
    this.ensure(8);
    this.buffer.writeUInt32LE(low, this.lengthBytes);
    this.buffer.writeUInt32LE((value - low) / wordSpan, this.lengthBytes + 4);
    this.lengthBytes += 8;
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buffer.set(data, this.lengthBytes);
    this.lengthBytes += data.length;
  }

  /** Skips `count` bytes to be filled in later with `setU32At`; returns their offset. */
  reserve(count: number): number {
    this.ensure(count);
    const offset = this.lengthBytes;
    this.buffer.fill(0, offset, offset + count);
    this.lengthBytes += count;
    return offset;
  }

  setU32At(offset: number, value: number): void {
    assert(offset + 4 <= this.lengthBytes, "setU32At outside the written bytes");
    this.buffer.writeUInt32LE(value >>> 0, offset);
  }

  /** The bytes written so far (a view: valid until the next write). */
  view(start = 0, end = this.lengthBytes): Buffer {
    assert(start >= 0 && start <= end && end <= this.lengthBytes, "view outside the written bytes");
    return this.buffer.subarray(start, end);
  }

  private ensure(extraBytes: number): void {
    const neededBytes = this.lengthBytes + extraBytes;
    if (neededBytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(neededBytes, this.buffer.length * 2));
    this.buffer.copy(grown, 0, 0, this.lengthBytes);
    this.buffer = grown;
  }
}

/** Reads `[start, end)` of a buffer; every read past `end` throws a DecodeError naming what was being read. */
export class ByteReader {
  private offset: number;

  constructor(
    private readonly buffer: Buffer,
    start: number,
    private readonly end: number,
  ) {
    assert(start >= 0 && start <= end && end <= buffer.length, "reader range outside the buffer");
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
    const value = this.buffer.readUInt16LE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  u53(what: string): number {
    this.need(8, what);
    const low = this.buffer.readUInt32LE(this.offset);
    const high = this.buffer.readUInt32LE(this.offset + 4);
    if (high > u53HighWordMax) throw new DecodeError(`${what} is ${high} * 2^32 + ${low}, beyond 2^53`, this.offset);
    this.offset += 8;
    return high * wordSpan + low;
  }

  /** A copy of the next `count` bytes, so that the (large) buffer being read is not kept alive by it. */
  bytes(count: number, what: string): Uint8Array {
    this.need(count, what);
    const copy = new Uint8Array(this.buffer.subarray(this.offset, this.offset + count));
    this.offset += count;
    return copy;
  }

  /** A UTF-8 string stored as a u16 byte length and its bytes. */
  string(bytesMax: number, what: string): string {
    const lengthBytes = this.u16(`${what} length`);
    if (lengthBytes > bytesMax) throw new DecodeError(`${what} is ${lengthBytes} bytes long, above the limit of ${bytesMax}`, this.offset);
    this.need(lengthBytes, what);
    const text = this.buffer.toString("utf8", this.offset, this.offset + lengthBytes);
    this.offset += lengthBytes;
    return text;
  }

  /** Every byte of the range must have been read: trailing bytes mean a different layout than ours. */
  expectEnd(what: string): void {
    if (this.offset !== this.end) throw new DecodeError(`${this.end - this.offset} unexpected bytes after the ${what}`, this.offset);
  }

  private need(count: number, what: string): void {
    if (this.offset + count > this.end) throw new DecodeError(`${what} runs past the end of its record`, this.offset);
  }
}

/** Writes a UTF-8 string as a u16 byte length and its bytes. */
export function writeString(writer: ByteWriter, text: string, bytesMax: number, what: string): void {
  const encoded = Buffer.from(text, "utf8");
  assert(encoded.length <= bytesMax, `${what} is ${encoded.length} bytes long, above the limit of ${bytesMax}`);
  writer.u16(encoded.length);
  writer.bytes(encoded);
}

/** Offset of the last non-zero byte in `[start, buffer.length)`, or -1 when the range is all zeros. */
export function lastNonZeroOffset(buffer: Buffer, start: number): number {
  for (let offset = buffer.length - 1; offset >= start; offset--) {
    if (buffer[offset] !== 0) return offset;
  }
  return -1;
}
