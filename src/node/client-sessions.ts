// Sessions per client: the sessions and implicit lock leases each client address opened through this
// node and still has. The state machine bounds the cluster's sessions (`sessionsMax`); this bound keeps
// one client (in a sidecar deployment, one pod) from taking all of them. It is this node's own
// bookkeeping, not replicated: clients are known only to the node that serves them.

import { assert } from "../util/assert.js";

/** Sessions and lock leases one client address may have opened through this node at once. */
export const sessionsPerClientMaxDefault = 10_000;

interface ClientEntry {
  readonly sessions: Set<number>;
  /** Requests that may open a session, admitted but not answered yet. */
  opening: number;
}

/**
 * Who counts as one client: its IP address, an IPv4 client reaching an IPv6 socket (`::ffff:10.0.0.7`) the
 * same as on an IPv4 one, so that the RESP and HTTP ports, whatever their address family, share its quota.
 */
export function clientKey(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice("::ffff:".length) : address;
}

/**
 * The sessions and implicit lock leases each client opened through this node and still has, for
 * `sessionsPerClientMax`: admitted before a request that may open one, settled with what it opened,
 * forgotten when the session ends here.
 */
export class ClientSessions {
  private readonly byClient = new Map<string, ClientEntry>();
  /** Session id → the client that opened it, so that an ended session is forgotten in O(1). */
  private readonly clientOf = new Map<number, string>();

  constructor(
    readonly sessionsPerClientMax: number,
    /** Whether the session may be open: open in this node's applied state, or opened by an entry not applied here yet. */
    private readonly isOpen: (sessionId: number) => boolean,
  ) {
    assert(Number.isSafeInteger(sessionsPerClientMax) && sessionsPerClientMax >= 1, `sessionsPerClientMax must be a positive integer (got ${sessionsPerClientMax})`);
  }

  /**
   * Admits a request from the client at `address` that may open a session (a SESSION.OPEN, or an acquire without one,
   * which gets an implicit lease): false when the client's sessions and admitted requests reach the limit.
   * Every admission must be followed by exactly one `settle`.
   */
  admit(address: string): boolean {
    const client = clientKey(address);
    let entry = this.byClient.get(client);
    if (entry === undefined) {
      entry = { sessions: new Set(), opening: 0 };
      this.byClient.set(client, entry);
    }
    if (entry.sessions.size + entry.opening >= this.sessionsPerClientMax) return false;
    entry.opening++;
    return true;
  }

  /** The admitted request was answered: `sessionId` is the session it opened, or null when it opened none. */
  settle(address: string, sessionId: number | null): void {
    const client = clientKey(address);
    const entry = this.byClient.get(client);
    assert(entry !== undefined && entry.opening > 0, `settling a request of ${client} that was not admitted`);
    entry.opening--;
    // Not open any more (closed or expired before this answer ran) or already counted: nothing to add.
    if (sessionId !== null && this.isOpen(sessionId) && !this.clientOf.has(sessionId)) {
      entry.sessions.add(sessionId);
      this.clientOf.set(sessionId, client);
    }
    this.forgetIdle(client, entry);
  }

  /** The session ended (closed, expired, or its lock released) as applied on this node. */
  ended(sessionId: number): void {
    const client = this.clientOf.get(sessionId);
    if (client === undefined) return;
    this.clientOf.delete(sessionId);
    const entry = this.byClient.get(client);
    assert(entry !== undefined, `session ${sessionId} belongs to untracked client ${client}`);
    entry.sessions.delete(sessionId);
    this.forgetIdle(client, entry);
  }

  /** A snapshot replaced the state, and with it the session-ended events of the entries it covers. */
  restored(): void {
    for (const sessionId of [...this.clientOf.keys()]) if (!this.isOpen(sessionId)) this.ended(sessionId);
  }

  /** Sessions `client` has open through this node (for tests and diagnostics). */
  sessionsOf(address: string): number {
    return this.byClient.get(clientKey(address))?.sessions.size ?? 0;
  }

  private forgetIdle(client: string, entry: ClientEntry): void {
    if (entry.sessions.size === 0 && entry.opening === 0) this.byClient.delete(client);
  }
}
