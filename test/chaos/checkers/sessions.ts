// Sessions never expire early. The leader moves a session's deadline to (when it handled the keepalive)
// + TTL, and that is no earlier than when the client sent it; a failover only moves deadlines later. So a
// client told NOSESSION must have sent no successful keepalive (nor opened the session) within one TTL
// before that answer came back. Keepalives with an unknown outcome can only have moved the deadline
// later, so leaving them out keeps the check sound.
import type { ClientRecord } from "../history.js";

/** Timestamps come from different processes' clocks (performance.timeOrigin): allow this much between them. */
const clockSlackMs = 5;

export function checkSessions(records: readonly ClientRecord[], ttlMs: number): string[] {
  const violations: string[] = [];
  const byClient = new Map<string, ClientRecord[]>();
  for (const record of records) {
    if (record.kind !== "session-open" && record.kind !== "keepalive") continue;
    let list = byClient.get(record.client);
    if (list === undefined) byClient.set(record.client, (list = []));
    list.push(record);
  }
  for (const [client, list] of byClient) {
    list.sort((a, b) => a.seq - b.seq);
    /** The last successful open or keepalive of the session the client holds now. */
    let lastAlive: ClientRecord | null = null;
    for (const record of list) {
      if (record.outcome.type === "ok") {
        lastAlive = record;
        continue;
      }
      if (record.kind !== "keepalive" || record.outcome.type !== "fail" || !/NOSESSION/.test(record.outcome.error) || lastAlive === null) continue;
      const earliestExpiryMs = lastAlive.invokeMs + ttlMs;
      if (record.completeMs + clockSlackMs < earliestExpiryMs) {
        violations.push(
          `${client}'s session expired early: NOSESSION at +${Math.round(record.completeMs - lastAlive.invokeMs)} ms after the ${lastAlive.kind} that kept it alive was sent (TTL ${ttlMs} ms)`,
        );
      }
      lastAlive = null; // the client opens a new session next
    }
  }
  return violations;
}
