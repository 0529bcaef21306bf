// The fuzz parts at a small count, so that every run of the suite tries a few thousand fresh hostile inputs
// (a new seed each time; FUZZ_SEED pins one). Big runs use the CLI (cli.ts). A failure prints the command
// that replays it.

import { describe, expect, it } from "vitest";
import { fuzzParts } from "./parts.js";
import type { FuzzReport } from "./run.js";

/** Inputs per part in the suite, chosen so that the whole fuzz set stays within about 30 s of CI time. */
const suiteCounts: Readonly<Record<string, number>> = {
  "resp-reader": 8_000,
  "resp-server": 960,
  "peer-decode": 15_000,
  "peer-link": 960,
  wal: 1_500,
  "snapshot-file": 8_000,
  "snapshot-state": 4_000,
  http: 960,
};

const seed = process.env["FUZZ_SEED"] === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env["FUZZ_SEED"]);

function explain(report: FuzzReport): string {
  if (report.failure === null) return "";
  return `${report.failure.message}\ncounterexample: ${report.failure.counterexample.slice(0, 2000)}\nreplay: ${report.failure.replay}`;
}

describe(`fuzzing hostile input (seed ${seed})`, () => {
  for (const part of fuzzParts) {
    it(`${part.name}: ${part.inputsAre} never crash the node or get past the limits`, { timeout: 60_000 }, async () => {
      const report = await part.run({ count: suiteCounts[part.name] ?? 100, seed });
      expect(explain(report)).toBe("");
    });
  }
});
