// Mutual TLS the way the Python SDK does it (sdk/sutradhar/_security_settings.py, _tls.py, _mesh_callers.py):
// an agent serves mTLS from three PEM files (re-read when they are rewritten) or, for development only, plaintext on
// loopback; it takes AgentService calls from the mesh's router, health and scheduler services (and, with access
// reviews, from the users and agents the registry allows: access-review.ts); clients present
// a certificate (or nothing, to an insecure mesh) and check the server's SPIFFE ID.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { PeerCertificate } from "node:tls";
import { ServerCredentials, experimental, status } from "@grpc/grpc-js";

import { SutradharError } from "./errors.js";
import { SERVICE, SYSTEM_NAMESPACE, SpiffeId, formatSpiffeId } from "./identity.js";
import { warn } from "./logs.js";

/** The mesh services that call agents. */
export const AGENT_CALLERS = ["health", "router", "scheduler"] as const;
/** How often certificate files are re-read for rotation, in milliseconds. */
export const TLS_REFRESH_MS = 5_000;

/** The three PEM files of mutual TLS. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** A mesh service's SPIFFE ID (unchecked: a trust domain that breaks the rules gives an ID no peer can hold). */
export function serviceIdentity(trustDomain: string, name: string): string {
  return formatSpiffeId(trustDomain, SYSTEM_NAMESPACE, SERVICE, name);
}

/** The spiffe:// URI SANs of a certificate. */
export function spiffeIds(cert: Pick<PeerCertificate, "subjectaltname"> | undefined): string[] {
  const san = cert?.subjectaltname ?? "";
  return san.split(",").map((s) => s.trim()).filter((s) => s.startsWith("URI:spiffe://")).map((s) => s.slice(4));
}

/** Whether `host` (a listen address) is a loopback address. */
export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "ip6-localhost") return true;
  const bare = host.replace(/^\[|\]$/g, "");
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SutradharError(status.FAILED_PRECONDITION, `cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code})`);
  }
}

/** The SPIFFE ID in the certificate (chain) of `certFile`'s first certificate; FAILED_PRECONDITION unless it holds
 * exactly one, valid (`SpiffeId.check`). */
export function certificateIdentity(certFile: string): string {
  const cert = new X509Certificate(read(certFile, "certificate"));
  const ids = spiffeIds({ subjectaltname: cert.subjectAltName ?? "" });
  if (ids.length !== 1) {
    throw new SutradharError(status.FAILED_PRECONDITION,
      `the certificate ${certFile} must carry exactly one spiffe:// URI SAN (it has ${ids.length})`);
  }
  const id = SpiffeId.check(ids[0] as string);
  if (typeof id === "string") {
    throw new SutradharError(status.FAILED_PRECONDITION, `the certificate ${certFile} has no Sutradhar identity: ${id}`);
  }
  return id.toString();
}

/** The instance id in an agent replica's SPIFFE ID (spiffe://TD/ns/NS/agent/ID/INSTANCE), or "" (another identity,
 * or none: `SpiffeId.parse`). */
export function instanceOfIdentity(identity: string): string {
  return SpiffeId.parse(identity)?.instanceId ?? "";
}

/** What serves an agent: its server credentials and, with TLS, its SPIFFE ID and the files or the in-memory
 * certificates (a bootstrapped agent's) it presents. */
export interface ServerSecurity {
  credentials: ServerCredentials;
  files: TlsFiles | undefined;
  provider?: experimental.CertificateProvider | undefined;
  identity: string;
}

/** Mutual TLS with the certificates `provider` holds (each new connection gets the latest), as `identity`. */
export function providedServerSecurity(provider: experimental.CertificateProvider, identity: string): ServerSecurity {
  return {
    credentials: experimental.createCertificateProviderServerCredentials(provider, provider, true),
    files: undefined, provider, identity,
  };
}

/**
 * The server credentials of `what` listening on `host`: mTLS from the three files (read now to fail early, then
 * re-read every TLS_REFRESH_MS so rotated files take over), or insecure on loopback only, with a warning.
 * FAILED_PRECONDITION saying how to fix a contradiction or a server with neither.
 */
export function serverSecurity(options: {
  what: string; host: string; insecure: boolean; certFile?: string | undefined; keyFile?: string | undefined;
  caFile?: string | undefined;
}): ServerSecurity {
  const { what, host } = options;
  const given = [options.certFile, options.keyFile, options.caFile].filter((f) => f);
  const fail = (message: string): never => {
    throw new SutradharError(status.FAILED_PRECONDITION, `${what}: ${message}`);
  };
  if (given.length > 0 && given.length < 3) {
    fail("SUTRADHAR_TLS_CERT_FILE, SUTRADHAR_TLS_KEY_FILE and SUTRADHAR_TLS_CA_FILE go together: set all three " +
      "(or none, with SUTRADHAR_INSECURE=1, for development)");
  }
  if (options.insecure) {
    if (given.length) fail("insecure and TLS files contradict each other; drop one");
    if (!isLoopback(host)) {
      fail(`insecure is refused on ${host}: without TLS and authentication anyone who reaches the address controls ` +
        "the mesh; listen on 127.0.0.1, or drop insecure and give certificates");
    }
    warn("sutradhar.tls", `${what} runs INSECURE on ${host}: plaintext, no authentication, no authorization (development only)`);
    return { credentials: ServerCredentials.createInsecure(), files: undefined, identity: "" };
  }
  if (!given.length) {
    throw new SutradharError(status.FAILED_PRECONDITION, `${what} needs a certificate: set SUTRADHAR_TLS_CERT_FILE, ` +
      "SUTRADHAR_TLS_KEY_FILE and SUTRADHAR_TLS_CA_FILE (`sutradhar up` issues them from its CA), or " +
      "SUTRADHAR_BOOTSTRAP, SUTRADHAR_BOOTSTRAP_TOKEN_FILE and SUTRADHAR_TLS_CA_FILE to trade a bootstrap token for " +
      "one, or SUTRADHAR_INSECURE=1 on a loopback address for development");
  }
  const files: TlsFiles = { certFile: options.certFile!, keyFile: options.keyFile!, caFile: options.caFile! };
  read(files.keyFile, "private key");
  read(files.caFile, "trust bundle");
  const identity = certificateIdentity(files.certFile);
  const provider = new experimental.FileWatcherCertificateProvider({
    certificateFile: files.certFile, privateKeyFile: files.keyFile, caCertificateFile: files.caFile,
    refreshIntervalMs: TLS_REFRESH_MS,
  });
  // One provider serves both the identity and the trust bundle.
  const credentials = experimental.createCertificateProviderServerCredentials(provider, provider, true);
  return { credentials, files, provider, identity };
}

/** How an agent takes a call from a peer: undefined (one of the mesh's router, health and scheduler: at once),
 * `{ review: id }` (a user or agent identity of the trust domain, when the agent has access reviews: the registry
 * decides, `AccessReviews`), or the status and message that refuse it. */
export type CallerVerdict = undefined | { review: string } | [status, string];

/** Whether `identity` is a user or agent identity of `trustDomain` (spiffe://TD/ns/NS/{user/NAME, agent/ID[/INST]}),
 * valid by `SpiffeId.parse`. */
function reviewable(identity: SpiffeId | undefined, trustDomain: string): boolean {
  return identity !== undefined && identity.trustDomain === trustDomain && identity.kind !== SERVICE;
}

/** Who may call an agent (an AgentService call; mirrors sdk/sutradhar/_mesh_callers.py): the mesh's router, health
 * and scheduler services, and, with `reviews`, users and agents of the trust domain the registry allows. */
export function meshCaller(peer: PeerCertificate | undefined, trustDomain: string, agent: string,
  reviews = false): CallerVerdict {
  const ids = spiffeIds(peer);
  if (ids.length !== 1) {
    return [status.UNAUTHENTICATED, `${agent} takes calls over mutual TLS, from the mesh's router, health and ` +
      `scheduler${reviews ? " and from callers the registry allows to execute it" : " only"}; this call presented ` +
      "no certificate with a SPIFFE ID (exactly one spiffe:// URI SAN)"];
  }
  const id = ids[0] as string;
  if (AGENT_CALLERS.some((name) => serviceIdentity(trustDomain, name) === id)) return undefined;
  if (reviews && reviewable(SpiffeId.parse(id), trustDomain)) return { review: id };
  return [status.PERMISSION_DENIED, `${id} may not call ${agent}: agents take calls from the mesh's ` +
    `${AGENT_CALLERS.join(", ")} services of trust domain '${trustDomain}' ` +
    `(${formatSpiffeId(trustDomain, SYSTEM_NAMESPACE, SERVICE, "<service>")}) only; route tasks through the router`];
}
