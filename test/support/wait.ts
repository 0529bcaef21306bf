// Waiting for a condition in tests: polled with a deadline, never a fixed sleep.

/** Poll interval: short enough for fast in-process tests and fuzz runs, long enough not to busy-wait. */
const pollIntervalMs = 5;

/** Polls `condition` until it holds; fails with `what` once `timeoutMs` has passed. */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
  }
}
