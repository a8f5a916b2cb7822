import assert from "node:assert/strict";
import { test } from "node:test";

import { ERROR_NAMES, SutradharError, errorName, fromServiceError, status } from "../index.js";
import { PLAINTEXT_PEER } from "../errors.js";

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
