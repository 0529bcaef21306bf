// Retrying across a leader change: what is retried, for how long, and which error the client hears.
import { describe, expect, it } from "vitest";
import { NodeError } from "../../src/node/forwarding.js";
import { retryAcrossLeaders, type RetryClock } from "../../src/node/retry.js";

/** Virtual time: each sleep moves the clock on. */
function fakeClock(): RetryClock & { sleeps: number } {
  let now = 0;
  const clock = { sleeps: 0, nowMs: () => now, sleep: async (ms: number) => void ((now += ms), clock.sleeps++) };
  return clock;
}

/** An attempt that fails with `codes` in turn, then answers "done". */
function scripted(codes: NodeError["code"][]): () => Promise<string> {
  let call = 0;
  return async () => {
    const code = codes[call++];
    if (code === undefined) return "done";
    throw new NodeError(code, `attempt ${call} failed with ${code}`);
  };
}

describe("retrying across leaders", () => {
  it("retries a lost leader and an election in progress, then answers", async () => {
    expect(await retryAcrossLeaders(scripted(["LEADERLOST", "NOLEADER", "NOLEADER"]), true, 1_000, fakeClock())).toBe("done");
  });

  it("does not retry what must not be retried, nor other errors", async () => {
    await expect(retryAcrossLeaders(scripted(["LEADERLOST"]), false, 1_000, fakeClock())).rejects.toMatchObject({ code: "LEADERLOST" });
    await expect(retryAcrossLeaders(scripted(["TIMEOUT"]), true, 1_000, fakeClock())).rejects.toMatchObject({ code: "TIMEOUT" });
  });

  it("gives up at the deadline with the last error", async () => {
    const clock = fakeClock();
    await expect(retryAcrossLeaders(scripted(Array(100).fill("NOLEADER")), true, 500, clock)).rejects.toMatchObject({ code: "NOLEADER" });
    expect(clock.sleeps).toBe(10);
  });

  it("after an attempt was lost in flight, any final error says the outcome is unknown", async () => {
    for (const last of ["NOLEADER", "NOTCOMMITTED", "UNAVAILABLE", "SHUTTINGDOWN"] as const) {
      const codes: NodeError["code"][] = ["LEADERLOST", ...(last === "NOLEADER" ? Array(100).fill("NOLEADER") : [last])];
      const error = await retryAcrossLeaders(scripted(codes), true, 500, fakeClock()).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: "LEADERLOST", message: expect.stringContaining("outcome unknown") });
    }
    const timedOut = await retryAcrossLeaders(scripted(["LEADERLOST", "TIMEOUT"]), true, 500, fakeClock()).catch((caught: unknown) => caught);
    expect(timedOut).toMatchObject({ code: "TIMEOUT" });
  });
});
