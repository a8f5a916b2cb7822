// SPIFFE IDs: the parts, agent and instance ids and DNS names of valid identities, and what is refused saying why,
// by the rules of sdk/sutradhar/_identity.py; a table of ids whose validity the Python parser confirmed keeps the two
// SDKs in step.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { SutradharError, status } from "../index.js";
import { MAX_DNS_NAME, SpiffeId, formatSpiffeId, trustDomainProblem } from "../identity.js";
import { certificateIdentity, instanceOfIdentity, serviceIdentity } from "../tls.js";

const TD = "sutradhar.local";

/** The reason `text` is refused (fails when it is accepted). */
function refusal(text: string): string {
  const id = SpiffeId.check(text);
  assert.equal(typeof id, "string", `${text} was accepted`);
  assert.equal(SpiffeId.parse(text), undefined);
  return id as string;
}

test("service, agent, replica and user identities parse into their parts, DNS names and the same text", () => {
  const parsed = (text: string): SpiffeId => {
    const id = SpiffeId.parse(text);
    assert.ok(id, `${text} was refused: ${String(SpiffeId.check(text))}`);
    assert.equal(id.toString(), text);
    assert.equal(String(id), text);
    return id;
  };
  const registry = parsed(`spiffe://${TD}/ns/sutradhar-system/service/registry`);
  assert.deepEqual([registry.trustDomain, registry.namespace, registry.kind, registry.name],
    [TD, "sutradhar-system", "service", "registry"]);
  assert.deepEqual([registry.agentId, registry.instanceId], ["", ""]);
  assert.equal(registry.dnsName(), "registry.service.sutradhar-system.sutradhar.local");
  assert.equal(serviceIdentity(TD, "registry"), registry.toString());

  const agent = parsed(`spiffe://${TD}/ns/team-a/agent/echo`);
  assert.deepEqual([agent.kind, agent.name, agent.agentId, agent.instanceId], ["agent", "echo", "echo", ""]);
  assert.equal(agent.dnsName(), "echo.agent.team-a.sutradhar.local");

  const replica = parsed(`spiffe://${TD}/ns/team-a/agent/echo/echo-7f3a`);
  assert.deepEqual([replica.name, replica.agentId, replica.instanceId], ["echo/echo-7f3a", "echo", "echo-7f3a"]);
  assert.equal(replica.dnsName(), "echo-7f3a.echo.agent.team-a.sutradhar.local");
  assert.equal(instanceOfIdentity(replica.toString()), "echo-7f3a");

  const dotted = parsed(`spiffe://${TD}/ns/team-a/agent/echo/pod-1.node-2`); // an instance id's dots stay
  assert.equal(dotted.instanceId, "pod-1.node-2");
  assert.equal(dotted.dnsName(), "pod-1.node-2.echo.agent.team-a.sutradhar.local");

  const user = parsed(`spiffe://${TD}/ns/sutradhar-system/user/admin`);
  assert.deepEqual([user.kind, user.name, user.agentId, user.instanceId], ["user", "admin", "", ""]);
  assert.equal(user.dnsName(), "admin.user.sutradhar-system.sutradhar.local");
  assert.equal(instanceOfIdentity(user.toString()), "");
  assert.equal(instanceOfIdentity("not an identity"), "");
});

test("what breaks a rule is refused saying which rule", () => {
  assert.equal(refusal(`https://${TD}/ns/team-a/user/app`),
    `"https://${TD}/ns/team-a/user/app" is not a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>)`);
  assert.equal(refusal(`spiffe://${TD}/ns/team-a/user`),
    `"spiffe://${TD}/ns/team-a/user" is not a Sutradhar identity (spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>)`);
  assert.match(refusal(`spiffe://${TD}/ns/team-a/agent/echo/echo-1/x`), /is not a Sutradhar identity/); // too many parts
  assert.match(refusal(`spiffe://${TD}/namespace/team-a/user/app`), /is not a Sutradhar identity/);
  assert.match(refusal(`spiffe://${TD}`), /is not a Sutradhar identity/);
  // uppercase, wherever it is
  assert.equal(refusal("spiffe://Sutradhar.local/ns/team-a/user/app"), `trust domain "Sutradhar.local" is not valid: ` +
    "use lowercase letters, digits, '-' and '.', at most 200 characters (e.g. sutradhar.local)");
  assert.equal(refusal(`spiffe://${TD}/ns/Team-A/user/app`), 'identity namespace "Team-A" is not a DNS-1123 label');
  assert.equal(refusal(`spiffe://${TD}/ns/team-a/Agent/echo`),
    'identity kind "Agent" is not one of service, agent, user');
  assert.equal(refusal(`spiffe://${TD}/ns/team-a/user/App`), 'identity name "App" of kind user must be a DNS-1123 label');
  assert.equal(refusal(`spiffe://${TD}/ns/team-a/agent/echo/Echo-1`),
    'identity name "echo/Echo-1" of kind agent must be <agent-id> or <agent-id>/<instance-id>');
  // empty parts
  assert.match(refusal(`spiffe:///ns/team-a/user/app`), /^trust domain "" is not valid/);
  assert.match(refusal(`spiffe://${TD}/ns//user/app`), /^identity namespace "" is not/);
  assert.match(refusal(`spiffe://${TD}/ns/team-a//app`), /^identity kind "" is not/);
  assert.match(refusal(`spiffe://${TD}/ns/team-a/user/`), /^identity name "" of kind user/);
  assert.match(refusal(`spiffe://${TD}/ns/team-a/agent//echo-1`), /^identity name "\/echo-1" of kind agent/);
  assert.match(refusal(`spiffe://${TD}/ns/team-a/agent/echo/`), /^identity name "echo\/" of kind agent/);
  // a wrong kind, a replica of what is not an agent
  assert.match(refusal(`spiffe://${TD}/ns/team-a/robot/echo`), /^identity kind "robot" is not one of/);
  assert.match(refusal(`spiffe://${TD}/ns/team-a/user/app/extra`), /^identity name "app\/extra" of kind user must be/);
  assert.match(refusal(`spiffe://${TD}/ns/sutradhar-system/service/registry/1`), /of kind service must be a DNS-1123/);
  // bad trust domains
  for (const domain of ["sutradhar..local", ".sutradhar.local", "sutradhar.local.", "-sutradhar.local",
    "sutradhar.local:8443", "sutradhar_local", "a".repeat(201)]) {
    assert.match(refusal(`spiffe://${domain}/ns/team-a/user/app`), /^trust domain .* is not valid/, domain);
    assert.notEqual(trustDomainProblem(domain), "");
  }
  assert.equal(trustDomainProblem(TD), "");
  assert.equal(trustDomainProblem("a".repeat(200)), "");
  // a label over 63 characters; a DNS name over 253
  assert.ok(SpiffeId.parse(`spiffe://${TD}/ns/${"a".repeat(63)}/user/app`));
  assert.match(refusal(`spiffe://${TD}/ns/${"a".repeat(64)}/user/app`), /namespace "a{64}" is not a DNS-1123 label/);
  assert.match(refusal(`spiffe://${TD}/ns/team-a/agent/echo/${"a".repeat(64)}`), /of kind agent must be/);
  const longest = `spiffe://${"t".repeat(180)}/ns/a/agent/b/${"c".repeat(62)}`;
  assert.equal(SpiffeId.parse(longest)?.dnsName().length, MAX_DNS_NAME);
  assert.equal(refusal(`${longest}c`), `identity ${longest}c is too long: its DNS name would pass 253 characters; ` +
    "use a shorter instance id, agent id, namespace or trust domain");
});

test("an identity built from its parts is checked the same way, naming the part", () => {
  const id = new SpiffeId(TD, "team-a", "agent", "echo/echo-1");
  assert.equal(id.toString(), formatSpiffeId(TD, "team-a", "agent", "echo/echo-1"));
  const refused = (field: string, ...parts: [string, string, string, string]): void => {
    assert.throws(() => new SpiffeId(...parts), (err: unknown) =>
      err instanceof SutradharError && err.code === status.INVALID_ARGUMENT && err.field === field);
  };
  refused("trustDomain", "Sutradhar.local", "team-a", "user", "app");
  refused("namespace", TD, "Team_A", "user", "app");
  refused("kind", TD, "team-a", "robot", "app");
  refused("name", TD, "team-a", "user", "app/1");
  refused("name", "t".repeat(180), "a", "agent", `b/${"c".repeat(63)}`); // a DNS name of 254 characters
});

/** A self-signed certificate (valid until 2126) for spiffe://sutradhar.local/ns/Team_A/agent/echo, an identity shaped
 * right but with a namespace that is no DNS-1123 label. */
const MISNAMED_CERT = `-----BEGIN CERTIFICATE-----
MIIBkjCCATmgAwIBAgIUcJOru9JQrsr2sSVaUjwrqYTUDdswCgYIKoZIzj0EAwIw
ADAgFw0yNjEyMDMxOTA5MjhaGA8yMTI2MTEwOTE5MDkyOFowADBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABDJclcJDVc/yN890CFJHxIteejIsWpJoHpiBaKT74NUi
K8DBDJsOYV69KknrbCg1JpbhC6wPsY0IDByDo5QicHijgY4wgYswHQYDVR0OBBYE
FFFidl/6dtCDaXdHfqX5gEeWta8RMB8GA1UdIwQYMBaAFFFidl/6dtCDaXdHfqX5
gEeWta8RMA8GA1UdEwEB/wQFMAMBAf8wOAYDVR0RBDEwL4Ytc3BpZmZlOi8vc3V0
cmFkaGFyLmxvY2FsL25zL1RlYW1fQS9hZ2VudC9lY2hvMAoGCCqGSM49BAMCA0cA
MEQCIAyhonFORb5gVXP1wAK4yQElYFuaGLf91fe36lGVfxPZAiAzAzL9yB6bS8e0
k5chgA254kVidAHr373tsmBYjXsQhg==
-----END CERTIFICATE-----
`;

test("a certificate file whose one SPIFFE ID is invalid is refused before an agent serves with it", () => {
  const certFile = join(mkdtempSync(join(tmpdir(), "sutradhar-identity-")), "cert.pem");
  writeFileSync(certFile, MISNAMED_CERT);
  assert.throws(() => certificateIdentity(certFile), (err: unknown) =>
    err instanceof SutradharError && err.code === status.FAILED_PRECONDITION && err.message ===
      `the certificate ${certFile} has no Sutradhar identity: identity namespace "Team_A" is not a DNS-1123 label`);
});

test("ids the Python SDK's SpiffeId.parse accepts and refuses, the TypeScript SDK accepts and refuses", () => {
  // Each validity was confirmed with sdk/sutradhar/_identity.py:
  //   .venv/bin/python -c 'from sutradhar._identity import SpiffeId; SpiffeId.parse("...")'
  const td180 = "t".repeat(180);
  const table: [string, boolean][] = [
    [`spiffe://${TD}/ns/sutradhar-system/service/registry`, true],
    [`spiffe://${TD}/ns/team-a/agent/echo`, true],
    [`spiffe://${TD}/ns/team-a/agent/echo/echo-7f3a`, true],
    [`spiffe://${TD}/ns/team-a/agent/echo/pod-1.node-2`, true],
    [`spiffe://${TD}/ns/sutradhar-system/user/admin`, true],
    ["spiffe://localhost/ns/a/user/b", true],
    ["spiffe://0.1-2/ns/0/user/9", true],
    [`spiffe://${"a".repeat(64)}/ns/team-a/user/app`, true], // a trust domain's labels have no length limit
    [`spiffe://${"a".repeat(200)}/ns/a/user/b`, true],
    [`spiffe://${"a".repeat(201)}/ns/a/user/b`, false],
    [`spiffe://${TD}/ns/${"a".repeat(63)}/user/app`, true],
    [`spiffe://${TD}/ns/${"a".repeat(64)}/user/app`, false],
    [`spiffe://${TD}/ns/team-a/user/${"a".repeat(64)}`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo/${"a".repeat(64)}`, false],
    [`spiffe://${td180}/ns/a/agent/b/${"c".repeat(62)}`, true], // a DNS name of 253 characters
    [`spiffe://${td180}/ns/a/agent/b/${"c".repeat(63)}`, false], // 254
    [`spiffe://${td180}/ns/a/agent/b/${"c".repeat(30)}.${"c".repeat(31)}`, true],
    [`spiffe://${td180}/ns/a/agent/b/${"c".repeat(31)}.${"c".repeat(31)}`, false],
    ["spiffe://Sutradhar.local/ns/team-a/user/app", false],
    [`spiffe://${TD}/ns/Team_A/user/app`, false],
    [`spiffe://${TD}/ns/team-a/user/App`, false],
    [`spiffe://${TD}/ns/team-a/Agent/echo`, false],
    [`spiffe://${TD}/ns/team-a/robot/echo`, false],
    [`spiffe://${TD}/ns/team-a/user/app/extra`, false],
    [`spiffe://${TD}/ns/team-a/service/registry/extra`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo/echo-1/x`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo/`, false],
    [`spiffe://${TD}/ns/team-a/agent//echo-1`, false],
    [`spiffe://${TD}/ns//user/app`, false],
    [`spiffe://${TD}/ns/team-a//app`, false],
    [`spiffe://${TD}/ns/team-a/user/`, false],
    ["spiffe:///ns/team-a/user/app", false],
    [`spiffe://${TD}/namespace/team-a/user/app`, false],
    [`spiffe://${TD}/ns/team-a/user`, false],
    [`spiffe://${TD}`, false],
    [`spiffe://${TD}/`, false],
    [`SPIFFE://${TD}/ns/team-a/user/app`, false],
    [`https://${TD}/ns/team-a/user/app`, false],
    ["spiffe://sutradhar..local/ns/team-a/user/app", false],
    ["spiffe://.sutradhar.local/ns/team-a/user/app", false],
    ["spiffe://sutradhar.local./ns/team-a/user/app", false],
    ["spiffe://-sutradhar.local/ns/team-a/user/app", false],
    ["spiffe://sutradhar.local:8443/ns/team-a/user/app", false],
    ["spiffe://sutradhar_local/ns/team-a/user/app", false],
    [`spiffe://${TD}/ns/-team/user/app`, false],
    [`spiffe://${TD}/ns/team-/user/app`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo/echo..1`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo/.echo`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo/echo_1`, false],
    [`spiffe://${TD}/ns/team-a/agent/echo.v2/echo-1`, false],
    [`spiffe://${TD}/ns/team-a/user/app.b`, false],
    [`spiffe://${TD}/ns/team-a/user/app `, false],
    [`spiffe://${TD}/ns/team-a/user/app\n`, false],
    [`spiffe://${TD}/ns/team-\u00e4/user/app`, false],
  ];
  for (const [text, valid] of table) assert.equal(SpiffeId.parse(text) !== undefined, valid, JSON.stringify(text));
});
