// Linearizability checker for the history of one lock key.
//
// Model: a fencing mutex whose lease may expire at any moment. State is (holder, token of the holder,
// lastToken = highest token granted on this key). Grants must exceed lastToken (tokens come from a
// cluster-wide counter, so they increase but skip values); re-acquiring by the holder returns its token;
// release and refresh succeed only for the holder; reads see the holder and its token. The server may expire
// a lease whenever it likes and the history does not say when, so before any operation the search may also
// try the state with the holder gone.
//
// An acquire with an unknown outcome may have granted a token nobody saw. Its token is kept symbolic
// ("unobserved", token === null) and lastToken then holds the smallest value it could be (tokens are
// integers). Every later constraint on it is either "a later grant exceeds it", best served by the smallest
// value, or "an observation names it", which fixes it: so the symbolic state loses no precision.
//
// Search: Wing & Gong with Lowe's memoization, as in Knossos and Porcupine. Invocations and returns, sorted
// by time, form a doubly linked list. Any call that precedes the first return in the list may be linearized
// next: the search applies it to the model, unlinks its call and return, and starts again from the front.
// Reaching a return means that op cannot have taken effect in time: undo the last step, try the next one.
// A configuration (ops linearized, model state) determines the rest of the search, so one that is no better
// than a configuration already explored is skipped: same known ops, holder and token, and a superset of its
// unknown ops (they could still take effect later) and a lastToken no lower (lower only ever helps).
//
// Unknown ops have no return: they never force a backtrack and may stay unlinearized ("never took effect").
// Tried everywhere they make the search exponential, so only the placements that can matter are tried:
// - an unknown refresh or read changes nothing, and an unknown release does just what an expiry does: all
//   three are dropped;
// - an unknown acquire by o matters only right before an op that needs o to hold the lock (a successful
//   release, refresh or read by o) or someone other than its caller to (a refused acquire). Before any
//   other op it can be moved after that op or left out, as it only raises lastToken, which never helps. So
//   each step linearizes one known op, possibly preceded by an expiry, or by (expiry,) an unknown acquire
//   the op needs;
// - invoked unknown acquires by one owner are interchangeable: only the earliest one not used is tried.
import { assert } from "../../../src/util/assert.js";

export type LockOp =
  /** Try-once or blocking acquire. ok: token (number) when granted, null when not granted (held by someone else, or the wait ran out). */
  | { kind: "acquire"; owner: string }
  /** ok: true when released (owner held it), false when the owner did not hold it. */
  | { kind: "release"; owner: string }
  /** ok: true when the owner held it and its lease was restarted, false otherwise. */
  | { kind: "refresh"; owner: string }
  /** A linearizable read of the holder: ok value is {owner, token} or null when free. */
  | { kind: "read" };

export type Outcome =
  | { type: "ok"; value: number | boolean | { owner: string; token: number } | null }
  /** Definitely not applied (e.g. refused before it was proposed). Such operations are simply dropped from the history by the checker. */
  | { type: "fail" }
  /** Unknown: it may or may not have taken effect, at any time after its invocation (even after the history ends). */
  | { type: "unknown" };

export interface HistoryOp {
  id: number; // unique within the history
  client: string; // who issued it (a client issues one op at a time, but the checker must not rely on it)
  op: LockOp;
  invokeMs: number; // real time of invocation
  completeMs: number; // real time of completion (for unknown outcomes: ignored, treat as +Infinity)
  outcome: Outcome;
}

export type CheckResult =
  | { result: "linearizable" }
  | {
      result: "violation";
      /** the longest prefix that could be linearized, and the ops that could not follow it, for the failure report */
      linearizedPrefix: number[];
      stuckAt: HistoryOp[];
      message: string;
    }
  | { result: "unknown"; reason: string };

/** Iterations of the search before giving up with "unknown", so a pathological history cannot hang a chaos run. */
export const searchStepsMax = 5_000_000;

const noOne = -1;

/** holder is an index into the owner names; token null: granted by an unknown-outcome acquire, not yet observed. */
interface State {
  readonly holder: number;
  readonly token: number | null;
  readonly lastToken: number;
}

const makeState = (holder: number, token: number | null, lastToken: number): State => ({ holder, token, lastToken });
const expired = (s: State): State => makeState(noOne, 0, s.lastToken);

/** What an op with a known outcome says happened, or what an acquire with an unknown outcome may have done. */
type Effect =
  | { kind: "acquire"; owner: number; token: number | null }
  | { kind: "release"; owner: number; ok: boolean }
  | { kind: "refresh"; owner: number; ok: boolean }
  | { kind: "read"; seen: { owner: number; token: number } | null }
  | { kind: "maybeAcquire"; owner: number };

/** The holder (re)states its token: fixes an unobserved one, must match an observed one. */
function observe(s: State, token: number): State | undefined {
  if (s.token === null) return token >= s.lastToken ? makeState(s.holder, token, token) : undefined;
  return s.token === token ? s : undefined;
}

/** The state after `e` is applied to `s`, or undefined when the model forbids it. */
function apply(s: State, e: Effect): State | undefined {
  switch (e.kind) {
    case "acquire":
      if (e.token === null) return s.holder !== noOne && s.holder !== e.owner ? s : undefined;
      if (s.holder === noOne) return e.token > s.lastToken ? makeState(e.owner, e.token, e.token) : undefined;
      return s.holder === e.owner ? observe(s, e.token) : undefined;
    case "release":
      if (e.ok) return s.holder === e.owner ? expired(s) : undefined;
      return s.holder !== e.owner ? s : undefined;
    case "refresh":
      return (s.holder === e.owner) === e.ok ? s : undefined;
    case "read":
      if (e.seen === null) return s.holder === noOne ? s : undefined;
      return s.holder === e.seen.owner ? observe(s, e.seen.token) : undefined;
    case "maybeAcquire":
      // Only a grant changes the state; a refused or repeated acquire is the same as never linearizing it.
      return s.holder === noOne ? makeState(e.owner, null, s.lastToken + 1) : undefined;
  }
}

/** Whether `e` needs someone to hold the lock and `owner` would do (see the header). */
function needsHolder(e: Effect, owner: number): boolean {
  switch (e.kind) {
    case "acquire":
      return e.token === null && e.owner !== owner;
    case "release":
    case "refresh":
      return e.ok && e.owner === owner;
    case "read":
      return e.seen?.owner === owner;
    case "maybeAcquire":
      return false;
  }
}

interface Link {
  next: Entry | null;
}

class Entry implements Link {
  prev: Link | null = null;
  next: Entry | null = null;
  constructor(
    readonly call: Call,
    readonly isReturn: boolean,
  ) {}
}

class Call {
  readonly entry = new Entry(this, false);
  /** Only ops with a known outcome have a return: the time by which they must have taken effect. */
  readonly ret: Entry | null;
  constructor(
    /** Bit position among the known ops, or among the unknown ones. */
    readonly index: number,
    readonly op: HistoryOp,
    readonly effect: Effect,
    readonly known: boolean,
  ) {
    this.ret = known ? new Entry(this, true) : null;
  }
}

function unlink(e: Entry): void {
  assert(e.prev !== null, "an entry in the list has a predecessor");
  e.prev.next = e.next;
  if (e.next !== null) e.next.prev = e.prev;
}

/** Undoes unlink(e); valid because entries are relinked in the reverse order they were unlinked. */
function relink(e: Entry): void {
  assert(e.prev !== null, "an unlinked entry remembers its predecessor");
  e.prev.next = e;
  if (e.next !== null) e.next.prev = e;
}

class Bits {
  readonly words: Uint32Array;
  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }
  set(i: number, on: boolean): void {
    const w = i >>> 5;
    const bit = 1 << (i & 31);
    const old = this.words[w] ?? 0;
    this.words[w] = on ? old | bit : old & ~bit;
  }
  /** Known ops are indexed by invocation, so their set is mostly a full prefix: encode only the words after it. */
  key(): string {
    const n = this.words.length;
    let lo = 0;
    while (lo < n && this.words[lo] === 0xffffffff) lo++;
    let hi = n;
    while (hi > lo && this.words[hi - 1] === 0) hi--;
    let key = `${lo}:`;
    for (let w = lo; w < hi; w++) {
      const v = this.words[w] ?? 0;
      key += String.fromCharCode(v & 0xffff, v >>> 16);
    }
    return key;
  }
}

/** Whether every bit of `sub` is set in `sup` (of the same length). */
function isSubset(sub: Uint32Array, sup: Uint32Array): boolean {
  for (let w = 0; w < sub.length; w++) if (((sub[w] ?? 0) & ~(sup[w] ?? 0)) !== 0) return false;
  return true;
}

function fail(op: HistoryOp, why: string): never {
  throw new Error(`malformed history: op ${op.id} (${op.op.kind} by ${op.client}): ${why}`);
}

/** Validates `op` and says what it claims; null when it cannot change anything and is dropped. */
function effectOf(op: HistoryOp, ownerIndex: (name: string) => number): Effect | null {
  if (!Number.isFinite(op.invokeMs)) fail(op, `invokeMs ${op.invokeMs} is not a finite time`);
  if (op.outcome.type !== "unknown" && !(op.completeMs >= op.invokeMs)) {
    fail(op, `completeMs ${op.completeMs} is before invokeMs ${op.invokeMs}`);
  }
  const { op: lockOp, outcome } = op;
  if (outcome.type === "fail") return null;
  if (outcome.type === "unknown") {
    // See the header: of the unknown ops, only an acquire can explain anything an expiry cannot.
    return lockOp.kind === "acquire" ? { kind: "maybeAcquire", owner: ownerIndex(lockOp.owner) } : null;
  }
  const v = outcome.value;
  const isToken = (t: unknown): t is number => typeof t === "number" && Number.isSafeInteger(t);
  switch (lockOp.kind) {
    case "acquire":
      if (v !== null && !isToken(v)) fail(op, "an acquire returns an integer token or null");
      return { kind: "acquire", owner: ownerIndex(lockOp.owner), token: v };
    case "release":
    case "refresh":
      if (typeof v !== "boolean") fail(op, `a ${lockOp.kind} returns a boolean`);
      return { kind: lockOp.kind, owner: ownerIndex(lockOp.owner), ok: v };
    case "read":
      if (v === null) return { kind: "read", seen: null };
      if (typeof v !== "object" || typeof v.owner !== "string" || !isToken(v.token)) {
        fail(op, "a read returns {owner, token} or null");
      }
      return { kind: "read", seen: { owner: ownerIndex(v.owner), token: v.token } };
  }
}

/** Checks one key's history against the fencing-mutex-with-expiry model. `stepsMax` exists for tests of the bound. */
export function checkLockHistory(history: readonly HistoryOp[], stepsMax = searchStepsMax): CheckResult {
  const ids = new Set<number>();
  const owners: string[] = [];
  const ownerIndices = new Map<string, number>();
  const ownerIndex = (name: string): number => {
    let i = ownerIndices.get(name);
    if (i === undefined) ownerIndices.set(name, (i = owners.push(name) - 1));
    return i;
  };
  const kept: { op: HistoryOp; effect: Effect }[] = [];
  for (const op of history) {
    if (ids.has(op.id)) fail(op, "duplicate id");
    ids.add(op.id);
    const effect = effectOf(op, ownerIndex);
    if (effect !== null) kept.push({ op, effect });
  }

  // Known ops by invocation, so that their linearized sets stay a full prefix plus a few bits (short keys).
  kept.sort((a, b) => a.op.invokeMs - b.op.invokeMs || a.op.id - b.op.id);
  let knownCount = 0;
  let unknownCount = 0;
  const calls = kept.map(({ op, effect }) =>
    op.outcome.type === "ok" ? new Call(knownCount++, op, effect, true) : new Call(unknownCount++, op, effect, false),
  );

  // Millisecond clocks cannot order an invocation and a return stamped alike: treat them as concurrent.
  const events = calls.flatMap((c) => (c.ret === null ? [c.entry] : [c.entry, c.ret]));
  const timeOf = (e: Entry): number => (e.isReturn ? e.call.op.completeMs : e.call.op.invokeMs);
  events.sort((a, b) => timeOf(a) - timeOf(b) || Number(a.isReturn) - Number(b.isReturn) || a.call.op.id - b.call.op.id);
  const head: Link = { next: null };
  let last: Link = head;
  for (const e of events) {
    e.prev = last;
    last.next = e;
    last = e;
  }

  // Cache: per (known ops linearized, holder, token), the unknown ops and lastToken of each configuration.
  const knownDone = new Bits(knownCount);
  const unknownDone = new Bits(unknownCount);
  const explored = new Map<string, { unknown: Uint32Array; lastToken: number }[]>();
  const noUnknowns = new Uint32Array(0);

  let state = makeState(noOne, 0, 0);
  let knownLeft = knownCount;
  /** A way to linearize a known op next: the state after it, and the unknown acquire it relies on, if any. */
  interface Option {
    readonly next: State;
    readonly unknown: Call | null;
  }
  /** Where the search stands in a configuration: at its j-th option for the (i mod n)-th of the n candidate
   *  calls, taken on their own while i < n and then relying on an unknown acquire. */
  interface Cursor {
    readonly calls: Call[];
    readonly unknowns: Call[];
    i: number;
    options: Option[] | null;
    j: number;
  }
  const stack: { call: Call; unknown: Call | null; prior: State; cursor: Cursor }[] = [];

  // The known ops that may come next are those invoked before the first return still in the list, and the
  // unknown acquires they may rely on the earliest invoked of each owner there. Steps without unknown ops
  // come first, then ops that need no expiry, then by earliest return: this tends to follow the real order,
  // so the configurations reached first use the fewest unknown ops and cover those reached later.
  const candidates = (): Cursor => {
    const calls: Call[] = [];
    const unknowns = new Map<number, Call>();
    for (let e = head.next; e !== null && !e.isReturn; e = e.next) {
      const { effect } = e.call;
      if (e.call.known) calls.push(e.call);
      else if (effect.kind === "maybeAcquire" && !unknowns.has(effect.owner)) unknowns.set(effect.owner, e.call);
    }
    const needsExpiry = (c: Call): number => (apply(state, c.effect) === undefined ? 1 : 0);
    calls.sort((a, b) => needsExpiry(a) - needsExpiry(b) || a.op.completeMs - b.op.completeMs || a.index - b.index);
    return { calls, unknowns: [...unknowns.values()], i: 0, options: null, j: 0 };
  };
  /** The ways to linearize `call` now: as is or after an expiry; or, given `unknowns`, after one of them. */
  const options = (call: Call, unknowns: Call[] | null): Option[] => {
    const found: Option[] = [];
    const add = (next: State | undefined, unknown: Call | null): void => {
      if (next !== undefined) found.push({ next, unknown });
    };
    if (unknowns === null) {
      add(apply(state, call.effect), null);
      if (state.holder !== noOne) add(apply(expired(state), call.effect), null);
    }
    for (const unknown of unknowns ?? []) {
      assert(unknown.effect.kind === "maybeAcquire", "only unknown acquires are kept");
      if (!needsHolder(call.effect, unknown.effect.owner)) continue;
      const granted = apply(expired(state), unknown.effect);
      add(granted && apply(granted, call.effect), unknown);
    }
    return found;
  };
  const frontier = (): HistoryOp[] => {
    const ops: HistoryOp[] = [];
    for (let e = head.next; e !== null && !e.isReturn; e = e.next) if (e.call.known) ops.push(e.call.op);
    return ops;
  };

  let cursor = candidates();
  // Snapshotted when the search backs out of a configuration deeper than any before: the failure report.
  let best: { depth: number; prefix: number[]; state: State; stuck: HistoryOp[] } | null = null;
  for (let steps = 0; knownLeft > 0; steps++) {
    if (steps >= stepsMax) {
      return { result: "unknown", reason: `gave up after ${stepsMax} search steps (${calls.length} ops)` };
    }
    const n = cursor.calls.length;
    const call = cursor.calls[cursor.i % n];
    if (call === undefined || cursor.i >= 2 * n) {
      // Nothing can come next, yet a known op is still waiting: undo the last step.
      if (best === null || stack.length > best.depth) {
        const prefix = stack.flatMap((f) => (f.unknown === null ? [f.call.op.id] : [f.unknown.op.id, f.call.op.id]));
        best = { depth: stack.length, prefix, state, stuck: frontier() };
      }
      const frame = stack.pop();
      if (frame === undefined) return violation(best, owners);
      knownDone.set(frame.call.index, false);
      state = frame.prior;
      assert(frame.call.ret !== null, "only known ops are stepped");
      relink(frame.call.ret);
      relink(frame.call.entry);
      knownLeft++;
      if (frame.unknown !== null) {
        unknownDone.set(frame.unknown.index, false);
        relink(frame.unknown.entry);
      }
      cursor = frame.cursor;
      continue;
    }
    cursor.options ??= options(call, cursor.i < n ? null : cursor.unknowns);
    const option = cursor.options[cursor.j++];
    if (option === undefined) {
      cursor.i++;
      cursor.options = null;
      cursor.j = 0;
      continue;
    }
    const { next, unknown } = option;
    knownDone.set(call.index, true);
    if (unknown !== null) unknownDone.set(unknown.index, true);
    const key = `${next.holder},${next.token ?? "?"}|${knownDone.key()}`;
    const seen = explored.get(key) ?? [];
    if (seen.some((c) => c.lastToken <= next.lastToken && isSubset(c.unknown, unknownDone.words))) {
      knownDone.set(call.index, false);
      if (unknown !== null) unknownDone.set(unknown.index, false);
      continue;
    }
    const config = { unknown: unknownCount === 0 ? noUnknowns : unknownDone.words.slice(), lastToken: next.lastToken };
    // Configurations the new one covers can go: it covers whatever they would.
    const kept = seen.filter((c) => c.lastToken < next.lastToken || !isSubset(unknownDone.words, c.unknown));
    explored.set(key, [...kept, config]);
    stack.push({ call, unknown, prior: state, cursor });
    state = next;
    if (unknown !== null) unlink(unknown.entry);
    assert(call.ret !== null, "only known ops are stepped");
    unlink(call.entry);
    unlink(call.ret);
    knownLeft--;
    cursor = candidates();
  }
  return { result: "linearizable" };
}

function violation(best: { prefix: number[]; state: State; stuck: HistoryOp[] }, owners: readonly string[]): CheckResult {
  const s = best.state;
  const lock =
    s.holder === noOne
      ? `free, last token ${s.lastToken}`
      : `held by ${owners[s.holder]} with token ${s.token ?? `>= ${s.lastToken} (unobserved)`}`;
  const next = best.stuck.map((o) => `#${o.id} ${o.op.kind}${"owner" in o.op ? `(${o.op.owner})` : ""} by ${o.client}`);
  return {
    result: "violation",
    linearizedPrefix: best.prefix,
    stuckAt: best.stuck,
    message:
      `not linearizable: at most ${best.prefix.length} ops can be put in order (the lock then ${lock}); ` +
      `none of the ops that could come next leads to a full order: ${next.join(", ")}`,
  };
}
