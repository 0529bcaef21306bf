// TLS material read from files: a certificate, its key and (optionally) the CA that the other side's
// certificate must chain to. Loaded once at start, and again on SIGHUP without a restart: a reload that
// fails keeps the material in use, so a half-copied file never takes a node's listeners down.

import { readFileSync } from "node:fs";
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { createSecureContext, type Server as TlsServer } from "node:tls";

/** Largest certificate, key or CA file read: a real PEM chain is a few KiB; a bigger file is a wrong path. */
export const tlsFileBytesMax = 1 << 20;

/** Which files hold the material; `ca` absent means the other side is not asked for a certificate. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | undefined;
}

/** The PEM contents of `TlsFiles`, as `tls.createServer`, `tls.connect` and `setSecureContext` take them. */
export interface TlsPems {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

/** `pems` as the options of tls.createServer, tls.connect and setSecureContext (no `ca` key when none). */
export function secureOptions(pems: TlsPems): { cert: Buffer; key: Buffer; ca?: Buffer } {
  return { cert: pems.cert, key: pems.key, ...(pems.ca === undefined ? {} : { ca: pems.ca }) };
}

/**
 * Options of a client-facing TLS server (RESP, HTTPS): with a CA, a client must present a certificate
 * chaining to it and the handshake fails otherwise; without one, no client certificate is asked for.
 */
export function tlsServerOptions(tls: ReloadableTls): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean; handshakeTimeout: number } {
  return { ...secureOptions(tls.current()), requestCert: tls.verifiesPeer, rejectUnauthorized: tls.verifiesPeer, handshakeTimeout: tlsHandshakeTimeoutMs };
}

/**
 * How long a client port waits for a TLS handshake to finish (node's default is 120 s): a socket that
 * connects and stays silent holds a connection slot only this long.
 */
export const tlsHandshakeTimeoutMs = 10_000;

/** What a log line may say about loaded material: never key bytes. */
export interface TlsSummary {
  readonly cert: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly validTo: string;
}

/** A file of TLS material that cannot be used; `file` names it and the message says what to do. */
export class TlsFileError extends Error {
  override name = "TlsFileError";
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads and checks `files`: each exists, parses as PEM of the right kind, and the key belongs to the
 * certificate. `what` names the flags in messages (`peer-tls`). Throws TlsFileError.
 */
export function readTlsFiles(what: string, files: TlsFiles): TlsPems {
  const cert = readPem(`${what}-cert`, files.cert);
  const key = readPem(`${what}-key`, files.key);
  const ca = files.ca === undefined ? undefined : readPem(`${what}-ca`, files.ca);
  const certificate = parseCertificate(`${what}-cert`, files.cert, cert);
  if (ca !== undefined) parseCertificate(`${what}-ca`, files.ca!, ca);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsFileError(files.key, `--${what}-key ${files.key} is not a PEM private key (${(error as Error).message}); give the unencrypted key file that goes with ${files.cert}`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsFileError(files.key, `--${what}-key ${files.key} does not belong to the certificate in ${files.cert}; give the key the certificate was issued for`);
  }
  try {
    // The same check the listeners will make; catches what the per-file checks above cannot (e.g. a weak key OpenSSL refuses).
    createSecureContext(secureOptions({ cert, key, ca }));
  } catch (error) {
    throw new TlsFileError(files.cert, `--${what}-cert ${files.cert} and --${what}-key ${files.key} cannot be used together (${(error as Error).message})`);
  }
  return { cert, key, ca };
}

/** The bytes of a PEM file given as `--flag`, bounded by tlsFileBytesMax; a TlsFileError says what is wrong. */
export function readPem(flag: string, file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new TlsFileError(file, `cannot read --${flag} ${file} (${code}); check the path and that this process may read it`);
  }
  if (bytes.length > tlsFileBytesMax) throw new TlsFileError(file, `--${flag} ${file} is ${bytes.length} bytes, more than ${tlsFileBytesMax} (tlsFileBytesMax); is it the right file?`);
  return bytes;
}

function parseCertificate(flag: string, file: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsFileError(file, `--${flag} ${file} is not a PEM certificate (${(error as Error).message}); give a file that starts with -----BEGIN CERTIFICATE-----`);
  }
}

/** The loggable facts of a PEM certificate. */
function summarizeCertificate(file: string, pem: Buffer): TlsSummary {
  const certificate = new X509Certificate(pem);
  return { cert: file, serialNumber: certificate.serialNumber, fingerprint256: certificate.fingerprint256, validTo: certificate.validTo };
}

/**
 * One set of TLS material (the peer port's, or the client ports') that listeners and dialers read, and
 * that `reload()` replaces; listeners subscribe with `onReload` to swap their secure context.
 */
export class ReloadableTls {
  private pems: TlsPems;
  private readonly listeners: ((pems: TlsPems) => void)[] = [];

  private constructor(
    /** `peer-tls` or `client-tls`: the flags the files came from, for messages. */
    readonly what: string,
    readonly files: TlsFiles,
    pems: TlsPems,
  ) {
    this.pems = pems;
  }

  /** Reads and checks `files` (see readTlsFiles); throws TlsFileError. */
  static load(what: string, files: TlsFiles): ReloadableTls {
    return new ReloadableTls(what, files, readTlsFiles(what, files));
  }

  /** The material in use now. */
  current(): TlsPems {
    return this.pems;
  }

  /** Whether the other side must present a certificate chaining to the CA. */
  get verifiesPeer(): boolean {
    return this.pems.ca !== undefined;
  }

  /** Registers `listener` to receive the material of every successful reload; returns its unregistration. */
  onReload(listener: (pems: TlsPems) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const index = this.listeners.indexOf(listener);
      if (index >= 0) this.listeners.splice(index, 1);
    };
  }

  /** Has `server` hand reloaded material to its new connections (open ones keep theirs) until it closes. */
  serveOn(server: TlsServer): void {
    const stopFollowing = this.onReload((pems) => server.setSecureContext(secureOptions(pems)));
    server.once("close", stopFollowing);
  }

  /** Reads the same files again; on TlsFileError the material in use stays. Returns what is loaded now. */
  reload(): TlsSummary {
    const pems = readTlsFiles(this.what, this.files);
    this.pems = pems;
    for (const listener of this.listeners) listener(pems);
    return this.summary();
  }

  /** The loggable facts of the certificate in use. */
  summary(): TlsSummary {
    return summarizeCertificate(this.files.cert, this.pems.cert);
  }
}

/** Logs of a reload: one info line naming what was reloaded, one error line per set that could not be. */
interface ReloadLogger {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/**
 * Reloads every set from its files (SIGHUP). A set whose files fail keeps its material and is reported
 * with the file and the reason; the others still reload. Never throws.
 */
export function reloadAll(sets: readonly ReloadableTls[], logger: ReloadLogger): void {
  const reloaded: (TlsSummary & { tls: string })[] = [];
  for (const set of sets) {
    try {
      reloaded.push({ tls: set.what, ...set.reload() });
    } catch (error) {
      const file = error instanceof TlsFileError ? error.file : undefined;
      logger.error({ tls: set.what, file, reason: (error as Error).message, kept: set.summary() }, "could not reload TLS certificates; still using the previous ones");
    }
  }
  if (reloaded.length > 0) logger.info({ reloaded }, "reloaded TLS certificates");
}
