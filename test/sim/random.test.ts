import { describe, expect, it } from "vitest";
import { explore } from "./explore.js";

/** Enough seeds for `npm test` to exercise every fault kind; CI runs the CLI for hundreds more. */
const seedCount = 30;
const stepsPerSeed = 10_000;
const timeoutMs = 120_000;

describe("random exploration under faults", () => {
  it(`keeps every safety invariant and recovers afterwards (${seedCount} seeds)`, { timeout: timeoutMs }, () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= seedCount; seed++) {
      try {
        explore({ seed, steps: stepsPerSeed });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failures.push(`${message}\n  replay: npm run sim -- --seed ${seed} --steps ${stepsPerSeed}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("a seed replays exactly", () => {
    const first = explore({ seed: 4242, steps: 3_000 });
    const second = explore({ seed: 4242, steps: 3_000 });
    expect(second).toEqual(first);
  });

  it("a seed whose run changes the membership replays exactly", () => {
    const first = explore({ seed: 1, steps: 5_000 });
    expect(Object.keys(first.faults).filter((fault) => fault.startsWith("member-") && fault.endsWith("-done")).length).toBeGreaterThan(0);
    expect(explore({ seed: 1, steps: 5_000 })).toEqual(first);
  });
});
