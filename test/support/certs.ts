// Certificate authorities and certificates made with `openssl` at test time, in a directory the caller
// removes. EC P-256 keys: quick to make on a busy machine, and accepted by Node and redis-cli alike.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll } from "vitest";

const run = promisify(execFile);
/** Validity of test certificates: long enough for any test run. */
const validDays = 2;
/** Time allowed for making the CAs and certificates of a suite: one openssl process each, on a busy machine. */
const certificatesMadeWithinMs = 30_000;

/** Paths of a PEM certificate and its key. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** A CA that issues leaf certificates for 127.0.0.1 and localhost, usable by servers and clients alike. */
export class TestCa {
  private constructor(
    readonly dir: string,
    readonly name: string,
    readonly files: CertFiles,
  ) {}

  /** The CA certificate's path: what `--peer-tls-ca`, `--client-tls-ca` and `redis-cli --cacert` take. */
  get cert(): string {
    return this.files.cert;
  }

  /** Makes a self-signed CA named `name` in `dir`. */
  static async create(dir: string, name: string): Promise<TestCa> {
    const files = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    await run("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", files.key, "-out", files.cert, "-days", String(validDays), "-subj", `/CN=${name}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return new TestCa(dir, name, files);
  }

  /** Issues `name` (SAN 127.0.0.1 and localhost, for servers and clients) with serial number `serial` (hex). */
  async issue(name: string, serial: string): Promise<CertFiles> {
    const files = { cert: join(this.dir, `${name}.pem`), key: join(this.dir, `${name}.key`) };
    const request = join(this.dir, `${name}.csr`);
    const extensions = join(this.dir, `${name}.ext`);
    writeFileSync(extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n");
    await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", files.key, "-out", request, "-subj", `/CN=${name}`]);
    await run("openssl", [
      "x509", "-req", "-in", request, "-CA", this.files.cert, "-CAkey", this.files.key, "-set_serial", `0x${serial}`,
      "-days", String(validDays), "-extfile", extensions, "-out", files.cert,
    ]);
    return files;
  }
}

/**
 * For the enclosing suite (or file): before its tests, makes a scratch directory named from `prefix` and
 * calls `make` with it, to create CAs and issue certificates there (and keep whatever the suite needs);
 * after its tests, removes the directory.
 */
export function useCertificateDir(prefix: string, make: (dir: string) => Promise<void>): void {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    await make(dir);
  }, certificatesMadeWithinMs);
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
}
