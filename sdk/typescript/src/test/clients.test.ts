import assert from "node:assert/strict";
import { inspect } from "node:util";
import { test } from "node:test";

import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";

import { AgentClient, Credentials, RouterClient, SpiffeId, SutradharError, status } from "../index.js";

test("credentials never show their token", () => {
  const credentials = Credentials.token("s3cret-token", "/etc/mesh/bundle.pem");
  assert.equal(String(credentials), "Credentials(token, trustDomain='sutradhar.local')");
  assert.ok(!inspect(credentials, { showHidden: true, depth: 5 }).includes("s3cret-token"));
  assert.ok(!JSON.stringify(credentials).includes("s3cret-token"));
  assert.equal(Credentials.insecure().isInsecure, true);
});

test("with TLS the expected service's DNS name is the TLS server name, as the Python SDK sends it", () => {
  const token = Credentials.token("s3cret-token", "/etc/mesh/bundle.pem");
  assert.deepEqual(token.channelOptions("router"),
    { "grpc.ssl_target_name_override": "router.service.sutradhar-system.sutradhar.local" });
  assert.deepEqual(token.channelOptions(), {}); // an agent: no identity expected, the address's host
  assert.deepEqual(Credentials.insecure().channelOptions("router"), {});
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

/** An ExecuteResponse whose result data is a Struct cut short (the Python SDK's test uses the same bytes). */
const CORRUPT = Buffer.from([0x0a, 0x09, 0x08, 0x01, 0x12, 0x05, 0x2a, 0x03, 0x0a, 0x64, 0x01]);
/** An ExecuteStreamResponse whose partial value is a Struct cut short. */
const CORRUPT_EVENT = Buffer.from([0x12, 0x05, 0x2a, 0x03, 0x0a, 0x64, 0x01]);

/** `service`'s Execute and ExecuteStream on a real grpc-js server, answering bytes that do not parse. */
async function garbageServer(service: string): Promise<[Server, string]> {
  const method = (name: string, streaming: boolean) => ({
    path: `/sutradhar.v1.${service}/${name}`, requestStream: false, responseStream: streaming,
    requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
  });
  const definition: ServiceDefinition = { execute: method("Execute", false), executeStream: method("ExecuteStream", true) };
  const implementation: UntypedServiceImplementation = {
    execute: (_call: unknown, reply: (err: null, answer: Buffer) => void) => reply(null, CORRUPT),
    executeStream: (call: { write(b: Buffer): void; end(): void }) => {
      call.write(CORRUPT_EVENT);
      call.end();
    },
  };
  const server = new Server();
  server.addService(definition, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))));
  return [server, `127.0.0.1:${port}`];
}

/** INTERNAL (gRPC's code for a response that does not parse, as the Python SDK raises) naming the address and service. */
function undecodable(address: string, service: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof SutradharError && err.code === status.INTERNAL &&
    err.message.includes(`${address} answered a message that is not a valid response of sutradhar.v1.${service} (`);
}

test("an agent's answer that does not decode is INTERNAL naming the address, called and streamed", async () => {
  const [server, address] = await garbageServer("AgentService");
  const client = new AgentClient(address, { timeoutMs: 5_000 });
  try {
    await assert.rejects(client.execute({ a: 1 }), undecodable(address, "AgentService"));
    await assert.rejects((async () => {
      for await (const _ of client.stream({ a: 1 })) { /* the first event does not decode */ }
    })(), undecodable(address, "AgentService"));
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test("a router's answer that does not decode is INTERNAL naming the address, called and streamed", async () => {
  const [server, address] = await garbageServer("RouterService");
  const client = new RouterClient(address, { timeoutMs: 5_000 });
  try {
    await assert.rejects(client.execute("echo", { a: 1 }), undecodable(address, "RouterService"));
    await assert.rejects((async () => {
      for await (const _ of client.stream("echo", { a: 1 })) { /* the first event does not decode */ }
    })(), undecodable(address, "RouterService"));
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test("an expected identity (an agent's) is the TLS server's, checked where it is given", () => {
  const token = Credentials.token("s3cret-token", "/etc/mesh/bundle.pem");
  const agent = SpiffeId.check("spiffe://sutradhar.local/ns/prod/agent/echo");
  assert.ok(agent instanceof SpiffeId);
  assert.deepEqual(token.channelOptions(agent), { "grpc.ssl_target_name_override": "echo.agent.prod.sutradhar.local" });
  assert.throws(() => new AgentClient("127.0.0.1:1", { credentials: token, expected: "echo" }),
    (err: unknown) => err instanceof SutradharError && err.code === status.INVALID_ARGUMENT &&
      err.message.startsWith('expected: "echo" is not a SPIFFE ID'));
  assert.throws(() => new AgentClient("127.0.0.1:1", { expected: String(agent) }),
    (err: unknown) => err instanceof SutradharError && err.code === status.INVALID_ARGUMENT &&
      err.message === `expected ${String(agent)} needs TLS credentials: an identity is only checked over TLS`);
});
