// Every fuzz part by name, and the targets (groups of parts) the CLI and the test suite run.

import { httpPart } from "./http.js";
import { peerDecodePart, peerLinkPart } from "./peer.js";
import { respReaderPart, respServerPart } from "./resp.js";
import type { FuzzPart } from "./run.js";
import { snapshotFilePart, snapshotStatePart } from "./snapshot.js";
import { walPart } from "./wal.js";

export const fuzzParts: readonly FuzzPart[] = [respReaderPart, respServerPart, peerDecodePart, peerLinkPart, walPart, snapshotFilePart, snapshotStatePart, httpPart];

export const fuzzTargets: Readonly<Record<string, readonly string[]>> = {
  resp: ["resp-reader", "resp-server"],
  peer: ["peer-decode", "peer-link"],
  wal: ["wal"],
  snapshot: ["snapshot-file", "snapshot-state"],
  http: ["http"],
  all: fuzzParts.map((part) => part.name),
};

/** The parts a target names: a target, or a single part by its own name. */
export function partsOf(target: string): FuzzPart[] | null {
  const names = fuzzTargets[target] ?? (fuzzParts.some((part) => part.name === target) ? [target] : null);
  return names === null ? null : names.map((name) => fuzzParts.find((part) => part.name === name)!);
}
