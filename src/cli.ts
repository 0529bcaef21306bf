#!/usr/bin/env node
// The `raftlock` command: `start` runs one node; `status`, `members` and `transfer-leader` (cli-admin.ts)
// administer a running cluster.
import { pino } from "pino";
import pretty from "pino-pretty";
import { AuthFailureLimiter, authLimitsDefault, ClientCredentials } from "./api/auth.js";
import { authorizeRequest, createHttpApp, type HttpAuth, listenHttp } from "./api/http/server.js";
import { attachWatchSocket } from "./api/http/watch-socket.js";
import { nodeCommandTable } from "./api/resp/node-commands.js";
import { RespServer } from "./api/resp/server.js";
import { clientCommands, clientUsage, RequestFailedError } from "./cli-admin.js";
import { ConfigError, envName, type NodeConfig, parseStartConfig, startFlags } from "./config.js";
import { NodeMetrics } from "./metrics.js";
import { RaftNode } from "./node/node.js";
import { CoordinationStateMachine } from "./fsm/coordination.js";
import { fsmLimitsDefaults, ttlMsMinFor } from "./fsm/limits.js";
import { CoordinationService } from "./node/coordination-service.js";
import { joinAndPromote } from "./node/join.js";
import { StorageCorruptError } from "./storage/storage.js";
import { exposureWarnings } from "./exposure.js";
import { ReloadableTls, reloadAll, TlsFileError } from "./tls.js";

const usage = `usage:
  raftlock start --id n1 --data-dir ./data/n1 --peer-listen 127.0.0.1:7001 --http-listen 127.0.0.1:8381 \\
                 --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 [--cluster-token SECRET]
  raftlock start --id n4 ... --join 127.0.0.1:8381          join a running cluster (promoted once caught up)
  raftlock start --help      every flag, with its environment variable
${clientUsage}
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
  // JSON lines for log collectors; readable lines for a person at a terminal (same fields, same events).
  const destination = process.stdout.isTTY ? pretty({ colorize: true, singleLine: true, sync: true, translateTime: "SYS:HH:MM:ss.l" }) : undefined;
  const logger = pino({ level: config.logLevel, base: { nodeId: config.id } }, destination);
  for (const warning of exposureWarnings(config)) logger.warn(warning.fields, warning.message);
  // Every member derives the same TTL floor from the same election timeout: replicated decisions use it.
  const fsm = new CoordinationStateMachine({ ...fsmLimitsDefaults, ttlMsMin: ttlMsMinFor(config.electionTimeoutMaxMs) });
  const metrics = new NodeMetrics();
  const limitHits = metrics.limitHit;
  const peerTls = loadTls("peer-tls", config.peerTls);
  const clientTls = loadTls("client-tls", config.clientTls);
  const node = await RaftNode.start(config, logger, fsm, metrics, peerTls);
  const service = new CoordinationService(node, fsm, logger, metrics);
  const httpAuth: HttpAuth | undefined =
    config.authPassword === undefined
      ? undefined
      : { credentials: new ClientCredentials(config.authPassword, config.authReadOnlyPassword), limiter: new AuthFailureLimiter(logger.child({ component: "http" }), "HTTP", authLimitsDefault, undefined, limitHits) };
  const server = await listenHttp(createHttpApp(node, logger, { service, fsm }, httpAuth, metrics), config.httpListen, clientTls, { limitHits, logger });
  metrics.countConnections("http", () => new Promise((resolve) => server.getConnections((error, count) => resolve(error === null ? count : 0))));
  // A watch only reads, so the read-only password suffices.
  attachWatchSocket(server, fsm, (request) => httpAuth === undefined || typeof authorizeRequest(request, httpAuth) === "string", { limitHits });
  const resp =
    config.respListen === undefined
      ? null
      : await RespServer.start({
          listen: config.respListen,
          logger,
          commands: nodeCommandTable(service, fsm, node),
          ...(config.authPassword === undefined ? {} : { authPassword: config.authPassword }),
          ...(config.authReadOnlyPassword === undefined ? {} : { authReadOnlyPassword: config.authReadOnlyPassword }),
          ...(clientTls === undefined ? {} : { tls: clientTls }),
          metrics,
        });
  logger.info({ http: config.httpListen, peer: config.peerListen, resp: config.respListen ?? null, peerTls: peerTls !== undefined, clientTls: clientTls !== undefined }, "serving");
  const tlsSets = [peerTls, clientTls].filter((set) => set !== undefined);
  // Only a node with certificates takes SIGHUP over: without, it keeps the default (exit), as before.
  if (tlsSets.length > 0) process.on("SIGHUP", () => reloadAll(tlsSets, logger));
  const joining = new AbortController();
  if (config.join.length > 0) {
    joinAndPromote(node, config, logger, joining.signal, clientTls).catch((error: unknown) => {
      logger.error({ err: error }, "could not join the cluster; fix the cause and restart this node");
    });
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    joining.abort();
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

/** The material of `--<what>-cert/key/ca`, already checked by parseStartConfig; undefined without TLS. */
function loadTls(what: string, files: NodeConfig["peerTls"]): ReloadableTls | undefined {
  if (files === undefined) return undefined;
  try {
    return ReloadableTls.load(what, files);
  } catch (error) {
    // The files changed between the config check and now.
    if (error instanceof TlsFileError) throw new ConfigError(error.message);
    throw error;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === "start") return start(rest);
  const client = command === undefined ? undefined : clientCommands.get(command);
  if (client !== undefined) return client(rest, process.env, (text) => process.stdout.write(text));
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
  if (error instanceof RequestFailedError) {
    process.stderr.write(`raftlock: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`raftlock: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
