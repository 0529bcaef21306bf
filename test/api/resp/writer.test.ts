import { describe, expect, it } from "vitest";
import { array, bulk, bulkOrNull, err, errorReply, integer, map, nullArray, nullBulk, ok, push, type Reply, status } from "../../../src/api/resp/reply.js";
import { encodeReply } from "../../../src/api/resp/writer.js";

/** The bytes of `reply` in both protocols, as text with visible line ends. */
function both(reply: Reply): { resp2: string; resp3: string } {
  return { resp2: encodeReply(reply, 2).toString("latin1"), resp3: encodeReply(reply, 3).toString("latin1") };
}

describe("reply writer: types RESP2 and RESP3 share", () => {
  it("status", () => {
    expect(both(ok)).toEqual({ resp2: "+OK\r\n", resp3: "+OK\r\n" });
    expect(both(status("PONG")).resp2).toBe("+PONG\r\n");
  });

  it("error: -CODE message", () => {
    expect(both(errorReply("NOLEADER", "no leader is elected yet; retry"))).toEqual({
      resp2: "-NOLEADER no leader is elected yet; retry\r\n",
      resp3: "-NOLEADER no leader is elected yet; retry\r\n",
    });
    expect(both(err("unknown command 'x'")).resp2).toBe("-ERR unknown command 'x'\r\n");
  });

  it("a CR or LF inside a status or an error becomes a space, so the reply stays one line", () => {
    expect(both(err("unknown command 'a\r\nb'")).resp2).toBe("-ERR unknown command 'a  b'\r\n");
    expect(both(status("x\ny")).resp3).toBe("+x y\r\n");
  });

  it("integer, as a number or a 64-bit bigint", () => {
    expect(both(integer(42))).toEqual({ resp2: ":42\r\n", resp3: ":42\r\n" });
    expect(both(integer(-7)).resp2).toBe(":-7\r\n");
    expect(both(integer(9_223_372_036_854_775_807n)).resp3).toBe(":9223372036854775807\r\n");
  });

  it("bulk string: binary-safe, strings as UTF-8", () => {
    expect(both(bulk("hello"))).toEqual({ resp2: "$5\r\nhello\r\n", resp3: "$5\r\nhello\r\n" });
    expect(both(bulk("")).resp2).toBe("$0\r\n\r\n");
    expect(encodeReply(bulk("é"), 2)).toEqual(Buffer.from("$2\r\n\xc3\xa9\r\n", "latin1"));
    expect(encodeReply(bulk(Buffer.from([0, 13, 10, 255])), 3)).toEqual(Buffer.from([0x24, 0x34, 13, 10, 0, 13, 10, 255, 13, 10]));
  });

  it("array, nested", () => {
    const reply = array([bulk("a"), integer(1), array([status("OK")]), array([])]);
    const expected = "*4\r\n$1\r\na\r\n:1\r\n*1\r\n+OK\r\n*0\r\n";
    expect(both(reply)).toEqual({ resp2: expected, resp3: expected });
  });
});

describe("reply writer: types that differ between RESP2 and RESP3", () => {
  it("null: $-1 or *-1 in RESP2 by the shape of the reply it stands for, _ in RESP3", () => {
    expect(both(nullBulk)).toEqual({ resp2: "$-1\r\n", resp3: "_\r\n" });
    expect(both(nullArray)).toEqual({ resp2: "*-1\r\n", resp3: "_\r\n" });
    expect(both(bulkOrNull(null)).resp2).toBe("$-1\r\n");
    expect(both(bulkOrNull("x")).resp2).toBe("$1\r\nx\r\n");
  });

  it("map: % in RESP3, a flat key-value array in RESP2", () => {
    const reply = map([
      ["owner", bulk("w1")],
      ["token", integer(7)],
      ["session", nullBulk],
    ]);
    expect(both(reply)).toEqual({
      resp2: "*6\r\n$5\r\nowner\r\n$2\r\nw1\r\n$5\r\ntoken\r\n:7\r\n$7\r\nsession\r\n$-1\r\n",
      resp3: "%3\r\n$5\r\nowner\r\n$2\r\nw1\r\n$5\r\ntoken\r\n:7\r\n$7\r\nsession\r\n_\r\n",
    });
  });

  it("set: ~ in RESP3, an array in RESP2", () => {
    expect(both({ type: "set", items: [status("fast"), status("loading")] })).toEqual({
      resp2: "*2\r\n+fast\r\n+loading\r\n",
      resp3: "~2\r\n+fast\r\n+loading\r\n",
    });
  });

  it("boolean: #t/#f in RESP3, :1/:0 in RESP2", () => {
    expect(both({ type: "boolean", value: true })).toEqual({ resp2: ":1\r\n", resp3: "#t\r\n" });
    expect(both({ type: "boolean", value: false })).toEqual({ resp2: ":0\r\n", resp3: "#f\r\n" });
  });

  it("double: , in RESP3, a bulk string in RESP2, with inf and nan spelled as Redis does", () => {
    expect(both({ type: "double", value: 1.5 })).toEqual({ resp2: "$3\r\n1.5\r\n", resp3: ",1.5\r\n" });
    expect(both({ type: "double", value: 3 }).resp3).toBe(",3\r\n");
    expect(both({ type: "double", value: -Infinity })).toEqual({ resp2: "$4\r\n-inf\r\n", resp3: ",-inf\r\n" });
    expect(both({ type: "double", value: Infinity }).resp3).toBe(",inf\r\n");
    expect(both({ type: "double", value: Number.NaN }).resp3).toBe(",nan\r\n");
  });

  it("verbatim string: = with its format in RESP3, a bulk string in RESP2", () => {
    expect(both({ type: "verbatim", format: "txt", value: "a:1\r\n" })).toEqual({
      resp2: "$5\r\na:1\r\n\r\n",
      resp3: "=9\r\ntxt:a:1\r\n\r\n",
    });
  });

  it("push: > in RESP3, a plain array in RESP2 (how pub/sub messages look there)", () => {
    const reply = push([bulk("message"), bulk("raft:leader"), bulk("{}")]);
    expect(both(reply)).toEqual({
      resp2: "*3\r\n$7\r\nmessage\r\n$11\r\nraft:leader\r\n$2\r\n{}\r\n",
      resp3: ">3\r\n$7\r\nmessage\r\n$11\r\nraft:leader\r\n$2\r\n{}\r\n",
    });
  });

  it("types nest: a map inside an array inside a push", () => {
    const reply = push([array([map([["k", { type: "boolean", value: true }]])])]);
    expect(both(reply)).toEqual({ resp2: "*1\r\n*1\r\n*2\r\n$1\r\nk\r\n:1\r\n", resp3: ">1\r\n*1\r\n%1\r\n$1\r\nk\r\n#t\r\n" });
  });
});

describe("reply writer: invariants", () => {
  it("refuses (as a bug) an error code that is not one upper-case word, and integers that cannot be sent exactly", () => {
    expect(() => encodeReply(errorReply("no leader", "x"), 2)).toThrow(/error code/);
    expect(() => encodeReply(integer(1.5), 2)).toThrow(/safe integer/);
    expect(() => encodeReply(integer(2n ** 63n), 3)).toThrow(/64 bits/);
  });
});

describe("a sequence of replies to one request", () => {
  it("is written as its frames back to back, each in the connection's protocol (SUBSCRIBE a b)", () => {
    const confirmations: Reply = { type: "sequence", replies: [push([bulk("subscribe"), bulk("a"), integer(1)]), push([bulk("subscribe"), bulk("b"), integer(2)])] };
    expect(encodeReply(confirmations, 2).toString()).toBe("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
    expect(encodeReply(confirmations, 3).toString()).toBe(">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
  });
});
