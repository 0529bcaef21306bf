// Sending a request again when the leader went away with it in flight (coordination.md, Reads): an
// idempotent request, or one that carries a request id, is retried on the next leader until a deadline;
// the error the client finally hears never hides that an earlier attempt may have been applied.
import { NodeError } from "./forwarding.js";

/** Pause between retries while a new leader is elected. */
export const retryPauseMs = 50;

export interface RetryClock {
  nowMs(): number;
  sleep(ms: number): Promise<void>;
}

/**
 * Runs `attempt`; while the leader is gone (LEADERLOST: lost mid-request, NOLEADER: none elected yet) runs
 * it again if `retry`, until `windowMs` passed. After a LEADERLOST, any final error is reported as
 * LEADERLOST ("outcome unknown"; TIMEOUT says so already): the lost attempt may have been applied.
 */
export async function retryAcrossLeaders<T>(attempt: () => Promise<T>, retry: boolean, windowMs: number, clock: RetryClock): Promise<T> {
  const retryUntilMs = clock.nowMs() + windowMs;
  let outcomeUnknown = false;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      const code = error instanceof NodeError ? error.code : null;
      outcomeUnknown ||= code === "LEADERLOST";
      if ((code === "LEADERLOST" || code === "NOLEADER") && retry && clock.nowMs() < retryUntilMs) {
        await clock.sleep(retryPauseMs);
        continue;
      }
      // Whatever the last attempt says, an earlier one may have been applied: only "unknown" is true.
      if (outcomeUnknown && code !== "TIMEOUT" && code !== "LEADERLOST") {
        throw new NodeError("LEADERLOST", "the leader went away with the request in flight and a retry did not settle it; outcome unknown");
      }
      throw error;
    }
  }
}
