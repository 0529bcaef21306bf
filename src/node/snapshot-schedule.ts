// When a member takes its snapshots. Encoding the state stalls that member's pipeline for as long as it
// takes (tens of milliseconds with a full watch history and request-result cache); members that all
// snapshot at the same index all stall at once, so commits stop. Offsetting each member's first snapshot
// by a share of the interval fixed by its id keeps them apart from then on (each counts from its own last
// snapshot), and a quorum of the others keeps committing while one encodes.

/** Largest offset, as a share of the interval. */
const staggerShareMax = 0.5;

/** Applied entries after which a member that has not taken a snapshot yet takes its first. */
export function firstSnapshotAfterEntries(nodeId: string, everyEntries: number): number {
  return everyEntries + Math.floor(idFraction(nodeId) * staggerShareMax * everyEntries);
}

/**
 * A fraction in [0, 1) fixed by `nodeId`: FNV-1a, then MurmurHash3's finalizer, since ids of one cluster
 * differ in their last character only (n1, n2; app-0, app-1) and FNV alone leaves those close together.
 */
function idFraction(nodeId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < nodeId.length; i++) {
    hash ^= nodeId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 2 ** 32;
}
