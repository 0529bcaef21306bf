import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ByteReader, DecodeError, encodeWith } from "../../src/util/bytes.js";

const stringFieldBytesMax = 0xffff;

function encodeStrings(texts: readonly string[]): Uint8Array {
  return encodeWith("little-endian", (sink) => {
    for (const text of texts) sink.string(text, stringFieldBytesMax);
  });
}

/** The bytes every earlier version wrote: a u16 length and the encoder's UTF-8. */
function referenceBytes(texts: readonly string[]): Uint8Array {
  const parts: number[] = [];
  for (const text of texts) {
    const utf8 = new TextEncoder().encode(text);
    parts.push(utf8.length & 0xff, utf8.length >> 8, ...utf8);
  }
  return Uint8Array.from(parts);
}

function decodeStrings(bytes: Uint8Array, count: number): string[] {
  const reader = new ByteReader(bytes);
  return Array.from({ length: count }, () => reader.string("text", stringFieldBytesMax));
}

describe("string fields", () => {
  // Snapshots must be byte-identical on every member, whichever version wrote them: the ASCII fast path
  // may change speed, never bytes.
  const samples = ["", "a", "lock:orders/42", "x".repeat(64), "y".repeat(65), "é", "ab\u00ffcd", "日本語のロック", "🔒 lock", "a".repeat(63) + "é", "\u007f\u0000"];

  it("are written as the UTF-8 encoder writes them, short ASCII, long, non-ASCII and astral alike", () => {
    expect(encodeStrings(samples)).toEqual(referenceBytes(samples));
    expect(decodeStrings(encodeStrings(samples), samples.length)).toEqual(samples);
  });

  it("round-trip any string, and match the encoder's bytes (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "binary", maxLength: 80 }), fc.string({ unit: "grapheme-ascii", maxLength: 70 }))), (texts) => {
        const bytes = encodeStrings(texts);
        expect(bytes).toEqual(referenceBytes(texts));
        // Lone surrogates become U+FFFD in UTF-8, as before; a leading U+FEFF stays (ignoreBOM, as the source).
        const reference = new TextDecoder("utf-8", { ignoreBOM: true });
        expect(decodeStrings(bytes, texts.length)).toEqual(texts.map((text) => reference.decode(new TextEncoder().encode(text))));
      }),
      { numRuns: 500 },
    );
  });

  it("keep a leading byte order mark: \"\\uFEFForders\" and \"orders\" are different names", () => {
    const texts = ["\uFEFForders", "orders"];
    expect(decodeStrings(encodeStrings(texts), texts.length)).toEqual(texts);
  });

  it("refuse invalid UTF-8 however short", () => {
    for (const invalid of [[0x80], [0xc3, 0x28], [0x61, 0xff, 0x62], [0xed, 0xa0, 0x80]]) {
      const bytes = Uint8Array.from([invalid.length, 0, ...invalid]);
      expect(() => new ByteReader(bytes).string("name", stringFieldBytesMax)).toThrow(DecodeError);
    }
  });

  it("decode from a view inside a larger buffer at its own offsets", () => {
    const inner = encodeStrings(["first", "second"]);
    const outer = new Uint8Array(inner.length + 7);
    outer.set(inner, 5);
    const reader = new ByteReader(outer.subarray(5, 5 + inner.length));
    expect([reader.string("a", 100), reader.string("b", 100)]).toEqual(["first", "second"]);
  });
});
