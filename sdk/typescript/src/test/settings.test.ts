import assert from "node:assert/strict";
import { test } from "node:test";

import { AgentServer, DEFAULT_SETTINGS, SutradharError, serveSettings, status } from "../index.js";
import { EchoLike } from "./support.js";

test("settings come from SUTRADHAR_* variables, explicit values win, empty counts as unset", () => {
  const settings = serveSettings({ namespace: "explicit" }, {
    SUTRADHAR_PORT: "7100", SUTRADHAR_HOST: "0.0.0.0", SUTRADHAR_INSTANCE_ID: "echo-1", SUTRADHAR_NAMESPACE: "env",
    SUTRADHAR_AGENT_ID: "echo-deployed", SUTRADHAR_AGENT_VERSION: "2.0.0", SUTRADHAR_INSECURE: "1",
    SUTRADHAR_TTL: "250ms", SUTRADHAR_GRACE: "1.5s", SUTRADHAR_LABELS: "tier=gold, zone=a", SUTRADHAR_REGISTRY: "",
    SUTRADHAR_TLS_CA_FILE: "/ca.pem", SUTRADHAR_REGISTER_AGENT: "off",
  });
  assert.equal(settings.port, 7100);
  assert.equal(settings.host, "0.0.0.0");
  assert.equal(settings.instanceId, "echo-1");
  assert.equal(settings.namespace, "explicit");
  assert.equal(settings.agentId, "echo-deployed");
  assert.equal(settings.agentVersion, "2.0.0");
  assert.equal(settings.insecure, true);
  assert.equal(settings.ttlMs, 250);
  assert.equal(settings.graceMs, 1500);
  assert.deepEqual(settings.labels, { tier: "gold", zone: "a" });
  assert.equal(settings.registry, undefined);
  assert.equal(settings.tlsCaFile, "/ca.pem");
  assert.equal(settings.registerAgent, false);
  assert.equal(serveSettings({}, {}).healthPeriodMs, DEFAULT_SETTINGS.healthPeriodMs);
  const metrics = serveSettings({}, { SUTRADHAR_METRICS_PORT: "0", SUTRADHAR_METRICS_OPTIONAL: "1" });
  assert.deepEqual([metrics.metricsPort, metrics.metricsOptional], [0, true]);
  assert.deepEqual([serveSettings({}, {}).metricsPort, serveSettings({}, {}).metricsOptional], [undefined, false]);
  assert.equal(serveSettings({}, { SUTRADHAR_LOG_FORMAT: "JSON" }).logFormat, "json");
  assert.equal(serveSettings({}, {}).logFormat, "text");
  assert.equal(serveSettings({}, { SUTRADHAR_LOG_LEVEL: " info " }).logLevel, "INFO");
  assert.equal(serveSettings({}, {}).logLevel, "WARNING");
  assert.equal(serveSettings({}, { SUTRADHAR_ACCESS_REVIEW: "127.0.0.1:50051" }).accessReview, "127.0.0.1:50051");
  assert.equal(serveSettings({}, {}).accessReview, undefined);
});

test("a malformed variable is INVALID_ARGUMENT naming it and what it should be", () => {
  assert.throws(() => serveSettings({}, { SUTRADHAR_PORT: "70000" }), (err: unknown) =>
    err instanceof SutradharError && err.code === status.INVALID_ARGUMENT &&
    err.message === 'SUTRADHAR_PORT="70000" is not a port number (0-65535)');
  assert.throws(() => serveSettings({}, { SUTRADHAR_TTL: "0s" }), /SUTRADHAR_TTL="0s" is not a duration above zero/);
  assert.throws(() => serveSettings({}, { SUTRADHAR_INSECURE: "maybe" }), /SUTRADHAR_INSECURE="maybe" is not a boolean/);
  assert.throws(() => serveSettings({}, { SUTRADHAR_METRICS_PORT: "x" }), /SUTRADHAR_METRICS_PORT="x" is not a port number/);
  assert.throws(() => serveSettings({}, { SUTRADHAR_LOG_FORMAT: "xml" }), /SUTRADHAR_LOG_FORMAT="xml" is not one of text, json/);
  assert.throws(() => serveSettings({}, { SUTRADHAR_LOG_LEVEL: "loud" }), (err: unknown) =>
    err instanceof SutradharError && err.code === status.INVALID_ARGUMENT &&
    err.message === 'SUTRADHAR_LOG_LEVEL="loud" is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL');
  for (const bad of ["Sutradhar.local", "mesh..local", "-mesh.local", "a".repeat(201)]) {
    assert.throws(() => serveSettings({}, { SUTRADHAR_TRUST_DOMAIN: bad }), (err: unknown) =>
      err instanceof SutradharError && err.code === status.INVALID_ARGUMENT &&
      err.message.startsWith(`SUTRADHAR_TRUST_DOMAIN=${JSON.stringify(bad)} is not a trust domain: lowercase letters`));
  }
  assert.equal(serveSettings({}, { SUTRADHAR_TRUST_DOMAIN: "prod.example.com" }).trustDomain, "prod.example.com");
  assert.equal(serveSettings({}, {}).trustDomain, "sutradhar.local");
});

test("an explicit value is held to the same rule as its variable, INVALID_ARGUMENT naming the option", () => {
  const refused = (options: Record<string, unknown>, message: string): void => {
    assert.throws(() => serveSettings(options as Parameters<typeof serveSettings>[0], {}), (err: unknown) =>
      err instanceof SutradharError && err.code === status.INVALID_ARGUMENT && err.message === message);
  };
  refused({ port: 70000 }, "serve option port=70000 is not a port number (0-65535)");
  refused({ port: 1.5 }, "serve option port=1.5 is not a port number (0-65535)");
  refused({ ttlMs: 0 }, "serve option ttlMs=0 is not a number of milliseconds above zero");
  refused({ graceMs: -1 }, "serve option graceMs=-1 is not a number of milliseconds, zero or more");
  refused({ maxMessageBytes: 0 }, "serve option maxMessageBytes=0 is not a whole number above zero");
  refused({ insecure: "yes" }, 'serve option insecure="yes" is not a boolean (1, true, yes, on or 0, false, no, off)');
  refused({ logLevel: "info" }, 'serve option logLevel="info" is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL');
  refused({ labels: { tier: 1 } }, 'serve option labels={"tier":1} is not an object of string values');
  refused({ namespace: 7 }, "serve option namespace=7 is not a string");
  assert.throws(() => serveSettings({ trustDomain: "Mesh.Local" }, {}),
    /^SutradharError: serve option trustDomain="Mesh.Local" is not a trust domain: lowercase letters/);
  const fine = serveSettings({ port: 0, ttlMs: 250, graceMs: 0, labels: { tier: "gold" }, logLevel: "INFO" }, {});
  assert.deepEqual([fine.port, fine.ttlMs, fine.graceMs, fine.labels, fine.logLevel], [0, 250, 0, { tier: "gold" }, "INFO"]);
});

test("an agent needs certificates or insecure, and insecure only on loopback", () => {
  const refused = (options: Parameters<typeof serveSettings>[0], pattern: RegExp): void => {
    assert.throws(() => new AgentServer(new EchoLike(), options), (err: unknown) =>
      err instanceof SutradharError && err.code === status.FAILED_PRECONDITION && pattern.test(err.message));
  };
  refused({}, /agent echo-like needs a certificate: set SUTRADHAR_TLS_CERT_FILE/);
  refused({ insecure: true, host: "0.0.0.0" }, /insecure is refused on 0\.0\.0\.0/);
  refused({ tlsCertFile: "/c.pem" }, /go together: set all three/);
  refused({ insecure: true, tlsCertFile: "/c", tlsKeyFile: "/k", tlsCaFile: "/ca" }, /contradict each other/);
  refused({ tlsCertFile: "/missing/c.pem", tlsKeyFile: "/missing/k.pem", tlsCaFile: "/missing/ca.pem" },
    /cannot read the private key \/missing\/k\.pem \(ENOENT\)/);
  assert.ok(new AgentServer(new EchoLike(), { insecure: true, host: "0.0.0.0", publishedOnLoopback: true }));
});

test("an agent with a bad identity is refused before it serves", () => {
  const agent = new EchoLike();
  agent.version = "one";
  assert.throws(() => new AgentServer(agent, { insecure: true }), /agent version "one" is not a semantic version/);
  assert.throws(() => new AgentServer(new EchoLike(), { insecure: true, agentId: "Not_A_Label" }),
    /agent id "Not_A_Label" is not a DNS-1123 label/);
});
