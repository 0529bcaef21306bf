// 32-bit FNV-1a hashing for the invariant checker's fingerprints of entries, log prefixes and states.
// A collision can only hide a violation (two different values look equal), never invent one.

const fnvOffsetBasis = 0x811c9dc5;
const fnvPrime = 0x01000193;

export function hashBytes(bytes: Uint8Array, seed = fnvOffsetBasis): number {
  let h = seed >>> 0;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ (bytes[i] as number), fnvPrime);
  return h >>> 0;
}

/** Folds numbers (each taken as 32 bits, plus the high part of larger integers) into one hash. */
export function hashNumbers(...values: number[]): number {
  let h = fnvOffsetBasis;
  for (const value of values) {
    const low = value >>> 0;
    const high = Math.floor(value / 4294967296) >>> 0;
    for (const word of [low, high]) {
      h = Math.imul(h ^ (word & 0xff), fnvPrime);
      h = Math.imul(h ^ ((word >>> 8) & 0xff), fnvPrime);
      h = Math.imul(h ^ ((word >>> 16) & 0xff), fnvPrime);
      h = Math.imul(h ^ (word >>> 24), fnvPrime);
    }
  }
  return h >>> 0;
}
