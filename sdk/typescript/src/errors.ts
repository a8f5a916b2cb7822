// One error class for every failed call, carrying the gRPC status code and the Sutradhar error name: the same
// table as the Python SDK's error tree (sdk/sutradhar/_errors.py), read both ways.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

/** The Python SDK's error class of each status code (ABORTED is Conflict: a stale resource_version, a lost race). */
export const ERROR_NAMES = {
  [status.INVALID_ARGUMENT]: "InvalidArgument",
  [status.NOT_FOUND]: "NotFound",
  [status.ALREADY_EXISTS]: "AlreadyExists",
  [status.FAILED_PRECONDITION]: "FailedPrecondition",
  [status.ABORTED]: "Conflict",
  [status.UNAVAILABLE]: "Unavailable",
  [status.DEADLINE_EXCEEDED]: "DeadlineExceeded",
  [status.UNAUTHENTICATED]: "Unauthenticated",
  [status.PERMISSION_DENIED]: "PermissionDenied",
  [status.RESOURCE_EXHAUSTED]: "ResourceExhausted",
  [status.OUT_OF_RANGE]: "OutOfRange",
  [status.CANCELLED]: "Cancelled",
  [status.INTERNAL]: "Internal",
} as const satisfies Partial<Record<status, string>>;

/** A Sutradhar error name: one per status code of the table, SutradharError for any other code. */
export type ErrorName = (typeof ERROR_NAMES)[keyof typeof ERROR_NAMES] | "SutradharError";

/** The Sutradhar error name of a gRPC status code. */
export function errorName(code: status): ErrorName {
  return (ERROR_NAMES as Partial<Record<status, ErrorName>>)[code] ?? "SutradharError";
}

/**
 * A failed call or a refused request: `code` is the gRPC status code (`status.NOT_FOUND`), `errorName` the
 * Sutradhar name of that code ("NotFound"), `codeName` the status code's own name ("NOT_FOUND"). Servers throw it
 * to answer with that status; clients receive it for any non-OK status, whichever side failed.
 */
export class SutradharError extends Error {
  readonly code: status;
  readonly errorName: ErrorName;
  readonly field: string | undefined;

  constructor(code: status, message: string, field?: string) {
    super(message);
    this.name = "SutradharError";
    this.code = code;
    this.errorName = errorName(code);
    this.field = field;
  }

  get codeName(): string {
    return status[this.code] ?? "UNKNOWN";
  }

  /** The status grpc-js sends for this error. */
  toServiceError(): Partial<ServiceError> {
    return { code: this.code, details: this.message, metadata: new Metadata() };
  }
}

/** Said first when a TLS client reached a plaintext service: the Python SDK's words (`_errors.PLAINTEXT_PEER`). */
export const PLAINTEXT_PEER = "the service answered in plaintext, not TLS: it runs --insecure (or the address is not a " +
  "Sutradhar service's) while this client speaks TLS; reach an insecure mesh with insecure credentials (its own " +
  "context of the credential file, or Credentials.insecure()), or a secured mesh at its address";

/** Said first when a plaintext client's connection was closed by the service: the Python SDK's words
 * (`_errors.TLS_SERVICE`). */
export const TLS_SERVICE = "the service closed the connection before any call, as a secured mesh's service does to " +
  "a plaintext client, and this client presents no credentials; reach a secured mesh with its credentials (its " +
  "context of the credential file, which `sutradhar up` writes, or a certificate of its CA), or an insecure mesh " +
  "at its address";

/** Said first when a TLS client's connection was closed by the service in the handshake: the Python SDK's words
 * (`_errors.CERTIFICATE_REFUSED`). */
export const CERTIFICATE_REFUSED = "the service closed the connection in the TLS handshake: it did not take this " +
  "client's certificate (none, one of another CA, or an expired one); present a current certificate of the mesh's " +
  "CA (the credential file's context, which `sutradhar up` writes), or a token at the mesh's token port";

/** How grpc-js begins the message of a call whose own channel could not connect (a router relaying its hop to an
 * instance begins with the instance instead), what OpenSSL says when the peer's first bytes are not TLS, and how
 * grpc-js words a connection the service closed before it was up (a secured service closes on a plaintext client,
 * and in the handshake on a client whose certificate it does not take; Python's gRPC says "Socket closed"). */
const OWN_CONNECTION = "No connection established";
const NOT_TLS = "wrong version number";
const CLOSED = "Last error: Failed to connect (";

/** A SutradharError from any failure of a grpc-js call (a ServiceError, or anything else as UNKNOWN). A client that
 * could not connect for a reason of security is told which first, then grpc-js's own words: a TLS client that
 * reached a plaintext service (`PLAINTEXT_PEER`), and, when the caller says whether it speaks TLS (`tls`), a service
 * that closed the connection at once: to a plaintext client it wants TLS (`TLS_SERVICE`), to a TLS client it did not
 * take its certificate (`CERTIFICATE_REFUSED`). */
export function fromServiceError(err: unknown, tls?: boolean): SutradharError {
  if (err instanceof SutradharError) return err;
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "number") {
    let details = "details" in err && typeof err.details === "string" ? err.details : "";
    if (err.code === status.UNAVAILABLE && details.startsWith(OWN_CONNECTION)) {
      if (details.includes(NOT_TLS)) details = `${PLAINTEXT_PEER} (${details})`;
      else if (tls !== undefined && details.includes(CLOSED)) {
        details = `${tls ? CERTIFICATE_REFUSED : TLS_SERVICE} (${details})`;
      }
    }
    return new SutradharError(err.code, details || (status[err.code] ?? "UNKNOWN"));
  }
  return new SutradharError(status.UNKNOWN, err instanceof Error ? err.message : String(err));
}
