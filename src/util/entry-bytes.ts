// One log entry in binary, the same layout in the WAL's Entries records and in the wire's AppendEntries:
//
//   index u53 | term u53 | type u8 | data length u32 | data
//
// in the byte order of the writer or reader (little-endian on disk, big-endian on the wire). Whether a run
// of entries follows on without gaps is for each format to check: they anchor the run differently.

import { EntryType, type Entry } from "../raft/types.js";
import { DecodeError, type ByteReader, type ByteSink } from "./bytes.js";

/** The smallest encoded entry (no data): bounds a claimed entry count. */
export const entryBytesMin = 8 + 8 + 1 + 4;

const entryTypes: ReadonlySet<number> = new Set(Object.values(EntryType));

export function entryEncodedBytes(entry: Entry): number {
  return entryBytesMin + entry.data.length;
}

export function writeEntry(sink: ByteSink, entry: Entry): void {
  sink.u53(entry.index);
  sink.u53(entry.term);
  sink.u8(entry.type);
  sink.bytes(entry.data);
}

export function readEntry(reader: ByteReader): Entry {
  const at = reader.position;
  const index = reader.u53("entry index");
  const term = reader.u53("entry term");
  const type = reader.u8("entry type");
  if (!entryTypes.has(type)) throw new DecodeError(`unknown entry type ${type} in entry ${index}`, at);
  // Copied: a log entry may outlive the file or frame it came in by a long time, and must not pin megabytes of it.
  const data = reader.bytes("entry data", true);
  return { index, term, type: type as EntryType, data };
}
