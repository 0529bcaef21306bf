import { describe, expect, it } from "vitest";
import { checkLockHistory, type HistoryOp, type LockOp, type Outcome } from "./linearizability.js";

type Value = Extract<Outcome, { type: "ok" }>["value"];
type Draft = Omit<HistoryOp, "id">;

const acquire = (owner: string): LockOp => ({ kind: "acquire", owner });
const release = (owner: string): LockOp => ({ kind: "release", owner });
const refresh = (owner: string): LockOp => ({ kind: "refresh", owner });
const read: LockOp = { kind: "read" };

const clientOf = (op: LockOp): string => ("owner" in op ? op.owner : "reader");
const ok = (op: LockOp, invokeMs: number, completeMs: number, value: Value): Draft => ({
  client: clientOf(op),
  op,
  invokeMs,
  completeMs,
  outcome: { type: "ok", value },
});
const unknown = (op: LockOp, invokeMs: number): Draft => ({
  client: clientOf(op),
  op,
  invokeMs,
  completeMs: invokeMs,
  outcome: { type: "unknown" },
});
const failed = (op: LockOp, invokeMs: number, completeMs: number): Draft => ({
  client: clientOf(op),
  op,
  invokeMs,
  completeMs,
  outcome: { type: "fail" },
});
/** Ids are positions, so a test can name ops by index. */
const history = (...drafts: Draft[]): HistoryOp[] => drafts.map((d, id) => ({ id, ...d }));

const verdict = (...drafts: Draft[]): string => checkLockHistory(history(...drafts)).result;

describe("checkLockHistory: linearizable histories", () => {
  it("accepts an empty history", () => {
    expect(verdict()).toBe("linearizable");
  });

  it("accepts sequential acquire/release by two clients with increasing, non-consecutive tokens", () => {
    expect(
      verdict(
        ok(acquire("A"), 0, 1, 3),
        ok(release("A"), 2, 3, true),
        ok(acquire("B"), 4, 5, 7),
        ok(refresh("B"), 6, 7, true),
        ok(release("B"), 8, 9, true),
      ),
    ).toBe("linearizable");
  });

  it("accepts concurrent acquires where exactly one wins", () => {
    expect(
      verdict(
        ok(acquire("A"), 0, 10, 4),
        ok(acquire("B"), 1, 9, null),
        ok(acquire("C"), 2, 8, null),
        ok(read, 11, 12, { owner: "A", token: 4 }),
      ),
    ).toBe("linearizable");
  });

  it("accepts a winner whose acquire returns after a loser's, when they overlap", () => {
    // B's null is linearized after A's grant even though B's call returned first.
    expect(verdict(ok(acquire("A"), 0, 10, 4), ok(acquire("B"), 1, 2, null))).toBe("linearizable");
  });

  it("accepts a re-acquire by the holder returning the same token", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(acquire("A"), 2, 3, 3), ok(release("A"), 4, 5, true))).toBe(
      "linearizable",
    );
  });

  it("accepts a re-acquire by the same owner with a higher token (its lease expired in between)", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 5), ok(acquire("A"), 2, 3, 8))).toBe("linearizable");
  });

  it("accepts an acquire returning null while another client holds the lock", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(acquire("B"), 2, 3, null))).toBe("linearizable");
  });

  it("accepts a read returning the holder and its token", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(read, 2, 3, { owner: "A", token: 3 }))).toBe("linearizable");
  });

  it("accepts a new grant without a release, because the holder's lease may have expired", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(acquire("B"), 10, 11, 5))).toBe("linearizable");
  });

  it("accepts a failed refresh, a null read and a failed release while the lock seems held (expiry)", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(refresh("A"), 2, 3, false))).toBe("linearizable");
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(read, 2, 3, null))).toBe("linearizable");
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(release("A"), 2, 3, false))).toBe("linearizable");
  });

  it("assumes an unknown-outcome acquire took effect when later results need it", () => {
    expect(
      verdict(
        unknown(acquire("A"), 0),
        ok(read, 5, 6, { owner: "A", token: 9 }),
        ok(acquire("B"), 7, 8, null),
        ok(release("A"), 9, 10, true),
        ok(acquire("B"), 11, 12, 10),
      ),
    ).toBe("linearizable");
  });

  it("assumes an unknown-outcome release did not take effect when later results need it", () => {
    expect(
      verdict(
        ok(acquire("A"), 0, 1, 3),
        unknown(release("A"), 2),
        ok(acquire("B"), 4, 5, null), // so A still held it
        ok(release("A"), 6, 7, true),
      ),
    ).toBe("linearizable");
  });

  it("accepts unknown ops invoked at the end that never return", () => {
    expect(
      verdict(
        ok(acquire("A"), 0, 1, 3),
        ok(release("A"), 2, 3, true),
        unknown(acquire("B"), 100),
        unknown(release("A"), 101),
        unknown(read, 102),
        unknown(refresh("B"), 103),
      ),
    ).toBe("linearizable");
  });

  it("drops failed ops, which never took effect", () => {
    expect(
      verdict(
        ok(acquire("A"), 0, 1, 3),
        failed(release("A"), 2, 3),
        failed(acquire("B"), 4, 5),
        ok(read, 6, 7, { owner: "A", token: 3 }),
      ),
    ).toBe("linearizable");
  });

  it("treats an invocation and a return with the same timestamp as concurrent", () => {
    // Ordered strictly, B's null would come after the release; at equal milliseconds it may precede it.
    expect(
      verdict(ok(acquire("A"), 0, 1, 3), ok(release("A"), 2, 5, true), ok(acquire("B"), 5, 6, null)),
    ).toBe("linearizable");
  });
});

describe("checkLockHistory: violations", () => {
  it("rejects grants to different owners in decreasing token order", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 7), ok(acquire("B"), 2, 3, 4))).toBe("violation");
  });

  it("rejects the same token granted to two owners, even concurrently", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 5), ok(acquire("B"), 2, 3, 5))).toBe("violation");
    expect(verdict(ok(acquire("A"), 0, 10, 5), ok(acquire("B"), 1, 9, 5))).toBe("violation");
  });

  it("rejects a stale read of a holder whose token was superseded", () => {
    expect(
      verdict(ok(acquire("B"), 0, 1, 5), ok(acquire("A"), 2, 3, 6), ok(read, 4, 5, { owner: "B", token: 5 })),
    ).toBe("violation");
  });

  it("rejects a read of a holder with a token it was not granted", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 5), ok(read, 2, 3, { owner: "A", token: 6 }))).toBe("violation");
  });

  it("rejects a successful release by an owner that never acquired", () => {
    expect(verdict(ok(release("A"), 0, 1, true))).toBe("violation");
  });

  it("rejects a successful refresh after the owner released", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(release("A"), 2, 3, true), ok(refresh("A"), 4, 5, true))).toBe(
      "violation",
    );
  });

  it("rejects an acquire refused when nobody can hold the lock", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(release("A"), 2, 3, true), ok(acquire("B"), 4, 5, null))).toBe(
      "violation",
    );
    expect(verdict(ok(acquire("B"), 0, 1, null))).toBe("violation");
  });

  it("rejects an acquire refused only because the caller itself holds the lock", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 3), ok(acquire("A"), 2, 3, null))).toBe("violation");
  });

  it("rejects a re-acquire by the same owner returning a lower token", () => {
    expect(verdict(ok(acquire("A"), 0, 1, 5), ok(acquire("A"), 2, 3, 4))).toBe("violation");
  });

  it("rejects a holder coming back with its old token after the lock was seen free (expiry is final)", () => {
    expect(
      verdict(ok(acquire("A"), 0, 1, 3), ok(read, 2, 3, null), ok(read, 4, 5, { owner: "A", token: 3 })),
    ).toBe("violation");
  });

  it("fences the token of an unknown-outcome acquire once a read reveals it", () => {
    const prefix = [unknown(acquire("A"), 0), ok(read, 2, 3, { owner: "A", token: 5 }), ok(release("A"), 4, 5, true)];
    expect(verdict(...prefix, ok(acquire("B"), 6, 7, 5))).toBe("violation");
    expect(verdict(...prefix, ok(acquire("B"), 6, 7, 6))).toBe("linearizable");
  });

  it("knows an unobserved token exceeds the last one granted", () => {
    // A's unknown acquire could only grant a token above 1, so B's read of A with token 1 is impossible...
    const granted = [ok(acquire("B"), 0, 1, 1), ok(release("B"), 2, 3, true), unknown(acquire("A"), 4)];
    expect(verdict(...granted, ok(read, 5, 6, { owner: "A", token: 1 }))).toBe("violation");
    // ...while a later grant only has to exceed the smallest token A could have had.
    expect(verdict(...granted, ok(acquire("C"), 5, 6, null), ok(acquire("C"), 7, 8, 2))).toBe("violation");
    expect(verdict(...granted, ok(read, 5, 6, { owner: "A", token: 2 }))).toBe("linearizable");
    expect(
      verdict(...granted, ok(acquire("C"), 5, 6, null), ok(acquire("C"), 7, 8, 3), ok(read, 9, 10, null)),
    ).toBe("linearizable");
  });

  it("does not let an unknown acquire explain what happened before it was invoked", () => {
    expect(verdict(ok(read, 0, 1, { owner: "A", token: 5 }), unknown(acquire("A"), 2))).toBe("violation");
    expect(verdict(ok(read, 0, 3, { owner: "A", token: 5 }), unknown(acquire("A"), 2))).toBe("linearizable");
  });

  it("uses each unknown acquire at most once", () => {
    const twice = [
      unknown(acquire("A"), 0),
      ok(read, 1, 2, { owner: "A", token: 4 }),
      ok(release("A"), 3, 4, true),
      ok(read, 5, 6, { owner: "A", token: 6 }),
    ];
    expect(verdict(...twice)).toBe("violation");
    expect(verdict(unknown(acquire("A"), 0), ...twice)).toBe("linearizable");
  });

  it("reports the longest linearizable prefix and the ops that could not follow it", () => {
    const result = checkLockHistory(
      history(ok(acquire("A"), 0, 1, 7), ok(refresh("A"), 2, 3, true), ok(acquire("B"), 4, 5, 4), ok(read, 6, 7, null)),
    );
    expect(result.result).toBe("violation");
    if (result.result !== "violation") return;
    expect(result.linearizedPrefix).toEqual([0, 1]);
    expect(result.stuckAt.map((o) => o.id)).toEqual([2]);
    expect(result.message).toContain("#2 acquire(B)");
  });
});

describe("checkLockHistory: input and limits", () => {
  it("throws on duplicate ids", () => {
    const ops = history(ok(acquire("A"), 0, 1, 3), ok(release("A"), 2, 3, true));
    ops[1] = { ...ops[1]!, id: 0 };
    expect(() => checkLockHistory(ops)).toThrow(/duplicate id/);
  });

  it("throws when a known outcome completes before it was invoked", () => {
    expect(() => checkLockHistory(history(ok(acquire("A"), 5, 4, 3)))).toThrow(/before invokeMs/);
  });

  it("throws when a result does not fit its operation", () => {
    expect(() => checkLockHistory(history(ok(release("A"), 0, 1, 3)))).toThrow(/boolean/);
    expect(() => checkLockHistory(history(ok(acquire("A"), 0, 1, 1.5)))).toThrow(/integer token/);
  });

  it("answers unknown instead of searching past its step bound", () => {
    const ops = randomHistory(7, 200);
    const result = checkLockHistory(ops, 50);
    expect(result.result).toBe("unknown");
    expect(checkLockHistory(ops).result).toBe("linearizable");
  });
});

/** mulberry32: a tiny seeded PRNG, so generated histories are the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A history of a real lock (with random lease expiries and a counter shared with other keys): each op takes
 * effect at its own instant, 10 ms apart, inside a random interval around it, issued by whichever of the five
 * clients is idle. Some outcomes are lost (unknown, applied or not) or refused (fail, not applied).
 */
function randomHistory(seed: number, count: number, unknownRate = 0.005): HistoryOp[] {
  const random = mulberry32(seed);
  const below = (n: number): number => Math.floor(random() * n);
  const clients = ["c0", "c1", "c2", "c3", "c4"];
  const idleFrom = clients.map(() => 0);
  let holder: string | null = null;
  let token = 0;
  let counter = 0;
  const ops: HistoryOp[] = [];
  for (let at = 10; ops.length < count; at += 10) {
    const idle = clients.filter((_, c) => (idleFrom[c] ?? 0) < at);
    const client = idle[below(idle.length)];
    if (client === undefined) continue;
    if (holder !== null && random() < 0.05) holder = null; // the lease ran out
    const roll = random();
    const outcome = roll < unknownRate ? "unknown" : roll < unknownRate + 0.005 ? "fail" : "ok";
    const applied = outcome === "ok" || (outcome === "unknown" && random() < 0.5);
    const pick = random();
    let op: LockOp;
    let value: Value = null;
    if (pick < 0.4) {
      op = acquire(client);
      if (applied) {
        if (holder === null) {
          counter += 1 + below(3);
          holder = client;
          token = counter;
        }
        value = holder === client ? token : null;
      }
    } else if (pick < 0.65) {
      op = release(client);
      value = holder === client;
      if (applied && holder === client) holder = null;
    } else if (pick < 0.8) {
      op = refresh(client);
      value = holder === client;
    } else {
      op = read;
      value = holder === null ? null : { owner: holder, token };
    }
    const invokeMs = Math.max(idleFrom[clients.indexOf(client)] ?? 0, at - 1 - below(30));
    const completeMs = at + 1 + below(30);
    idleFrom[clients.indexOf(client)] = completeMs;
    const result: Outcome = outcome === "ok" ? { type: "ok", value } : { type: outcome };
    ops.push({ id: ops.length, client, op, invokeMs, completeMs, outcome: result });
  }
  return ops;
}

describe("checkLockHistory: a long random history", () => {
  const ops = randomHistory(20240601, 2_000);

  it("judges a 2,000-op history of five concurrent clients linearizable", { timeout: 30_000 }, () => {
    expect(ops.filter((o) => o.outcome.type === "unknown").length).toBeGreaterThan(0);
    expect(checkLockHistory(ops)).toEqual({ result: "linearizable" });
  });

  it("copes with many unknown outcomes (5%) in a linearizable history", { timeout: 30_000 }, () => {
    const lossy = randomHistory(99, 2_000, 0.05);
    expect(lossy.filter((o) => o.outcome.type === "unknown").length).toBeGreaterThan(50);
    expect(checkLockHistory(lossy)).toEqual({ result: "linearizable" });
  });

  it("finds a token granted twice after corrupting one grant in the middle", { timeout: 30_000 }, () => {
    const grants = ops.filter(
      (o): o is HistoryOp & { outcome: { type: "ok"; value: number } } =>
        o.op.kind === "acquire" && o.outcome.type === "ok" && typeof o.outcome.value === "number",
    );
    const k = grants.findIndex(
      (g, i) => i >= grants.length / 2 && grants[i - 1] !== undefined && grants[i - 1]!.client !== g.client,
    );
    const victim = grants[k];
    const previous = grants[k - 1];
    if (victim === undefined || previous === undefined) throw new Error("no grant to corrupt");
    const corrupted = ops.map((o) =>
      o.id === victim.id ? { ...o, outcome: { type: "ok" as const, value: previous.outcome.value } } : o,
    );
    const result = checkLockHistory(corrupted);
    expect(result.result).toBe("violation");
    if (result.result !== "violation") return;
    expect(result.stuckAt.map((o) => o.id)).toContain(victim.id);
  });
});
