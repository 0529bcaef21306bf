// Which of a node's listeners anyone on the network could use without a secret: the warnings logged at
// start. Binding beyond loopback is normal in Kubernetes; binding there without authentication is the
// mistake these lines name, with the ways to fix it.

import { type Address, formatAddress, type NodeConfig } from "./config.js";

/** One warning to log: structured fields and a line that says what is exposed and how to fix it. */
export interface ExposureWarning {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly message: string;
}

/** Whether `host` is reachable only from this machine: 127.0.0.0/8, ::1 or localhost (0.0.0.0 is every interface). */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === "localhost" || lower === "::1" || lower === "0:0:0:0:0:0:0:1") return true;
  const ipv4 = lower.startsWith("::ffff:") ? lower.slice("::ffff:".length) : lower;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ipv4);
}

/**
 * The warnings for `config`: client ports beyond loopback with neither a password nor client
 * certificates (anyone reaching them can take and release locks), and a peer port beyond loopback with
 * neither a cluster token nor peer TLS (anyone reaching it can pose as a member).
 */
export function exposureWarnings(config: NodeConfig): ExposureWarning[] {
  const warnings: ExposureWarning[] = [];
  const clientsAuthenticated = config.authPassword !== undefined || config.clientTls?.ca !== undefined;
  if (!clientsAuthenticated) {
    const exposed: [string, Address][] = [["HTTP", config.httpListen]];
    if (config.respListen !== undefined) exposed.push(["RESP", config.respListen]);
    const open = exposed.filter(([, address]) => !isLoopbackHost(address.host)).map(([name, address]) => `${name} ${formatAddress(address)}`);
    if (open.length > 0) {
      warnings.push({
        fields: { exposed: open },
        message:
          `${open.join(" and ")} ${open.length > 1 ? "accept" : "accepts"} clients without authentication: anyone who can reach ${open.length > 1 ? "them" : "it"} can take and release locks. ` +
          "Set --auth-password (or --auth-password-file), bind 127.0.0.1 when the application runs beside this node, or require client certificates with --client-tls-ca",
      });
    }
  }
  if (config.clusterToken === undefined && config.peerTls === undefined && !isLoopbackHost(config.peerListen.host)) {
    warnings.push({
      fields: { exposed: [`peer ${formatAddress(config.peerListen)}`] },
      message:
        `peer ${formatAddress(config.peerListen)} accepts members without a secret: anyone who can reach it and names the cluster id is taken for a peer. ` +
        "Set --cluster-token (or --cluster-token-file) on every member, or use mutual TLS with --peer-tls-cert, --peer-tls-key and --peer-tls-ca",
    });
  }
  return warnings;
}
