// An agent served for real on 127.0.0.1 and called through the SDK's own AgentClient.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

import { AgentClient, Partial, Progress, Result, SutradharError, status, type AgentServer } from "../index.js";
import { EchoLike, served } from "./support.js";

let server: AgentServer & { agent: EchoLike };
let client: AgentClient;

before(async () => {
  server = await served(new EchoLike(), { instanceId: "echo-like-1" });
  client = new AgentClient(server.address);
});

after(async () => {
  client.close();
  await server.stop(0);
});

async function collect<T>(events: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const event of events) out.push(event);
  return out;
}

test("Describe reports the agent", async () => {
  const described = await client.describe();
  assert.equal(described.id, "echo-like");
  assert.equal(described.version, "1.2.3");
  assert.deepEqual(described.capabilities, ["echo"]);
  assert.equal(described.streaming, true);
});

test("Execute returns the data with the metadata filled in, and the context arrives", async () => {
  const result = await client.execute({ n: 1, list: [true, null, "x"] }, { type: "say", id: "t-1", context: { userId: "ada" } });
  assert.equal(result.success, true);
  assert.deepEqual(result.data, { echo: { n: 1, list: [true, null, "x"] }, type: "say", id: "t-1", user: "ada" });
  assert.equal(result.metadata.agentId, "echo-like");
  assert.equal(result.metadata.agentVersion, "1.2.3");
  assert.equal(result.metadata.instanceId, "echo-like-1");
  assert.equal(result.metadata.taskId, "t-1");
  assert.ok((result.metadata.latencyMs ?? -1) >= 0);
  const generated = await client.execute(null);
  assert.match(String((generated.data as { id: string }).id), /^[0-9a-f]{32}$/);
});

test("failures: TaskFailed is its code, anything else AGENT_ERROR, non-JSON data AGENT_ERROR", async () => {
  const failed = await client.execute({ fail: "INVALID_INPUT" });
  assert.equal(failed.success, false);
  assert.deepEqual(failed.error, { code: "INVALID_INPUT", message: "failed on request", retryable: true, details: { why: "asked" } });
  const crashed = await client.execute({ crash: true });
  assert.deepEqual([crashed.error?.code, crashed.error?.message], ["AGENT_ERROR", "RangeError: crashed on request"]);
  const bad = await client.execute({ bad: true });
  assert.equal(bad.error?.code, "AGENT_ERROR");
  assert.match(bad.error?.message ?? "", /^TypeError: result data is not JSON-like: value is not JSON-like: Date/);
  assert.equal(bad.metadata.taskId?.length, 32);
});

test("a task type the agent does not accept is INVALID_ARGUMENT before execute runs", async () => {
  server.agent.taskTypes = ["say"];
  try {
    await assert.rejects(client.execute({}, { type: "shout" }), (err: unknown) =>
      err instanceof SutradharError && err.code === status.INVALID_ARGUMENT && err.errorName === "InvalidArgument" &&
      err.message === "agent echo-like does not accept task type 'shout'; it accepts 'say' (or an empty type)");
    assert.equal((await client.execute({})).success, true); // an empty type is accepted
  } finally {
    server.agent.taskTypes = [];
  }
});

test("the caller's deadline ends the call with DEADLINE_EXCEEDED and aborts the task's signal", async () => {
  const before = server.agent.aborted.length;
  const started = Date.now();
  await assert.rejects(client.execute({ sleep: 5 }, { timeoutMs: 300 }), (err: unknown) =>
    err instanceof SutradharError && err.code === status.DEADLINE_EXCEEDED && err.errorName === "DeadlineExceeded");
  assert.ok(Date.now() - started < 2000);
  await waitFor(() => server.agent.aborted.length > before);
  await waitFor(() => server.servicer.metrics.inFlight === 0);
  const deadline = new Date(Date.now() + 200); // the task context's own deadline counts too
  await assert.rejects(client.execute({ sleep: 5 }, { context: { deadline } }), (err: unknown) =>
    err instanceof SutradharError && err.code === status.DEADLINE_EXCEEDED);
  await assert.rejects(client.execute({}, { context: { deadline: new Date(Date.now() - 1000) } }),
    /reached agent echo-like after its deadline had passed/);
});

test("a stream is progress and partials in order, then exactly one result", async () => {
  const events = await collect(client.stream({ text: "a b c" }));
  assert.deepEqual(events.slice(0, 6), [
    new Progress("word 1/3", 1 / 3), new Partial("a"), new Progress("word 2/3", 2 / 3), new Partial("b"),
    new Progress("word 3/3", 1), new Partial("c"),
  ]);
  const final = events[6];
  assert.ok(final instanceof Result && final.success);
  assert.deepEqual(final.data, ["a", "b", "c"]); // no final result: the list of partials
  assert.equal(events.length, 7);
  const returned = (await collect(client.stream({ text: "x", final: "return" }))).at(-1) as Result;
  assert.deepEqual(returned.data, { words: 1 });
  const yielded = await collect(client.stream({ text: "x y", final: "yield" }));
  assert.deepEqual((yielded.at(-1) as Result).data, { yielded: true });
  const failed = (await collect(client.stream({ text: "x", fail: "NOPE" }))).at(-1) as Result;
  assert.equal(failed.error?.code, "NOPE");
});

test("cancelling a stream (AbortSignal) stops the agent's generator", async () => {
  const controller = new AbortController();
  const closed = server.agent.closed;
  const seen: unknown[] = [];
  await assert.rejects((async () => {
    for await (const event of client.stream({ text: "a b c d e f g h", delay: 0.2 }, { signal: controller.signal })) {
      seen.push(event);
      if (seen.length === 2) controller.abort();
    }
  })(), (err: unknown) => err instanceof SutradharError && err.code === status.CANCELLED);
  await waitFor(() => server.agent.closed > closed);
  await waitFor(() => server.servicer.metrics.inFlight === 0);
  assert.equal(seen.length, 2);
});

test("an aborted signal cancels a unary call", async () => {
  const controller = new AbortController();
  const call = client.execute({ sleep: 5 }, { signal: controller.signal });
  setTimeout(() => controller.abort(), 100);
  await assert.rejects(call, (err: unknown) => err instanceof SutradharError && err.errorName === "Cancelled");
  await waitFor(() => server.servicer.metrics.inFlight === 0);
});

test("Metrics counts requests and errors and serves custom gauges", async () => {
  const before = await client.metrics();
  await client.execute({ fail: "X" });
  const after = await client.metrics();
  assert.equal(after.requestsTotal, before.requestsTotal + 1n);
  assert.equal(after.errorsTotal, before.errorsTotal + 1n);
  assert.equal(typeof after.custom.closed, "number");
});

type HealthStub = { check(req: { service: string }, cb: (err: ServiceError | null, res?: { status: string }) => void): void; close(): void };

async function healthOf(address: string): Promise<string> {
  const Health = makeGenericClientConstructor(healthService, "Health");
  const health = new Health(address, credentials.createInsecure()) as unknown as HealthStub;
  try {
    return await new Promise((resolve, reject) => health.check({ service: "sutradhar.v1.AgentService" },
      (err, res) => (err ? reject(err) : resolve(String(res?.status)))));
  } finally {
    health.close();
  }
}

test("grpc health follows checkHealth, and draining is NOT_SERVING with new tasks and streams UNAVAILABLE", async () => {
  const other = await served(new EchoLike());
  const otherClient = new AgentClient(other.address);
  try {
    assert.equal(await healthOf(other.address), "SERVING");
    other.agent.healthy = false;
    await waitFor(async () => (await healthOf(other.address)) === "NOT_SERVING");
    other.agent.healthy = true;
    await waitFor(async () => (await healthOf(other.address)) === "SERVING");
    const slow = otherClient.execute({ sleep: 0.5 });
    await waitFor(() => other.servicer.metrics.inFlight === 1);
    const stopping = other.stop(2000);
    assert.equal(await healthOf(other.address), "NOT_SERVING");
    const draining = (err: unknown): boolean =>
      err instanceof SutradharError && err.code === status.UNAVAILABLE && /is draining/.test(err.message);
    await assert.rejects(otherClient.execute({}), draining);
    await assert.rejects(collect(otherClient.stream({ text: "x" }, { timeoutMs: 3000 })), draining);
    assert.equal((await slow).success, true); // in-flight work finishes within the grace
    await stopping;
  } finally {
    otherClient.close();
    await other.stop(0);
  }
});

test("tasks still running when the grace ends are aborted and their callers get UNAVAILABLE", async () => {
  const other = await served(new EchoLike());
  const otherClient = new AgentClient(other.address);
  try {
    const slow = otherClient.execute({ sleep: 5 });
    await waitFor(() => other.servicer.metrics.inFlight === 1);
    const stopping = other.stop(200);
    await assert.rejects(slow, (err: unknown) => err instanceof SutradharError && err.code === status.UNAVAILABLE);
    await stopping;
    assert.equal(other.agent.aborted.length, 1);
  } finally {
    otherClient.close();
  }
});

async function waitFor(check: () => boolean | Promise<boolean>, limitMs = 3000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`condition not met within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test("bytes that are not a valid request are INVALID_ARGUMENT, and the agent keeps answering", async () => {
  const raw = new Client(server.address, credentials.createInsecure());
  try {
    const code = await new Promise<number>((resolve) => raw.makeUnaryRequest("/sutradhar.v1.AgentService/Execute",
      (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x20]), (err: ServiceError | null) => {
        assert.match(err?.details ?? "", /^request is not a valid sutradhar\.v1\.ExecuteRequest: /);
        resolve(err?.code ?? 0);
      }));
    assert.equal(code, status.INVALID_ARGUMENT);
  } finally {
    raw.close();
  }
  assert.equal((await client.describe()).id, "echo-like");
});

test("a refused stream ends with its status: task type, a passed deadline", async () => {
  server.agent.taskTypes = ["say"];
  try {
    await assert.rejects(collect(client.stream({}, { type: "shout", timeoutMs: 3000 })), (err: unknown) =>
      err instanceof SutradharError && err.code === status.INVALID_ARGUMENT && /does not accept task type 'shout'/.test(err.message));
  } finally {
    server.agent.taskTypes = [];
  }
  await assert.rejects(collect(client.stream({}, { context: { deadline: new Date(Date.now() - 1000) }, timeoutMs: 3000 })),
    (err: unknown) => err instanceof SutradharError && err.code === status.DEADLINE_EXCEEDED &&
      /after its deadline had passed/.test(err.message));
});

test("a stream past its deadline ends with DEADLINE_EXCEEDED from the agent, and the work stops", async () => {
  const closed = server.agent.closed;
  const deadline = new Date(Date.now() + 300); // the task's own deadline: the agent, not the client, ends it
  await assert.rejects(collect(client.stream({ text: "a b c d e f", delay: 0.2 }, { context: { deadline } })),
    (err: unknown) => err instanceof SutradharError && err.code === status.DEADLINE_EXCEEDED &&
      /streamed task .* did not finish before its deadline/.test(err.message));
  await waitFor(() => server.agent.closed > closed);
  await waitFor(() => server.servicer.metrics.inFlight === 0);
});
