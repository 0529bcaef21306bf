// Which membership change the nemesis may start: the cluster keeps 3 to 5 voters and at most 7 processes.
import { describe, expect, it } from "vitest";
import { memberVariants, variantAllowed } from "./membership.js";

const allowed = (voters: number, processes: number): string[] => memberVariants.filter((variant) => variantAllowed(variant, voters, processes));

describe("the membership nemesis's choices", () => {
  it("only grows a cluster of 3 voters, and only shrinks one of 5", () => {
    expect(allowed(3, 3)).toEqual(["add", "replace"]);
    expect(allowed(4, 4)).toEqual(["add", "remove-follower", "remove-leader", "replace"]);
    expect(allowed(5, 5)).toEqual(["remove-follower", "remove-leader"]);
  });

  it("starts no node beyond 7 processes", () => {
    expect(allowed(4, 7)).toEqual(["remove-follower", "remove-leader"]);
  });
});
