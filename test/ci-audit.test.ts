// The CI dependency audit (.ci/audit.mjs) judges `npm audit --json` output: an advisory not accepted in
// SECURITY.md (between its audit-accepted markers) fails CI, an accepted one passes, and a registry that
// refuses the audit endpoint is reported without failing (SECURITY.md then holds the manual review).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "raftlock-audit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const finding = {
  auditReportVersion: 2,
  vulnerabilities: {
    qs: { name: "qs", severity: "high", via: [{ source: 1099, name: "qs", title: "qs arrayLimit bypass", url: "https://github.com/advisories/GHSA-abcd-efgh-ijkl", severity: "high", range: "<6.16.0" }] },
    // An effect of another package's advisory: named by its `via` string, not counted again.
    express: { name: "express", severity: "high", via: ["qs"] },
  },
};

function audit(report: unknown, security: string): { status: number | null; output: string } {
  const reportFile = join(dir, `report-${Math.random().toString(36).slice(2)}.json`);
  const securityFile = join(dir, "SECURITY.md");
  writeFileSync(reportFile, JSON.stringify(report));
  writeFileSync(securityFile, security);
  const run = spawnSync(process.execPath, [".ci/audit.mjs", "--from", reportFile], { encoding: "utf8", env: { ...process.env, RAFTLOCK_SECURITY_MD: securityFile } });
  return { status: run.status, output: run.stdout + run.stderr };
}

describe("CI dependency audit", () => {
  it("fails on an advisory SECURITY.md does not accept, naming it and what to do, also when the id is mentioned elsewhere", () => {
    const { status, output } = audit(finding, "# Security\n\n| qs | GHSA-abcd-efgh-ijkl (<6.16.0) | no: fixed below the installed version |\n\n<!-- audit-accepted -->\n<!-- /audit-accepted -->\n");
    expect(status).toBe(1);
    expect(output).toContain("UNEXPLAINED GHSA-abcd-efgh-ijkl high qs: qs arrayLimit bypass");
    expect(output).toContain("update the dependency");
  });

  it("passes once SECURITY.md accepts it, and on a clean report", () => {
    expect(audit(finding, "<!-- audit-accepted -->\n- GHSA-abcd-efgh-ijkl: only with `comma: true`, which express does not use.\n<!-- /audit-accepted -->\n")).toMatchObject({ status: 0 });
    expect(audit({ auditReportVersion: 2, vulnerabilities: {}, metadata: {} }, "")).toMatchObject({ status: 0, output: expect.stringContaining("0 advisories") });
  });

  it("passes, saying so, when the registry refuses the audit endpoint", () => {
    const refused = { message: "405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk", statusCode: 405 };
    const { status, output } = audit(refused, "");
    expect(status).toBe(0);
    expect(output).toContain("refuses the audit endpoint (405 Method Not Allowed");
  });

  it("fails when npm audit fails for any other reason (no network, a server error)", () => {
    expect(audit({ error: { code: "ENOTFOUND", summary: "request to https://registry.npmjs.org failed" } }, "")).toMatchObject({ status: 1, output: expect.stringContaining("npm audit failed") });
    expect(audit({ message: "503 Service Unavailable", statusCode: 503 }, "")).toMatchObject({ status: 1 });
  });
});
