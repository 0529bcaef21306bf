// Raft messages on the wire (version 1), inside Messages frames. Each message is self-delimiting:
//
//   u8 type | string from | string to | u64 term | fields of the type, in the order of types.ts
//
// An append's entries are `u64 index, u64 term, u8 type, bytes data`; both sides check that they follow
// prevLogIndex without gaps. A snapshot's meta is `u64 index, u64 term, u16 + ids voters, u16 + ids learners`.

import type { Entry, Message, MessageType, SnapshotMeta } from "../raft/types.js";
import { EntryType } from "../raft/types.js";
import { assert } from "../util/assert.js";
import { CodecError, idBytesMax, type Reader, type Sink } from "./wire.js";

const messageTypeCodes = {
  vote: 1,
  "pre-vote": 2,
  "vote-response": 3,
  "pre-vote-response": 4,
  append: 5,
  "append-response": 6,
  heartbeat: 7,
  "heartbeat-response": 8,
  snapshot: 9,
  "timeout-now": 10,
} as const satisfies Record<MessageType, number>;

const messageTypesByCode = new Map<number, MessageType>(
  Object.entries(messageTypeCodes).map(([type, code]) => [code, type as MessageType]),
);
const entryTypes = new Set<number>(Object.values(EntryType));

/** The smallest encoded message (type, two empty ids, term): bounds a claimed message count. */
export const messageBytesMin = 1 + 2 + 2 + 8;
/** The smallest encoded entry (index, term, type, data length). */
const entryBytesMin = 8 + 8 + 1 + 4;

export function writeMessage(sink: Sink, message: Message): void {
  sink.u8(messageTypeCodes[message.type]);
  sink.string(message.from, idBytesMax);
  sink.string(message.to, idBytesMax);
  sink.u64(message.term);
  switch (message.type) {
    case "vote":
    case "pre-vote":
      sink.u64(message.lastLogIndex);
      sink.u64(message.lastLogTerm);
      sink.bool(message.transfer);
      return;
    case "vote-response":
    case "pre-vote-response":
      sink.bool(message.granted);
      return;
    case "append":
      sink.u64(message.prevLogIndex);
      sink.u64(message.prevLogTerm);
      sink.u64(message.leaderCommit);
      sink.u32(message.entries.length);
      message.entries.forEach((entry, i) => {
        assert(entry.index === message.prevLogIndex + 1 + i, "append entries must follow prevLogIndex without gaps");
        writeEntry(sink, entry);
      });
      return;
    case "append-response":
      sink.bool(message.success);
      sink.u64(message.index);
      sink.u64(message.conflictTerm);
      sink.u64(message.conflictIndex);
      return;
    case "heartbeat":
      sink.u64(message.leaderCommit);
      sink.u64(message.round);
      return;
    case "heartbeat-response":
      sink.u64(message.round);
      return;
    case "snapshot":
      writeSnapshotMeta(sink, message.snapshot.meta);
      sink.bytes(message.snapshot.data);
      return;
    case "timeout-now":
      return;
  }
}

function writeEntry(sink: Sink, entry: Entry): void {
  sink.u64(entry.index);
  sink.u64(entry.term);
  sink.u8(entry.type);
  sink.bytes(entry.data);
}

export function writeSnapshotMeta(sink: Sink, meta: SnapshotMeta): void {
  sink.u64(meta.index);
  sink.u64(meta.term);
  for (const members of [meta.config.voters, meta.config.learners]) {
    sink.u16(members.length);
    for (const id of members) sink.string(id, idBytesMax);
  }
}

export function readMessage(reader: Reader): Message {
  const code = reader.u8("message type");
  const type = messageTypesByCode.get(code);
  if (type === undefined) throw new CodecError(`unknown message type ${code}`);
  const from = reader.string("from", idBytesMax);
  const to = reader.string("to", idBytesMax);
  const term = reader.u64("term");
  switch (type) {
    case "vote":
    case "pre-vote": {
      const lastLogIndex = reader.u64("lastLogIndex");
      const lastLogTerm = reader.u64("lastLogTerm");
      const transfer = reader.bool("transfer");
      return { type, from, to, term, lastLogIndex, lastLogTerm, transfer };
    }
    case "vote-response":
    case "pre-vote-response":
      return { type, from, to, term, granted: reader.bool("granted") };
    case "append": {
      const prevLogIndex = reader.u64("prevLogIndex");
      const prevLogTerm = reader.u64("prevLogTerm");
      const leaderCommit = reader.u64("leaderCommit");
      const count = reader.count("entry count", entryBytesMin);
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) {
        const entry = readEntry(reader);
        if (entry.index !== prevLogIndex + 1 + i) throw new CodecError("append entries do not follow prevLogIndex without gaps");
        entries.push(entry);
      }
      return { type, from, to, term, prevLogIndex, prevLogTerm, leaderCommit, entries };
    }
    case "append-response": {
      const success = reader.bool("success");
      const index = reader.u64("index");
      const conflictTerm = reader.u64("conflictTerm");
      const conflictIndex = reader.u64("conflictIndex");
      return { type, from, to, term, success, index, conflictTerm, conflictIndex };
    }
    case "heartbeat": {
      const leaderCommit = reader.u64("leaderCommit");
      const round = reader.u64("round");
      return { type, from, to, term, leaderCommit, round };
    }
    case "heartbeat-response":
      return { type, from, to, term, round: reader.u64("round") };
    case "snapshot": {
      const meta = readSnapshotMeta(reader);
      const data = reader.bytes("snapshot data", true);
      return { type, from, to, term, snapshot: { meta, data } };
    }
    case "timeout-now":
      return { type, from, to, term };
  }
}

function readEntry(reader: Reader): Entry {
  const index = reader.u64("entry index");
  const term = reader.u64("entry term");
  const type = reader.u8("entry type");
  if (!entryTypes.has(type)) throw new CodecError(`unknown entry type ${type}`);
  // Copied: a log entry may outlive the frame by a long time, and must not pin megabytes of it.
  const data = reader.bytes("entry data", true);
  return { index, term, type: type as EntryType, data };
}

export function readSnapshotMeta(reader: Reader): SnapshotMeta {
  const index = reader.u64("snapshot index");
  const term = reader.u64("snapshot term");
  const voters = readIds(reader, "voters");
  const learners = readIds(reader, "learners");
  return { index, term, config: { voters, learners } };
}

function readIds(reader: Reader, what: string): string[] {
  const count = reader.u16(`${what} count`);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(reader.string(what, idBytesMax));
  return ids;
}
