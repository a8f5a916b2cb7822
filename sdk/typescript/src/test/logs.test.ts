// Log redaction: what never reaches a log line, in either format.
import assert from "node:assert/strict";
import { test } from "node:test";

import { REDACTED, redact } from "../index.js";

test("bearer tokens, JWT-shaped strings and PEM private keys are redacted; the rest is kept", () => {
  assert.equal(redact("call failed: Authorization: Bearer abc.DEF-123_~+/="), `call failed: Authorization: Bearer ${REDACTED}`);
  assert.equal(redact("token eyJhbGciOi.eyJzdWIiOiJh.c2lnbmF0dXJl in the URL"), `token ${REDACTED} in the URL`);
  const key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
  assert.equal(redact(`read ${key} from file`), `read ${REDACTED} from file`);
  assert.equal(redact("cut -----BEGIN PRIVATE KEY-----\nMIIE"), `cut ${REDACTED}`);
  assert.equal(redact("agent echo listening on 127.0.0.1:7100"), "agent echo listening on 127.0.0.1:7100");
});
