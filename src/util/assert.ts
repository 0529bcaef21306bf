/** Thrown when an invariant that only a bug can break does not hold. Never caught to carry on. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

/** Crashes loudly when `condition` is false: a failed assertion is a bug report, not a recoverable error. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
