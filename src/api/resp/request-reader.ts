// Turns the bytes of one connection into requests (arrays of arguments), in order.
//
// Client requests are RESP arrays of bulk strings (`*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n`), parsed by
// redis-parser. redis-parser is a reply parser, though: it trusts every length it reads and buffers
// whatever a length announces, accepts any reply type inside an array, and knows nothing of inline
// requests. So the bytes pass through a small framing scanner first. It checks every `*<count>` and
// `$<length>` header against the limits before redis-parser buffers a byte of what they announce,
// rejects anything but bulk strings, finds where each request ends (so that reading can stop between two
// requests when the connection has too many replies pending), and splits inline requests itself.

import RedisParser from "redis-parser";
import { ignoreLimitHits, type LimitHitSink, type LimitName } from "../../limit-hits.js";
import { assert } from "../../util/assert.js";
import { splitInlineArguments } from "./inline.js";
import type { RespLimits } from "./limits.js";

/** Malformed or oversized input: the connection answers `-ERR Protocol error: <message>` and closes. */
export class RespProtocolError extends Error {
  override name = "RespProtocolError";
}

export type RequestReaderLimits = Pick<RespLimits, "argumentsMax" | "bulkBytesMax" | "requestBytesMax" | "inlineBytesMax">;

/** Longest `*<count>` or `$<length>` header line, CRLF included: a sign and 19 digits fit with room to spare. */
export const headerLineBytesMax = 32;
/**
 * Before a client has authenticated (when a password is required), requests are held to these, as Redis
 * 7.2 does: enough for `AUTH` and `HELLO 3 AUTH user pass SETNAME name`, too little for a stranger to
 * make us buffer megabytes.
 */
export const unauthenticatedArgumentsMax = 10;
export const unauthenticatedBulkBytesMax = 16 * 1024;

const asterisk = 0x2a;
const dollar = 0x24;
const carriageReturn = 0x0d;
const lineFeed = 0x0a;

type ScanState =
  /** Between requests: the next byte says multibulk (`*`) or inline (anything else). */
  | "request"
  /** Reading the `*<count>` line. */
  | "count"
  /** Reading a `$<length>` line. */
  | "length"
  /** Skipping over an argument's bytes and its CRLF. */
  | "argument"
  /** Reading an inline line up to its LF. */
  | "inline";

export class RequestReader {
  private state: ScanState = "request";
  /** The header line read so far (it may arrive split across reads). */
  private headerLine = "";
  /**
   * The `$<length>` line being read began in an earlier read, and redis-parser has not been handed any of
   * it: it gets the line in canonical form once the line is whole and checked.
   */
  private lengthLineWithheld = false;
  private argumentsLeft = 0;
  /** Bytes of the current argument left to skip, its CRLF included. */
  private argumentBytesLeft = 0;
  /** Argument bytes of the current request so far, against `requestBytesMax`. */
  private requestBytes = 0;
  private inlineParts: Buffer[] = [];
  private inlineBytes = 0;
  private readonly parser: RedisParser;
  private parsedRequest: Buffer[] | null = null;

  constructor(
    private readonly limits: RequestReaderLimits,
    /** Whether the client may send full-size requests (authenticated, or no password is required). */
    private readonly isAuthenticated: () => boolean,
    /** Told of each request refused by a limit; the stricter limits before AUTH count as the same names. */
    private readonly limitHits: LimitHitSink = ignoreLimitHits,
  ) {
    this.parser = new RedisParser({
      returnBuffers: true,
      returnReply: (reply: unknown) => {
        assert(this.parsedRequest === null, "redis-parser returned two requests for one framed request");
        assert(Array.isArray(reply) && reply.every((item) => Buffer.isBuffer(item)), "redis-parser returned something other than an array of bulk strings");
        this.parsedRequest = reply as Buffer[];
      },
      returnError: () => assert(false, "redis-parser met an error reply, which the framing scanner rejects"),
      returnFatalError: () => assert(false, "redis-parser met a type byte the framing scanner rejects"),
    });
  }

  /**
   * Reads requests from `chunk`, handing each complete one to `onRequest` in order; stops early, between
   * two requests, when `onRequest` returns false. Returns the bytes not read yet (empty when all were).
   * Throws RespProtocolError on malformed or oversized input, after which the reader must not be used.
   */
  read(chunk: Buffer, onRequest: (args: Buffer[]) => boolean): Buffer {
    let position = 0;
    /** Start of the bytes of the current multibulk request not yet handed to redis-parser. */
    let parserStart = 0;
    while (position < chunk.length) {
      switch (this.state) {
        case "request":
          if (chunk[position] === asterisk) {
            this.state = "count";
            this.headerLine = "";
            position++;
          } else {
            this.state = "inline";
            this.inlineParts = [];
            this.inlineBytes = 0;
          }
          break;
        case "count": {
          const lineEnd = this.readHeaderLine(chunk, position, "mbulk count");
          position = lineEnd ?? chunk.length;
          if (lineEnd === null) break;
          const count = this.requestArgumentCount();
          if (count <= 0) {
            // Redis skips `*0` and `*-1` without an answer.
            this.state = "request";
            break;
          }
          // The count line may have come in pieces; redis-parser gets it whole, in canonical form.
          this.parser.execute(Buffer.from(`*${count}\r\n`));
          parserStart = position;
          this.argumentsLeft = count;
          this.requestBytes = 0;
          this.beginLengthLine();
          break;
        }
        case "length": {
          if (this.headerLine === "" && chunk[position] !== dollar) {
            throw new RespProtocolError(`expected '$', got '${String.fromCharCode(chunk[position] as number)}'`);
          }
          const lineStart = position;
          const lineEnd = this.readHeaderLine(chunk, position, "bulk count");
          if (lineEnd === null) {
            // The line goes on in the next read. redis-parser takes the first CR as the end of a line
            // without looking at what follows (`$6\rX` is a length of 6 to it), so it must not see a line
            // before the scanner has checked it whole: it gets what came before the line now, and the
            // line itself once it is complete.
            if (lineStart > parserStart) this.parser.execute(chunk.subarray(parserStart, lineStart));
            this.lengthLineWithheld = true;
            position = chunk.length;
            parserStart = chunk.length;
            break;
          }
          position = lineEnd;
          const length = this.argumentLength();
          if (this.lengthLineWithheld) {
            this.lengthLineWithheld = false;
            this.parser.execute(Buffer.from(`$${length}\r\n`));
            parserStart = position;
          }
          this.argumentBytesLeft = length + 2;
          this.state = "argument";
          break;
        }
        case "argument": {
          position = this.skipArgumentBytes(chunk, position);
          if (this.argumentBytesLeft > 0) break;
          if (--this.argumentsLeft > 0) {
            this.beginLengthLine();
            break;
          }
          this.parser.execute(chunk.subarray(parserStart, position));
          parserStart = position;
          const args = this.parsedRequest;
          assert(args !== null, "redis-parser did not return a request the framing scanner saw end");
          this.parsedRequest = null;
          this.state = "request";
          if (!onRequest(args)) return chunk.subarray(position);
          break;
        }
        case "inline": {
          const lineFeedAt = chunk.indexOf(lineFeed, position);
          const end = lineFeedAt === -1 ? chunk.length : lineFeedAt;
          this.inlineParts.push(chunk.subarray(position, end));
          this.inlineBytes += end - position;
          position = lineFeedAt === -1 ? chunk.length : lineFeedAt + 1;
          // One byte of slack for the CR that may precede the LF still to come.
          if (this.inlineBytes > this.limits.inlineBytesMax + 1) throw this.inlineTooLong();
          if (lineFeedAt === -1) break;
          this.state = "request";
          const args = this.inlineArguments();
          if (args.length > 0 && !onRequest(args)) return chunk.subarray(position);
          break;
        }
      }
    }
    if ((this.state === "length" || this.state === "argument") && parserStart < chunk.length) {
      // The rest of this request comes in a later read; redis-parser keeps what it has so far.
      this.parser.execute(chunk.subarray(parserStart));
    }
    return chunk.subarray(chunk.length);
  }

  private beginLengthLine(): void {
    this.state = "length";
    this.headerLine = "";
  }

  /** Appends the header bytes from `start` to `headerLine`; returns the position after its LF, or null if it has not come yet. */
  private readHeaderLine(chunk: Buffer, start: number, what: string): number | null {
    const lineFeedAt = chunk.indexOf(lineFeed, start);
    const end = lineFeedAt === -1 ? chunk.length : lineFeedAt + 1;
    this.headerLine += chunk.toString("latin1", start, end);
    if (this.headerLine.length > headerLineBytesMax) {
      throw new RespProtocolError(`too big ${what} string (a header line is at most ${headerLineBytesMax} bytes)`);
    }
    return lineFeedAt === -1 ? null : end;
  }

  private requestArgumentCount(): number {
    const digits = this.headerDigits(/^-?\d+$/);
    if (digits === null) throw new RespProtocolError("invalid multibulk length");
    const count = Number(digits);
    const authenticated = this.isAuthenticated();
    const argumentsMax = authenticated ? this.limits.argumentsMax : Math.min(this.limits.argumentsMax, unauthenticatedArgumentsMax);
    if (count > argumentsMax) {
      throw this.refuse(
        "resp_arguments",
        authenticated
          ? `invalid multibulk length: ${count} arguments, more than the limit of ${argumentsMax} (argumentsMax)`
          : `unauthenticated multibulk length: ${count} arguments before AUTH, more than ${argumentsMax}; AUTH first`,
      );
    }
    return count;
  }

  private argumentLength(): number {
    // The line is `$<length>\r\n`; no sign: a negative length is no argument.
    const digits = this.headerDigits(/^\$\d+$/);
    if (digits === null) throw new RespProtocolError("invalid bulk length");
    const length = Number(digits.slice(1));
    const authenticated = this.isAuthenticated();
    const bulkBytesMax = authenticated ? this.limits.bulkBytesMax : Math.min(this.limits.bulkBytesMax, unauthenticatedBulkBytesMax);
    if (length > bulkBytesMax) {
      throw this.refuse(
        "resp_bulk_bytes",
        authenticated
          ? `invalid bulk length: an argument of ${length} bytes, more than the limit of ${bulkBytesMax} (bulkBytesMax)`
          : `unauthenticated bulk length: an argument of ${length} bytes before AUTH, more than ${bulkBytesMax}; AUTH first`,
      );
    }
    this.requestBytes += length;
    if (this.requestBytes > this.limits.requestBytesMax) {
      throw this.refuse("resp_request_bytes", `request too big: more than ${this.limits.requestBytesMax} bytes of arguments (requestBytesMax)`);
    }
    return length;
  }

  /** The header line without its CRLF if it matches `pattern`, else null. */
  private headerDigits(pattern: RegExp): string | null {
    if (!this.headerLine.endsWith("\r\n")) return null;
    const text = this.headerLine.slice(0, -2);
    return pattern.test(text) && text.length <= 20 ? text : null;
  }

  /** Skips the argument bytes available from `start`, checking the CRLF that ends them; returns the new position. */
  private skipArgumentBytes(chunk: Buffer, start: number): number {
    const taken = Math.min(this.argumentBytesLeft, chunk.length - start);
    // Offsets (from `start`) of the CR and the LF, where they fall inside this chunk.
    for (let offset = Math.max(0, this.argumentBytesLeft - 2); offset < taken; offset++) {
      const expected = this.argumentBytesLeft - offset === 2 ? carriageReturn : lineFeed;
      if (chunk[start + offset] !== expected) throw new RespProtocolError("expected CRLF at the end of an argument, as long as its $<length> said");
    }
    this.argumentBytesLeft -= taken;
    return start + taken;
  }

  private inlineArguments(): Buffer[] {
    let line = this.inlineParts.length === 1 ? (this.inlineParts[0] as Buffer) : Buffer.concat(this.inlineParts);
    this.inlineParts = [];
    if (line.length > 0 && line[line.length - 1] === carriageReturn) line = line.subarray(0, line.length - 1);
    if (line.length > this.limits.inlineBytesMax) throw this.inlineTooLong();
    const args = splitInlineArguments(line);
    if (args === null) throw new RespProtocolError("unbalanced quotes in request");
    if (args.length > this.limits.argumentsMax) {
      throw this.refuse("resp_arguments", `too many arguments in an inline request: ${args.length}, more than the limit of ${this.limits.argumentsMax} (argumentsMax)`);
    }
    return args;
  }

  private inlineTooLong(): RespProtocolError {
    return this.refuse("resp_inline_bytes", `too big inline request (more than ${this.limits.inlineBytesMax} bytes without a line feed; inlineBytesMax)`);
  }

  /** The error refusing a request for `limit`, reported as a hit: the reader throws it and is not used again, so once per request. */
  private refuse(limit: LimitName, message: string): RespProtocolError {
    this.limitHits(limit);
    return new RespProtocolError(message);
  }
}
