// Mutual exclusion and fencing, from the cluster's own record of grants and releases (the `lock:<name>`
// events with their log index) and from what clients and the fenced resource saw:
// - per lock, grants and ends alternate: no second holder before the first one's release or expiry;
// - tokens are unique across all locks and increase per lock;
// - every grant acknowledged to a client is in the cluster's history, with that owner and token;
// - the resource accepted only tokens that were granted, to the client that wrote with them, and never
//   a token below one it accepted before.
import type { ResourceWrite } from "../resource.js";
import type { ClientRecord } from "../history.js";
import type { WatchedEvent } from "../watchers.js";

interface LockEvent {
  readonly type: string;
  readonly name: string;
  readonly owner: string;
  readonly token: number;
  readonly index: number;
}

/** Checks the `lock:` histories; returns the grants it found (lock → token → owner) for the other checks. */
export function checkLockHistories(histories: ReadonlyMap<string, readonly WatchedEvent[]>): { violations: string[]; grants: Map<string, Map<number, string>> } {
  const violations: string[] = [];
  const grants = new Map<string, Map<number, string>>();
  const tokenOwners = new Map<number, string>();
  for (const [channel, events] of histories) {
    if (!channel.startsWith("lock:")) continue;
    const lock = channel.slice("lock:".length);
    const lockGrants = new Map<number, string>();
    grants.set(lock, lockGrants);
    let holder: LockEvent | null = null;
    let lastToken = 0;
    for (const watched of events) {
      const event = JSON.parse(watched.data) as LockEvent;
      if (event.type === "lock-granted") {
        if (holder !== null) violations.push(`${channel}: ${event.owner} granted token ${event.token} at index ${event.index} while ${holder.owner} held token ${holder.token} (since index ${holder.index})`);
        if (event.token <= lastToken) violations.push(`${channel}: token ${event.token} at index ${event.index} is not above the previous grant's ${lastToken}`);
        const other = tokenOwners.get(event.token);
        if (other !== undefined) violations.push(`token ${event.token} granted twice: ${other} and ${channel} at index ${event.index}`);
        tokenOwners.set(event.token, channel);
        lockGrants.set(event.token, event.owner);
        holder = event;
        lastToken = Math.max(lastToken, event.token);
      } else if (event.type === "lock-released" || event.type === "lock-expired") {
        if (holder === null || holder.token !== event.token || holder.owner !== event.owner) {
          violations.push(`${channel}: ${event.type} of ${event.owner}'s token ${event.token} at index ${event.index}, but the holder was ${holder === null ? "nobody" : `${holder.owner} with ${holder.token}`}`);
        }
        holder = null;
      }
    }
  }
  return { violations, grants };
}

/** Acknowledged grants are in the history; resource writes used real grants, in token order. */
export function checkClientsAgainstHistory(records: readonly ClientRecord[], writes: readonly ResourceWrite[], grants: ReadonlyMap<string, ReadonlyMap<number, string>>): string[] {
  const violations: string[] = [];
  for (const record of records) {
    if (record.kind !== "acquire" || record.outcome.type !== "ok" || typeof record.outcome.value !== "number") continue;
    const owner = grants.get(record.key)?.get(record.outcome.value);
    if (owner !== record.client) {
      violations.push(`${record.client} was told it holds ${record.key} with token ${record.outcome.value}, but the cluster's history ${owner === undefined ? "has no such grant" : `granted it to ${owner}`}`);
    }
  }
  const highest = new Map<string, number>();
  for (const write of writes) {
    if (!write.accepted) continue;
    const owner = grants.get(write.lock)?.get(write.token);
    if (owner !== write.client) violations.push(`the resource accepted ${write.client}'s write to ${write.lock} with token ${write.token}, which the cluster granted to ${owner ?? "nobody"}`);
    if (write.token < (highest.get(write.lock) ?? 0)) violations.push(`the resource accepted a stale token ${write.token} for ${write.lock}`);
    highest.set(write.lock, Math.max(write.token, highest.get(write.lock) ?? 0));
  }
  return violations;
}
