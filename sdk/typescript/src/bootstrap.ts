// TLS bootstrapping (mirrors sdk/sutradhar/_bootstrap.py; docs/security.md, "Agents outside the scheduler"): an
// agent that holds only a bootstrap token trades it for a certificate of its own identity at the registry's bootstrap
// port, then renews it at 70 % of its life over the registry's mTLS port:
//
//     key  = a new ECDSA P-256 key (Node's crypto; it never leaves this process)
//     csr  = PKCS#10 request signed with it, SHA-256, naming nothing (the mesh uses the token's subject)
//     IssueCertificate(csr_pem) + metadata authorization: Bearer <token>
//       -> certificate for spiffe://<td>/ns/<ns>/agent/<agent-id>, the trust bundle, the SPIFFE ID, the expiry
//
// The bootstrap port is dialled trusting only the mesh CA file and must present the registry's SPIFFE ID, so the
// token goes to the mesh's registry only. The material stays in memory (`IssuedTlsSource`, a grpc-js certificate
// provider: the agent's server and its channels take each renewal for their next connections). A renewal that keeps
// failing until the certificate has expired bootstraps again with the token file, read anew. The token is read from
// its file when needed and never logged or put in an error.
import { X509Certificate, createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { status, type experimental } from "@grpc/grpc-js";

import { Credentials } from "./credentials.js";
import { SutradharError } from "./errors.js";
import { IdentityService } from "./gen/sutradhar/v1/identity_pb.js";
import type { ServeSettings } from "./settings.js";
import { stub } from "./grpc.js";
import { SpiffeId } from "./identity.js";
import { log, warn } from "./logs.js";
import { spiffeIds } from "./tls.js";

const LOGGER = "sutradhar.bootstrap";

/** Deadline of one IssueCertificate call, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Fraction of a certificate's life after which it is renewed (Dapr, SPIRE; the Python SDK's RENEW_FRACTION). */
export const RENEW_FRACTION = 0.7;
/** Back-off of a failed renewal (retried until the certificate expires, then bootstrapped again): the Python SDK's. */
export const RENEW_BACKOFF = { initialMs: 1_000, maximumMs: 30_000, multiplier: 2, jitter: 0.2 } as const;

// DER, for the one fixed shape of request made here (RFC 2986): lengths below 64 KiB.
function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  if (n >= 0x10000) throw new RangeError(`DER value of ${n} bytes`);
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), body]);
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const ATTRIBUTES = 0xa0; // [0] IMPLICIT SET OF Attribute
/** AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), no parameters (RFC 5758). */
const ECDSA_WITH_SHA256 = Buffer.from("300a06082a8648ce3d040302", "hex");

function pem(label: string, body: Buffer): string {
  const lines = body.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * A new ECDSA P-256 private key (PEM, PKCS#8) and a PKCS#10 certificate request signed with it (PEM, SHA-256).
 * The request names nothing (an empty subject, no attributes): the mesh issues the certificate for the caller's
 * own identity.
 */
export function newCertificateRequest(): { keyPem: string; csrPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const info = der(SEQUENCE,
    der(INTEGER, Buffer.from([0])), // version 1
    der(SEQUENCE), // subject: the empty Name
    publicKey.export({ type: "spki", format: "der" }), // SubjectPublicKeyInfo
    der(ATTRIBUTES));
  const signature = sign("sha256", info, { key: privateKey, dsaEncoding: "der" }); // ECDSA-Sig-Value
  const request = der(SEQUENCE, info, ECDSA_WITH_SHA256, der(BIT_STRING, Buffer.from([0]), signature));
  return {
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    csrPem: pem("CERTIFICATE REQUEST", request),
  };
}

/** One party's certificate chain, private key and trust bundle (PEM), checked to fit together. */
export interface TlsMaterial {
  readonly certificateChain: Buffer;
  readonly privateKey: Buffer;
  readonly trustBundle: Buffer;
  /** The SPIFFE ID of the certificate (its one spiffe:// URI SAN, a valid identity: `SpiffeId.check`). */
  readonly identity: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** When a certificate valid from `notBefore` to `notAfter` is renewed: at RENEW_FRACTION of its life. */
export function renewAt(material: Pick<TlsMaterial, "notBefore" | "notAfter">): Date {
  const start = material.notBefore.getTime();
  return new Date(start + (material.notAfter.getTime() - start) * RENEW_FRACTION);
}

/** The material of `certificateChain` (its first certificate is the leaf), `privateKey` and `trustBundle`;
 * INVALID_ARGUMENT saying what does not fit. */
export function tlsMaterial(certificateChain: Uint8Array, privateKey: Uint8Array, trustBundle: Uint8Array): TlsMaterial {
  const invalid = (message: string): never => {
    throw new SutradharError(status.INVALID_ARGUMENT, message);
  };
  let leaf: X509Certificate | undefined;
  try {
    leaf = new X509Certificate(Buffer.from(certificateChain));
  } catch (err) {
    invalid(`the certificate is not PEM (${(err as Error).message})`);
  }
  const cert = leaf as X509Certificate;
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(Buffer.from(privateKey)));
  } catch (err) {
    invalid(`the private key is not an unencrypted PEM key (${(err as Error).message})`);
  }
  if (!matches) invalid("the private key does not belong to the certificate");
  const ids = spiffeIds({ subjectaltname: cert.subjectAltName ?? "" });
  if (ids.length !== 1) invalid(`the certificate holds ${ids.length} SPIFFE IDs in its URI SAN; it must hold exactly one`);
  const id = SpiffeId.check(ids[0] as string);
  if (typeof id === "string") return invalid(`the certificate has no Sutradhar identity: ${id}`);
  if (!Buffer.from(trustBundle).includes("-----BEGIN CERTIFICATE-----")) invalid("the trust bundle holds no certificate");
  return {
    certificateChain: Buffer.from(certificateChain), privateKey: Buffer.from(privateKey),
    trustBundle: Buffer.from(trustBundle), identity: id.toString(), notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/**
 * The bearer token in `path` (surrounding whitespace dropped); FAILED_PRECONDITION naming the file (never the
 * token) when it cannot be read or is empty. A file others may read is used, with a warning.
 */
export function readTokenFile(path: string): string {
  let token: string;
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new SutradharError(status.FAILED_PRECONDITION, `cannot read the token file ${path} ` +
      `(${(err as NodeJS.ErrnoException).code}); write the token there, e.g. ` +
      `\`sutradhar token create --agent AGENT_ID --namespace NS > ${path}\` and \`chmod 600 ${path}\``);
  }
  if (!token) {
    throw new SutradharError(status.FAILED_PRECONDITION,
      `the token file ${path} is empty; write a token from \`sutradhar token create\` there`);
  }
  if (mode & 0o077) {
    warn(LOGGER, `token file ${path} has mode ${mode.toString(8)}: others can read the token; run \`chmod 600 ${path}\``);
  }
  return token;
}

/** Call IssueCertificate at `address` over `credentials` (which carry the token) with a new key's request, expecting
 * the registry; the material of the issued certificate and that key, of trust domain `trustDomain`. */
export async function issueCertificate(address: string, credentials: Credentials, trustDomain: string,
  timeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<TlsMaterial> {
  const { keyPem, csrPem } = newCertificateRequest();
  const [rpc, channel] = stub(IdentityService, address, { ...credentials.connection("registry"), timeoutMs });
  let material: TlsMaterial;
  try {
    const response = await rpc.issueCertificate({ csrPem: Buffer.from(csrPem) });
    material = tlsMaterial(response.certificateChainPem, Buffer.from(keyPem), response.trustBundlePem);
  } finally {
    channel.close();
  }
  if (SpiffeId.parse(material.identity)?.trustDomain !== trustDomain) {
    throw new SutradharError(status.FAILED_PRECONDITION, `the registry issued a certificate for ${material.identity}, ` +
      `not of trust domain ${trustDomain}; check SUTRADHAR_TRUST_DOMAIN`);
  }
  return material;
}

type Listener<T> = (update: T | null) => void;

/**
 * TLS material held in memory, as a grpc-js certificate provider (servers and channels built on it use the latest
 * material for each new connection), renewed by `start()` at 70 % of each certificate's life with `renew` (retried
 * with back-off while it fails) until `stop()`.
 */
export class IssuedTlsSource implements experimental.CertificateProvider {
  #material: TlsMaterial; // a private field: util.inspect never shows the key
  private readonly caListeners = new Set<Listener<experimental.CaCertificateUpdate>>();
  private readonly identityListeners = new Set<Listener<experimental.IdentityCertificateUpdate>>();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private running = false;

  constructor(material: TlsMaterial, private readonly renewWith: (source: IssuedTlsSource) => Promise<TlsMaterial>,
    private readonly random: () => number = Math.random) {
    this.#material = material;
  }

  /** The material in use now. */
  current(): TlsMaterial {
    return this.#material;
  }

  get identity(): string {
    return this.#material.identity;
  }

  /** Use `material` from now on (a renewal): every listener hears of it. */
  update(material: TlsMaterial): void {
    this.#material = material;
    for (const listener of this.caListeners) listener({ caCertificate: material.trustBundle });
    for (const listener of this.identityListeners) {
      listener({ certificate: material.certificateChain, privateKey: material.privateKey });
    }
    log("INFO", LOGGER, `renewed the certificate of ${material.identity}, valid until ${material.notAfter.toISOString()}`);
  }

  /** Renew once now. */
  async renew(): Promise<TlsMaterial> {
    const material = await this.renewWith(this);
    this.update(material);
    return material;
  }

  /** Keep renewing: at 70 % of each certificate's life, and after a failure with back-off. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    const delayMs = this.failures ? backoffMs(this.failures, this.random) : renewAt(this.#material).getTime() - Date.now();
    this.timer = setTimeout(() => void this.attempt(), Math.max(delayMs, 0));
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    try {
      await this.renew();
      this.failures = 0;
    } catch (err) {
      this.failures += 1;
      const reason = err instanceof SutradharError ? `${err.errorName}: ${err.message}` : (err as Error).message;
      warn(LOGGER, `renewing the certificate of ${this.identity} failed (${reason}); it expires at ` +
        `${this.#material.notAfter.toISOString()}, retrying`);
    }
    if (this.running) this.schedule();
  }

  addCaCertificateListener(listener: Listener<experimental.CaCertificateUpdate>): void {
    this.caListeners.add(listener);
    process.nextTick(listener, { caCertificate: this.#material.trustBundle });
  }

  removeCaCertificateListener(listener: Listener<experimental.CaCertificateUpdate>): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: Listener<experimental.IdentityCertificateUpdate>): void {
    this.identityListeners.add(listener);
    process.nextTick(listener, { certificate: this.#material.certificateChain, privateKey: this.#material.privateKey });
  }

  removeIdentityCertificateListener(listener: Listener<experimental.IdentityCertificateUpdate>): void {
    this.identityListeners.delete(listener);
  }
}

/** Milliseconds before retry `attempt` (1-based): the Python SDK's Backoff (exponential, capped, 20 % jitter). */
function backoffMs(attempt: number, random: () => number): number {
  const { initialMs, maximumMs, multiplier, jitter } = RENEW_BACKOFF;
  return Math.min(initialMs * multiplier ** (attempt - 1), maximumMs) * (1 - jitter * random());
}

/** Where and with what an agent without a certificate gets one, and where it renews it. */
export interface BootstrapOptions {
  /** The registry's bootstrap port, host:port (SUTRADHAR_BOOTSTRAP). */
  address: string;
  /** The file holding the bootstrap token (SUTRADHAR_BOOTSTRAP_TOKEN_FILE; read when needed, never logged). */
  tokenFile: string;
  /** The mesh CA (PEM) the bootstrap port's certificate must verify against (SUTRADHAR_TLS_CA_FILE). */
  caFile: string;
  trustDomain: string;
  /** The registry's mTLS port for renewals (SUTRADHAR_REGISTRY); undefined: renew at the bootstrap port. */
  renewAddress?: string | undefined;
  timeoutMs?: number;
}

/** Exchanges a bootstrap token for a certificate and renews it (the Python SDK's `Bootstrap`). */
export class Bootstrap {
  constructor(readonly options: BootstrapOptions) {}

  /** A certificate for the token's subject, from the bootstrap port (errors name the port and what to fix). */
  async obtain(): Promise<TlsMaterial> {
    const { address, caFile, trustDomain } = this.options;
    const token = readTokenFile(this.options.tokenFile);
    try {
      readFileSync(caFile);
    } catch (err) {
      throw new SutradharError(status.FAILED_PRECONDITION, `cannot read the mesh CA file ${caFile} ` +
        `(${(err as NodeJS.ErrnoException).code}); it verifies the registry's bootstrap port: copy the mesh's ` +
        "pki/bundle.pem (written by `sutradhar up`) and set SUTRADHAR_TLS_CA_FILE to it");
    }
    try {
      return await issueCertificate(address, Credentials.token(token, caFile, trustDomain), trustDomain,
        this.options.timeoutMs);
    } catch (err) {
      if (err instanceof SutradharError) throw new SutradharError(err.code, `bootstrap port ${address}: ${err.message}`);
      throw err;
    }
  }

  /** The next certificate: over the mTLS port with the current one (and the token) while it is valid, else (or
   * without an mTLS address) from the bootstrap port with the token. */
  async renewed(source: IssuedTlsSource): Promise<TlsMaterial> {
    const { renewAddress, trustDomain } = this.options;
    if (renewAddress && source.current().notAfter.getTime() > Date.now()) {
      const token = readTokenFile(this.options.tokenFile);
      return issueCertificate(renewAddress, Credentials.issued(source, trustDomain).withToken(token), trustDomain,
        this.options.timeoutMs);
    }
    return this.obtain();
  }

  /** Obtain a certificate now; a source that keeps it renewed once started. */
  async source(): Promise<IssuedTlsSource> {
    return new IssuedTlsSource(await this.obtain(), (source) => this.renewed(source));
  }
}

/**
 * How an agent served with `settings` obtains its certificate with a token (undefined: from files, or insecure);
 * FAILED_PRECONDITION for `what` saying which variable is missing or contradicts another.
 */
export function bootstrapOf(settings: ServeSettings, what: string): Bootstrap | undefined {
  const { bootstrap, bootstrapTokenFile, tlsCaFile } = settings;
  if (bootstrap === undefined && bootstrapTokenFile === undefined) return undefined;
  let problem = "";
  if (bootstrap === undefined) {
    problem = "SUTRADHAR_BOOTSTRAP_TOKEN_FILE needs SUTRADHAR_BOOTSTRAP=HOST:PORT (the registry's bootstrap port)";
  } else if (bootstrapTokenFile === undefined) {
    problem = "SUTRADHAR_BOOTSTRAP needs SUTRADHAR_BOOTSTRAP_TOKEN_FILE, a file holding the agent's bootstrap token " +
      "(`sutradhar token create --agent AGENT_ID --namespace NS > FILE`)";
  } else if (settings.insecure) {
    problem = "SUTRADHAR_BOOTSTRAP and SUTRADHAR_INSECURE contradict each other; drop one";
  } else if (settings.tlsCertFile !== undefined || settings.tlsKeyFile !== undefined) {
    problem = "SUTRADHAR_BOOTSTRAP obtains the certificate, so SUTRADHAR_TLS_CERT_FILE and SUTRADHAR_TLS_KEY_FILE " +
      "must not be set; drop one or the other";
  } else if (tlsCaFile === undefined) {
    problem = "SUTRADHAR_BOOTSTRAP needs SUTRADHAR_TLS_CA_FILE, the mesh CA (pki/bundle.pem of `sutradhar up`) " +
      "that verifies the registry before the token is sent";
  }
  if (problem) throw new SutradharError(status.FAILED_PRECONDITION, `${what}: ${problem}`);
  return new Bootstrap({
    address: bootstrap as string, tokenFile: bootstrapTokenFile as string, caFile: tlsCaFile as string,
    trustDomain: settings.trustDomain, renewAddress: settings.registry,
  });
}
