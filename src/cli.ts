#!/usr/bin/env node
// The `raftlock` command: `start` runs one node, `status` prints the cluster table.
import { pino } from "pino";
import { bearerMatches, createHttpApp, listenHttp } from "./api/http/server.js";
import { attachWatchSocket } from "./api/http/watch-socket.js";
import { mergeCommandTables } from "./api/resp/command-table.js";
import { coordinationCommandTable } from "./api/resp/coordination-commands.js";
import { genericCommands } from "./api/resp/generic-commands.js";
import { pubsubCommandTable } from "./api/resp/pubsub-commands.js";
import { scriptCommandTable } from "./api/resp/scripts.js";
import { RespServer } from "./api/resp/server.js";
import { ConfigError, envName, parseAddress, parseStartConfig, startFlags } from "./config.js";
import { RaftNode } from "./node/node.js";
import { CoordinationStateMachine } from "./fsm/coordination.js";
import { fsmLimitsDefaults, ttlMsMinFor } from "./fsm/limits.js";
import { CoordinationService } from "./node/coordination-service.js";
import { StorageCorruptError } from "./storage/storage.js";

/** How long `raftlock status` waits for the node to answer. */
const statusTimeoutMs = 5_000;

const usage = `usage:
  raftlock start --id n1 --data-dir ./data/n1 --peer-listen 127.0.0.1:7001 --http-listen 127.0.0.1:8381 \\
                 --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 [--cluster-token SECRET]
  raftlock status [--http 127.0.0.1:8381]
  raftlock start --help      every flag, with its environment variable
`;

function startHelp(): string {
  const lines = startFlags.map((flag) => {
    const fallback = flag.defaultValue === undefined ? "" : ` (default ${flag.defaultValue})`;
    return `  --${flag.name.padEnd(26)} ${flag.help}${fallback}\n  ${"".padEnd(28)} env ${envName(flag.name)}`;
  });
  return `raftlock start: run one node of a cluster\n\n${lines.join("\n")}\n`;
}

async function start(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(startHelp());
    return;
  }
  const config = parseStartConfig(argv, process.env);
  const logger = pino({ level: config.logLevel, base: { nodeId: config.id } });
  // Every member derives the same TTL floor from the same election timeout: replicated decisions use it.
  const fsm = new CoordinationStateMachine({ ...fsmLimitsDefaults, ttlMsMin: ttlMsMinFor(config.electionTimeoutMaxMs) });
  const node = await RaftNode.start(config, logger, fsm);
  const service = new CoordinationService(node, fsm, logger);
  const server = await listenHttp(createHttpApp(node, logger, { service, fsm }, config.authPassword), config.httpListen);
  const password = config.authPassword;
  attachWatchSocket(server, fsm, (request) => password === undefined || bearerMatches(request, password));
  const resp =
    config.respListen === undefined
      ? null
      : await RespServer.start({
          listen: config.respListen,
          logger,
          commands: mergeCommandTables(genericCommands, coordinationCommandTable(service, fsm, node), pubsubCommandTable(fsm), scriptCommandTable(service)),
          ...(password === undefined ? {} : { authPassword: password }),
        });
  logger.info({ http: config.httpListen, peer: config.peerListen, resp: config.respListen ?? null }, "serving");
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    server.close();
    server.closeAllConnections();
    void resp?.close();
    service.stop();
    node.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "unclean stop");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

interface ClusterReply {
  leader: { id: string; term: number } | null;
  members: { id: string; reachable: boolean; role?: string; term?: number; commitIndex?: number; appliedIndex?: number; matchIndex?: number }[];
}

async function status(argv: string[]): Promise<void> {
  let http = process.env[envName("http")] ?? "127.0.0.1:8381";
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--http" && argv[i + 1] !== undefined) http = argv[++i]!;
    else if (argv[i]?.startsWith("--http=")) http = argv[i]!.slice("--http=".length);
    else throw new ConfigError(`unknown argument "${argv[i]}"; usage: raftlock status [--http host:port]`);
  }
  const address = parseAddress("http", http);
  const url = `http://${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}/v1/cluster`;
  let reply: ClusterReply;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(statusTimeoutMs) });
    reply = (await response.json()) as ClusterReply;
  } catch (error) {
    throw new ConfigError(`could not reach a raftlock node at ${http} (${(error as Error).message}); is it running, and is --http its --http-listen address?`);
  }
  const rows = [["ID", "ROLE", "TERM", "COMMIT", "APPLIED", "MATCH"]];
  for (const member of reply.members) {
    const cell = (value: number | string | undefined): string => (value === undefined ? "-" : String(value));
    rows.push([member.id, member.reachable ? cell(member.role) : "unreachable", cell(member.term), cell(member.commitIndex), cell(member.appliedIndex), cell(member.matchIndex)]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()}\n`);
  process.stdout.write(reply.leader === null ? "no leader is known\n" : `leader ${reply.leader.id} in term ${reply.leader.term}\n`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === "start") return start(rest);
  if (command === "status") return status(rest);
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(usage);
    return;
  }
  throw new ConfigError(`unknown command "${command}"\n${usage}`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof StorageCorruptError) {
    process.stderr.write(`raftlock: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`raftlock: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
