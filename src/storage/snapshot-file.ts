// Snapshot files: one per snapshot, `snapshot-<index>.snap`, written to a temporary name, synced, renamed
// and the directory synced, so that a crash leaves either the whole file or none of it under its name.
//
//   magic u32 | format version u16 | zero u16 | index u53 | term u53 | config bytes u32 | data bytes u32
//   | config | data | crc32 u32 over every byte before it
// where config is voters and learners (each: count u16, then ids), then (since version 2) the members'
// peer addresses (count u16, then id and address pairs). Version 1 files are still read, without addresses.

import { promises as fs } from "node:fs";
import path from "node:path";
import { crc32 } from "node:zlib";
import type { ClusterConfig, NodeId, Snapshot } from "../raft/types.js";
import { assert } from "../util/assert.js";
import { ByteReader, ByteWriter, DecodeError } from "../util/bytes.js";
import { StorageError } from "./errors.js";
import { syncDirectory, writeAll } from "./files.js";
import { nodeIdBytesMax } from "./wal-format.js";

/** "RLSN" read as a little-endian u32. */
export const snapshotMagic = 0x4e_53_4c_52;
export const snapshotFormatVersion = 2;
/** Older layouts this version still reads. */
const snapshotFormatVersionsRead = [1, 2];
/** Longest peer address stored for a member. */
export const memberAddressBytesMax = 300;
/** Largest application state in one snapshot; the whole of it is held in memory while written and read. */
export const snapshotBytesMax = 1 << 30;
/** Most voters plus learners a stored configuration may list. */
export const configMembersMax = 256;

const fixedHeaderBytes = 4 + 2 + 2 + 8 + 8 + 4 + 4;
const trailerBytes = 4;
const fileNamePattern = /^snapshot-(\d{20})\.snap$/;
export const temporarySuffix = ".tmp";

export function snapshotFileName(index: number): string {
  return `snapshot-${String(index).padStart(20, "0")}.snap`;
}

/** The index a snapshot file name carries, or null when the name is not one of ours. */
export function parseSnapshotFileName(name: string): number | null {
  const match = fileNamePattern.exec(name);
  return match === null ? null : Number(match[1]);
}

/** Refuses what cannot be stored, before anything is written. */
export function checkSnapshotFits(snapshot: Snapshot): void {
  if (snapshot.data.length > snapshotBytesMax) {
    throw new StorageError(
      `the snapshot at index ${snapshot.meta.index} holds ${snapshot.data.length} bytes, above snapshotBytesMax (${snapshotBytesMax}); the lock table is too large to snapshot`,
    );
  }
  const members = snapshot.meta.config.voters.length + snapshot.meta.config.learners.length;
  assert(members <= configMembersMax, `snapshot configuration lists ${members} members, above configMembersMax`);
}

/** Writes the snapshot durably under its final name and returns that path. */
export async function writeSnapshotFile(dir: string, snapshot: Snapshot): Promise<string> {
  checkSnapshotFits(snapshot);
  const finalPath = path.join(dir, snapshotFileName(snapshot.meta.index));
  const temporaryPath = finalPath + temporarySuffix;
  const header = encodeSnapshotHeader(snapshot);
  const trailer = Buffer.alloc(trailerBytes);
  trailer.writeUInt32LE(crc32(snapshot.data, crc32(header)));
  const handle = await fs.open(temporaryPath, "w");
  try {
    await writeAll(handle, header, 0);
    await writeAll(handle, snapshot.data, header.length);
    await writeAll(handle, trailer, header.length + snapshot.data.length);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temporaryPath, { force: true });
    throw error;
  }
  await handle.close();
  await fs.rename(temporaryPath, finalPath);
  await syncDirectory(dir);
  return finalPath;
}

export type SnapshotRead = { readonly ok: true; readonly snapshot: Snapshot } | { readonly ok: false; readonly problem: string };

/** Decodes a whole snapshot file; `expectedIndex` comes from its name. */
export function decodeSnapshotFile(buffer: Buffer, expectedIndex: number): SnapshotRead {
  if (buffer.length < fixedHeaderBytes + trailerBytes) return { ok: false, problem: `the file is ${buffer.length} bytes, shorter than a snapshot header` };
  if (buffer.readUInt32LE(0) !== snapshotMagic) return { ok: false, problem: "the file does not start with the snapshot magic number" };
  const version = buffer.readUInt16LE(4);
  if (!snapshotFormatVersionsRead.includes(version)) {
    return { ok: false, problem: `the snapshot is in format version ${version}; this raftlock reads versions ${snapshotFormatVersionsRead.join(" and ")}` };
  }
  const bodyEnd = buffer.length - trailerBytes;
  if (crc32(buffer.subarray(0, bodyEnd)) !== buffer.readUInt32LE(bodyEnd)) {
    return { ok: false, problem: "the snapshot's checksum does not match its contents" };
  }
  if (buffer.readUInt16LE(6) !== 0) return { ok: false, problem: "the snapshot header's reserved field is not zero: a layout this raftlock did not write" };
  try {
    const reader = new ByteReader(buffer, 8, bodyEnd);
    const index = reader.u53("snapshot index");
    const term = reader.u53("snapshot term");
    const configBytes = reader.u32("configuration length");
    const dataBytes = reader.u32("data length");
    if (dataBytes > snapshotBytesMax) return { ok: false, problem: `the snapshot claims ${dataBytes} bytes of data, above snapshotBytesMax` };
    if (fixedHeaderBytes + configBytes + dataBytes !== bodyEnd) return { ok: false, problem: "the snapshot's lengths do not add up to its file size" };
    const configReader = new ByteReader(buffer, fixedHeaderBytes, fixedHeaderBytes + configBytes);
    const voters = readMembers(configReader, "voter");
    const learners = readMembers(configReader, "learner");
    const addresses = version >= 2 ? readAddresses(configReader) : {};
    configReader.expectEnd("configuration");
    if (index !== expectedIndex) return { ok: false, problem: `the file holds the snapshot at index ${index}, but its name says ${expectedIndex}` };
    const dataStart = fixedHeaderBytes + configBytes;
    const data = new Uint8Array(buffer.buffer, buffer.byteOffset + dataStart, dataBytes);
    return { ok: true, snapshot: { meta: { index, term, config: { voters, learners, addresses } }, data } };
  } catch (error) {
    if (error instanceof DecodeError) return { ok: false, problem: `the snapshot passes its checksum but does not decode (${error.message})` };
    throw error;
  }
}

export async function readSnapshotFile(filePath: string, expectedIndex: number): Promise<SnapshotRead> {
  return decodeSnapshotFile(await fs.readFile(filePath), expectedIndex);
}

/** Every byte of the file before the data: fixed header and configuration (the fuzz tests re-encode with it). */
export function encodeSnapshotHeader(snapshot: Snapshot): Buffer {
  const config = new ByteWriter(256);
  writeMembers(config, snapshot.meta.config.voters);
  writeMembers(config, snapshot.meta.config.learners);
  const addresses = Object.entries(snapshot.meta.config.addresses);
  config.u16(addresses.length);
  for (const [member, address] of addresses) {
    config.string(member, nodeIdBytesMax);
    config.string(address, memberAddressBytesMax);
  }
  const writer = new ByteWriter(fixedHeaderBytes + config.length);
  writer.u32(snapshotMagic);
  writer.u16(snapshotFormatVersion);
  writer.u16(0);
  writer.u53(snapshot.meta.index);
  writer.u53(snapshot.meta.term);
  writer.u32(config.length);
  writer.u32(snapshot.data.length);
  writer.raw(config.view());
  return Buffer.from(writer.view());
}

function writeMembers(writer: ByteWriter, members: readonly NodeId[]): void {
  writer.u16(members.length);
  for (const member of members) writer.string(member, nodeIdBytesMax);
}

function readMembers(reader: ByteReader, what: string): ClusterConfig["voters"] {
  const countAt = reader.position;
  const count = reader.u16(`${what} count`);
  if (count > configMembersMax) throw new DecodeError(`${count} ${what}s, above configMembersMax`, countAt);
  const members: NodeId[] = [];
  for (let k = 0; k < count; k++) members.push(reader.string(`${what} id`, nodeIdBytesMax));
  return members;
}

function readAddresses(reader: ByteReader): Record<NodeId, string> {
  const countAt = reader.position;
  const count = reader.u16("address count");
  if (count > configMembersMax) throw new DecodeError(`${count} addresses, above configMembersMax`, countAt);
  const addresses = new Map<NodeId, string>();
  for (let k = 0; k < count; k++) {
    const memberAt = reader.position;
    const member = reader.string("member id", nodeIdBytesMax);
    // A record cannot hold an id twice, so the writer never writes one; a second would silently win.
    if (addresses.has(member)) throw new DecodeError(`the addresses name member "${member}" twice`, memberAt);
    addresses.set(member, reader.string("member address", memberAddressBytesMax));
  }
  // fromEntries defines own properties: a member id such as "__proto__" stays an id, not a prototype.
  return Object.fromEntries(addresses);
}
