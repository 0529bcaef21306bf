import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, envName, parseStartConfig, secretFileBytesMax } from "../src/config.js";
import { exposureWarnings, isLoopbackHost } from "../src/exposure.js";
import { type CertFiles, TestCa, useCertificateDir } from "./support/certs.js";

const base = ["--id", "n1", "--data-dir", "./data/n1", "--peer-listen", "127.0.0.1:7001", "--http-listen", "127.0.0.1:8381", "--peers", "n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003"];

function errorOf(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseStartConfig(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("raftlock start configuration", () => {
  it("reads the flags of api.md, with the documented defaults", () => {
    const config = parseStartConfig(base, {});
    expect(config.id).toBe("n1");
    expect(config.peerListen).toEqual({ host: "127.0.0.1", port: 7001 });
    expect([...config.peers.keys()]).toEqual(["n1", "n2", "n3"]);
    expect(config.electionTimeoutMinMs).toBe(1000);
    expect(config.electionTimeoutMaxMs).toBe(2000);
    expect(config.heartbeatIntervalMs).toBe(100);
    expect(config.clusterToken).toBeUndefined();
    expect(config.commitTimeoutMs).toBe(10_000);
    expect(parseStartConfig([...base, "--commit-timeout-ms", "2500"], {}).commitTimeoutMs).toBe(2500);
  });

  it("reads every flag from RAFTLOCK_* when not given, and lets a flag win", () => {
    expect(envName("peer-listen")).toBe("RAFTLOCK_PEER_LISTEN");
    const env = { RAFTLOCK_ID: "n2", RAFTLOCK_DATA_DIR: "/d", RAFTLOCK_PEER_LISTEN: "0.0.0.0:7002", RAFTLOCK_HTTP_LISTEN: "[::1]:8382", RAFTLOCK_PEERS: "n1=a:1,n2=b:2,n3=c:3", RAFTLOCK_CLUSTER_TOKEN: "s3cret" };
    const config = parseStartConfig([], env);
    expect(config.id).toBe("n2");
    expect(config.httpListen).toEqual({ host: "::1", port: 8382 });
    expect(config.clusterToken).toBe("s3cret");
    expect(parseStartConfig(["--id", "n3"], env).id).toBe("n3");
    expect(parseStartConfig(["--id=n3"], env).id).toBe("n3");
  });

  it("says what is wrong and what to do", () => {
    expect(errorOf([])).toContain("--id is required (or set RAFTLOCK_ID)");
    expect(errorOf([...base, "--bogus", "1"])).toContain('unknown flag --bogus; run "raftlock start --help"');
    expect(errorOf([...base, "--peer-listen", "localhost"])).toContain('--peer-listen must be host:port with a port from 1 to 65535 (got "localhost")');
    expect(errorOf([...base, "--peers", "n2=127.0.0.1:7002"])).toContain('--peers must list this node\'s id "n1"');
    expect(errorOf([...base, "--peers", "n1=a:1,n1=b:2"])).toContain('--peers lists "n1" twice');
    expect(errorOf([...base, "--heartbeat-interval-ms", "soon"])).toContain('--heartbeat-interval-ms must be an integer between 1 and 10000 (got "soon")');
    expect(errorOf([...base, "--election-timeout-min-ms", "2000"])).toContain("must be above --election-timeout-min-ms");
    expect(errorOf([...base, "--election-timeout-min-ms", "200", "--election-timeout-max-ms", "400"])).toContain("at least 3 x --heartbeat-interval-ms");
    expect(errorOf([...base, "--commit-timeout-ms", "50"])).toContain('--commit-timeout-ms must be an integer between 100 and 600000 (got "50")');
    expect(errorOf([...base, "--id"])).toContain("--id needs a value");
    expect(errorOf(["n1"])).toContain('unexpected argument "n1"');
  });

  it("--join starts a node without --peers that joins a running cluster, and refuses both together", () => {
    const joining = ["--id", "n4", "--data-dir", "/d", "--peer-listen", "10.0.0.4:7001", "--http-listen", "0.0.0.0:8381"];
    const config = parseStartConfig([...joining, "--join", "10.0.0.1:8381,http://10.0.0.2:8381"], {});
    expect(config.peers.size).toBe(0);
    expect(config.join).toEqual(["http://10.0.0.1:8381", "http://10.0.0.2:8381"]);
    expect(config.peerAdvertise).toEqual({ host: "10.0.0.4", port: 7001 });
    expect(errorOf(joining)).toContain("--peers is required");
    expect(errorOf([...base, "--join", "10.0.0.1:8381"])).toContain("not both");
    const wildcard = ["--id", "n4", "--data-dir", "/d", "--peer-listen", "0.0.0.0:7001", "--http-listen", "0.0.0.0:8381", "--join", "10.0.0.1:8381"];
    expect(errorOf(wildcard)).toContain("--peer-advertise");
    expect(parseStartConfig([...wildcard, "--peer-advertise", "pod-4.svc:7001"], {}).peerAdvertise).toEqual({ host: "pod-4.svc", port: 7001 });
  });

  it("--peers dns: with --replicas: the first ordinals bootstrap the cluster, higher ones join it", () => {
    const pod = (ordinal: number): string[] => ["--id", `raftlock-${ordinal}`, "--data-dir", "/d", "--peer-listen", "0.0.0.0:7001", "--http-listen", "0.0.0.0:8381", "--peers", "dns:raftlock.ns.svc:7001", "--replicas", "3"];
    const first = parseStartConfig(pod(0), {});
    expect([...first.peers]).toEqual([
      ["raftlock-0", { host: "raftlock-0.raftlock.ns.svc", port: 7001 }],
      ["raftlock-1", { host: "raftlock-1.raftlock.ns.svc", port: 7001 }],
      ["raftlock-2", { host: "raftlock-2.raftlock.ns.svc", port: 7001 }],
    ]);
    expect(first.join).toEqual([]);
    expect(first.peerAdvertise).toEqual({ host: "raftlock-0.raftlock.ns.svc", port: 7001 });
    const scaledUp = parseStartConfig(pod(3), {});
    expect(scaledUp.peers.size).toBe(0);
    expect(scaledUp.join).toEqual(["http://raftlock-0.raftlock.ns.svc:8381", "http://raftlock-1.raftlock.ns.svc:8381", "http://raftlock-2.raftlock.ns.svc:8381"]);
    expect(scaledUp.peerAdvertise).toEqual({ host: "raftlock-3.raftlock.ns.svc", port: 7001 });
    expect(errorOf(pod(0).slice(0, -2))).toContain("--replicas");
    expect(errorOf(["--id", "n1", ...pod(0).slice(2)])).toContain("<statefulset>-<ordinal>");
    expect(errorOf([...base, "--replicas", "3"])).toContain("dns:");
  });
});

describe("TLS flags", () => {
  let dir: string;
  let ca: TestCa;
  let node: CertFiles;
  useCertificateDir("raftlock-config-tls-", async (made) => {
    dir = made;
    ca = await TestCa.create(dir, "ca");
    node = await ca.issue("node", "01");
  });

  it("peer TLS takes a certificate, its key and the CA, from flags or RAFTLOCK_PEER_TLS_*; client TLS the CA optionally", () => {
    const peer = ["--peer-tls-cert", node.cert, "--peer-tls-key", node.key, "--peer-tls-ca", ca.cert];
    expect(parseStartConfig([...base, ...peer], {}).peerTls).toEqual({ cert: node.cert, key: node.key, ca: ca.cert });
    const env = { RAFTLOCK_CLIENT_TLS_CERT: node.cert, RAFTLOCK_CLIENT_TLS_KEY: node.key };
    const config = parseStartConfig(base, env);
    expect(config.clientTls).toEqual({ cert: node.cert, key: node.key, ca: undefined });
    expect(config.peerTls).toBeUndefined();
    expect(parseStartConfig([...base, "--client-tls-ca", ca.cert], env).clientTls?.ca).toBe(ca.cert);
    expect(parseStartConfig(base, {}).clientTls).toBeUndefined();
  });

  it("an incomplete set of TLS flags, or a file that cannot be used, stops the node with what to give", () => {
    expect(errorOf([...base, "--peer-tls-cert", node.cert, "--peer-tls-key", node.key])).toBe(
      "--peer-tls-cert, --peer-tls-key, --peer-tls-ca go together: give all three or none; missing --peer-tls-ca",
    );
    expect(errorOf([...base, "--client-tls-ca", ca.cert])).toMatch(/^--client-tls-cert, --client-tls-key go together .*; missing --client-tls-cert, --client-tls-key$/);
    expect(errorOf([...base, "--client-tls-cert", join(dir, "gone.pem"), "--client-tls-key", node.key])).toMatch(/^cannot read --client-tls-cert .*gone\.pem \(ENOENT\); check the path/);
    expect(errorOf([...base, "--peer-tls-cert", node.cert, "--peer-tls-key", node.key, "--peer-tls-ca", node.key])).toMatch(/^--peer-tls-ca .*node\.key is not a PEM certificate/);
  });

  it("with --client-tls-*, members are joined over https, checked against --join-tls-ca; a CA that cannot be used stops the node", () => {
    const clientTls = ["--client-tls-cert", node.cert, "--client-tls-key", node.key];
    const joining = ["--id", "n4", "--data-dir", "/d", "--peer-listen", "10.0.0.4:7001", ...clientTls, "--join-tls-ca", ca.cert];
    const config = parseStartConfig([...joining, "--join", "10.0.0.1:8381,http://10.0.0.2:8381"], {});
    expect(config.join).toEqual(["https://10.0.0.1:8381", "http://10.0.0.2:8381"]);
    expect(config.joinTlsCa).toBe(ca.cert);
    const pod = ["--id", "raftlock-3", "--data-dir", "/d", "--peer-listen", "0.0.0.0:7001", "--http-listen", "0.0.0.0:8381", "--peers", "dns:raftlock.ns.svc:7001", "--replicas", "1", ...clientTls];
    expect(parseStartConfig(pod, {}).join).toEqual(["https://raftlock-0.raftlock.ns.svc:8381"]);
    // Bootstrap members may carry it too (a StatefulSet gives every pod the same flags).
    expect(parseStartConfig([...base, "--join-tls-ca", ca.cert], {}).joinTlsCa).toBe(ca.cert);
    expect(errorOf([...base, "--join-tls-ca", join(dir, "gone.pem")])).toMatch(/^--join-tls-ca .*gone\.pem cannot be read \(ENOENT\); check the path/);
    expect(errorOf([...base, "--join-tls-ca", node.key])).toMatch(/^--join-tls-ca .*node\.key is not a PEM certificate; give the CA that issued the members' --client-tls-cert$/);
  });
});

describe("secrets and client passwords", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "raftlock-config-secrets-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const secretFile = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it("reads --auth-password-file, --auth-readonly-password-file and --cluster-token-file, dropping one trailing newline", () => {
    const config = parseStartConfig(
      [...base, "--auth-password-file", secretFile("password", "full pw\n"), "--auth-readonly-password-file", secretFile("readonly", "reader\r\n"), "--cluster-token-file", secretFile("token", "t0ken\n\n")],
      {},
    );
    expect(config.authPassword).toBe("full pw");
    expect(config.authReadOnlyPassword).toBe("reader");
    expect(config.clusterToken).toBe("t0ken\n");
    const fromEnv = parseStartConfig(base, { RAFTLOCK_AUTH_PASSWORD_FILE: secretFile("env-password", "from-env"), RAFTLOCK_AUTH_READONLY_PASSWORD: "ro" });
    expect([fromEnv.authPassword, fromEnv.authReadOnlyPassword]).toEqual(["from-env", "ro"]);
  });

  it("refuses a secret given twice, a missing, empty or oversized file, without ever showing the secret", () => {
    const path = secretFile("both", "file-secret\n");
    expect(errorOf([...base, "--auth-password", "flag-secret", "--auth-password-file", path])).toBe(
      "give either --auth-password or --auth-password-file (or RAFTLOCK_AUTH_PASSWORD / RAFTLOCK_AUTH_PASSWORD_FILE), not both",
    );
    expect(errorOf([...base, "--cluster-token-file", path], { RAFTLOCK_CLUSTER_TOKEN: "env-secret" })).toMatch(/^give either --cluster-token or --cluster-token-file/);
    expect(errorOf([...base, "--auth-password-file", join(dir, "gone")])).toMatch(/^--auth-password-file .*gone cannot be read \(ENOENT\); check the path and that this user may read it$/);
    expect(errorOf([...base, "--auth-password-file", secretFile("empty", "\n")])).toMatch(/^--auth-password-file .*empty is empty; put the secret in it/);
    expect(errorOf([...base, "--cluster-token-file", secretFile("big", "x".repeat(secretFileBytesMax + 1))])).toMatch(
      new RegExp(`holds ${secretFileBytesMax + 1} bytes, more than ${secretFileBytesMax}; is it the right file\\?$`),
    );
    expect(errorOf([...base, "--auth-password", ""])).toBe("--auth-password must not be empty; leave it unset for none");
  });

  it("refuses a read-only password without a full one, or equal to it, without showing either", () => {
    expect(errorOf([...base, "--auth-readonly-password", "reader"])).toMatch(/^--auth-readonly-password needs --auth-password too/);
    const same = errorOf([...base, "--auth-password", "same-pw", "--auth-readonly-password-file", secretFile("same", "same-pw\n")]);
    expect(same).toBe("--auth-readonly-password must differ from --auth-password, or every client holding it could write");
  });

  it("binds the HTTP API to 127.0.0.1:8381 unless told otherwise, and keeps RESP off unless given", () => {
    const withoutHttp = base.filter((_arg, index) => index !== base.indexOf("--http-listen") && index !== base.indexOf("--http-listen") + 1);
    const config = parseStartConfig(withoutHttp, {});
    expect(config.httpListen).toEqual({ host: "127.0.0.1", port: 8381 });
    expect(config.respListen).toBeUndefined();
  });
});

describe("exposure warnings", () => {
  const warningsFor = (...extra: string[]): string[] => exposureWarnings(parseStartConfig([...base, ...extra], {})).map((warning) => warning.message);

  it("say nothing for loopback listeners", () => {
    expect(["127.0.0.1", "127.8.9.10", "::1", "localhost", "LocalHost", "::ffff:127.0.0.1"].every(isLoopbackHost)).toBe(true);
    expect(["0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "raftlock-0.raftlock"].some(isLoopbackHost)).toBe(false);
    expect(warningsFor("--resp-listen", "[::1]:6381")).toEqual([]);
  });

  it("name the client ports beyond loopback without a password, once, and how to fix it", () => {
    const [warning, ...others] = warningsFor("--http-listen", "0.0.0.0:8381", "--resp-listen", "10.0.0.5:6381");
    expect(others).toEqual([]);
    expect(warning).toBe(
      "HTTP 0.0.0.0:8381 and RESP 10.0.0.5:6381 accept clients without authentication: anyone who can reach them can take and release locks. " +
        "Set --auth-password (or --auth-password-file), bind 127.0.0.1 when the application runs beside this node, or require client certificates with --client-tls-ca",
    );
    expect(warningsFor("--resp-listen", "0.0.0.0:6381")[0]).toMatch(/^RESP 0\.0\.0\.0:6381 accepts clients without authentication: anyone who can reach it/);
    expect(warningsFor("--http-listen", "0.0.0.0:8381", "--auth-password", "pw")).toEqual([]);
  });

  it("name a peer port beyond loopback without a cluster token", () => {
    const warnings = exposureWarnings(parseStartConfig([...base.slice(0, 4), "--peer-listen", "0.0.0.0:7001", ...base.slice(6)], {}));
    expect(warnings.map((warning) => warning.message)).toEqual([expect.stringMatching(/^peer 0\.0\.0\.0:7001 accepts members without a secret: .* Set --cluster-token \(or --cluster-token-file\)/)]);
    expect(exposureWarnings(parseStartConfig([...base.slice(0, 4), "--peer-listen", "0.0.0.0:7001", ...base.slice(6), "--cluster-token", "t"], {}))).toEqual([]);
  });
});
