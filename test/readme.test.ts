// The README's configuration table is what newcomers read instead of --help: it must list every flag the
// node accepts, with its real environment variable and default, and nothing the node does not accept.
// Its limits table must name every limit the metrics count, with the value the code enforces.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { authLimitsDefault } from "../src/api/auth.js";
import { httpConnectionsMax } from "../src/api/http/connection-limit.js";
import { watchStreamsMax } from "../src/api/http/coordination-routes.js";
import { httpBodyBytesMax } from "../src/api/http/server.js";
import { subscriptionsPerSocketMax, watchMessageBytesMax, watchSocketsMax } from "../src/api/http/watch-socket.js";
import { respLimitsDefault } from "../src/api/resp/limits.js";
import { subscriptionsPerConnectionMax } from "../src/api/resp/pubsub-commands.js";
import { envName, startFlags } from "../src/config.js";
import { fsmLimitsDefaults, nameBytesMax, valueBytesMax } from "../src/fsm/limits.js";
import { type LimitName, limitNames } from "../src/limit-hits.js";
import { sessionsPerClientMaxDefault } from "../src/node/client-sessions.js";
import { blockedClientsMaxDefault, locksPerSessionMaxDefault } from "../src/node/coordination-service.js";
import { pendingProposalsMax, pendingReadsMax } from "../src/node/node.js";
import { raftConfigDefaults } from "../src/raft/config.js";
import { transportLimitsDefault } from "../src/transport/limits.js";

interface ConfigRow {
  readonly flag: string;
  readonly env: string;
  readonly defaultValue: string;
}

/** The cells of the rows starting with `rowStart` in the table of README section `heading`. */
function tableRows(heading: string, rowStart: string): string[][] {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.split(`\n## ${heading}\n`)[1]?.split("\n## ")[0];
  expect(section, `README.md has a ## ${heading} section`).toBeDefined();
  return section!
    .split("\n")
    .filter((line) => line.startsWith(rowStart))
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim()));
}

/** The rows of the table under "## Configuration", cells stripped of their backticks. */
function configurationRows(): ConfigRow[] {
  return tableRows("Configuration", "| `--").map((cells) => ({ flag: cells[0]!.replace(/`/g, "").slice(2), env: cells[1]!.replace(/`/g, ""), defaultValue: cells[2]!.replace(/`/g, "") }));
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

/** The rows of the table under "## Limits": the limit name and its default, backticks stripped. */
function limitRows(): { limit: string; defaultValue: string }[] {
  return tableRows("Limits", "| `").map((cells) => ({ limit: cells[0]!.replace(/`/g, ""), defaultValue: cells[1]! }));
}

/** How the table writes a count (10,000) or a size in bytes (64 KiB, 1 MiB). */
function count(value: number): string {
  return value.toLocaleString("en-US");
}
function bytes(value: number): string {
  if (value >= 1 << 20 && value % (1 << 20) === 0) return `${value / (1 << 20)} MiB`;
  if (value >= 1024 && value % 1024 === 0) return `${value / 1024} KiB`;
  return `${value} bytes`;
}

describe("README limits table", () => {
  it("lists every named limit once, in the code's order, with its real default", () => {
    const expected: Record<LimitName, string> = {
      resp_connections: count(respLimitsDefault.connectionsMax),
      resp_arguments: count(respLimitsDefault.argumentsMax),
      resp_bulk_bytes: bytes(respLimitsDefault.bulkBytesMax),
      resp_request_bytes: bytes(respLimitsDefault.requestBytesMax),
      resp_inline_bytes: bytes(respLimitsDefault.inlineBytesMax),
      resp_output_bytes: bytes(respLimitsDefault.outputBytesMax),
      http_connections: count(httpConnectionsMax),
      http_body_bytes: bytes(httpBodyBytesMax),
      subscriptions_per_connection: `${count(subscriptionsPerConnectionMax)} per RESP connection, ${count(subscriptionsPerSocketMax)} per watch WebSocket`,
      watch_streams: count(watchStreamsMax),
      watch_sockets: count(watchSocketsMax),
      watch_message_bytes: bytes(watchMessageBytesMax),
      auth_failures: `${count(authLimitsDefault.failuresMax)} per client address per ${authLimitsDefault.failureWindowMs === 60_000 ? "minute" : `${authLimitsDefault.failureWindowMs} ms`}`,
      name_bytes: bytes(nameBytesMax),
      value_bytes: bytes(valueBytesMax),
      sessions: count(fsmLimitsDefaults.sessionsMax),
      locks: count(fsmLimitsDefaults.locksMax),
      elections: count(fsmLimitsDefaults.electionsMax),
      waiters_per_lock: count(fsmLimitsDefaults.waitersPerLockMax),
      waiters: count(fsmLimitsDefaults.waitersMax),
      locks_per_session: count(locksPerSessionMaxDefault),
      sessions_per_client: count(sessionsPerClientMaxDefault),
      blocked_clients: count(blockedClientsMaxDefault),
      proposal_bytes: bytes(raftConfigDefaults.proposalBytesMax),
      pending_proposals: count(pendingProposalsMax),
      pending_reads: count(pendingReadsMax),
      forwarded_requests: `${count(transportLimitsDefault.requestsInFlightMaxPerPeer)} per peer`,
      peer_frame_bytes: bytes(transportLimitsDefault.frameBytesMax),
      peer_queued_bytes: `${bytes(transportLimitsDefault.queuedBytesMaxPerPeer)} per peer`,
      peer_snapshot_bytes: bytes(transportLimitsDefault.snapshotBytesMax),
      peer_handshakes_pending: count(transportLimitsDefault.handshakesPendingMax),
      peer_links: count(transportLimitsDefault.linksMax),
    };
    const rows = limitRows();
    expect(rows.map((row) => row.limit)).toEqual(limitNames);
    for (const row of rows) expect(row.defaultValue, row.limit).toBe(expected[row.limit as LimitName]);
  });
});
