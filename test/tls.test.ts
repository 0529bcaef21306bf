// TLS material from files (src/tls.ts): what a bad file is told as, and reloads that keep the old
// material when the new files cannot be used.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTlsFiles, ReloadableTls, reloadAll, TlsFileError } from "../src/tls.js";
import { type CertFiles, TestCa } from "./support/certs.js";

let dir: string;
let ca: TestCa;
let first: CertFiles;
let second: CertFiles;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "raftlock-tls-files-"));
  ca = await TestCa.create(dir, "ca");
  first = await ca.issue("first", "11");
  second = await ca.issue("second", "12");
}, 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
