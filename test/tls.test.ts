// TLS material from files (src/tls.ts): what a bad file is told as, and reloads that keep the old
// material when the new files cannot be used.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { genericCommands } from "../src/api/resp/generic-commands.js";
import { respHandshakesPendingMax, RespServer } from "../src/api/resp/server.js";
import { NodeMetrics } from "../src/metrics.js";
import { readTlsFiles, ReloadableTls, reloadAll, TlsFileError } from "../src/tls.js";
import { type CertFiles, TestCa, useCertificateDir } from "./support/certs.js";
import { waitFor } from "./e2e/harness.js";

let dir: string;
let ca: TestCa;
let first: CertFiles;
let second: CertFiles;

useCertificateDir("raftlock-tls-files-", async (made) => {
  dir = made;
  ca = await TestCa.create(dir, "ca");
  first = await ca.issue("first", "11");
  second = await ca.issue("second", "12");
});

function failure(files: { cert: string; key: string; ca: string | undefined }): TlsFileError {
  try {
    readTlsFiles("peer-tls", files);
  } catch (error) {
    expect(error).toBeInstanceOf(TlsFileError);
    return error as TlsFileError;
  }
  throw new Error("expected a TlsFileError");
}

describe("TLS files", () => {
  it("a missing, unparsable or mismatched file is named, with what to do", () => {
    const missing = failure({ cert: join(dir, "nope.pem"), key: first.key, ca: ca.cert });
    expect(missing.file).toBe(join(dir, "nope.pem"));
    expect(missing.message).toMatch(/^cannot read --peer-tls-cert .*nope\.pem \(ENOENT\); check the path/);
    expect(failure({ cert: first.key, key: first.key, ca: ca.cert }).message).toMatch(/--peer-tls-cert .* is not a PEM certificate .*BEGIN CERTIFICATE/);
    expect(failure({ cert: first.cert, key: first.cert, ca: ca.cert }).message).toMatch(/--peer-tls-key .* is not a PEM private key/);
    expect(failure({ cert: first.cert, key: first.key, ca: first.key }).file).toBe(first.key);
    const mismatch = failure({ cert: first.cert, key: second.key, ca: ca.cert });
    expect(mismatch.message).toMatch(/--peer-tls-key .*second\.key does not belong to the certificate in .*first\.pem/);
  });

  it("a reload replaces the material and tells its listeners; a failed one keeps the old and says which file", () => {
    const files = { cert: join(dir, "live.pem"), key: join(dir, "live.key"), ca: ca.cert };
    copyFileSync(first.cert, files.cert);
    copyFileSync(first.key, files.key);
    const tls = ReloadableTls.load("client-tls", files);
    const seen: string[] = [];
    tls.onReload((pems) => seen.push(pems.cert.toString()));
    copyFileSync(second.cert, files.cert);
    copyFileSync(second.key, files.key);
    expect(tls.reload().serialNumber).toBe("12");
    expect(seen).toHaveLength(1);

    writeFileSync(files.cert, "not a certificate\n");
    const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
    const logger = {
      info: (fields: object, message: string) => lines.push({ level: "info", fields: fields as Record<string, unknown>, message }),
      error: (fields: object, message: string) => lines.push({ level: "error", fields: fields as Record<string, unknown>, message }),
    };
    reloadAll([tls], logger);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "error", message: "could not reload TLS certificates; still using the previous ones", fields: { tls: "client-tls", file: files.cert } });
    expect(tls.summary().serialNumber).toBe("12");
    expect(seen).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY/);
  });
});

describe("TLS client ports under a flood of silent sockets", { timeout: 30_000 }, () => {
  it("RESP: past the served, refused and handshaking sockets, new ones are closed as accepted and counted; a served client goes on", async () => {
    const metrics = new NodeMetrics();
    const connectionsMax = 2;
    const server = await RespServer.start({
      listen: { host: "127.0.0.1", port: 0 },
      logger: pino({ level: "silent" }),
      commands: genericCommands,
      limits: { connectionsMax },
      tls: ReloadableTls.load("client-tls", { cert: first.cert, key: first.key, ca: undefined }),
      metrics,
    });
    const { port } = server.address();
    const client = tlsConnect({ port, host: "127.0.0.1", ca: readFileSync(ca.cert) });
    const replies: string[] = [];
    client.on("data", (data: Buffer) => replies.push(data.toString()));
    const ping = async (): Promise<void> => {
      const before = replies.length;
      client.write("PING\r\n");
      await waitFor(() => replies.length > before, 5_000, "a reply to PING");
      expect(replies.at(-1)).toBe("+PONG\r\n");
    };
    const silent: Socket[] = [];
    try {
      await ping();
      // Sockets that connect and never start a handshake hold a slot each until tlsHandshakeTimeoutMs.
      const ceiling = 2 * connectionsMax + respHandshakesPendingMax;
      for (let index = 0; index < ceiling + 5; index++) {
        const socket = connect(port, "127.0.0.1");
        socket.on("error", () => {});
        silent.push(socket);
      }
      await waitFor(async () => (await metrics.limitHitCount("resp_connections")) >= 5, 10_000, "the sockets past the ceiling to be dropped");
      await ping();
    } finally {
      for (const socket of silent) socket.destroy();
      client.destroy();
      // Also cuts the sockets still in their handshake: closing does not wait for their timeout.
      await server.close();
    }
  });
});
