import { describe, expect, it } from "vitest";
import { splitInlineArguments } from "../../../src/api/resp/inline.js";
import { respLimitsDefault } from "../../../src/api/resp/limits.js";
import { RequestReader, type RequestReaderLimits, RespProtocolError } from "../../../src/api/resp/request-reader.js";
import type { LimitName } from "../../../src/limit-hits.js";

const limits: RequestReaderLimits = { argumentsMax: 8, bulkBytesMax: 64, requestBytesMax: 100, inlineBytesMax: 32 };

function multibulk(...args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`;
}

/** Every request read from `chunks`, each as its arguments in text. */
function readAll(chunks: (string | Buffer)[], options: { limits?: RequestReaderLimits; authenticated?: boolean } = {}): string[][] {
  const reader = new RequestReader(options.limits ?? limits, () => options.authenticated ?? true);
  const requests: string[][] = [];
  for (const chunk of chunks) {
    const rest = reader.read(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk, (args) => {
      requests.push(args.map((arg) => arg.toString("latin1")));
      return true;
    });
    expect(rest.length).toBe(0);
  }
  return requests;
}

function protocolError(chunks: string[], options: { limits?: RequestReaderLimits; authenticated?: boolean } = {}): string {
  try {
    readAll(chunks, options);
  } catch (error) {
    expect(error).toBeInstanceOf(RespProtocolError);
    return (error as Error).message;
  }
  throw new Error("expected a protocol error");
}

describe("request reader: framing", () => {
  const stream = multibulk("SET", "k", "v\r\n with CRLF") + "PING\r\n" + multibulk("ECHO", "") + "*0\r\n" + multibulk("GET", "k");
  const expected = [["SET", "k", "v\r\n with CRLF"], ["PING"], ["ECHO", ""], ["GET", "k"]];

  it("reads pipelined multibulk and inline requests in order, skipping an empty *0", () => {
    expect(readAll([stream])).toEqual(expected);
  });

  it("gives the same requests however the bytes are split, down to one byte per read", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(readAll([stream.slice(0, cut), stream.slice(cut)])).toEqual(expected);
    }
    expect(readAll([...stream])).toEqual(expected);
  });

  it("stops between two requests when told to and hands back the unread bytes", () => {
    const reader = new RequestReader(limits, () => true);
    const seen: string[] = [];
    const rest = reader.read(Buffer.from(multibulk("A") + multibulk("B") + "C\r\n"), (args) => {
      seen.push(args[0]?.toString() ?? "");
      return seen.length < 1;
    });
    expect(seen).toEqual(["A"]);
    expect(rest.toString()).toBe(multibulk("B") + "C\r\n");
    reader.read(rest, (args) => {
      seen.push(args[0]?.toString() ?? "");
      return true;
    });
    expect(seen).toEqual(["A", "B", "C"]);
  });

  it("reassembles a large argument that arrives in many reads", () => {
    const large = { ...limits, bulkBytesMax: 1 << 20, requestBytesMax: 1 << 20 };
    const payload = "0123456789abcdef".repeat(16 * 1024);
    const request = Buffer.from(multibulk("ECHO", payload));
    const chunks: Buffer[] = [];
    for (let start = 0; start < request.length; start += 7_000) chunks.push(request.subarray(start, start + 7_000));
    expect(readAll([...chunks, Buffer.from(multibulk("PING"))], { limits: large })).toEqual([["ECHO", payload], ["PING"]]);
  });

  it("passes binary arguments through unchanged", () => {
    const bytes = Buffer.from([0, 1, 2, 13, 10, 255]);
    const request = Buffer.concat([Buffer.from("*2\r\n$4\r\nECHO\r\n$6\r\n"), bytes, Buffer.from("\r\n")]);
    const reader = new RequestReader(limits, () => true);
    let argument: Buffer | undefined;
    reader.read(request, (args) => {
      argument = args[1];
      return true;
    });
    expect(argument).toEqual(bytes);
  });
});

describe("request reader: inline requests", () => {
  it("splits words on spaces and tabs, ignores empty lines, accepts a bare LF", () => {
    expect(readAll(["PING\r\n\r\n  echo   hi\tthere \n"])).toEqual([["PING"], ["echo", "hi", "there"]]);
  });

  it("understands quotes and escapes as redis-cli and Redis do", () => {
    expect(splitInlineArguments(Buffer.from(`set "a b" 'c d' "\\x41\\n" 'it\\'s'`))?.map(String)).toEqual(["set", "a b", "c d", "A\n", "it's"]);
    expect(splitInlineArguments(Buffer.from(`set "open`))).toBeNull();
    expect(splitInlineArguments(Buffer.from(`set "a"b`))).toBeNull();
  });

  it("refuses unbalanced quotes, lines over inlineBytesMax and too many words", () => {
    expect(protocolError(['ECHO "x\r\n'])).toBe("unbalanced quotes in request");
    expect(protocolError(["ECHO " + "x".repeat(40)])).toMatch(/^too big inline request/);
    expect(protocolError(["ECHO " + "x".repeat(40) + "\r\n"])).toMatch(/^too big inline request/);
    expect(protocolError(["a b c d e f g h i\r\n"])).toMatch(/too many arguments/);
  });
});

describe("request reader: malformed and oversized requests", () => {
  it("refuses a count or a length that is not a number", () => {
    expect(protocolError(["*x\r\n"])).toBe("invalid multibulk length");
    expect(protocolError(["*1\r\n$x\r\n"])).toBe("invalid bulk length");
    expect(protocolError(["*1\r\n$-1\r\n"])).toBe("invalid bulk length");
    expect(protocolError(["*1\n"])).toBe("invalid multibulk length");
  });

  it("refuses anything but bulk strings inside a request", () => {
    expect(protocolError(["*1\r\n:1\r\n"])).toBe("expected '$', got ':'");
    expect(protocolError(["*1\r\n*1\r\n"])).toBe("expected '$', got '*'");
  });

  it("refuses an argument whose bytes do not end where its length said", () => {
    expect(protocolError(["*1\r\n$2\r\nabc\r\n"])).toMatch(/^expected CRLF/);
  });

  // Found by the fuzz tests (test/fuzz/resp.ts): the start of a length line was handed to redis-parser
  // before the line was complete; redis-parser read `$6\rX` as a length of 6 and later met a type byte it
  // rejects, a failed assertion that would have crashed the node on one client's bytes.
  it("refuses a length line with a stray CR however the line is split across reads, and reads a valid one split anywhere", () => {
    const bad = "*2\r\n$4\r\nECHO\r\n$6\rc\\x1c\\xd6\" \"@IX/\"\n*7\r\n";
    for (let cut = 1; cut < bad.length; cut++) {
      expect(protocolError([bad.slice(0, cut), bad.slice(cut)])).toBe("invalid bulk length");
    }
    const good = multibulk("ECHO", "hello") + multibulk("PING");
    for (let first = 1; first < good.length; first++) {
      for (let second = first + 1; second < good.length; second++) {
        expect(readAll([good.slice(0, first), good.slice(first, second), good.slice(second)])).toEqual([["ECHO", "hello"], ["PING"]]);
      }
    }
  });

  it("refuses an endless header line", () => {
    expect(protocolError(["*" + "1".repeat(40)])).toMatch(/^too big mbulk count string/);
  });

  it("checks a length against bulkBytesMax before any of the argument has arrived", () => {
    expect(protocolError(["*1\r\n$65\r\n"])).toMatch(/^invalid bulk length: an argument of 65 bytes, more than the limit of 64 \(bulkBytesMax\)/);
  });

  it("checks the arguments of one request together against requestBytesMax", () => {
    expect(protocolError(["*2\r\n$60\r\n" + "x".repeat(60) + "\r\n$60\r\n"])).toMatch(/^request too big/);
  });

  it("checks the count against argumentsMax", () => {
    expect(protocolError(["*9\r\n"])).toMatch(/^invalid multibulk length: 9 arguments, more than the limit of 8 \(argumentsMax\)/);
    expect(readAll(["*8\r\n" + "$1\r\nx\r\n".repeat(8)])).toHaveLength(1);
  });

  it("reports each request refused by a limit as one hit of that limit, and malformed input as none", () => {
    const hitsOf = (chunks: string[], options: { limits?: RequestReaderLimits; authenticated?: boolean } = {}): LimitName[] => {
      const hits: LimitName[] = [];
      const reader = new RequestReader(options.limits ?? limits, () => options.authenticated ?? true, (limit) => hits.push(limit));
      try {
        for (const chunk of chunks) reader.read(Buffer.from(chunk, "latin1"), () => true);
      } catch (error) {
        expect(error).toBeInstanceOf(RespProtocolError);
      }
      return hits;
    };
    expect(hitsOf([multibulk("ECHO", "x".repeat(64)), "PING\r\n"])).toEqual([]);
    expect(hitsOf(["*9\r\n"])).toEqual(["resp_arguments"]);
    expect(hitsOf(["a b c d e f g h i\r\n"])).toEqual(["resp_arguments"]);
    expect(hitsOf(["*1\r\n", "$65\r\n"])).toEqual(["resp_bulk_bytes"]);
    expect(hitsOf(["*2\r\n$60\r\n" + "x".repeat(60) + "\r\n$60\r\n"])).toEqual(["resp_request_bytes"]);
    expect(hitsOf(["ECHO " + "x".repeat(20), "x".repeat(20)])).toEqual(["resp_inline_bytes"]);
    // With the defaults' generous argumentsMax, only the unauthenticated limit refuses `*11`.
    expect(hitsOf(["*11\r\n"], { limits: respLimitsDefault, authenticated: false })).toEqual(["resp_arguments"]);
    expect(hitsOf(["*x\r\n"])).toEqual([]);
    expect(hitsOf(["*" + "1".repeat(40)])).toEqual([]);
  });

  it("holds a client that has not authenticated to small requests, as Redis 7.2 does", () => {
    const generous = { ...respLimitsDefault };
    expect(protocolError(["*11\r\n"], { limits: generous, authenticated: false })).toMatch(/^unauthenticated multibulk length/);
    expect(protocolError(["*2\r\n$4\r\nAUTH\r\n$16385\r\n"], { limits: generous, authenticated: false })).toMatch(/^unauthenticated bulk length/);
    expect(readAll(["*11\r\n" + "$1\r\nx\r\n".repeat(11)], { limits: generous, authenticated: true })).toHaveLength(1);
  });
});
