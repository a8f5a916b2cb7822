// Bootstrap tokens without a mesh: what is missing or contradictory is refused naming the variable, the token
// file's errors name the file and never the token, and the request is a P-256 PKCS#10 CSR that names nothing.
import assert from "node:assert/strict";
import { createPublicKey, verify } from "node:crypto";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { AgentServer, SutradharError, status } from "../index.js";
import { IssuedTlsSource, newCertificateRequest, readTokenFile, renewAt, type TlsMaterial } from "../bootstrap.js";
import { EchoLike } from "./support.js";

const TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl";

test("a bootstrap that misses or contradicts a setting is refused naming the variable to fix", () => {
  const refused = (options: ConstructorParameters<typeof AgentServer>[1], pattern: RegExp): void => {
    assert.throws(() => new AgentServer(new EchoLike(), options), (err: unknown) =>
      err instanceof SutradharError && err.code === status.FAILED_PRECONDITION && pattern.test(err.message));
  };
  const bootstrap = { bootstrap: "127.0.0.1:1", bootstrapTokenFile: "/t", tlsCaFile: "/ca.pem" };
  refused({ bootstrapTokenFile: "/t" }, /^agent echo-like: SUTRADHAR_BOOTSTRAP_TOKEN_FILE needs SUTRADHAR_BOOTSTRAP=HOST:PORT/);
  refused({ bootstrap: "127.0.0.1:1" }, /SUTRADHAR_BOOTSTRAP needs SUTRADHAR_BOOTSTRAP_TOKEN_FILE, a file holding/);
  refused({ ...bootstrap, insecure: true }, /SUTRADHAR_BOOTSTRAP and SUTRADHAR_INSECURE contradict each other/);
  refused({ ...bootstrap, tlsCertFile: "/c.pem" }, /so SUTRADHAR_TLS_CERT_FILE and SUTRADHAR_TLS_KEY_FILE must not be set/);
  refused({ ...bootstrap, tlsCaFile: undefined }, /needs SUTRADHAR_TLS_CA_FILE, the mesh CA .* before the token is sent/);
  refused({}, /needs a certificate: .* or SUTRADHAR_BOOTSTRAP, SUTRADHAR_BOOTSTRAP_TOKEN_FILE and SUTRADHAR_TLS_CA_FILE/);
  assert.ok(new AgentServer(new EchoLike(), bootstrap)); // nothing is read before start()
});

test("start() names the token file or the CA file it cannot read, never the token", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sutradhar-bootstrap-"));
  const tokenFile = join(dir, "echo.token");
  const start = (options: ConstructorParameters<typeof AgentServer>[1]): Promise<void> =>
    new AgentServer(new EchoLike(), { bootstrap: "127.0.0.1:1", tlsCaFile: join(dir, "missing-ca.pem"), ...options }).start();
  await assert.rejects(start({ bootstrapTokenFile: tokenFile }), (err: unknown) =>
    err instanceof SutradharError && err.code === status.FAILED_PRECONDITION &&
    err.message.startsWith(`cannot read the token file ${tokenFile} (ENOENT); write the token there`));
  writeFileSync(tokenFile, "\n");
  await assert.rejects(start({ bootstrapTokenFile: tokenFile }), /the token file .* is empty/);
  writeFileSync(tokenFile, `${TOKEN}\n`);
  chmodSync(tokenFile, 0o600);
  assert.equal(readTokenFile(tokenFile), TOKEN);
  await assert.rejects(start({ bootstrapTokenFile: tokenFile }), (err: unknown) =>
    err instanceof SutradharError && !err.message.includes(TOKEN) &&
    /cannot read the mesh CA file .*missing-ca\.pem \(ENOENT\); .* set SUTRADHAR_TLS_CA_FILE/.test(err.message));
});

/** The tag, content and end of the DER value at `at`. */
function tlv(der: Buffer, at: number): { tag: number; begin: number; content: Buffer; end: number } {
  const first = der[at + 1] as number;
  const size = first < 0x80 ? 0 : first & 0x7f;
  const length = size ? der.subarray(at + 2, at + 2 + size).reduce((acc, b) => acc * 256 + b, 0) : first;
  const start = at + 2 + size;
  return { tag: der[at] as number, begin: at, content: der.subarray(start, start + length), end: start + length };
}

test("the certificate request is PKCS#10 over a new P-256 key, signed with SHA-256, naming nothing", () => {
  const { keyPem, csrPem } = newCertificateRequest();
  assert.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE REQUEST-----\n$/);
  const key = createPublicKey(keyPem);
  assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
  const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----|\n/g, ""), "base64");
  // SEQUENCE { info SEQUENCE { INTEGER 0, Name {}, SubjectPublicKeyInfo, [0] {} }, ecdsa-with-SHA256, BIT STRING }
  const outer = tlv(der, 0);
  const info = tlv(der, outer.content.byteOffset - der.byteOffset);
  const algorithm = tlv(der, info.end);
  const signature = tlv(der, algorithm.end);
  assert.deepEqual([outer.tag, outer.end, signature.end, signature.tag], [0x30, der.length, der.length, 0x03]);
  const version = tlv(der, info.end - info.content.length);
  const subject = tlv(der, version.end);
  const spki = tlv(der, subject.end);
  const attributes = tlv(der, spki.end);
  assert.deepEqual([version.content, subject.tag, subject.content.length], [Buffer.from([0]), 0x30, 0]);
  assert.deepEqual(der.subarray(spki.begin, spki.end), key.export({ type: "spki", format: "der" }));
  assert.deepEqual([attributes.tag, attributes.content.length, attributes.end], [0xa0, 0, info.end]);
  assert.deepEqual(der.subarray(algorithm.begin, algorithm.end), Buffer.from("300a06082a8648ce3d040302", "hex"));
  assert.equal(signature.content[0], 0); // no unused bits
  assert.ok(verify("sha256", der.subarray(info.begin, info.end), key, signature.content.subarray(1)));
});

test("an issued source renews at 70 % of its certificate's life, retries a failure, and tells its listeners", async () => {
  /** Material `n`, `lived` of its `lifeMs` gone. */
  const material = (n: number, lifeMs: number, lived = 0): TlsMaterial => ({
    certificateChain: Buffer.from(`chain ${n}`), privateKey: Buffer.from(`key ${n}`), trustBundle: Buffer.from(`ca ${n}`),
    identity: "spiffe://sutradhar.local/ns/team-a/agent/echo", notBefore: new Date(Date.now() - lived * lifeMs),
    notAfter: new Date(Date.now() + (1 - lived) * lifeMs),
  });
  const due = material(0, 1000, 0.7);
  assert.equal(renewAt(due).getTime(), due.notBefore.getTime() + 700);
  let calls = 0;
  const source = new IssuedTlsSource(due, async () => {
    calls += 1;
    if (calls === 1) throw new SutradharError(status.UNAVAILABLE, "registry unreachable");
    return material(calls, 3_600_000); // renewed next in about 18 minutes: not within this test
  }, () => 1); // the shortest back-off: 1 s less 20 %
  const identities: string[] = [];
  const bundles: string[] = [];
  source.addIdentityCertificateListener((update) => identities.push(String(update?.certificate)));
  source.addCaCertificateListener((update) => bundles.push(String(update?.caCertificate)));
  const started = Date.now();
  source.start();
  try {
    while (calls < 2 && Date.now() - started < 5_000) await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    source.stop();
  }
  assert.equal(calls, 2);
  assert.ok(Date.now() - started >= 750, "the failure was retried after the back-off, not at once");
  assert.deepEqual(identities, ["chain 0", "chain 2"]);
  assert.deepEqual(bundles, ["ca 0", "ca 2"]);
  assert.equal(source.current().certificateChain.toString(), "chain 2");
});
