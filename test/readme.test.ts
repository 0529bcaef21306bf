// The README's configuration table is what newcomers read instead of --help: it must list every flag the
// node accepts, with its real environment variable and default, and nothing the node does not accept.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { envName, startFlags } from "../src/config.js";

interface ConfigRow {
  readonly flag: string;
  readonly env: string;
  readonly defaultValue: string;
}

/** The rows of the table under "## Configuration", cells stripped of their backticks. */
function configurationRows(): ConfigRow[] {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.split("\n## Configuration\n")[1]?.split("\n## ")[0];
  expect(section, "README.md has a ## Configuration section").toBeDefined();
  return section!
    .split("\n")
    .filter((line) => line.startsWith("| `--"))
    .map((line) => {
      const cells = line.split("|").slice(1, -1).map((cell) => cell.trim());
      return { flag: cells[0]!.replace(/`/g, "").slice(2), env: cells[1]!.replace(/`/g, ""), defaultValue: cells[2]!.replace(/`/g, "") };
    });
}

describe("README configuration table", () => {
  it("lists every start flag once, in --help order, with its environment variable", () => {
    const rows = configurationRows();
    expect(rows.map((row) => row.flag)).toEqual(startFlags.map((spec) => spec.name));
    for (const row of rows) expect(row.env).toBe(envName(row.flag));
  });

  it("gives each flag's real default", () => {
    const rows = new Map(configurationRows().map((row) => [row.flag, row]));
    for (const spec of startFlags) {
      if (spec.defaultValue !== undefined) expect(rows.get(spec.name)?.defaultValue, `--${spec.name}`).toBe(spec.defaultValue);
      else expect(rows.get(spec.name)?.defaultValue, `--${spec.name}`).not.toMatch(/^\d+$/);
    }
  });
});
