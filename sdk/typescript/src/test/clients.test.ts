import assert from "node:assert/strict";
import { inspect } from "node:util";
import { test } from "node:test";

import { Credentials, RouterClient, SutradharError, status } from "../index.js";

test("credentials never show their token", () => {
  const credentials = Credentials.token("s3cret-token", "/etc/mesh/bundle.pem");
  assert.equal(String(credentials), "Credentials(token, trustDomain='sutradhar.local')");
  assert.ok(!inspect(credentials, { showHidden: true, depth: 5 }).includes("s3cret-token"));
  assert.ok(!JSON.stringify(credentials).includes("s3cret-token"));
  assert.equal(Credentials.insecure().isInsecure, true);
});

test("credentials whose files cannot be read are FAILED_PRECONDITION naming the file", () => {
  assert.throws(() => new RouterClient("127.0.0.1:1", {
    credentials: Credentials.mtls({ certFile: "/nope/c.pem", keyFile: "/nope/k.pem", caFile: "/nope/ca.pem" }),
  }), (err: unknown) => err instanceof SutradharError && err.code === status.FAILED_PRECONDITION &&
    err.message === "cannot read the trust bundle /nope/ca.pem (ENOENT)");
});

test("a payload that is not JSON-like is INVALID_ARGUMENT before anything is sent", async () => {
  const router = new RouterClient("127.0.0.1:1");
  try {
    await assert.rejects(router.execute("echo", { when: new Date() }), (err: unknown) =>
      err instanceof SutradharError && err.code === status.INVALID_ARGUMENT && err.field === "payload" &&
      err.message === "payload: value.when is not JSON-like: Date");
  } finally {
    router.close();
  }
});

test("an unreachable router is UNAVAILABLE, and a deadline bounds the wait", async () => {
  const router = new RouterClient("127.0.0.1:1", { timeoutMs: 2_000 });
  try {
    await assert.rejects(router.execute("echo", {}), (err: unknown) =>
      err instanceof SutradharError && (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED));
  } finally {
    router.close();
  }
});
