// Fuzzing the RESP front door: requests (valid, damaged, random) fed to the request reader directly, and to
// a real RESP server over loopback sockets.
//
// Properties (the reader):
//   - it throws nothing but RespProtocolError, whatever the bytes;
//   - how the bytes are cut into reads, and where reading pauses between requests, changes nothing;
//   - an undamaged pipeline yields exactly the requests it encodes, or the protocol error of the first
//     request over a limit;
//   - what redis-parser is handed for one request never exceeds the request limits: a declared length or
//     count above a limit is refused from its header, before any of what it announces is buffered.
// Properties (the server):
//   - every complete request gets one reply, in order; a protocol error gets `-ERR Protocol error` as the
//     last reply and the connection closes; an HTTP request line gets no reply and the connection closes;
//   - every connection ends, no connection is leaked, nothing is logged at error level;
//   - a well-behaved client on its own connection is answered throughout.

import { connect, type Socket } from "node:net";
import fc from "fast-check";
import { genericCommands } from "../../src/api/resp/generic-commands.js";
import type { RespLimits } from "../../src/api/resp/limits.js";
import { headerLineBytesMax, RequestReader, type RequestReaderLimits, RespProtocolError, unauthenticatedArgumentsMax, unauthenticatedBulkBytesMax } from "../../src/api/resp/request-reader.js";
import { RespServer } from "../../src/api/resp/server.js";
import { applyMutations, concat, type Mutation, mutationsArb, splitAt } from "./mutate.js";
import { checkProperty, errorLogCapture, type FuzzOptions, type FuzzPart, type FuzzReport, hexPreview, Stats } from "./run.js";
import { waitFor } from "../support/wait.js";

/** Small limits, so that random requests reach them often. */
export const fuzzRespLimits: RequestReaderLimits = { argumentsMax: 12, bulkBytesMax: 200, requestBytesMax: 600, inlineBytesMax: 300 };

// ---------------------------------------------------------------------------------------------
// Inputs

const words = ["PING", "ping", "ECHO", "HELLO", "2", "3", "AUTH", "default", "CLIENT", "SETNAME", "GETNAME", "ID", "SETINFO", "LIB-NAME", "COMMAND", "DOCS", "COUNT", "INFO", "SELECT", "0", "x", ""];
/** Words that end a connection: rarer, or most pipelines would stop at their first request. */
const endingWords = ["QUIT", "POST", "Host:"];

const argumentArb: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 6, arbitrary: fc.constantFrom(...words).map((word) => Buffer.from(word)) },
    { weight: 1, arbitrary: fc.constantFrom(...endingWords).map((word) => Buffer.from(word)) },
    { weight: 3, arbitrary: fc.string({ maxLength: 16 }).map((text) => Buffer.from(text)) },
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.integer({ min: 150, max: 700 }).map((length) => Buffer.alloc(length, 0x61)) },
  );

export interface RespRequest {
  readonly args: readonly Buffer[];
  readonly inline: boolean;
  /** `\n` alone ends an inline request as well as `\r\n`. */
  readonly bareLineFeed: boolean;
}

const requestArb: fc.Arbitrary<RespRequest> = fc.record({
  args: fc.array(argumentArb, { minLength: 1, maxLength: 14 }),
  inline: fc.boolean(),
  bareLineFeed: fc.boolean(),
});

/** Header lines that lie or are not headers at all, put in place of a count or length line. */
const badHeaderArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("*-1", "*0", "*-5", "*99999999999999999999999", "*abc", "* 2", "*+2", "*2.0", "*", "*0x10", "$-1", "$", "$ 3", "$abc", "$+3", "$3.0", ":1", "+OK", "-ERR x", "*1", "*2", "%1", "_", "$-0"),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((n) => `$${n}`),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((n) => `*${n}`),
  fc.string({ maxLength: 40 }),
);

interface HeaderTweak {
  /** Which header of the pipeline: counted over all count and length lines, wrapped. */
  readonly header: number;
  readonly line: string;
  /** End the replaced line with `\n` alone (or nothing, when null). */
  readonly ending: "\r\n" | "\n" | "";
}

export interface RespInput {
  readonly requests: readonly RespRequest[];
  readonly tweaks: readonly HeaderTweak[];
  /** Byte-level damage after encoding; empty for a pipeline meant to be read as written. */
  readonly mutations: readonly Mutation[];
  /** Replaces everything with random bytes when set. */
  readonly random: Uint8Array | null;
  /** Where the bytes are cut into reads. */
  readonly cuts: readonly number[];
  /** Reading pauses after every n-th request (0 = never), as when replies back up. */
  readonly pauseEvery: number;
}

export const respInputArb: fc.Arbitrary<RespInput> = fc.record({
  requests: fc.array(requestArb, { minLength: 1, maxLength: 5 }),
  tweaks: fc.oneof(
    { weight: 2, arbitrary: fc.constant([]) },
    { weight: 3, arbitrary: fc.array(fc.record({ header: fc.nat(), line: badHeaderArb, ending: fc.constantFrom("\r\n" as const, "\n" as const, "" as const) }), { minLength: 1, maxLength: 2 }) },
  ),
  mutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 2, arbitrary: mutationsArb }),
  random: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }) }),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
  pauseEvery: fc.nat({ max: 3 }),
});

/** An inline word the way sdssplitargs reads it back: bare when safe, else double-quoted with \xHH escapes. */
function inlineWord(arg: Buffer): string {
  if (arg.length > 0 && /^[A-Za-z0-9._:|-]+$/.test(arg.toString("latin1"))) return arg.toString("latin1");
  let quoted = '"';
  for (const byte of arg) {
    if (byte === 0x22 || byte === 0x5c) quoted += `\\${String.fromCharCode(byte)}`;
    else if (byte >= 0x20 && byte < 0x7f) quoted += String.fromCharCode(byte);
    else quoted += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return `${quoted}"`;
}

interface Encoded {
  readonly bytes: Uint8Array;
  /** Whether the bytes are the requests as generated (no tweak, mutation or randomness). */
  readonly intact: boolean;
}

export function encodeInput(input: RespInput): Encoded {
  if (input.random !== null) return { bytes: input.random, intact: false };
  // Headers are kept apart while encoding so that a tweak can replace one.
  const pieces: { header: boolean; text: Buffer }[] = [];
  for (const request of input.requests) {
    if (request.inline) {
      pieces.push({ header: false, text: Buffer.from(`${request.args.map(inlineWord).join(" ")}${request.bareLineFeed ? "\n" : "\r\n"}`, "latin1") });
      continue;
    }
    pieces.push({ header: true, text: Buffer.from(`*${request.args.length}\r\n`) });
    for (const arg of request.args) {
      pieces.push({ header: true, text: Buffer.from(`$${arg.length}\r\n`) });
      pieces.push({ header: false, text: Buffer.concat([arg, Buffer.from("\r\n")]) });
    }
  }
  const headers = pieces.filter((piece) => piece.header);
  for (const tweak of input.tweaks) {
    const piece = headers[tweak.header % Math.max(1, headers.length)];
    if (piece !== undefined) piece.text = Buffer.from(tweak.line + tweak.ending, "latin1");
  }
  const bytes = applyMutations(concat(pieces.map((piece) => piece.text)), input.mutations);
  return { bytes, intact: input.tweaks.length === 0 && input.mutations.length === 0 };
}

// ---------------------------------------------------------------------------------------------
// The reader

export interface ReadOutcome {
  readonly requests: readonly Buffer[][];
  /** The RespProtocolError's message, or null when the input was read without one. */
  readonly error: string | null;
  /** Most bytes redis-parser held at once for one request (handed to it, no request returned yet). */
  readonly parserBytesMax: number;
}

/** Bytes one request may make redis-parser hold: its arguments, their headers and CRLFs, and the count line. */
export function parserBytesBound(limits: RequestReaderLimits): number {
  return limits.requestBytesMax + limits.argumentsMax * (headerLineBytesMax + 2) + headerLineBytesMax;
}

/** Reads `chunks` in order as the connection does, pausing after every `pauseEvery`-th request. */
export function readChunks(chunks: readonly Uint8Array[], limits: RequestReaderLimits, authenticated: boolean, pauseEvery: number): ReadOutcome {
  const reader = new RequestReader(limits, () => authenticated);
  // The parser is private to the reader; the fuzz watches what it is handed, through its one entry point.
  const parser = (reader as unknown as { parser: { execute(bytes: Buffer): void } }).parser;
  let parserBytes = 0;
  let parserBytesMax = 0;
  const execute = parser.execute.bind(parser);
  parser.execute = (bytes: Buffer) => {
    parserBytes += bytes.length;
    parserBytesMax = Math.max(parserBytesMax, parserBytes);
    execute(bytes);
  };
  const requests: Buffer[][] = [];
  let error: string | null = null;
  try {
    for (const chunk of chunks) {
      let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      do {
        rest = reader.read(rest, (args) => {
          parserBytes = 0;
          requests.push(args.map((arg) => Buffer.from(arg)));
          return pauseEvery === 0 || requests.length % pauseEvery !== 0;
        });
      } while (rest.length > 0);
    }
  } catch (thrown) {
    if (!(thrown instanceof RespProtocolError)) throw thrown;
    error = thrown.message;
  }
  return { requests, error, parserBytesMax };
}

/** What an intact pipeline must read as: its requests up to the first one over a limit, then that refusal. */
export function expectedOutcome(requests: readonly RespRequest[], limits: RequestReaderLimits, authenticated: boolean): { requests: Buffer[][]; refused: boolean } {
  const argumentsMax = authenticated ? limits.argumentsMax : Math.min(limits.argumentsMax, unauthenticatedArgumentsMax);
  const bulkBytesMax = authenticated ? limits.bulkBytesMax : Math.min(limits.bulkBytesMax, unauthenticatedBulkBytesMax);
  const read: Buffer[][] = [];
  for (const request of requests) {
    const { args } = request;
    if (request.inline) {
      const lineBytes = Buffer.byteLength(args.map(inlineWord).join(" "), "latin1");
      // Inline requests are held to the inline and argument limits only, authenticated or not.
      if (lineBytes > limits.inlineBytesMax || args.length > limits.argumentsMax) return { requests: read, refused: true };
    } else {
      let total = 0;
      if (args.length > argumentsMax) return { requests: read, refused: true };
      for (const arg of args) {
        total += arg.length;
        if (arg.length > bulkBytesMax || total > limits.requestBytesMax) return { requests: read, refused: true };
      }
    }
    read.push(args.map((arg) => Buffer.from(arg)));
  }
  return { requests: read, refused: false };
}

function show(outcome: { requests: readonly Buffer[][]; error?: string | null }): string {
  return JSON.stringify({ requests: outcome.requests.map((args) => args.map((arg) => hexPreview(arg, 24))), error: outcome.error });
}

function sameOutcome(a: ReadOutcome, b: ReadOutcome): boolean {
  if (a.error !== b.error || a.requests.length !== b.requests.length) return false;
  return a.requests.every((args, i) => {
    const other = b.requests[i]!;
    return args.length === other.length && args.every((arg, k) => arg.equals(other[k]!));
  });
}

export const respReaderPart: FuzzPart = {
  name: "resp-reader",
  inputsAre: "RESP inputs to the request reader (each read whole and cut into reads, authenticated or not)",
  run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const property = fc.property(respInputArb, fc.boolean(), (input, authenticated) => {
      const { bytes, intact } = encodeInput(input);
      const whole = readChunks([bytes], fuzzRespLimits, authenticated, 0);
      const cut = readChunks(splitAt(bytes, input.cuts), fuzzRespLimits, authenticated, input.pauseEvery);
      if (!sameOutcome(whole, cut)) throw new Error(`reads differ with the cuts ${JSON.stringify(input.cuts)}: whole ${show(whole)}, cut ${show(cut)}`);
      const bound = parserBytesBound(fuzzRespLimits);
      for (const outcome of [whole, cut]) {
        if (outcome.parserBytesMax > bound) throw new Error(`redis-parser was handed ${outcome.parserBytesMax} bytes for one request; the limits allow ${bound}`);
      }
      if (intact) {
        const expected = expectedOutcome(input.requests, fuzzRespLimits, authenticated);
        const matches = expected.refused === (whole.error !== null) && expected.requests.length === whole.requests.length &&
          expected.requests.every((args, i) => args.length === whole.requests[i]!.length && args.every((arg, k) => arg.equals(whole.requests[i]![k]!)));
        if (!matches) throw new Error(`an undamaged pipeline read as ${show(whole)}; expected ${show({ requests: expected.requests, error: expected.refused ? "(a limit)" : null })}`);
      }
      stats.add(whole.error === null ? "inputs read without error" : "inputs refused with a protocol error");
      stats.add("requests read", whole.requests.length);
    });
    return checkProperty(this, options, property, options.count, 1, stats);
  },
};

// ---------------------------------------------------------------------------------------------
// The server

/** Connections one property run opens at once, each with its own input. */
export const respConnectionsPerRun = 16;
/** How long one connection may take from connect to close. */
const connectionDeadlineMs = 10_000;

const serverLimits: Partial<RespLimits> = {
  ...fuzzRespLimits,
  // Small, so that reading stops between requests and resumes on most pipelines.
  pendingRepliesMax: 2,
  // The default outputBytesSoftMax: pausing for output is covered by its own test in server.test.ts
  // (fixed in connection.ts's readChunk since this fuzz found it).
};

/** Top-level replies in `bytes` (RESP2 or RESP3), and whether they end exactly at the end. */
export function countReplies(bytes: Buffer): { replies: string[]; complete: boolean } {
  const replies: string[] = [];
  let offset = 0;
  const lineEnd = (from: number): number => {
    const end = bytes.indexOf("\r\n", from, "latin1");
    return end;
  };
  /** Skips one reply from `at`; returns the offset after it, or -1 when it is incomplete or malformed. */
  const skip = (at: number): number => {
    if (at >= bytes.length) return -1;
    const type = String.fromCharCode(bytes[at]!);
    const end = lineEnd(at + 1);
    if (end === -1) return -1;
    const line = bytes.toString("latin1", at + 1, end);
    const next = end + 2;
    switch (type) {
      case "+":
      case "-":
      case ":":
      case "_":
      case ",":
      case "#":
      case "(":
        return next;
      case "$":
      case "!":
      case "=": {
        const length = Number(line);
        if (length === -1 && type === "$") return next;
        if (!Number.isSafeInteger(length) || length < 0 || next + length + 2 > bytes.length) return -1;
        return bytes.toString("latin1", next + length, next + length + 2) === "\r\n" ? next + length + 2 : -1;
      }
      case "*":
      case "~":
      case ">":
      case "%":
      case "|": {
        const count = Number(line);
        if (count === -1 && type === "*") return next;
        if (!Number.isSafeInteger(count) || count < 0) return -1;
        let position = next;
        for (let i = 0; i < (type === "%" || type === "|" ? 2 * count : count); i++) {
          position = skip(position);
          if (position === -1) return -1;
        }
        return position;
      }
      default:
        return -1;
    }
  };
  while (offset < bytes.length) {
    const end = skip(offset);
    if (end === -1) return { replies, complete: false };
    replies.push(bytes.toString("latin1", offset, Math.min(end, offset + 80)));
    offset = end;
  }
  return { replies, complete: true };
}

/**
 * The replies an input must get, from what the reader makes of it, and whether the last is a protocol
 * error. After an HTTP request line the connection is cut at once, as Redis does: replies to the requests
 * before it in the same read may be lost with it, so `replies` is then a most.
 */
export function expectedReplies(bytes: Uint8Array): { replies: number; protocolError: boolean; cut: boolean } {
  const outcome = readChunks([bytes], fuzzRespLimits, true, 0);
  let replies = 0;
  for (const args of outcome.requests) {
    const name = args[0]!.toString().toLowerCase();
    if (name === "post" || name === "host:") return { replies, protocolError: false, cut: true };
    replies += 1;
    // QUIT is answered, then the connection ends.
    if (name === "quit") return { replies, protocolError: false, cut: false };
  }
  return outcome.error === null ? { replies, protocolError: false, cut: false } : { replies: replies + 1, protocolError: true, cut: false };
}

interface Exchange {
  readonly received: Buffer;
  readonly closedByServer: boolean;
}

/** Sends `chunks` on a new connection, half-closes, and collects everything until the connection closes. */
async function exchange(port: number, chunks: readonly Uint8Array[]): Promise<Exchange> {
  const socket = connect({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  const received: Buffer[] = [];
  let closedByServer = false;
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${connectionDeadlineMs} ms (received ${JSON.stringify(Buffer.concat(received).toString("latin1").slice(0, 200))})`));
    }, connectionDeadlineMs);
    socket.on("end", () => {
      closedByServer = true;
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.on("data", (data: Buffer) => received.push(data));
  // A reset from the server (after an HTTP request line) is a close like any other here.
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  for (const chunk of chunks) socket.write(chunk);
  socket.end();
  await closed;
  return { received: Buffer.concat(received), closedByServer };
}

/** A client that behaves: one persistent connection, one request at a time. */
class WellBehavedClient {
  private received = Buffer.alloc(0);
  private constructor(private readonly socket: Socket) {
    socket.on("data", (data: Buffer) => {
      this.received = Buffer.concat([this.received, data]);
    });
  }

  static async connect(port: number): Promise<WellBehavedClient> {
    const socket = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
    });
    return new WellBehavedClient(socket);
  }

  async echo(text: string): Promise<void> {
    this.received = Buffer.alloc(0);
    const expected = `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
    this.socket.write(`*2\r\n$4\r\nECHO\r\n$${Buffer.byteLength(text)}\r\n${text}\r\n`);
    await waitFor(`the well-behaved client's ECHO ${text} answered`, () => this.received.length >= Buffer.byteLength(expected));
    if (this.received.toString() !== expected) throw new Error(`the well-behaved client got ${JSON.stringify(this.received.toString())}, expected ${JSON.stringify(expected)}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

export const respServerPart: FuzzPart = {
  name: "resp-server",
  inputsAre: "RESP inputs sent to a real RESP server, one connection each",
  async run(options: FuzzOptions): Promise<FuzzReport> {
    const stats = new Stats();
    const { logger, errorLogs } = errorLogCapture("info");
    const server = await RespServer.start({ listen: { host: "127.0.0.1", port: 0 }, logger, commands: genericCommands, limits: serverLimits });
    const port = server.address().port;
    const client = await WellBehavedClient.connect(port);
    let run = 0;
    try {
      const property = fc.asyncProperty(fc.array(respInputArb, { minLength: respConnectionsPerRun, maxLength: respConnectionsPerRun }), async (inputs) => {
        run += 1;
        const sent = inputs.map((input) => {
          const { bytes } = encodeInput(input);
          return { bytes, chunks: splitAt(bytes, input.cuts) };
        });
        const exchanges = await Promise.all(sent.map(({ chunks }) => exchange(port, chunks)));
        exchanges.forEach(({ received }, i) => {
          const { bytes } = sent[i]!;
          const expected = expectedReplies(bytes);
          const { replies, complete } = countReplies(received);
          const context = `input ${hexPreview(bytes, 200)}: got ${JSON.stringify(received.toString("latin1").slice(0, 400))}`;
          if (!complete) throw new Error(`the replies are not well-formed RESP; ${context}`);
          if (expected.cut ? replies.length > expected.replies : replies.length !== expected.replies) {
            throw new Error(`expected ${expected.cut ? "at most " : ""}${expected.replies} replies, got ${replies.length}; ${context}`);
          }
          if (expected.protocolError && !replies.at(-1)!.startsWith("-ERR Protocol error")) throw new Error(`the last reply is not the protocol error; ${context}`);
          stats.add(expected.protocolError ? "connections closed for a protocol error" : expected.cut ? "connections cut for an HTTP request line" : "connections read to the end");
          stats.add("replies", replies.length);
        });
        if (errorLogs.length > 0) throw new Error(`the server logged errors: ${errorLogs.join("; ")}`);
        await waitFor("every fuzz connection to be gone from the server", () => server.connectionsOpen() === 1);
        await client.echo(`after run ${run}`);
      });
      return await checkProperty(this, options, property, Math.ceil(options.count / respConnectionsPerRun), respConnectionsPerRun, stats);
    } finally {
      client.close();
      await server.close();
    }
  },
};
