// The subcommands that administer a running cluster over one node's HTTP API: `status`,
// `members list|add|promote|remove` and `transfer-leader`. The node forwards changes to the leader.
import { readPem, TlsFileError } from "./tls.js";
import { type AdminReply, AdminTimeoutError, type AdminTls, sendAdminRequest } from "./admin-http.js";
import { ConfigError, envName, formatAddress, httpListenDefault, idRule, isValidId, parseAddress, readSecretFile } from "./config.js";

/** How long a read (`status`, `members list`) may take before the command gives up. */
export const readTimeoutMs = 5_000;
/**
 * How long a change may take: the node waits up to 3 s for a leader, then up to its --commit-timeout-ms
 * (10 s by default) for the commit; a transfer waits up to 3 election timeouts.
 */
export const changeTimeoutMs = 30_000;
/** How long `transfer-leader` waits for the node it asked to learn of the new leader. */
export const transferSettleMs = 5_000;
const transferPollIntervalMs = 100;

/** The node answered but refused, or could not be reached: exit 1 (usage errors are ConfigErrors, exit 2). */
export class RequestFailedError extends Error {
  override name = "RequestFailedError";
  constructor(
    message: string,
    /** The node's error code when it answered with one (`NOLEADER`, `NOTCAUGHTUP`, ...). */
    readonly code?: string,
  ) {
    super(message);
  }
}

export type Output = (text: string) => void;
type ClientCommand = (argv: readonly string[], env: NodeJS.ProcessEnv, write: Output) => Promise<void>;

export const clientUsage = `  raftlock status [--http host:port]              every member's role, term, commit and applied index
  raftlock members list [--http host:port]        every member: id, voter or learner, peer address
  raftlock members add <id> <peer-host:port>      add a learner (it replicates, does not vote yet)
  raftlock members promote <id>                   make a caught-up learner a voter
  raftlock members remove <id>                    take a voter or learner out (then stop its process)
  raftlock transfer-leader <id>                   hand leadership to voter <id>
    --http defaults to $${envName("http")}, else ${httpListenDefault}; with $${envName("auth-password")} set
    (or $${envName("auth-password-file")} naming a file that holds it), requests carry it as Authorization: Bearer
    a node with --client-tls-*: --http https://host:port --tls-ca <ca.pem> (or $${envName("tls-ca")}); when it
    also has --client-tls-ca, add --tls-cert <cert.pem> --tls-key <key.pem> (or $${envName("tls-cert")}, $${envName("tls-key")})`;

interface ParsedArguments {
  readonly target: Target;
  readonly positional: readonly string[];
}

/** Where requests go, and with which credentials. */
interface Target {
  readonly display: string;
  readonly baseUrl: string;
  readonly password: string | undefined;
  /** Set for `https://`: what the request trusts and presents. */
  readonly tls: AdminTls | undefined;
}

/** The options that take a value; each also comes from RAFTLOCK_<OPTION>. */
const valueOptions = ["http", "tls-ca", "tls-cert", "tls-key"] as const;
type ValueOption = (typeof valueOptions)[number];

/** `--http` anywhere among exactly `names.length` positional arguments; anything else is a usage error. */
function parseArguments(argv: readonly string[], env: NodeJS.ProcessEnv, names: readonly string[], synopsis: string): ParsedArguments {
  const values = new Map<ValueOption, string>();
  for (const option of valueOptions) {
    const fromEnv = env[envName(option)];
    if (fromEnv !== undefined && fromEnv !== "") values.set(option, fromEnv);
  }
  const positional: string[] = [];
  const usageError = (problem: string): ConfigError => new ConfigError(`${problem}; usage: raftlock ${synopsis} [--http host:port]`);
  for (let index = 0; index < argv.length; index++) {
    const word = argv[index]!;
    const option = valueOptions.find((name) => word === `--${name}` || word.startsWith(`--${name}=`));
    if (option !== undefined) {
      const value = word.includes("=") ? word.slice(word.indexOf("=") + 1) : argv[++index];
      if (value === undefined) throw usageError(option === "http" ? "--http needs a host:port" : `--${option} needs a file`);
      values.set(option, value);
    } else if (word.startsWith("-")) {
      throw usageError(`unknown option "${word}"`);
    } else {
      positional.push(word);
    }
  }
  if (positional.length !== names.length) {
    throw usageError(positional.length < names.length ? `missing <${names[positional.length]}>` : `unexpected argument "${positional[names.length]}"`);
  }
  const http = values.get("http") ?? httpListenDefault;
  const scheme = /^(https?):\/\//.exec(http)?.[1] ?? (values.has("tls-ca") ? "https" : "http");
  const address = parseAddress("http", http.replace(/^https?:\/\//, "").replace(/\/$/, ""));
  const display = formatAddress(address);
  const password = adminPassword(env);
  const tls = scheme === "https" ? adminTls(values) : undefined;
  return { target: { display, baseUrl: `${scheme}://${display}`, password: password === "" ? undefined : password, tls }, positional };
}

/** $RAFTLOCK_AUTH_PASSWORD, or the content of $RAFTLOCK_AUTH_PASSWORD_FILE (a mounted Secret, as the node reads it). */
function adminPassword(env: NodeJS.ProcessEnv): string | undefined {
  const value = env[envName("auth-password")];
  const file = env[envName("auth-password-file")];
  if (value !== undefined && value !== "" && file !== undefined && file !== "") {
    throw new ConfigError(`give either ${envName("auth-password")} or ${envName("auth-password-file")}, not both`);
  }
  if (file !== undefined && file !== "") return readSecretFile(envName("auth-password-file"), file);
  return value;
}

/** The files of --tls-ca, --tls-cert and --tls-key, read now so that a wrong path is a usage error. */
function adminTls(values: ReadonlyMap<ValueOption, string>): AdminTls {
  if (values.has("tls-cert") !== values.has("tls-key")) throw new ConfigError("--tls-cert and --tls-key go together: give both (for a node with --client-tls-ca) or neither");
  const read = (option: "tls-ca" | "tls-cert" | "tls-key"): Buffer | undefined => {
    const file = values.get(option);
    if (file === undefined) return undefined;
    try {
      return readPem(option, file);
    } catch (error) {
      if (error instanceof TlsFileError) throw new ConfigError(error.message);
      throw error;
    }
  };
  const [ca, cert, key] = [read("tls-ca"), read("tls-cert"), read("tls-key")];
  return { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) };
}

function checkedId(value: string): string {
  if (!isValidId(value)) throw new ConfigError(`<id> must be a node id: ${idRule} (got "${value}")`);
  return value;
}

/** The new member's peer address, canonical; its own --peer-listen or --peer-advertise. */
function peerAddress(value: string): string {
  try {
    return formatAddress(parseAddress("peer-address", value));
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(error.message.replace(/^--peer-address/, "<peer-host:port>"));
    throw error;
  }
}

interface ErrorBody {
  readonly error?: { readonly code?: string; readonly message?: string };
}

/** Sends one request and returns its JSON body; a refusal throws the server's message. */
async function request<T>(target: Target, method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (target.password !== undefined) headers.authorization = `Bearer ${target.password}`;
  let reply: AdminReply;
  try {
    reply = await sendAdminRequest(new URL(`${target.baseUrl}${path}`), method, headers, body === undefined ? undefined : JSON.stringify(body), timeoutMs, target.tls);
  } catch (error) {
    if (error instanceof AdminTimeoutError) {
      const outcome = method === "GET" ? "" : "; the change may still take effect: check with raftlock members list";
      throw new RequestFailedError(`${target.display} did not answer ${method} ${path} within ${timeoutMs / 1000} s${outcome}`);
    }
    const cause = error instanceof Error ? error.message : String(error);
    throw new RequestFailedError(`could not reach a raftlock node at ${target.display} (${cause}); is it running, and is --http its --http-listen address?${tlsHint(target, cause)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply.text);
  } catch {
    throw new RequestFailedError(`${target.display} answered ${method} ${path} with HTTP ${reply.status} and no JSON; is it a raftlock node's --http-listen address?`);
  }
  if (reply.status < 200 || reply.status >= 300) {
    const { code, message = "no reason given" } = (parsed as ErrorBody).error ?? {};
    const hint = reply.status === 401 ? (target.password === undefined ? `; set ${envName("auth-password")}` : `; check ${envName("auth-password")}`) : "";
    throw new RequestFailedError(`${target.display} refused: ${message} (${code ?? `HTTP ${reply.status}`})${hint}`, code);
  }
  return parsed as T;
}

/** What to change when a failure looks like a TLS mismatch; empty otherwise. */
function tlsHint(target: Target, cause: string): string {
  if (target.tls === undefined) return /socket hang up|ECONNRESET/.test(cause) ? ` If the node has --client-tls-*, use --http https://${target.display} with --tls-ca.` : "";
  if (/wrong version number|packet length too long/i.test(cause)) return ` It does not seem to speak HTTPS: use --http http://${target.display}.`;
  if (/certificate|self.signed|unable to/i.test(cause)) return " Give --tls-ca the CA that issued the node's --client-tls-cert (and --tls-cert/--tls-key if it has --client-tls-ca).";
  if (/alert|socket hang up|ECONNRESET/.test(cause)) return " If the node has --client-tls-ca, give --tls-cert and --tls-key issued by that CA.";
  return "";
}

/** Rows of cells, columns padded to their widest cell. */
function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => `${row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()}\n`).join("");
}

interface ClusterReply {
  leader: { id: string; term: number } | null;
  members: { id: string; reachable: boolean; role?: string; term?: number; commitIndex?: number; appliedIndex?: number; matchIndex?: number }[];
}

interface MembershipReply {
  configIndex: number;
  members: { id: string; voter: boolean; address: string | null }[];
  /** Only in the answer to a change: the log index at which it committed. */
  committedIndex?: number;
}

async function status(argv: readonly string[], env: NodeJS.ProcessEnv, write: Output): Promise<void> {
  const { target } = parseArguments(argv, env, [], "status");
  const reply = await request<ClusterReply>(target, "GET", "/v1/cluster", undefined, readTimeoutMs);
  const cell = (value: number | string | undefined): string => (value === undefined ? "-" : String(value));
  const rows = [["ID", "ROLE", "TERM", "COMMIT", "APPLIED", "MATCH"]];
  for (const member of reply.members) {
    rows.push([member.id, member.reachable ? cell(member.role) : "unreachable", cell(member.term), cell(member.commitIndex), cell(member.appliedIndex), cell(member.matchIndex)]);
  }
  write(table(rows));
  write(reply.leader === null ? "no leader is known\n" : `leader ${reply.leader.id} in term ${reply.leader.term}\n`);
}

const membersSubcommands: ReadonlyMap<string, ClientCommand> = new Map<string, ClientCommand>([
  [
    "list",
    async (argv, env, write) => {
      const { target } = parseArguments(argv, env, [], "members list");
      const reply = await request<MembershipReply>(target, "GET", "/v1/members", undefined, readTimeoutMs);
      write(table([["ID", "ROLE", "ADDRESS"], ...reply.members.map((member) => [member.id, member.voter ? "voter" : "learner", member.address ?? "-"])]));
    },
  ],
  [
    "add",
    async (argv, env, write) => {
      const { target, positional } = parseArguments(argv, env, ["id", "peer-host:port"], "members add <id> <peer-host:port>");
      const id = checkedId(positional[0]!);
      const address = peerAddress(positional[1]!);
      const reply = await request<MembershipReply>(target, "POST", "/v1/members", { id, address }, changeTimeoutMs);
      write(`added ${id} as a learner at ${address} (committed at log index ${reply.committedIndex ?? "?"}); `);
      write(`once it caught up, promote it with: raftlock members promote ${id} (a node started with --join promotes itself)\n`);
    },
  ],
  [
    "promote",
    async (argv, env, write) => {
      const { target, positional } = parseArguments(argv, env, ["id"], "members promote <id>");
      const id = checkedId(positional[0]!);
      const reply = await request<MembershipReply>(target, "POST", `/v1/members/${encodeURIComponent(id)}/promote`, {}, changeTimeoutMs);
      write(`${id} is a voter now (committed at log index ${reply.committedIndex ?? "?"})\n`);
    },
  ],
  [
    "remove",
    async (argv, env, write) => {
      const { target, positional } = parseArguments(argv, env, ["id"], "members remove <id>");
      const id = checkedId(positional[0]!);
      const reply = await request<MembershipReply>(target, "DELETE", `/v1/members/${encodeURIComponent(id)}`, undefined, changeTimeoutMs);
      write(`removed ${id} (committed at log index ${reply.committedIndex ?? "?"}); stop its process: it no longer receives anything\n`);
    },
  ],
]);

async function members(argv: readonly string[], env: NodeJS.ProcessEnv, write: Output): Promise<void> {
  const [subcommand, ...rest] = argv;
  const run = subcommand === undefined ? undefined : membersSubcommands.get(subcommand);
  if (run === undefined) {
    const problem = subcommand === undefined ? "raftlock members needs a subcommand" : `unknown subcommand "members ${subcommand}"`;
    throw new ConfigError(`${problem}; one of list, add, promote, remove:\n${clientUsage}`);
  }
  return run(rest, env, write);
}

async function transferLeader(argv: readonly string[], env: NodeJS.ProcessEnv, write: Output): Promise<void> {
  const { target, positional } = parseArguments(argv, env, ["id"], "transfer-leader <id>");
  const id = checkedId(positional[0]!);
  const before = await currentLeader(target);
  const { leader } = await request<{ leader: Leader | null }>(target, "POST", "/v1/cluster/transfer", { id }, changeTimeoutMs);
  // The node asked may answer before it heard of the new leader (it reports the old one, or none): wait
  // until it knows a leader of a later term.
  const settled = (candidate: Leader | null): candidate is Leader => candidate !== null && (candidate.id === id || candidate.term > (before?.term ?? 0));
  let after = leader;
  const deadline = Date.now() + transferSettleMs;
  while (!settled(after) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, transferPollIntervalMs));
    after = await currentLeader(target);
  }
  if (!settled(after)) throw new RequestFailedError(`the leader stepped down for ${id}, but ${target.display} knows of no new leader ${transferSettleMs / 1000} s later; see raftlock status`);
  if (after.id !== id) throw new RequestFailedError(`leadership went to ${after.id} in term ${after.term}, not ${id}; retry to move it`);
  write(`leader ${after.id} in term ${after.term}\n`);
}

interface Leader {
  readonly id: string;
  readonly term: number;
}

/** The leader `target` knows of; null while it knows none (503). */
async function currentLeader(target: Target): Promise<Leader | null> {
  try {
    return await request<Leader>(target, "GET", "/v1/cluster/leader", undefined, readTimeoutMs);
  } catch (error) {
    if (error instanceof RequestFailedError && error.code === "NOLEADER") return null;
    throw error;
  }
}

/** `--help` anywhere prints the usage instead of running `command`. */
function withHelp(command: ClientCommand): ClientCommand {
  return async (argv, env, write) => {
    if (argv.includes("--help") || argv.includes("-h")) return write(`usage:\n${clientUsage}\n`);
    return command(argv, env, write);
  };
}

/** The client subcommands by name; each writes its result through `write` and throws on failure. */
export const clientCommands: ReadonlyMap<string, ClientCommand> = new Map<string, ClientCommand>([
  ["status", withHelp(status)],
  ["members", withHelp(members)],
  ["transfer-leader", withHelp(transferLeader)],
]);
