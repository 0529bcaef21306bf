import { describe, expect, it } from "vitest";
import {
  addressBytesMax,
  CodecError,
  decodeFrame,
  encodeFrame,
  encodeMessages,
  type Frame,
  FrameType,
  idBytesMax,
  ResponseStatus,
  wireVersion,
} from "../../src/transport/codec.js";
import { EntryType, type Message } from "../../src/raft/types.js";

const binary = Uint8Array.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 0, 0]);

/** One message of every type, with edge values: binary entry data, large safe integers, a snapshot with a config. */
export const everyMessageType: Message[] = [
  { type: "vote", from: "n1", to: "n2", term: 7, lastLogIndex: 41, lastLogTerm: 6, transfer: false },
  { type: "pre-vote", from: "n1", to: "n2", term: 8, lastLogIndex: Number.MAX_SAFE_INTEGER, lastLogTerm: 6, transfer: true },
  { type: "vote-response", from: "n2", to: "n1", term: 7, granted: true },
  { type: "pre-vote-response", from: "n2", to: "n1", term: 8, granted: false },
  {
    type: "append",
    from: "n1",
    to: "n3",
    term: 9,
    prevLogIndex: 100,
    prevLogTerm: 8,
    leaderCommit: 99,
    entries: [
      { index: 101, term: 8, type: EntryType.Normal, data: binary },
      { index: 102, term: 9, type: EntryType.Empty, data: new Uint8Array(0) },
      { index: 103, term: 9, type: EntryType.Normal, data: new TextEncoder().encode("lock.acquire ✓ ünïcode") },
    ],
  },
  { type: "append", from: "n1", to: "n3", term: 9, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0, entries: [] },
  { type: "append-response", from: "n3", to: "n1", term: 9, success: false, index: 103, conflictTerm: 4, conflictIndex: 77 },
  { type: "heartbeat", from: "n1", to: "n2", term: 9, leaderCommit: 103, round: 2 ** 40 },
  { type: "heartbeat-response", from: "n2", to: "n1", term: 9, round: 2 ** 40 },
  {
    type: "snapshot",
    from: "n1",
    to: "n4",
    term: 9,
    snapshot: {
      meta: {
        index: 500,
        term: 8,
        config: {
          voters: ["n1", "n2", "n3"],
          learners: ["n4", "nœud-5"],
          addresses: { n1: "10.0.0.1:7001", n2: "[::1]:7002", n3: "n3.internal:7003", n4: "[fe80::1%eth0]:7004", "nœud-5": "nœud.example:7005" },
        },
      },
      data: binary,
    },
  },
  { type: "timeout-now", from: "n1", to: "n2", term: 9 },
];

const everyOtherFrame: Frame[] = [
  { kind: "hello", clusterId: "prod", fromNodeId: "n1", toNodeId: "n2", clusterToken: "s3cret" },
  { kind: "hello", clusterId: "prod", fromNodeId: "n1", toNodeId: "n2", clusterToken: null },
  { kind: "welcome", clusterId: "prod", nodeId: "n2" },
  { kind: "refuse", reason: "cluster token mismatch" },
  { kind: "snapshot-begin", transferId: 3, from: "n1", to: "n2", term: 4, meta: { index: 9, term: 4, config: { voters: ["n1"], learners: [], addresses: {} } }, dataBytes: 1 << 30 },
  { kind: "snapshot-chunk", transferId: 3, offset: 262_144, data: binary },
  { kind: "request", requestId: 0xffff_ffff, payload: binary },
  { kind: "response", requestId: 1, status: ResponseStatus.Ok, payload: binary, error: "" },
  { kind: "response", requestId: 2, status: ResponseStatus.Failed, payload: new Uint8Array(0), error: "not the leader" },
  { kind: "response", requestId: 3, status: ResponseStatus.Busy, payload: new Uint8Array(0), error: "too many" },
];

/** Deterministic PRNG (mulberry32): a failing fuzz case replays exactly. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function expectCodecError(bytes: Uint8Array, limit?: number): CodecError {
  try {
    decodeFrame(bytes, limit);
  } catch (error) {
    expect(error).toBeInstanceOf(CodecError);
    return error as CodecError;
  }
  throw new Error(`decoded without error: ${Buffer.from(bytes).toString("hex")}`);
}

describe("wire codec, version 2", () => {
  it("round-trips every message type in one batch frame, in order", () => {
    const frame = encodeMessages(everyMessageType);
    expect(frame[0]).toBe(wireVersion);
    expect(frame[1]).toBe(FrameType.Messages);
    const decoded = decodeFrame(frame);
    expect(decoded).toEqual({ kind: "messages", messages: everyMessageType });
  });

  it("round-trips each message alone, and entry data comes back as detached copies", () => {
    for (const message of everyMessageType) {
      const decoded = decodeFrame(encodeMessages([message]));
      expect(decoded).toEqual({ kind: "messages", messages: [message] });
    }
    const frame = encodeMessages([everyMessageType[4]!]);
    const decoded = decodeFrame(frame);
    frame.fill(0); // entries must not alias the frame they arrived in
    if (decoded.kind !== "messages" || decoded.messages[0]?.type !== "append") throw new Error("expected an append");
    expect(decoded.messages[0].entries[0]?.data).toEqual(binary);
  });

  it("round-trips every other frame type", () => {
    for (const frame of everyOtherFrame) expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
  });

  it("round-trips a snapshot's member addresses at the limits of ids and addresses", () => {
    const longId = "n".repeat(idBytesMax);
    const addresses = { [longId]: `${"h".repeat(addressBytesMax - 5)}:7001`, ["__proto__"]: "[::1]:7002", "7": "127.0.0.1:7007", "10": "127.0.0.1:7010" };
    const meta = { index: 9, term: 4, config: { voters: [longId, "__proto__"], learners: ["7", "10"], addresses } };
    const begin: Frame = { kind: "snapshot-begin", transferId: 1, from: "n1", to: "n2", term: 4, meta, dataBytes: 0 };
    const decoded = decodeFrame(encodeFrame(begin));
    expect(decoded).toEqual(begin);
    if (decoded.kind !== "snapshot-begin") throw new Error("expected a snapshot-begin");
    expect(Object.getPrototypeOf(decoded.meta.config.addresses)).toBe(Object.prototype); // "__proto__" stayed an id
    expect(Object.keys(decoded.meta.config.addresses).sort()).toEqual(Object.keys(addresses).sort());
    const snapshot: Message = { type: "snapshot", from: "n1", to: "n2", term: 4, snapshot: { meta, data: binary } };
    expect(decodeFrame(encodeMessages([snapshot]))).toEqual({ kind: "messages", messages: [snapshot] });
  });

  it("rejects an address over addressBytesMax and an id given two addresses", () => {
    const beginWith = (addresses: Record<string, string>): Uint8Array =>
      encodeFrame({ kind: "snapshot-begin", transferId: 1, from: "n1", to: "n2", term: 4, meta: { index: 9, term: 4, config: { voters: [], learners: [], addresses } }, dataBytes: 0 });
    const offsetOf = (bytes: Uint8Array, pattern: number[]): number => Buffer.from(bytes).indexOf(Buffer.from(pattern));

    const tooLong = beginWith({ a: "x".repeat(addressBytesMax) });
    const lengthAt = offsetOf(tooLong, [addressBytesMax >> 8, addressBytesMax & 0xff, 0x78]);
    new DataView(tooLong.buffer).setUint16(lengthAt, addressBytesMax + 1);
    expect(expectCodecError(tooLong).message).toMatch(/address is 301 bytes long, above the limit of 300/);

    const twice = beginWith({ a: "h:1", b: "h:2" });
    twice[offsetOf(twice, [0, 1, 0x62, 0, 3]) + 2] = 0x61; // id "b" (its address follows) becomes "a"
    expect(expectCodecError(twice).message).toMatch(/addresses name "a" twice/);

    expect(() => beginWith({ a: "x".repeat(addressBytesMax + 1) })).toThrow(/above its limit of 300/);
  });

  it("rejects every truncation of every valid frame with a CodecError", () => {
    const frames = [encodeMessages(everyMessageType), ...everyOtherFrame.map(encodeFrame)];
    for (const frame of frames) {
      for (let length = 0; length < frame.length; length++) expectCodecError(frame.subarray(0, length));
    }
  });

  it("names what is wrong: version, frame type, size, trailing bytes", () => {
    const valid = encodeFrame({ kind: "welcome", clusterId: "c", nodeId: "n2" });
    const otherVersion = Uint8Array.from(valid);
    otherVersion[0] = 1; // version 1 lacked member addresses in snapshot metas
    expect(expectCodecError(otherVersion).message).toMatch(/unsupported wire version 1/);
    expect(expectCodecError(Uint8Array.from([wireVersion, 99])).message).toMatch(/unknown frame type 99/);
    expect(expectCodecError(new Uint8Array(0)).message).toMatch(/empty/);
    expect(expectCodecError(new Uint8Array(1025), 1024).message).toMatch(/1025 bytes; the limit is 1024/);
    expect(expectCodecError(Uint8Array.from([...valid, 0])).message).toMatch(/trailing/);
  });

  it("rejects values the format cannot carry: unsafe integers, bad booleans, unknown types, gaps, bad UTF-8, lying counts", () => {
    const heartbeat = encodeMessages([{ type: "heartbeat", from: "a", to: "b", term: 1, leaderCommit: 2, round: 3 }]);
    const termOffset = 2 + 4 + 1 + 3 + 3; // header, count, type, "a", "b"
    const unsafe = Uint8Array.from(heartbeat);
    unsafe[termOffset] = 0xff;
    expect(expectCodecError(unsafe).message).toMatch(/safe integer/);

    const vote = encodeMessages([{ type: "vote-response", from: "a", to: "b", term: 1, granted: true }]);
    const badBool = Uint8Array.from(vote);
    badBool[badBool.length - 1] = 2;
    expect(expectCodecError(badBool).message).toMatch(/granted must be 0 or 1/);
    const badType = Uint8Array.from(vote);
    badType[6] = 42;
    expect(expectCodecError(badType).message).toMatch(/unknown message type 42/);

    const append = (index: number, type: number): Uint8Array => {
      const frame = encodeMessages([
        { type: "append", from: "a", to: "b", term: 1, prevLogIndex: 4, prevLogTerm: 1, leaderCommit: 0, entries: [{ index: 5, term: 1, type: EntryType.Normal, data: binary }] },
      ]);
      const entryOffset = 2 + 4 + 1 + 3 + 3 + 8 + 8 + 8 + 8 + 4;
      new DataView(frame.buffer).setUint32(entryOffset + 4, index);
      frame[entryOffset + 16] = type;
      return frame;
    };
    expect(() => decodeFrame(append(5, 0))).not.toThrow();
    expect(expectCodecError(append(6, 0)).message).toMatch(/without gaps/);
    expect(expectCodecError(append(5, 9)).message).toMatch(/unknown entry type 9/);

    const refuse = encodeFrame({ kind: "refuse", reason: "ab" });
    refuse[refuse.length - 1] = 0xff;
    expect(expectCodecError(refuse).message).toMatch(/not valid UTF-8/);

    const lyingCount = Uint8Array.from([wireVersion, FrameType.Messages, 0xff, 0xff, 0xff, 0xff]);
    expect(expectCodecError(lyingCount).message).toMatch(/message count says 4294967295/);
  });

  it("survives a deterministic fuzz of mutated and random frames: a frame or a CodecError, nothing else", () => {
    const random = prng(20240601);
    const pick = (n: number): number => Math.floor(random() * n);
    const seeds = [encodeMessages(everyMessageType), ...everyMessageType.map((m) => encodeMessages([m])), ...everyOtherFrame.map(encodeFrame)];
    let decodedCount = 0;
    let rejectedCount = 0;
    for (let i = 0; i < 20_000; i++) {
      const seed = seeds[pick(seeds.length)]!;
      let bytes: Uint8Array;
      switch (pick(6)) {
        case 0: // flip bits in a few bytes
          bytes = Uint8Array.from(seed);
          for (let k = 0, n = 1 + pick(4); k < n; k++) bytes[pick(bytes.length)]! ^= 1 << pick(8);
          break;
        case 1: // overwrite a byte with an extreme value (lengths and counts become huge or zero)
          bytes = Uint8Array.from(seed);
          bytes[2 + pick(bytes.length - 2)] = [0, 0xff, 0x7f, 0x80][pick(4)]!;
          break;
        case 2: // truncate
          bytes = seed.subarray(0, pick(seed.length));
          break;
        case 3: // insert random bytes
          {
            const at = pick(seed.length);
            const extra = Array.from({ length: 1 + pick(8) }, () => pick(256));
            bytes = Uint8Array.from([...seed.subarray(0, at), ...extra, ...seed.subarray(at)]);
          }
          break;
        case 4: // remove a slice
          {
            const at = pick(seed.length);
            bytes = Uint8Array.from([...seed.subarray(0, at), ...seed.subarray(at + 1 + pick(8))]);
          }
          break;
        default: // garbage behind a valid header
          bytes = Uint8Array.from([wireVersion, 1 + pick(8), ...Array.from({ length: pick(64) }, () => pick(256))]);
      }
      let frame: Frame;
      try {
        frame = decodeFrame(bytes, 4096);
      } catch (error) {
        if (!(error instanceof CodecError)) throw new Error(`case ${i}: ${String(error)} for ${Buffer.from(bytes).toString("hex")}`);
        rejectedCount += 1;
        continue;
      }
      // Whatever decodes must be a value we can encode again and read back identically.
      expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
      decodedCount += 1;
    }
    expect(rejectedCount).toBeGreaterThan(10_000);
    expect(decodedCount).toBeGreaterThan(100);
  });
});
