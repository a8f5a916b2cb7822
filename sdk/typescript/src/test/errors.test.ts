import assert from "node:assert/strict";
import { test } from "node:test";

import { ERROR_NAMES, SutradharError, errorName, fromServiceError, status } from "../index.js";
import { CERTIFICATE_REFUSED, PLAINTEXT_PEER, TLS_SERVICE } from "../errors.js";

test("the error table matches the Python SDK's, read both ways", () => {
  assert.equal(errorName(status.ABORTED), "Conflict");
  assert.equal(errorName(status.NOT_FOUND), "NotFound");
  assert.equal(errorName(status.DATA_LOSS), "SutradharError");
  assert.equal(Object.keys(ERROR_NAMES).length, 13);
  const err = fromServiceError({ code: status.RESOURCE_EXHAUSTED, details: "rate limited" });
  assert.ok(err instanceof SutradharError);
  assert.deepEqual([err.code, err.errorName, err.codeName, err.message],
    [status.RESOURCE_EXHAUSTED, "ResourceExhausted", "RESOURCE_EXHAUSTED", "rate limited"]);
  assert.equal(fromServiceError({ code: status.UNAVAILABLE, details: "" }).message, "UNAVAILABLE");
  assert.equal(fromServiceError(new Error("boom")).code, status.UNKNOWN);
});

test("a TLS client that reached a plaintext service is told so, and a router's relayed hop is left as it is", () => {
  const own = "No connection established. Last error: Error: 80CC:error:0A00010B:SSL routines:ssl3_get_record:" +
    "wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n. Resolution note: ";
  assert.equal(fromServiceError({ code: status.UNAVAILABLE, details: own }).message, `${PLAINTEXT_PEER} (${own})`);
  const relayed = `instance echo-1 (127.0.0.1:7001): UNAVAILABLE: ${own}`;
  assert.equal(fromServiceError({ code: status.UNAVAILABLE, details: relayed }).message, relayed);
});

test("a connection the service closed says what the client presented, when the caller says whether it speaks TLS", () => {
  const closed = "No connection established. Last error: Failed to connect (2026-12-04T20:47:38.368Z). Resolution note: ";
  const unavailable = { code: status.UNAVAILABLE, details: closed };
  assert.equal(fromServiceError(unavailable, false).message, `${TLS_SERVICE} (${closed})`);
  assert.equal(fromServiceError(unavailable, true).message, `${CERTIFICATE_REFUSED} (${closed})`);
  assert.equal(fromServiceError(unavailable).message, closed); // who knows what the client spoke
  const refused = "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ";
  assert.equal(fromServiceError({ code: status.UNAVAILABLE, details: refused }, false).message, refused);
  const relayed = `instance echo-1 (127.0.0.1:7001): UNAVAILABLE: ${closed}`;
  assert.equal(fromServiceError({ code: status.UNAVAILABLE, details: relayed }, false).message, relayed);
  assert.equal(fromServiceError({ code: status.INTERNAL, details: closed }, false).message, closed);
});
