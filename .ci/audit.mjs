#!/usr/bin/env node
// The dependency audit CI runs: `npm audit --omit=dev`, and every advisory it reports must be accepted
// in SECURITY.md, between the `<!-- audit-accepted -->` and `<!-- /audit-accepted -->` markers (its GHSA
// id, with why it does not matter here), else this fails. Ids mentioned elsewhere in SECURITY.md do not
// count: a lockfile that slid back into an advisory's range must fail. Where the registry refuses the
// audit endpoint (HTTP 404, 405 or 501: some mirrors and proxies do), it says so and passes, SECURITY.md
// recording the manual review that stands in for it; any other failure to audit fails.
//
//   node .ci/audit.mjs [--from <npm-audit.json>]   (--from: judge a saved `npm audit --json` output)
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const root = new URL("..", import.meta.url);
const fromAt = process.argv.indexOf("--from");
const securityMd = process.env.RAFTLOCK_SECURITY_MD ?? new URL("SECURITY.md", root);

/** `npm audit --json`'s output: it exits non-zero when it finds something, which is not a failure here. */
function auditJson() {
  if (fromAt >= 0) return readFileSync(process.argv[fromAt + 1], "utf8");
  try {
    return execFileSync("npm", ["audit", "--omit=dev", "--json"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 120_000 });
  } catch (error) {
    if (typeof error.stdout === "string" && error.stdout.length > 0) return error.stdout;
    // No report at all (no network, npm failed to start): not an audit, so not a pass.
    return JSON.stringify({ message: error.message.split("\n")[0] });
  }
}

/** HTTP statuses with which a registry says it offers no audit endpoint at all. */
const endpointRefusedStatuses = new Set([404, 405, 501]);

const report = JSON.parse(auditJson());
if (report.vulnerabilities === undefined) {
  const why = report.message ?? report.error?.summary ?? (report.statusCode === undefined ? "no report" : `status ${report.statusCode}`);
  if (endpointRefusedStatuses.has(report.statusCode)) {
    console.log(`dependency audit: the registry refuses the audit endpoint (${why}); not checked here. SECURITY.md ("Dependency audit") records the manual review.`);
    process.exit(0);
  }
  console.error(`dependency audit: npm audit failed (${why}); rerun it, or check the network and the registry`);
  process.exit(1);
}

// Each finding's advisories: GHSA ids from the `via` entries that are advisories (strings name another package).
const findings = [];
for (const [name, vulnerability] of Object.entries(report.vulnerabilities)) {
  for (const via of vulnerability.via ?? []) {
    if (typeof via !== "object" || via === null) continue;
    const id = /GHSA-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}/i.exec(String(via.url ?? ""))?.[0] ?? `npm:${via.source}`;
    findings.push({ name, id, severity: via.severity ?? vulnerability.severity, title: via.title ?? "" });
  }
}
const accepted = /<!-- audit-accepted -->([\s\S]*?)<!-- \/audit-accepted -->/.exec(readFileSync(securityMd, "utf8"))?.[1] ?? "";
const unexplained = findings.filter((finding) => !accepted.includes(finding.id));
for (const finding of findings) {
  console.log(`${unexplained.includes(finding) ? "UNEXPLAINED" : "explained  "} ${finding.id} ${finding.severity} ${finding.name}: ${finding.title}`);
}
if (unexplained.length > 0) {
  console.error(`dependency audit: ${unexplained.length} advisories are not accepted in SECURITY.md; update the dependency (npm update <name>), or add the id between its audit-accepted markers with why it does not matter here`);
  process.exit(1);
}
console.log(`dependency audit: ${findings.length} advisories, all accepted in SECURITY.md`);
