// TLS with real node processes and certificates made by openssl at test time: a 3-node cluster over
// mutual-TLS peer streams; RESP (redis-cli --tls) and HTTPS for clients, with and without client
// certificates; and SIGHUP reloading every port's certificate without a restart.
import { execFile } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { connect } from "node:tls";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { clientCommands } from "../../src/cli-admin.js";
import { RaftlockClient } from "../../src/client/index.js";
import { type CertFiles, TestCa, useCertificateDir } from "../support/certs.js";
import { E2eCluster, fastTimeouts, waitFor } from "./harness.js";

const run = promisify(execFile);
/** How long a node may take to start and elect itself or a leader on a busy machine. */
const readyWithinMs = 30_000;
/** How long a reload may take to show on a new connection after SIGHUP. */
const reloadWithinMs = 10_000;

let dir: string;
let ca: TestCa;
let nodeCert: CertFiles;
let clientCert: CertFiles;
let rogueCert: CertFiles;
let cluster: E2eCluster | null = null;

useCertificateDir("raftlock-e2e-tls-", async (made) => {
  dir = made;
  ca = await TestCa.create(dir, "ca");
  nodeCert = await ca.issue("node", "01");
  clientCert = await ca.issue("client", "02");
  rogueCert = await (await TestCa.create(dir, "rogue-ca")).issue("rogue", "03");
});
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

const peerTls = (files: CertFiles): string[] => ["--peer-tls-cert", files.cert, "--peer-tls-key", files.key, "--peer-tls-ca", ca.cert];
const clientTls = (files: CertFiles, clientCa?: string): string[] => ["--client-tls-cert", files.cert, "--client-tls-key", files.key, ...(clientCa === undefined ? [] : ["--client-tls-ca", clientCa])];

interface Presented {
  readonly cert?: CertFiles;
}

/** GET over HTTPS trusting the test CA, presenting `cert` if given. */
function httpsGet(port: number, path: string, options: Presented = {}): Promise<{ status: number; body: string }> {
  const identity = options.cert === undefined ? {} : { cert: readPem(options.cert.cert), key: readPem(options.cert.key) };
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, ca: readPem(ca.cert), ...identity, timeout: 5_000 }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("no answer within 5 s")));
    req.on("error", reject);
    req.end();
  });
}

function readPem(file: string): Buffer {
  return readFileSync(file);
}

/** The serial number of the certificate a new TLS connection to `port` is shown. */
function servedSerial(port: number, options: Presented = {}): Promise<string> {
  const identity = options.cert === undefined ? {} : { cert: readPem(options.cert.cert), key: readPem(options.cert.key) };
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca: readPem(ca.cert), ...identity }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

/** `redis-cli --tls` against `port`; its output, or the error text when it fails. */
async function redisCli(port: number, args: string[], tlsArgs: string[] = []): Promise<string> {
  try {
    const { stdout } = await run("redis-cli", ["--tls", "--cacert", ca.cert, ...tlsArgs, "-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 10_000 });
    return stdout.trim();
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return `failed: ${failed.stdout ?? ""}${failed.stderr ?? ""}${failed.message}`;
  }
}

/** Waits until the node's HTTPS /readyz answers 200. */
async function ready(port: number, options: Presented = {}): Promise<void> {
  await waitFor(async () => (await httpsGet(port, "/readyz", options)).status === 200, readyWithinMs, "HTTPS /readyz 200");
}

describe("TLS end to end", () => {
  it("a 3-node cluster over mutual-TLS peer streams elects a leader and replicates", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, ...peerTls(nodeCert)]);
    const leader = await cluster.leader(undefined, readyWithinMs);
    const acquired = await cluster.post<{ token: number }>(leader.id, "/v1/locks/tls-lock/acquire", { owner: "alice", ttlMs: 30_000 });
    expect(acquired.status).toBe(200);
    for (const id of cluster.nodes.keys()) {
      await waitFor(async () => (await cluster!.get<{ owner?: string }>(id, "/v1/locks/tls-lock?consistency=serializable")).body.owner === "alice", readyWithinMs, `${id} has the lock`);
    }
    for (const node of cluster.nodes.values()) expect(node.output).toMatch(/"msg":"listening for peers".*"tls":true|"tls":true.*"msg":"listening for peers"/);
  }, 90_000);

  it("with --client-tls-*, redis-cli --tls, HTTPS probes and API, the client library and raftlock status work", async () => {
    cluster = await E2eCluster.start(1, [...fastTimeouts, ...clientTls(nodeCert)]);
    const node = cluster.node("n1");
    await ready(node.httpPort);
    expect((await httpsGet(node.httpPort, "/healthz")).status).toBe(200);
    expect(await redisCli(node.respPort, ["PING"])).toBe("PONG");
    expect(await redisCli(node.respPort, ["LOCK.ACQUIRE", "cli-lock", "bob", "30000"])).toMatch(/^\d+$/);
    expect(JSON.parse((await httpsGet(node.httpPort, "/v1/locks/cli-lock")).body)).toMatchObject({ owner: "bob" });
    await expect(fetch(`http://127.0.0.1:${node.httpPort}/healthz`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();

    const client = new RaftlockClient({ port: node.respPort, tls: { ca: readPem(ca.cert) } });
    try {
      const lock = await client.lock("client-lock", { ttlMs: 30_000 });
      expect(lock?.token).toBeGreaterThan(0);
      expect(await lock!.release()).toBe(true);
    } finally {
      await client.close();
    }

    let output = "";
    await clientCommands.get("status")!(["--http", `https://127.0.0.1:${node.httpPort}`, "--tls-ca", ca.cert], {}, (text) => (output += text));
    expect(output).toMatch(/leader n1 in term \d+/);
    const plain = clientCommands.get("status")!(["--http", `127.0.0.1:${node.httpPort}`], {}, () => undefined);
    await expect(plain).rejects.toThrow(/use --http https:\/\/127\.0\.0\.1:\d+ with --tls-ca/);
  }, 90_000);

  it("a node joins a cluster with TLS on every port through a member's HTTPS address, presenting its certificate where members require one", async () => {
    cluster = await E2eCluster.start(3, [...fastTimeouts, ...peerTls(nodeCert), ...clientTls(nodeCert, ca.cert), "--join-tls-ca", ca.cert]);
    const presented = { cert: nodeCert };
    await ready(cluster.node("n1").httpPort, presented);
    // No scheme: with --client-tls-* the members are dialed over https.
    const joined = await cluster.join("n4", "n2");
    await waitFor(
      async () => {
        const members = JSON.parse((await httpsGet(cluster!.node("n1").httpPort, "/v1/members", presented)).body) as { members?: { id: string; voter: boolean }[] };
        return members.members?.some((member) => member.id === "n4" && member.voter) === true;
      },
      readyWithinMs,
      "n4 joined and was promoted",
    );
    await ready(joined.httpPort, presented);
    expect(joined.output).toContain("added to the cluster as a learner");
  }, 90_000);

  it("with --client-tls-ca, clients must present a certificate of that CA on both ports", async () => {
    cluster = await E2eCluster.start(1, [...fastTimeouts, ...clientTls(nodeCert, ca.cert)]);
    const node = cluster.node("n1");
    await ready(node.httpPort, { cert: clientCert });
    await expect(httpsGet(node.httpPort, "/healthz")).rejects.toThrow();
    await expect(httpsGet(node.httpPort, "/healthz", { cert: rogueCert })).rejects.toThrow();
    expect(await redisCli(node.respPort, ["PING"])).not.toBe("PONG");
    expect(await redisCli(node.respPort, ["PING"], ["--cert", clientCert.cert, "--key", clientCert.key])).toBe("PONG");

    const client = new RaftlockClient({ port: node.respPort, tls: { ca: readPem(ca.cert), cert: readPem(clientCert.cert), key: readPem(clientCert.key) } });
    try {
      expect((await client.raftLeader())?.id).toBe("n1");
    } finally {
      await client.close();
    }
    let output = "";
    await clientCommands.get("status")!(["--http", `https://127.0.0.1:${node.httpPort}`], { RAFTLOCK_TLS_CA: ca.cert, RAFTLOCK_TLS_CERT: clientCert.cert, RAFTLOCK_TLS_KEY: clientCert.key }, (text) => (output += text));
    expect(output).toMatch(/leader n1/);
  }, 90_000);

  it("SIGHUP reloads the certificate on every port without a restart; a bad file keeps the old one", async () => {
    const live = { cert: join(dir, "live.pem"), key: join(dir, "live.key") };
    copyFileSync(nodeCert.cert, live.cert);
    copyFileSync(nodeCert.key, live.key);
    cluster = await E2eCluster.start(1, [...fastTimeouts, ...peerTls(live), ...clientTls(live)]);
    const node = cluster.node("n1");
    await ready(node.httpPort);
    const serials = async (): Promise<string[]> => [await servedSerial(node.respPort), await servedSerial(node.httpPort), await servedSerial(node.peerPort, { cert: clientCert })];
    expect(await serials()).toEqual(["01", "01", "01"]);

    const renewed = await ca.issue("renewed", "0B");
    copyFileSync(renewed.cert, live.cert);
    copyFileSync(renewed.key, live.key);
    node.process!.kill("SIGHUP");
    await waitFor(async () => (await serials()).every((serial) => serial === "0B"), reloadWithinMs, "every port serving serial 0B");
    expect(node.output).toMatch(/"msg":"reloaded TLS certificates"/);
    expect(node.output).not.toMatch(/PRIVATE KEY/);

    writeFileSync(live.cert, "-----BEGIN CERTIFICATE-----\nhalf-copied\n");
    node.process!.kill("SIGHUP");
    await waitFor(() => node.output.includes("could not reload TLS certificates"), reloadWithinMs, "the failed reload logged");
    const failedLine = node.output.split("\n").find((line) => line.includes("could not reload TLS certificates"))!;
    expect(JSON.parse(failedLine)).toMatchObject({ level: 50, file: live.cert });
    expect(await serials()).toEqual(["0B", "0B", "0B"]);
    expect((await httpsGet(node.httpPort, "/readyz")).status).toBe(200);
    expect(node.process!.exitCode).toBeNull();
  }, 90_000);
});
