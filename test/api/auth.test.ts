// The credentials and the failed-authentication limiter both client ports share, on a clock moved by hand.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { AuthFailureLimiter, type AuthLimits, ClientCredentials } from "../../src/api/auth.js";
import type { LimitName } from "../../src/limit-hits.js";

type LogLine = Record<string, unknown> & { msg: string };

function limiterWithClock(limits: AuthLimits): { limiter: AuthFailureLimiter; logs: LogLine[]; limitHits: LimitName[]; setNowMs: (ms: number) => void } {
  const logs: LogLine[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  let nowMs = 0;
  const limitHits: LimitName[] = [];
  const limiter = new AuthFailureLimiter(logger, "HTTP", limits, () => nowMs, (limit) => limitHits.push(limit));
  return { limiter, logs, limitHits, setNowMs: (ms) => (nowMs = ms) };
}

describe("client credentials", () => {
  it("tell the full password from the read-only one, and refuse anything else", () => {
    const credentials = new ClientCredentials("full-pw", "reader-pw");
    expect(credentials.check("full-pw")).toBe("full");
    expect(credentials.check(Buffer.from("reader-pw"))).toBe("read-only");
    expect(credentials.check("full-pw ")).toBeNull();
    expect(credentials.check("")).toBeNull();
    expect(new ClientCredentials("full-pw").check("reader-pw")).toBeNull();
  });

  it("refuse an empty password and a read-only password equal to the full one", () => {
    expect(() => new ClientCredentials("")).toThrow("must not be empty");
    expect(() => new ClientCredentials("pw", "pw")).toThrow("the read-only password must differ from the full password");
  });
});

describe("failed authentication limiter", () => {
  const limits: AuthLimits = { failuresMax: 3, failureWindowMs: 10_000, logIntervalMs: 60_000, addressesMax: 2 };

  it("limits an address after failuresMax failures until its window ends, and other addresses not at all", () => {
    const { limiter, limitHits, setNowMs } = limiterWithClock(limits);
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
      limiter.recordFailure("10.0.0.1");
    }
    expect(limitHits).toEqual([]);
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(10);
    expect(limiter.retryAfterSeconds("10.0.0.2")).toBe(0);
    setNowMs(9_001);
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(1);
    // One hit per attempt refused unchecked, none for the attempts it let through.
    expect(limitHits).toEqual(["auth_failures", "auth_failures"]);
    setNowMs(10_000);
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
    // A new window: the count starts again.
    limiter.recordFailure("10.0.0.1");
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
    expect(limitHits).toHaveLength(2);
  });

  it("does not count requests without credentials towards the limit", () => {
    const { limiter, limitHits } = limiterWithClock(limits);
    for (let attempt = 0; attempt < 10; attempt++) limiter.recordMissingCredentials("10.0.0.1");
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
    expect(limitHits).toEqual([]);
  });

  it("logs an address at most once per interval, with what happened since its previous line", () => {
    const { limiter, logs, setNowMs } = limiterWithClock(limits);
    for (let attempt = 0; attempt < 5; attempt++) {
      limiter.retryAfterSeconds("10.0.0.1");
      limiter.recordFailure("10.0.0.1");
    }
    limiter.recordMissingCredentials("10.0.0.1");
    limiter.recordFailure("10.0.0.2");
    expect(logs.map((line) => [line.remote, line.failures])).toEqual([["10.0.0.1", 1], ["10.0.0.2", 1]]);
    setNowMs(60_000);
    limiter.recordFailure("10.0.0.1");
    expect(logs).toHaveLength(3);
    // Failures 2 to 5 and the sixth; the two attempts after the third failure were refused unchecked.
    expect(logs[2]).toMatchObject({ remote: "10.0.0.1", port: "HTTP", failures: 5, withoutCredentials: 1, refusedWhileLimited: 2 });
  });

  it("remembers at most addressesMax addresses", () => {
    const { limiter } = limiterWithClock(limits);
    for (let attempt = 0; attempt < 3; attempt++) limiter.recordFailure("10.0.0.1");
    limiter.recordFailure("10.0.0.2");
    limiter.recordFailure("10.0.0.3");
    // The least recently seen address was forgotten, and with it its count.
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
  });
});
