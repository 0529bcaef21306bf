// SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE: watch events (coordination.md, Watches) delivered as
// Redis pub/sub messages, a push in RESP3; the payload is the event as a JSON string.
import type { CoordinationStateMachine } from "../../fsm/coordination.js";
import { type FsmEvent, isWatchableChannel, unwatchableChannelMessage } from "../../fsm/events.js";
import { argument, type CommandContext, type CommandSpec, type CommandTable } from "./command-table.js";
import { bulk, integer, nullBulk, push, type Reply, RespError } from "./reply.js";

/** Channels and patterns one connection may watch at once. */
export const subscriptionsPerConnectionMax = 256;
/** Longest channel name or pattern. */
export const channelBytesMax = 300;

const patternPrefix = "pattern:";
/** Each connection's listener on the state machine, installed on its first subscription. */
const listeners = new WeakMap<CommandContext, () => void>();

/** Redis glob patterns as PSUBSCRIBE uses them: `*`, `?` and `[...]`, with `\` escaping. */
function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index]!;
    if (char === "*") source += ".*";
    else if (char === "?") source += ".";
    else if (char === "\\" && index + 1 < pattern.length) source += `\\${pattern[++index]!}`;
    else if (char === "[") {
      const end = pattern.indexOf("]", index + 1);
      if (end < 0) source += "\\[";
      else {
        source += `[${pattern.slice(index + 1, end).replace(/\\/g, "\\\\")}]`;
        index = end;
      }
    } else source += char.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "s");
}

function listen(ctx: CommandContext, fsm: CoordinationStateMachine, patterns: Map<string, RegExp>): void {
  if (listeners.has(ctx)) return;
  const unsubscribe = fsm.subscribe((event: FsmEvent) => {
    if (!isWatchableChannel(event.channel)) return; // also for patterns such as "*"
    const payload = JSON.stringify(event);
    if (ctx.subscriptions.has(event.channel)) ctx.push(push([bulk("message"), bulk(event.channel), bulk(payload)]));
    for (const [pattern, regexp] of patterns) {
      if (regexp.test(event.channel)) ctx.push(push([bulk("pmessage"), bulk(pattern), bulk(event.channel), bulk(payload)]));
    }
  });
  // Events this node skipped by installing a snapshot cannot be pushed: close the connection rather than
  // leave a silent gap; the client resubscribes (Redis pub/sub has no resume either).
  const stopRestoreWatch = fsm.onRestore(({ eventsMissed }) => {
    if (eventsMissed) ctx.destroy();
  });
  listeners.set(ctx, unsubscribe);
  ctx.onClose(() => {
    unsubscribe();
    stopRestoreWatch();
  });
}

/**
 * Refuses the whole request when `keys` (subscription keys, patterns with their prefix) would take the
 * connection past `subscriptionsPerConnectionMax`: checked before any is added, so that a refused request
 * leaves no subscription behind without its confirmation and its listener.
 */
function checkSubscriptionsMax(ctx: CommandContext, keys: readonly string[]): void {
  const added = new Set(keys.filter((key) => !ctx.subscriptions.has(key))).size;
  if (ctx.subscriptions.size + added <= subscriptionsPerConnectionMax) return;
  ctx.server.limitHits("subscriptions_per_connection");
  throw new RespError(
    "ERR",
    `at most ${subscriptionsPerConnectionMax} subscriptions per connection (subscriptionsPerConnectionMax): this one has ${ctx.subscriptions.size} and asked for ${added} more; unsubscribe from some, or watch several channels with one PSUBSCRIBE pattern`,
  );
}

function names(args: readonly Buffer[]): string[] {
  const result: string[] = [];
  for (let index = 1; index < args.length; index++) {
    const name = argument(args, index).toString("utf8");
    if (name === "" || Buffer.byteLength(name) > channelBytesMax) throw new RespError("ERR", `channel names and patterns must be 1 to ${channelBytesMax} bytes`);
    result.push(name);
  }
  return result;
}

/** The pub/sub commands over the state machine's events. */
export function pubsubCommandTable(fsm: CoordinationStateMachine): CommandTable {
  const patternsOf = new WeakMap<CommandContext, Map<string, RegExp>>();
  const patterns = (ctx: CommandContext): Map<string, RegExp> => {
    let found = patternsOf.get(ctx);
    if (found === undefined) {
      found = new Map();
      patternsOf.set(ctx, found);
    }
    return found;
  };
  const confirm = (kind: string, name: string | null, ctx: CommandContext): Reply =>
    push([bulk(kind), name === null ? nullBulk : bulk(name), integer(ctx.subscriptions.size)]);
  const spec = (arity: number, summary: string, handler: CommandSpec["handler"]): CommandSpec => ({ arity, access: "read", summary, group: "pubsub", allowedWhenSubscribed: true, handler });

  return new Map<string, CommandSpec>([
    [
      "subscribe",
      spec(-2, "SUBSCRIBE channel...: raft:leader, election:<name>, lock:<name>; events arrive as messages", (ctx, args) => {
        const channels = names(args);
        if (!channels.every(isWatchableChannel)) throw new RespError("ERR", unwatchableChannelMessage);
        checkSubscriptionsMax(ctx, channels);
        const replies: Reply[] = [];
        for (const channel of channels) {
          ctx.subscriptions.add(channel);
          replies.push(confirm("subscribe", channel, ctx));
        }
        listen(ctx, fsm, patterns(ctx));
        return { type: "sequence", replies };
      }),
    ],
    [
      "unsubscribe",
      spec(-1, "UNSUBSCRIBE [channel...]: stop watching (all channels when none named)", (ctx, args) => {
        const channels = args.length > 1 ? names(args) : [...ctx.subscriptions].filter((name) => !name.startsWith(patternPrefix));
        if (channels.length === 0) return confirm("unsubscribe", null, ctx);
        return { type: "sequence", replies: channels.map((channel) => (ctx.subscriptions.delete(channel), confirm("unsubscribe", channel, ctx))) };
      }),
    ],
    [
      "psubscribe",
      spec(-2, "PSUBSCRIBE pattern...: watch every channel matching a glob, e.g. lock:*", (ctx, args) => {
        const chosen = names(args);
        checkSubscriptionsMax(ctx, chosen.map((pattern) => `${patternPrefix}${pattern}`));
        const replies: Reply[] = [];
        for (const pattern of chosen) {
          // Patterns share the connection's subscription count (and subscribed mode) with channels, as in Redis.
          ctx.subscriptions.add(`${patternPrefix}${pattern}`);
          patterns(ctx).set(pattern, globToRegExp(pattern));
          replies.push(confirm("psubscribe", pattern, ctx));
        }
        listen(ctx, fsm, patterns(ctx));
        return { type: "sequence", replies };
      }),
    ],
    [
      "punsubscribe",
      spec(-1, "PUNSUBSCRIBE [pattern...]: stop watching patterns (all when none named)", (ctx, args) => {
        const all = patterns(ctx);
        const chosen = args.length > 1 ? names(args) : [...all.keys()];
        if (chosen.length === 0) return confirm("punsubscribe", null, ctx);
        return {
          type: "sequence",
          replies: chosen.map((pattern) => {
            all.delete(pattern);
            ctx.subscriptions.delete(`${patternPrefix}${pattern}`);
            return confirm("punsubscribe", pattern, ctx);
          }),
        };
      }),
    ],
  ]);
}
