// Byte-level damage shared by every fuzz target: what a flaky disk, a buggy peer or an attacker does to a
// valid encoding. Each mutation is a plain value (shown as such in a counterexample) applied by a pure
// function, so fast-check can shrink a failing case to the smallest damage that still fails.

import fc from "fast-check";

export type Mutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "set"; readonly at: number; readonly value: number }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "delete"; readonly at: number; readonly length: number }
  /** Overwrites 4 bytes with a length or count a decoder must not trust. */
  | { readonly kind: "lie"; readonly at: number; readonly value: number; readonly littleEndian: boolean }
  | { readonly kind: "duplicate"; readonly at: number; readonly length: number };

/** Most mutations applied to one input: enough to break several fields at once, few enough to shrink. */
export const mutationsPerInputMax = 4;
/** Longest run of garbage one mutation inserts. */
export const insertedBytesMax = 32;

/** Values a length or count field may lie with: the edges of every integer width a format uses. */
export const lyingU32Values = [0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x1f_ffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff] as const;

const position = fc.nat({ max: 1 << 20 });

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
  fc.record({ kind: fc.constant("insert" as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: insertedBytesMax }) }),
  fc.record({ kind: fc.constant("delete" as const), at: position, length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    kind: fc.constant("lie" as const),
    at: position,
    value: fc.oneof(fc.constantFrom(...lyingU32Values), fc.nat({ max: 0xffff_ffff })),
    littleEndian: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("duplicate" as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
);

export const mutationsArb: fc.Arbitrary<readonly Mutation[]> = fc.array(mutationArb, { minLength: 1, maxLength: mutationsPerInputMax });

/** `bytes` with `mutations` applied in order; positions wrap around the current length. */
export function applyMutations(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out: Uint8Array = Uint8Array.from(bytes);
  for (const mutation of mutations) out = applyMutation(out, mutation);
  return out;
}

function applyMutation(bytes: Uint8Array, mutation: Mutation): Uint8Array {
  const at = bytes.length === 0 ? 0 : mutation.at % (mutation.kind === "insert" || mutation.kind === "truncate" ? bytes.length + 1 : bytes.length);
  switch (mutation.kind) {
    case "flip":
      if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << mutation.bit);
      return bytes;
    case "set":
      if (bytes.length > 0) bytes[at] = mutation.value;
      return bytes;
    case "truncate":
      return bytes.subarray(0, at);
    case "insert":
      return concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
    case "delete":
      return concat([bytes.subarray(0, at), bytes.subarray(at + mutation.length)]);
    case "lie": {
      if (bytes.length < 4) return bytes;
      const start = Math.min(at, bytes.length - 4);
      new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(start, mutation.value, mutation.littleEndian);
      return bytes;
    }
    case "duplicate":
      return concat([bytes.subarray(0, at + mutation.length), bytes.subarray(at)]);
  }
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Random bytes, the valid encoding, or the valid encoding damaged: what a fuzz target is fed. */
export function hostileBytes(valid: fc.Arbitrary<Uint8Array>, randomBytesMax = 256): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: randomBytesMax }) },
    { weight: 1, arbitrary: valid },
    { weight: 6, arbitrary: fc.tuple(valid, mutationsArb).map(([bytes, mutations]) => applyMutations(bytes, mutations)) },
  );
}

/** Cuts `bytes` into chunks at `cuts` (positions, wrapped and sorted), as a socket may deliver them. */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => (bytes.length === 0 ? 0 : cut % bytes.length)))].filter((cut) => cut > 0).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}
