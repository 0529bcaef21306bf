// `raftlock start` configuration: command-line flags, each also read from RAFTLOCK_<FLAG> in the environment
// (flags win). Validation happens here, once, with messages that say what is wrong and what to do.

import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { readTlsFiles, type TlsFiles, TlsFileError, tlsFileBytesMax } from "./tls.js";

/** A host and port to listen on or dial. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface NodeConfig {
  readonly id: string;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly peerListen: Address;
  readonly httpListen: Address;
  /** Where the RESP (Redis protocol) API listens; none when not given. */
  readonly respListen: Address | undefined;
  /**
   * The members a new cluster starts with, this node included, by id (the bootstrap configuration; once
   * the log holds a configuration, that wins). Empty when this node joins an existing cluster.
   */
  readonly peers: ReadonlyMap<string, Address>;
  /** HTTP addresses (`http://host:port`, or `https://` with --client-tls-*) of members to ask to add this node; empty unless joining. */
  readonly join: readonly string[];
  /** The peer address other members dial to reach this node. */
  readonly peerAdvertise: Address;
  readonly clusterToken: string | undefined;
  /** When set, clients must present it: `AUTH` on RESP, `Authorization: Bearer` on HTTP. */
  readonly authPassword: string | undefined;
  /** With `authPassword`: a second password that allows only reads (RESP read commands, HTTP GET). */
  readonly authReadOnlyPassword: string | undefined;
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly heartbeatIntervalMs: number;
  /** Take a snapshot after this many applied entries. */
  readonly snapshotEveryEntries: number;
  /** Entries kept below a snapshot so that a briefly slow follower needs no snapshot (pitfall 17). */
  readonly retainedEntries: number;
  /** How long a write may wait to commit before its client hears "outcome unknown". */
  readonly commitTimeoutMs: number;
  /** How linearizable reads confirm leadership: a heartbeat round per read batch, or the leader lease. */
  readonly readMode: "read-index" | "lease";
  readonly logLevel: string;
  /** Mutual TLS on the peer port (`wss`): both sides present a certificate chaining to `ca`. */
  readonly peerTls: TlsFiles | undefined;
  /** TLS on the RESP and HTTP ports; with `ca`, clients must present a certificate chaining to it. */
  readonly clientTls: TlsFiles | undefined;
  /** PEM CA file that members' HTTPS certificates must chain to when joining over https (else the system's CAs). */
  readonly joinTlsCa: string | undefined;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Longest node id and cluster id: they travel in every handshake and log line. */
export const idLengthMax = 64;
/** Most members one cluster may list. */
export const peersMax = 15;
/** Largest secret file (`--*-password-file`, `--cluster-token-file`); a larger one is most likely the wrong file. */
export const secretFileBytesMax = 4096;

interface FlagSpec {
  readonly name: string;
  readonly help: string;
  readonly defaultValue?: string;
}

/** Where the HTTP API listens unless told: loopback, for an application in the same pod or host. */
export const httpListenDefault = "127.0.0.1:8381";

/** Every flag `raftlock start` accepts, in the order `--help` lists them. */
export const startFlags: readonly FlagSpec[] = [
  { name: "id", help: "this node's id, one of the ids in --peers (e.g. n1)" },
  { name: "data-dir", help: "directory for the write-ahead log and snapshots (created if missing)" },
  { name: "peer-listen", help: "host:port for replication traffic from the other nodes" },
  { name: "http-listen", help: "host:port for the HTTP API, health checks and metrics; a non-loopback host without --auth-password logs a warning", defaultValue: httpListenDefault },
  { name: "resp-listen", help: "host:port for the RESP (Redis protocol) API; none when not given" },
  { name: "peers", help: "a new cluster's members as id=host:port, comma separated, this node included; or dns:<headless-service>:<port> with --replicas" },
  { name: "replicas", help: "with --peers dns:...: how many StatefulSet ordinals form the cluster at first start; higher ordinals join" },
  { name: "join", help: "HTTP address of any member (comma separated for several): join that cluster as a learner, promoted once caught up" },
  { name: "peer-advertise", help: "host:port other members dial to reach this node (default: its --peers entry, else --peer-listen)" },
  { name: "cluster-id", help: "name shared by all members; nodes of another cluster are refused", defaultValue: "raftlock" },
  { name: "cluster-token", help: "shared secret every peer must present (also RAFTLOCK_CLUSTER_TOKEN)" },
  { name: "cluster-token-file", help: "file holding --cluster-token (one trailing newline is dropped), e.g. a mounted Kubernetes Secret" },
  { name: "auth-password", help: "password clients must present (RESP AUTH, HTTP Authorization: Bearer); also RAFTLOCK_AUTH_PASSWORD" },
  { name: "auth-password-file", help: "file holding --auth-password (one trailing newline is dropped)" },
  { name: "auth-readonly-password", help: "a second client password that may only read (RESP read commands, HTTP GET); needs --auth-password" },
  { name: "auth-readonly-password-file", help: "file holding --auth-readonly-password (one trailing newline is dropped)" },
  { name: "election-timeout-min-ms", help: "lower bound of the randomized election timeout", defaultValue: "1000" },
  { name: "election-timeout-max-ms", help: "upper bound of the randomized election timeout", defaultValue: "2000" },
  { name: "heartbeat-interval-ms", help: "how often the leader sends heartbeats", defaultValue: "100" },
  { name: "snapshot-every-entries", help: "take a snapshot after this many applied entries", defaultValue: "10000" },
  { name: "retained-entries", help: "log entries kept below a snapshot for slow followers", defaultValue: "5000" },
  { name: "commit-timeout-ms", help: "how long a write may wait to commit before the client hears \"outcome unknown\"", defaultValue: "10000" },
  { name: "read-mode", help: "read-index (a heartbeat round confirms each read) or lease (the leader answers within its lease)", defaultValue: "read-index" },
  { name: "log-level", help: "fatal, error, warn, info, debug or trace", defaultValue: "info" },
  { name: "peer-tls-cert", help: "PEM certificate this node presents to its peers; with --peer-tls-key and --peer-tls-ca, peer streams are mutual TLS (wss)" },
  { name: "peer-tls-key", help: "PEM private key of --peer-tls-cert" },
  { name: "peer-tls-ca", help: "PEM CA certificate(s) every peer's certificate must chain to" },
  { name: "client-tls-cert", help: "PEM certificate of the RESP and HTTP ports; with --client-tls-key they speak TLS (HTTPS, redis-cli --tls)" },
  { name: "client-tls-key", help: "PEM private key of --client-tls-cert" },
  { name: "client-tls-ca", help: "PEM CA certificate(s): when given, clients must present a certificate chaining to it (mutual TLS)" },
  { name: "join-tls-ca", help: "PEM CA certificate(s) that members' HTTPS certificates must chain to when joining over https:// (default: the system's CAs)" },
];

/** The environment variable that carries `flag`: `peer-listen` → `RAFTLOCK_PEER_LISTEN`. */
export function envName(flag: string): string {
  return `RAFTLOCK_${flag.toUpperCase().replace(/-/g, "_")}`;
}

/** Parses `raftlock start` arguments (after the subcommand) and the environment into a checked config. */
export function parseStartConfig(argv: readonly string[], env: NodeJS.ProcessEnv): NodeConfig {
  const raw = new Map<string, string>();
  for (const spec of startFlags) {
    const fromEnv = env[envName(spec.name)];
    if (fromEnv !== undefined && fromEnv !== "") raw.set(spec.name, fromEnv);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}"; flags look like --id n1`);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!startFlags.some((spec) => spec.name === name)) {
      throw new ConfigError(`unknown flag --${name}; run "raftlock start --help" for the list`);
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value.startsWith("--")) throw new ConfigError(`--${name} needs a value`);
    raw.set(name, value);
  }
  const get = (name: string): string => {
    const value = raw.get(name) ?? startFlags.find((spec) => spec.name === name)?.defaultValue;
    if (value === undefined) throw new ConfigError(`--${name} is required (or set ${envName(name)}): ${startFlags.find((s) => s.name === name)?.help}`);
    return value;
  };

  const id = checkId("id", get("id"));
  const peerListen = parseAddress("peer-listen", get("peer-listen"));
  const httpListen = parseAddress("http-listen", get("http-listen"));
  const membership = parseMembership(id, raw, peerListen, httpListen);
  const electionTimeoutMinMs = parseInteger("election-timeout-min-ms", get("election-timeout-min-ms"), 10, 60_000);
  const electionTimeoutMaxMs = parseInteger("election-timeout-max-ms", get("election-timeout-max-ms"), 20, 120_000);
  const heartbeatIntervalMs = parseInteger("heartbeat-interval-ms", get("heartbeat-interval-ms"), 1, 10_000);
  if (electionTimeoutMaxMs <= electionTimeoutMinMs) {
    throw new ConfigError(`--election-timeout-max-ms (${electionTimeoutMaxMs}) must be above --election-timeout-min-ms (${electionTimeoutMinMs})`);
  }
  if (electionTimeoutMinMs < 3 * heartbeatIntervalMs) {
    throw new ConfigError(
      `--election-timeout-min-ms (${electionTimeoutMinMs}) must be at least 3 x --heartbeat-interval-ms (${heartbeatIntervalMs}), or followers start elections while the leader is healthy`,
    );
  }
  const logLevel = get("log-level");
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    throw new ConfigError(`--log-level must be one of fatal, error, warn, info, debug, trace, silent (got "${logLevel}")`);
  }
  const readMode = get("read-mode");
  if (readMode !== "read-index" && readMode !== "lease") throw new ConfigError(`--read-mode must be read-index or lease (got "${readMode}")`);
  const dataDir = get("data-dir");
  if (dataDir.trim() === "") throw new ConfigError("--data-dir must not be empty");
  return {
    id,
    clusterId: checkId("cluster-id", get("cluster-id")),
    dataDir,
    peerListen,
    httpListen,
    respListen: raw.has("resp-listen") ? parseAddress("resp-listen", raw.get("resp-listen")!) : undefined,
    ...membership,
    ...parseSecrets(raw),
    electionTimeoutMinMs,
    electionTimeoutMaxMs,
    heartbeatIntervalMs,
    snapshotEveryEntries: parseInteger("snapshot-every-entries", get("snapshot-every-entries"), 10, 100_000_000),
    retainedEntries: parseInteger("retained-entries", get("retained-entries"), 0, 100_000_000),
    commitTimeoutMs: parseInteger("commit-timeout-ms", get("commit-timeout-ms"), 100, 600_000),
    readMode,
    logLevel,
    peerTls: parseTlsFlags("peer-tls", raw, true),
    clientTls: parseTlsFlags("client-tls", raw, false),
    joinTlsCa: parseJoinTlsCa(raw),
  };
}

/** `--join-tls-ca`: read and checked now, so that a wrong path stops the node at start rather than its join. */
function parseJoinTlsCa(raw: ReadonlyMap<string, string>): string | undefined {
  const path = raw.get("join-tls-ca");
  if (path === undefined) return undefined;
  try {
    const pem = readFileSync(path);
    if (pem.length > tlsFileBytesMax || !pem.includes("-----BEGIN CERTIFICATE-----")) throw new ConfigError(`--join-tls-ca ${path} is not a PEM certificate; give the CA that issued the members' --client-tls-cert`);
    new X509Certificate(pem);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(code === undefined ? `--join-tls-ca ${path} is not a usable PEM certificate (${(error as Error).message})` : `--join-tls-ca ${path} cannot be read (${code}); check the path and that this user may read it`);
  }
  return path;
}

/** `--cluster-token`, `--auth-password` and `--auth-readonly-password`, each from its flag or its file. */
function parseSecrets(raw: ReadonlyMap<string, string>): Pick<NodeConfig, "clusterToken" | "authPassword" | "authReadOnlyPassword"> {
  const clusterToken = secretOf("cluster-token", raw);
  const authPassword = secretOf("auth-password", raw);
  const authReadOnlyPassword = secretOf("auth-readonly-password", raw);
  if (authReadOnlyPassword !== undefined && authPassword === undefined) {
    throw new ConfigError("--auth-readonly-password needs --auth-password too: without it clients need no password at all, and writers would have none to use");
  }
  // Compared, never shown: an error message must not echo either secret.
  if (authReadOnlyPassword !== undefined && authReadOnlyPassword === authPassword) {
    throw new ConfigError("--auth-readonly-password must differ from --auth-password, or every client holding it could write");
  }
  return { clusterToken, authPassword, authReadOnlyPassword };
}

/**
 * The secret `--<flag>` or the content of `--<flag>-file` (one trailing newline dropped, as `echo` and
 * editors leave one); undefined when neither is given. Messages name the flag and the file, never the secret.
 */
function secretOf(flag: string, raw: ReadonlyMap<string, string>): string | undefined {
  const value = raw.get(flag);
  const path = raw.get(`${flag}-file`);
  if (value !== undefined && path !== undefined) {
    throw new ConfigError(`give either --${flag} or --${flag}-file (or ${envName(flag)} / ${envName(`${flag}-file`)}), not both`);
  }
  if (value !== undefined) {
    if (value === "") throw new ConfigError(`--${flag} must not be empty; leave it unset for none`);
    return value;
  }
  if (path === undefined) return undefined;
  return readSecretFile(`--${flag}-file`, path);
}

/**
 * The secret in the file at `path` (one trailing newline dropped, as `echo` and editors leave one), for
 * the option named `what`. Messages name the option and the file, never the secret.
 */
export function readSecretFile(what: string, path: string): string {
  let content: string;
  try {
    const size = statSync(path).size;
    if (size > secretFileBytesMax) throw new ConfigError(`${what} ${path} holds ${size} bytes, more than ${secretFileBytesMax}; is it the right file?`);
    content = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    throw new ConfigError(`${what} ${path} cannot be read (${code}); check the path and that this user may read it`);
  }
  const secret = content.replace(/\r?\n$/, "");
  if (secret === "") throw new ConfigError(`${what} ${path} is empty; put the secret in it, or leave it unset for none`);
  return secret;
}

/**
 * `--<prefix>-cert/-key/-ca`: none of them (no TLS), or the certificate and key (and the CA, required when
 * `caRequired`). The files are read and checked now, so that a wrong path stops the node at start.
 */
function parseTlsFlags(prefix: string, raw: ReadonlyMap<string, string>, caRequired: boolean): TlsFiles | undefined {
  const parts = caRequired ? ["cert", "key", "ca"] : ["cert", "key"];
  const given = ["cert", "key", "ca"].filter((part) => raw.has(`${prefix}-${part}`));
  if (given.length === 0) return undefined;
  const missing = parts.filter((part) => !given.includes(part));
  if (missing.length > 0) {
    const flags = (names: string[]): string => names.map((part) => `--${prefix}-${part}`).join(", ");
    const rule = caRequired ? `${flags(parts)} go together: give all three or none` : `${flags(parts)} go together (--${prefix}-ca is optional and needs them)`;
    throw new ConfigError(`${rule}; missing ${flags(missing)}`);
  }
  const files: TlsFiles = { cert: raw.get(`${prefix}-cert`)!, key: raw.get(`${prefix}-key`)!, ca: raw.get(`${prefix}-ca`) };
  try {
    readTlsFiles(`${prefix}`, files);
  } catch (error) {
    if (error instanceof TlsFileError) throw new ConfigError(error.message);
    throw error;
  }
  return files;
}

/** Whether `value` may name a node or a cluster. */
export function isValidId(value: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value) && value.length <= idLengthMax;
}

/** What a valid id looks like, for error messages. */
export const idRule = `1-${idLengthMax} letters, digits, ".", "_" or "-", starting with a letter or digit`;

function checkId(flag: string, value: string): string {
  if (!isValidId(value)) throw new ConfigError(`--${flag} must be ${idRule} (got "${value}")`);
  return value;
}

/** Parses `host:port` (IPv6 as `[::1]:7001`). */
export function parseAddress(flag: string, value: string): Address {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(value.trim());
  const port = match === null ? Number.NaN : Number(match[2]);
  if (match === null || !(port >= 1 && port <= 65535)) {
    throw new ConfigError(`--${flag} must be host:port with a port from 1 to 65535 (got "${value}")`);
  }
  const host = match[1]!.startsWith("[") ? match[1]!.slice(1, -1) : match[1]!;
  return { host, port };
}

/**
 * Who this node starts with: a static `--peers` list, a StatefulSet's ordinals (`--peers dns:...` with
 * `--replicas`: ordinals below it bootstrap the cluster, higher ones join it), or `--join` alone.
 */
function parseMembership(id: string, raw: ReadonlyMap<string, string>, peerListen: Address, httpListen: Address): Pick<NodeConfig, "peers" | "join" | "peerAdvertise"> {
  const peersFlag = raw.get("peers");
  const joinFlag = raw.get("join");
  const advertiseFlag = raw.get("peer-advertise");
  let peers = new Map<string, Address>();
  // Members serve HTTPS exactly when this node does (every member gets the same --client-tls-* flags).
  const joinScheme = raw.has("client-tls-cert") ? "https" : "http";
  let join = joinFlag === undefined ? [] : parseJoin(joinFlag, joinScheme);
  let advertise = advertiseFlag === undefined ? undefined : parseAddress("peer-advertise", advertiseFlag);
  if (peersFlag?.startsWith("dns:")) {
    const statefulSet = parseStatefulSet(id, peersFlag, raw.get("replicas"));
    if (statefulSet.ordinal < statefulSet.replicas) peers = statefulSet.peers;
    else if (join.length === 0) join = statefulSet.joinTargets(httpListen.port, joinScheme);
    advertise ??= { host: `${id}.${statefulSet.service}`, port: statefulSet.port };
  } else if (peersFlag !== undefined) {
    if (raw.has("replicas")) throw new ConfigError("--replicas goes with --peers dns:<headless-service>:<port> only");
    peers = parsePeers(peersFlag);
    if (!peers.has(id)) throw new ConfigError(`--peers must list this node's id "${id}" (got ${[...peers.keys()].join(", ")})`);
    if (join.length > 0) throw new ConfigError("give either --peers (start a new cluster) or --join (join a running one), not both");
  } else if (join.length === 0) {
    throw new ConfigError(`--peers is required (or set ${envName("peers")}) to start a cluster, or --join <member-http-address> to join one`);
  }
  advertise ??= peers.get(id) ?? peerListen;
  if (advertise.host === "0.0.0.0" || advertise.host === "::") {
    throw new ConfigError(`other members cannot dial ${formatAddress(advertise)}; give --peer-advertise <host:port> with an address they can reach`);
  }
  return { peers, join, peerAdvertise: advertise };
}

/** `--join` entries as `scheme://host:port`; an entry without a scheme gets `defaultScheme`. */
function parseJoin(value: string, defaultScheme: "http" | "https"): string[] {
  const targets = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (targets.length === 0) throw new ConfigError("--join needs at least one member's HTTP address, e.g. 127.0.0.1:8381");
  return targets.map((target) => {
    const withScheme = /^https?:\/\//.test(target) ? target : `${defaultScheme}://${target}`;
    try {
      const url = new URL(withScheme);
      return `${url.protocol}//${url.host}`;
    } catch {
      throw new ConfigError(`--join entries are HTTP addresses such as 10.0.0.5:8381 or http://raftlock-0.raftlock:8381 (got "${target}")`);
    }
  });
}

/** `dns:<service>:<port>` with `--replicas`: ids `<name>-<ordinal>` reachable at `<name>-<ordinal>.<service>:<port>`. */
function parseStatefulSet(id: string, value: string, replicasFlag: string | undefined) {
  const match = /^dns:([A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (match === null) throw new ConfigError(`--peers dns: looks like dns:<headless-service>:<port>, e.g. dns:raftlock.default.svc.cluster.local:7001 (got "${value}")`);
  const service = match[1]!;
  const port = parseAddress("peers", `${service}:${match[2]}`).port;
  if (replicasFlag === undefined) throw new ConfigError("--peers dns:... needs --replicas N: how many ordinals form the cluster at first start");
  const replicas = parseInteger("replicas", replicasFlag, 1, peersMax);
  const ordinalMatch = /^(.+)-(\d+)$/.exec(id);
  if (ordinalMatch === null) throw new ConfigError(`with --peers dns:..., --id must be the pod name <statefulset>-<ordinal>, e.g. raftlock-0 (got "${id}")`);
  const name = ordinalMatch[1]!;
  const ordinal = Number(ordinalMatch[2]);
  const peers = new Map<string, Address>();
  for (let k = 0; k < replicas; k++) peers.set(`${name}-${k}`, { host: `${name}-${k}.${service}`, port });
  return {
    service,
    port,
    replicas,
    ordinal,
    peers,
    /** The bootstrap ordinals' HTTP addresses, assuming every pod serves HTTP on the same port. */
    joinTargets: (httpPort: number, scheme: "http" | "https"): string[] => [...peers.keys()].map((peerId) => `${scheme}://${peerId}.${service}:${httpPort}`),
  };
}

function parsePeers(value: string): Map<string, Address> {
  const peers = new Map<string, Address>();
  for (const item of value.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new ConfigError(`--peers entries look like n1=127.0.0.1:7001 (got "${item}")`);
    const id = checkId("peers", item.slice(0, eq));
    if (peers.has(id)) throw new ConfigError(`--peers lists "${id}" twice`);
    peers.set(id, parseAddress("peers", item.slice(eq + 1)));
  }
  if (peers.size === 0) throw new ConfigError("--peers must list at least this node");
  if (peers.size > peersMax) throw new ConfigError(`--peers lists ${peers.size} members; at most ${peersMax} are supported`);
  return peers;
}

function parseInteger(flag: string, value: string, min: number, max: number): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`--${flag} must be an integer between ${min} and ${max} (got "${value}")`);
  }
  return parsed;
}

/** `host:port`, with IPv6 hosts in brackets: the inverse of `parseAddress`. */
export function formatAddress(address: Address): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
