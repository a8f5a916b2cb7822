// Log redaction: what never reaches a log line, in either format.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LOG_LEVELS, REDACTED, configureLogging, redact } from "../index.js";
import { announce, log } from "../logs.js";

test("bearer tokens, JWT-shaped strings and PEM private keys are redacted; the rest is kept", () => {
  assert.equal(redact("call failed: Authorization: Bearer abc.DEF-123_~+/="), `call failed: Authorization: Bearer ${REDACTED}`);
  assert.equal(redact("token eyJhbGciOi.eyJzdWIiOiJh.c2lnbmF0dXJl in the URL"), `token ${REDACTED} in the URL`);
  const key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
  assert.equal(redact(`read ${key} from file`), `read ${REDACTED} from file`);
  assert.equal(redact("cut -----BEGIN PRIVATE KEY-----\nMIIE"), `cut ${REDACTED}`);
  assert.equal(redact("agent echo listening on 127.0.0.1:7100"), "agent echo listening on 127.0.0.1:7100");
});

test("lines below the configured level are dropped; announcements are written at any level", (t) => {
  const lines: string[] = [];
  t.mock.method(process.stderr, "write", (chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    configureLogging("text", "echo", {}, "ERROR");
    log("WARNING", "test", "a warning");
    log("ERROR", "test", "an error");
    log("CRITICAL", "test", "a critical line");
    announce("test", "agent echo listening on 127.0.0.1:1");
    configureLogging("json", "echo", {}, "DEBUG");
    log("DEBUG", "test", "a debug line");
  } finally {
    configureLogging("text", "echo");
  }
  log("INFO", "test", "dropped at the default level, WARNING");
  t.mock.restoreAll();
  assert.deepEqual(lines.slice(0, 3), ["an error\n", "a critical line\n", "agent echo listening on 127.0.0.1:1\n"]);
  assert.equal(lines.length, 4);
  assert.deepEqual({ ...JSON.parse(lines[3] ?? ""), time: "" },
    { time: "", level: "DEBUG", service: "echo", logger: "test", message: "a debug line" });
  assert.deepEqual(LOG_LEVELS, ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]);
});
