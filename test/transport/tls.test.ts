// Mutual TLS on the peer port with certificates made by openssl at test time: peers of the cluster's CA
// connect over wss; a certificate of another CA, a plain peer and a TLS peer of a plain node are refused,
// and the logs say why; a reload changes the certificate new connections see.
import { copyFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { ReloadableTls } from "../../src/tls.js";
import { type CertFiles, TestCa, useCertificateDir } from "../support/certs.js";
import { heartbeat, holdsFor, stopAll, testCluster, type TestNode, waitConnected, waitFor } from "./helpers.js";

/** How long a refused pair is watched for a connection that must not happen: several reconnect delays of fastLimits. */
const refusedWatchMs = 1_000;

let dir: string;
let ca: TestCa;
let rogueCa: TestCa;
let nodeCert: CertFiles;
let rogueCert: CertFiles;
let nodes: TestNode[] = [];

useCertificateDir("raftlock-tls-", async (made) => {
  dir = made;
  ca = await TestCa.create(dir, "cluster-ca");
  rogueCa = await TestCa.create(dir, "rogue-ca");
  nodeCert = await ca.issue("node", "01");
  rogueCert = await rogueCa.issue("rogue", "02");
});
afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

function material(cert: CertFiles, trusted: TestCa): ReloadableTls {
  return ReloadableTls.load("peer-tls", { cert: cert.cert, key: cert.key, ca: trusted.cert });
}

/** The certificate the peer port at `port` presents to a client that presents `cert`. */
function presentedCertificate(port: number, cert: CertFiles): Promise<PeerCertificate> {
  const tls = material(cert, ca).current();
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerCertificate());
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

const reasonsOf = (node: TestNode, message: RegExp): string[] => node.logsMatching(message).map((line) => String(line.reason));

describe("peer streams over mutual TLS", () => {
  it("nodes with certificates of the cluster's CA connect over wss and exchange messages", async () => {
    nodes = await testCluster([{ id: "n1", tls: material(nodeCert, ca) }, { id: "n2", tls: material(nodeCert, ca) }]);
    await Promise.all(nodes.map((node) => node.start()));
    await waitConnected(nodes);
    nodes[0]!.live.send(heartbeat("n1", "n2", 1));
    await waitFor("n2 receives the heartbeat", () => nodes[1]!.received.length === 1);
    expect(nodes[1]!.logsMatching(/listening for peers/)[0]).toMatchObject({ tls: true });
  });

  it("a peer presenting a certificate of another CA is refused, and the node logs why", async () => {
    // The rogue dialer trusts the cluster's CA, so the refusal is the acceptor's: it checks the chain.
    nodes = await testCluster([{ id: "n1", tls: material(rogueCert, ca) }, { id: "n2", tls: material(nodeCert, ca) }]);
    await Promise.all(nodes.map((node) => node.start()));
    const [rogue, honest] = nodes as [TestNode, TestNode];
    await waitFor("n2 logs the refusal", () => honest.logsMatching(/refused a peer connection/).length > 0);
    expect(reasonsOf(honest, /refused a peer connection/)[0]).toMatch(/certificate does not chain to --peer-tls-ca/);
    await holdsFor("no stream between n1 and n2", () => rogue.live.connectedPeers().length === 0 && honest.live.connectedPeers().length === 0, refusedWatchMs);
    expect(rogue.logsMatching(/cannot reach peer/).length).toBeGreaterThan(0);
  });

  it("a node refuses to dial a peer whose certificate does not chain to its CA", async () => {
    nodes = await testCluster([{ id: "n1", tls: material(nodeCert, ca) }, { id: "n2", tls: material(rogueCert, rogueCa) }]);
    await Promise.all(nodes.map((node) => node.start()));
    await waitFor("n1 logs the failed dial", () => nodes[0]!.logsMatching(/cannot reach peer/).length > 0);
    expect(reasonsOf(nodes[0]!, /cannot reach peer/)[0]).toMatch(/certificate does not chain to --peer-tls-ca/);
    expect(nodes[0]!.live.connectedPeers()).toEqual([]);
  });

  it("a plain peer dialing a TLS node is refused, and the TLS node says the peer does not speak TLS", async () => {
    nodes = await testCluster([{ id: "n1" }, { id: "n2", tls: material(nodeCert, ca) }]);
    await Promise.all(nodes.map((node) => node.start()));
    await waitFor("n2 logs the refusal", () => nodes[1]!.logsMatching(/refused a peer connection/).length > 0);
    expect(reasonsOf(nodes[1]!, /refused a peer connection/)[0]).toMatch(/does not speak TLS/);
    await waitFor("n1 logs the failed dial", () => nodes[0]!.logsMatching(/cannot reach peer/).length > 0);
    expect(reasonsOf(nodes[0]!, /cannot reach peer/)[0]).toMatch(/this node needs them too/);
    await holdsFor("no stream between n1 and n2", () => nodes[0]!.live.connectedPeers().length === 0, refusedWatchMs);
  });

  it("a TLS node dialing a plain node fails, and both name the mismatch", async () => {
    nodes = await testCluster([{ id: "n1", tls: material(nodeCert, ca) }, { id: "n2" }]);
    await Promise.all(nodes.map((node) => node.start()));
    await waitFor("n2 logs the refusal", () => nodes[1]!.logsMatching(/refused a peer connection/).length > 0);
    expect(reasonsOf(nodes[1]!, /refused a peer connection/)[0]).toMatch(/it speaks TLS, and this node has no --peer-tls/);
    await waitFor("n1 logs the failed dial", () => nodes[0]!.logsMatching(/cannot reach peer/).length > 0);
    expect(reasonsOf(nodes[0]!, /cannot reach peer/)[0]).toMatch(/does not speak TLS/);
    expect(nodes[0]!.live.connectedPeers()).toEqual([]);
  });

  it("a socket that never finishes its TLS handshake is closed after handshakeTimeoutMs", async () => {
    const handshakeTimeoutMs = 300;
    nodes = await testCluster([{ id: "n1", tls: material(nodeCert, ca), limits: { handshakeTimeoutMs } }]);
    await nodes[0]!.start();
    const silent = netConnect({ host: "127.0.0.1", port: nodes[0]!.port });
    let closed = false;
    silent.once("close", () => (closed = true));
    silent.on("error", () => {});
    try {
      // Node's own default would hold it for 120 s, before the peer handshake's timer even starts.
      await waitFor("the node to close the silent socket", () => closed, handshakeTimeoutMs + 3_000);
    } finally {
      silent.destroy();
    }
  });

  it("after a reload the peer port presents the new certificate to new connections, and streams still connect", async () => {
    const files = { cert: join(dir, "reload.pem"), key: join(dir, "reload.key") };
    copyFileSync(nodeCert.cert, files.cert);
    copyFileSync(nodeCert.key, files.key);
    const reloading = material(files, ca);
    nodes = await testCluster([{ id: "n1", tls: material(nodeCert, ca) }, { id: "n2", tls: reloading }]);
    await nodes[1]!.start();
    expect((await presentedCertificate(nodes[1]!.port, nodeCert)).serialNumber).toBe("01");
    const renewed = await ca.issue("renewed", "0A");
    copyFileSync(renewed.cert, files.cert);
    copyFileSync(renewed.key, files.key);
    expect(reloading.reload().serialNumber).toBe("0A");
    expect((await presentedCertificate(nodes[1]!.port, nodeCert)).serialNumber).toBe("0A");
    await nodes[0]!.start();
    await waitConnected(nodes);
  });
});
