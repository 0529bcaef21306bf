// One request to one reply: find the command, check arity, authentication, permission and subscribed mode
// the way Redis 7 does (in that order), run the handler, and turn what it throws into an error reply.

import type { Logger } from "pino";
import { AssertionError } from "../../util/assert.js";
import { type CommandContext, type CommandTable, lookupCommand } from "./command-table.js";
import { err, errorReply, type Reply, RespError } from "./reply.js";

export const noAuthReply = errorReply("NOAUTH", "Authentication required.");

/** The reply to `args`; a promise when the handler is asynchronous. Never rejects but on a failed assertion. */
export function executeCommand(table: CommandTable, ctx: CommandContext, args: readonly Buffer[], logger: Logger): Reply | Promise<Reply> {
  const lookup = lookupCommand(table, args);
  if ("error" in lookup) return lookup.error;
  const { spec, handler, fullName } = lookup;
  if (!ctx.authenticated && !(spec.flags ?? []).includes("no_auth")) return noAuthReply;
  if (!ctx.mayWrite && spec.access === "write") {
    // NOPERM is the code of Redis's ACL refusals, which clients already surface as a permission error.
    return errorReply("NOPERM", `this connection authenticated with the read-only password; it may not run ${fullName.replace("|", " ").toUpperCase()}`);
  }
  if (ctx.protocol === 2 && ctx.subscriptions.size > 0 && spec.allowedWhenSubscribed !== true) {
    return err(`Can't execute '${fullName}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
  }
  try {
    const result = handler(ctx, args);
    if (isPromiseLike(result)) return Promise.resolve(result).catch((error: unknown) => failureReply(error, fullName, logger));
    return result;
  } catch (error) {
    return failureReply(error, fullName, logger);
  }
}

function failureReply(error: unknown, fullName: string, logger: Logger): Reply {
  if (error instanceof RespError) return error.toReply();
  // A failed invariant is a bug that must crash the node, not become an error reply.
  if (error instanceof AssertionError) throw error;
  logger.error({ err: error, command: fullName }, "RESP command failed");
  return err(`internal error in '${fullName}'; the server log has the details`);
}

function isPromiseLike(value: Reply | PromiseLike<Reply>): value is PromiseLike<Reply> {
  return typeof (value as { then?: unknown }).then === "function";
}
