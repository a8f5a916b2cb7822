// What a client presents to the mesh (mirrors sdk/sutradhar/_credentials.py's Credentials): a certificate (mutual
// TLS, from files or from certificates held in memory), a bearer token (sent on every call, over TLS verified with
// the mesh CA), both, or nothing (an insecure, development mesh). With TLS the server must present the SPIFFE ID of
// the mesh service the client expects.
import { readFileSync } from "node:fs";
import type { PeerCertificate } from "node:tls";
import {
  Metadata,
  credentials as grpcCredentials,
  experimental,
  status,
  type ChannelCredentials,
  type ChannelOptions,
} from "@grpc/grpc-js";

import { SutradharError } from "./errors.js";
import type { ConnectOptions } from "./grpc.js";
import { DEFAULT_TRUST_DOMAIN, SERVICE, SpiffeId, SYSTEM_NAMESPACE } from "./identity.js";
import { spiffeIds, type TlsFiles } from "./tls.js";

export { DEFAULT_TRUST_DOMAIN };

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SutradharError(status.FAILED_PRECONDITION, `cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code})`);
  }
}

export class Credentials {
  readonly #bearer: string | undefined; // a private field: util.inspect and JSON never show it

  private constructor(
    readonly tls: TlsFiles | undefined,
    bearer: string | undefined,
    readonly trustBundle: string | undefined,
    readonly trustDomain: string,
    /** Certificates held in memory (a bootstrapped agent's), followed as they are renewed. */
    readonly provider?: experimental.CertificateProvider,
  ) {
    this.#bearer = bearer;
  }

  /** Nothing: plaintext to an insecure, development mesh. */
  static insecure(): Credentials {
    return new Credentials(undefined, undefined, undefined, DEFAULT_TRUST_DOMAIN);
  }

  /** Mutual TLS with a certificate, its key and the mesh CA bundle (files read when a client connects). */
  static mtls(files: TlsFiles, trustDomain = DEFAULT_TRUST_DOMAIN): Credentials {
    return new Credentials(files, undefined, files.caFile, trustDomain);
  }

  /** Mutual TLS with the certificate, key and trust bundle `provider` holds now (connections made after it changes
   * use the new ones). */
  static issued(provider: experimental.CertificateProvider, trustDomain = DEFAULT_TRUST_DOMAIN): Credentials {
    return new Credentials(undefined, undefined, undefined, trustDomain, provider);
  }

  /** A bearer token to a token port, verifying the server with the mesh CA `trustBundle`. */
  static token(token: string, trustBundle: string, trustDomain = DEFAULT_TRUST_DOMAIN): Credentials {
    return new Credentials(undefined, token, trustBundle, trustDomain);
  }

  /** These credentials, also sending `token` on every call. */
  withToken(token: string): Credentials {
    return new Credentials(this.tls, token, this.trustBundle, this.trustDomain, this.provider);
  }

  get isInsecure(): boolean {
    return this.tls === undefined && this.provider === undefined && this.#bearer === undefined;
  }

  /** The identity a TLS server must present: `expected` itself, or the SPIFFE ID of the mesh service it names. */
  private serverIdentity(expected: string | SpiffeId): SpiffeId {
    return expected instanceof SpiffeId ? expected : new SpiffeId(this.trustDomain, SYSTEM_NAMESPACE, SERVICE, expected);
  }

  /** grpc-js channel credentials; with TLS the server must present `expected` (an identity, or the name of a mesh
   * service), any CA-signed one when unset. */
  channelCredentials(expected?: string | SpiffeId): ChannelCredentials {
    if (this.isInsecure) return grpcCredentials.createInsecure();
    const want = expected === undefined ? undefined : this.serverIdentity(expected).toString();
    const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
      if (want === undefined || spiffeIds(cert).includes(want)) return undefined;
      return new Error(`the server presented ${spiffeIds(cert).join(", ") || "no SPIFFE ID"}, not ${want}`);
    };
    let ssl: ChannelCredentials;
    if (this.provider !== undefined) {
      ssl = experimental.createCertificateProviderChannelCredentials(this.provider, this.provider, { checkServerIdentity });
    } else if (this.trustBundle === undefined) {
      throw new SutradharError(status.FAILED_PRECONDITION,
        "a token without a client certificate needs the mesh CA to verify the server: pass trustBundle");
    } else {
      ssl = grpcCredentials.createSsl(
        readPem(this.trustBundle, "trust bundle"),
        this.tls ? readPem(this.tls.keyFile, "private key") : null,
        this.tls ? readPem(this.tls.certFile, "certificate") : null,
        { checkServerIdentity },
      );
    }
    const token = this.#bearer;
    if (token === undefined) return ssl;
    return grpcCredentials.combineChannelCredentials(ssl, grpcCredentials.createFromMetadataGenerator((_params, callback) => {
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      callback(null, metadata);
    }));
  }

  /** The grpc-js channel options that go with `channelCredentials(expected)`: with TLS and an expected identity (or
   * mesh service), its certificate's DNS name as the TLS server name, as the Python SDK sets it
   * (`grpc.ssl_target_name_override`), rather than the address's host, which Node will not send when it is an IP
   * address (warning DEP0123). */
  channelOptions(expected?: string | SpiffeId): ChannelOptions {
    if (this.isInsecure || expected === undefined) return {};
    return { "grpc.ssl_target_name_override": this.serverIdentity(expected).dnsName() };
  }

  /** What a channel to a server that must present `expected` takes of these credentials: its credentials, the
   * options that go with them, and whether it speaks TLS (which tells what a closed connection means). */
  connection(expected?: string | SpiffeId): Pick<ConnectOptions, "credentials" | "channelOptions" | "tls"> {
    return {
      credentials: this.channelCredentials(expected),
      channelOptions: this.channelOptions(expected),
      tls: !this.isInsecure,
    };
  }

  /** Never the token. */
  toString(): string {
    const held = [this.tls || this.provider ? "certificate" : "", this.#bearer ? "token" : ""].filter(Boolean).join(" + ") || "nothing";
    return `Credentials(${held}, trustDomain='${this.trustDomain}')`;
  }
}
