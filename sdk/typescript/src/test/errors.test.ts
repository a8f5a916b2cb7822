import assert from "node:assert/strict";
import { test } from "node:test";

import { ERROR_NAMES, SutradharError, errorName, fromServiceError, status } from "../index.js";

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
