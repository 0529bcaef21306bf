// Members take their first snapshot at different points, each within half an interval after the
// configured one, the same on every start: members that snapshot at once all stall at once.
import { describe, expect, it } from "vitest";
import { firstSnapshotAfterEntries } from "../../src/node/snapshot-schedule.js";

/** Entries a busy leader applies in a few tens of milliseconds: members' first snapshots must be further apart. */
const separationMinEntries = 50;

describe("firstSnapshotAfterEntries", () => {
  it("lies in [every, 1.5 x every), fixed by the node id", () => {
    for (const id of ["n1", "n2", "n3", "example-app-0", "a"]) {
      const after = firstSnapshotAfterEntries(id, 10_000);
      expect(after).toBeGreaterThanOrEqual(10_000);
      expect(after).toBeLessThan(15_000);
      expect(Number.isInteger(after)).toBe(true);
      expect(firstSnapshotAfterEntries(id, 10_000)).toBe(after);
    }
  });

  it("differs between the members of a cluster, by more than a busy second's batch", () => {
    const points = ["n1", "n2", "n3", "n4", "n5"].map((id) => firstSnapshotAfterEntries(id, 10_000)).sort((a, b) => a - b);
    for (let k = 1; k < points.length; k++) expect(points[k]! - points[k - 1]!).toBeGreaterThan(separationMinEntries);
    const statefulSet = ["app-0", "app-1", "app-2"].map((id) => firstSnapshotAfterEntries(id, 10_000)).sort((a, b) => a - b);
    for (let k = 1; k < statefulSet.length; k++) expect(statefulSet[k]! - statefulSet[k - 1]!).toBeGreaterThan(separationMinEntries);
  });
});
