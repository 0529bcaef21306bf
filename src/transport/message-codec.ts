// Raft messages on the wire (version 1), inside Messages frames. Each message is self-delimiting:
//
//   u8 type | string from | string to | u53 term | fields of the type, in the order of types.ts
//
// An append's entries are laid out as in src/util/entry-bytes.ts; both sides check that they follow
// prevLogIndex without gaps. A snapshot's meta is
//
//   u53 index | u53 term | u16 count + ids voters | u16 count + ids learners | u16 count + (id, address) addresses

import type { Entry, Message, MessageType, SnapshotMeta } from "../raft/types.js";
import { assert } from "../util/assert.js";
import type { ByteReader, ByteSink } from "../util/bytes.js";
import { entryBytesMin, readEntry, writeEntry } from "../util/entry-bytes.js";
import { addressBytesMax, CodecError, idBytesMax } from "./wire.js";

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

/** The smallest encoded message (type, two empty ids, term): bounds a claimed message count. */
export const messageBytesMin = 1 + 2 + 2 + 8;

export function writeMessage(sink: ByteSink, message: Message): void {
  sink.u8(messageTypeCodes[message.type]);
  sink.string(message.from, idBytesMax);
  sink.string(message.to, idBytesMax);
  sink.u53(message.term);
  switch (message.type) {
    case "vote":
    case "pre-vote":
      sink.u53(message.lastLogIndex);
      sink.u53(message.lastLogTerm);
      sink.bool(message.transfer);
      return;
    case "vote-response":
    case "pre-vote-response":
      sink.bool(message.granted);
      return;
    case "append":
      sink.u53(message.prevLogIndex);
      sink.u53(message.prevLogTerm);
      sink.u53(message.leaderCommit);
      sink.u32(message.entries.length);
      message.entries.forEach((entry, i) => {
        assert(entry.index === message.prevLogIndex + 1 + i, "append entries must follow prevLogIndex without gaps");
        writeEntry(sink, entry);
      });
      return;
    case "append-response":
      sink.bool(message.success);
      sink.u53(message.index);
      sink.u53(message.conflictTerm);
      sink.u53(message.conflictIndex);
      return;
    case "heartbeat":
      sink.u53(message.leaderCommit);
      sink.u53(message.round);
      return;
    case "heartbeat-response":
      sink.u53(message.round);
      return;
    case "snapshot":
      writeSnapshotMeta(sink, message.snapshot.meta);
      sink.bytes(message.snapshot.data);
      return;
    case "timeout-now":
      return;
  }
}

export function writeSnapshotMeta(sink: ByteSink, meta: SnapshotMeta): void {
  sink.u53(meta.index);
  sink.u53(meta.term);
  for (const members of [meta.config.voters, meta.config.learners]) {
    sink.u16(members.length);
    for (const id of members) sink.string(id, idBytesMax);
  }
  const addresses = Object.entries(meta.config.addresses);
  sink.u16(addresses.length);
  for (const [id, address] of addresses) {
    sink.string(id, idBytesMax);
    sink.string(address, addressBytesMax);
  }
}

export function readMessage(reader: ByteReader): Message {
  const code = reader.u8("message type");
  const type = messageTypesByCode.get(code);
  if (type === undefined) throw new CodecError(`unknown message type ${code}`);
  const from = reader.string("from", idBytesMax);
  const to = reader.string("to", idBytesMax);
  const term = reader.u53("term");
  switch (type) {
    case "vote":
    case "pre-vote": {
      const lastLogIndex = reader.u53("lastLogIndex");
      const lastLogTerm = reader.u53("lastLogTerm");
      const transfer = reader.bool("transfer");
      return { type, from, to, term, lastLogIndex, lastLogTerm, transfer };
    }
    case "vote-response":
    case "pre-vote-response":
      return { type, from, to, term, granted: reader.bool("granted") };
    case "append": {
      const prevLogIndex = reader.u53("prevLogIndex");
      const prevLogTerm = reader.u53("prevLogTerm");
      const leaderCommit = reader.u53("leaderCommit");
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
      const index = reader.u53("index");
      const conflictTerm = reader.u53("conflictTerm");
      const conflictIndex = reader.u53("conflictIndex");
      return { type, from, to, term, success, index, conflictTerm, conflictIndex };
    }
    case "heartbeat": {
      const leaderCommit = reader.u53("leaderCommit");
      const round = reader.u53("round");
      return { type, from, to, term, leaderCommit, round };
    }
    case "heartbeat-response":
      return { type, from, to, term, round: reader.u53("round") };
    case "snapshot": {
      const meta = readSnapshotMeta(reader);
      const data = reader.bytes("snapshot data", true);
      return { type, from, to, term, snapshot: { meta, data } };
    }
    case "timeout-now":
      return { type, from, to, term };
  }
}

export function readSnapshotMeta(reader: ByteReader): SnapshotMeta {
  const index = reader.u53("snapshot index");
  const term = reader.u53("snapshot term");
  const voters = readIds(reader, "voters");
  const learners = readIds(reader, "learners");
  const addresses = readAddresses(reader);
  return { index, term, config: { voters, learners, addresses } };
}

function readIds(reader: ByteReader, what: string): string[] {
  const count = reader.u16(`${what} count`);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(reader.string(what, idBytesMax));
  return ids;
}

function readAddresses(reader: ByteReader): Record<string, string> {
  const count = reader.u16("addresses count");
  const entries = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const id = reader.string("address id", idBytesMax);
    const address = reader.string("address", addressBytesMax);
    // A record cannot hold an id twice, so our encoder never writes one; a second would silently win.
    if (entries.has(id)) throw new CodecError(`addresses name "${id}" twice`);
    entries.set(id, address);
  }
  // fromEntries defines own properties: an id such as "__proto__" stays an id, not a prototype.
  return Object.fromEntries(entries);
}
