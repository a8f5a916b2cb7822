// Tracing with the application's own OpenTelemetry provider (this file runs in a process of its own, so its global
// provider is its alone): an agent served for real on 127.0.0.1, called through the SDK's AgentClient, records a
// SERVER span per task under the caller's trace, the agent's own spans are its children, and the client carries the
// active span in the task it sends.
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";

import { context, trace, type Span } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

import { AgentClient, configureLogging, sleep, type AgentServer, type Json, type StreamItem, type Task } from "../index.js";
import { Metadata } from "@grpc/grpc-js";

import { remoteParent, traceContextOf, traceStateOf } from "../tracing.js";
import { EchoLike, served } from "./support.js";

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracer = trace.getTracer("test");

/** EchoLike whose work is a span of its own, and which reports the traceparent (and tracestate, when there is one)
 * its task arrived with. */
class TracedEcho extends EchoLike {
  override async execute(task: Task): Promise<Json> {
    return tracer.startActiveSpan("echo work", async (span: Span) => {
      await sleep(1);
      span.end();
      const opts = (task.payload ?? {}) as Record<string, Json>;
      if (typeof opts.sleep === "number") await sleep(opts.sleep * 1000, task.signal);
      if (opts.crash) throw new RangeError("crashed on request");
      const { traceparent, tracestate } = task.context;
      const seen: Record<string, Json> = { traceparent };
      if (tracestate) seen.tracestate = tracestate;
      return seen;
    });
  }

  override async *stream(_task: Task): AsyncGenerator<StreamItem, Json | void, undefined> {
    for (const word of ["a", "b"]) {
      await sleep(1);
      const work = tracer.startSpan(`word ${word}`);
      work.end();
      yield word;
    }
  }
}

let server: AgentServer & { agent: TracedEcho };
let client: AgentClient;
const CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN = "00f067aa0ba902b7";

before(async () => {
  server = await served(new TracedEcho(), { instanceId: "traced-1", namespace: "shop" });
  client = new AgentClient(server.address);
});

after(async () => {
  client.close();
  await server.stop(0);
});

beforeEach(() => exporter.reset());

function named(name: string): ReadableSpan {
  const found = exporter.getFinishedSpans().filter((s) => s.name === name);
  assert.equal(found.length, 1, `${name}: ${found.length} spans`);
  return found[0]!;
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

test("a task's SERVER span is the caller's child, with the agent's attributes, and the agent's spans are its", async () => {
  const sent = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;
  const result = await client.execute({}, { type: "say", context: { traceparent: sent } });
  assert.deepEqual(result.data, { traceparent: sent }); // a traceparent set by hand is sent as it is
  const served = named("sutradhar.v1.AgentService/Execute");
  assert.equal(served.kind, 1); // SpanKind.SERVER
  assert.equal(served.spanContext().traceId, CALLER_TRACE);
  assert.equal(parentOf(served), CALLER_SPAN);
  assert.deepEqual(served.attributes, {
    "rpc.system.name": "grpc", "rpc.method": "sutradhar.v1.AgentService/Execute", "sutradhar.namespace": "shop",
    "sutradhar.agent": "echo-like", "sutradhar.instance": "traced-1", "sutradhar.task.type": "say",
    "sutradhar.task.success": true, "rpc.response.status_code": "OK",
  });
  assert.equal(parentOf(named("echo work")), served.spanContext().spanId);
});

test("the call's traceparent metadata (the router's attempt) is the parent before the task's", async () => {
  const metadata = { traceparent: `00-${CALLER_TRACE}-1111111111111111-01` };
  await client.execute({}, { metadata, context: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } });
  assert.equal(parentOf(named("sutradhar.v1.AgentService/Execute")), "1111111111111111");
});

const STATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

test("the tracestate that goes with the parent is the task span's, and the agent's spans carry it on", async () => {
  const traceparent = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;
  await client.execute({}, { context: { traceparent, tracestate: STATE } });
  assert.equal(named("sutradhar.v1.AgentService/Execute").spanContext().traceState?.serialize(), STATE);
  assert.equal(named("echo work").spanContext().traceState?.serialize(), STATE);
  exporter.reset();
  // The metadata's traceparent takes the metadata's tracestate, never the task's.
  const attempt = `00-${CALLER_TRACE}-1111111111111111-01`;
  await client.execute({}, { metadata: { traceparent: attempt, tracestate: "rojo=1" },
    context: { traceparent, tracestate: STATE } });
  assert.equal(named("sutradhar.v1.AgentService/Execute").spanContext().traceState?.serialize(), "rojo=1");
  exporter.reset();
  await client.execute({}, { metadata: { traceparent: attempt }, context: { traceparent, tracestate: STATE } });
  assert.equal(named("sutradhar.v1.AgentService/Execute").spanContext().traceState?.serialize() ?? "", "");
});

test("traceContextOf: the metadata's pair (tracestate entries joined), else the task's; unprintable dropped", () => {
  const task = { traceparent: "task", tracestate: " b=2 " };
  const metadata = new Metadata();
  assert.deepEqual(traceContextOf(metadata, task), { traceparent: "task", tracestate: "b=2" });
  metadata.add("tracestate", "a=1");
  assert.deepEqual(traceContextOf(metadata, task), { traceparent: "task", tracestate: "b=2" }); // no traceparent
  metadata.add("traceparent", "tp");
  metadata.add("tracestate", " ");
  metadata.add("tracestate", "c=3");
  assert.deepEqual(traceContextOf(metadata, task), { traceparent: "tp", tracestate: "a=1,c=3" });
  assert.deepEqual(traceContextOf(new Metadata(), { traceparent: "task", tracestate: "a=\u00e9" }),
    { traceparent: "task", tracestate: "" });
});

test("traceStateOf reads a tracestate whole or not at all, as the Python SDK does", () => {
  const read = (header: string) => traceStateOf(header)?.serialize() ?? "";
  assert.equal(read(" congo=t61rcWkgMzE ,, rojo=00f067aa0ba902b7\t"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  assert.equal(read("tenant@vendor=x,k= v"), "tenant@vendor=x,k= v");
  for (const header of ["congo=1,bad", "congo=1,Rojo=2", "congo=1,congo=2", "a=b=c", "k=", "=v", "k=\u00e9", ""]) {
    assert.equal(read(header), "", header); // OpenTelemetry JS's parser would keep congo=1 of the first three
  }
  const members = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=${"v".repeat(20)}`).join(",");
  assert.equal(read(members(32)), members(32)); // 32 members, 831 characters: kept whole (JS's parser drops it)
  assert.equal(read(members(33)), "");
});

test("the client puts the active span in the task, so the agent continues the caller's trace", async () => {
  let caller: ReadableSpan | undefined;
  const result = await tracer.startActiveSpan("caller", async (span: Span) => {
    try {
      return await client.execute({});
    } finally {
      span.end();
      caller = named("caller");
    }
  });
  const ids = caller!.spanContext();
  assert.deepEqual(result.data, { traceparent: `00-${ids.traceId}-${ids.spanId}-01` });
  assert.equal(parentOf(named("sutradhar.v1.AgentService/Execute")), ids.spanId);
  // The active span's trace state goes with its traceparent.
  const parent = remoteParent(`00-${CALLER_TRACE}-${CALLER_SPAN}-01`, STATE);
  const carried = await tracer.startActiveSpan("caller", {}, parent, async (span: Span) => {
    try {
      return await client.execute({});
    } finally {
      span.end();
    }
  });
  assert.equal((carried.data as Record<string, Json>).tracestate, STATE);
  // Outside any span the task goes without one, and the agent's span is a root.
  exporter.reset();
  assert.deepEqual((await client.execute({})).data, { traceparent: "" });
  assert.equal(parentOf(named("sutradhar.v1.AgentService/Execute")), undefined);
});

test("a task past its deadline ends its span DEADLINE_EXCEEDED, an error", async () => {
  // The task's own deadline, before the call's: the agent ends the task (the caller's timeout would cancel it).
  await assert.rejects(client.execute({ sleep: 5 }, { timeoutMs: 5_000, context: { deadline: new Date(Date.now() + 300) } }));
  const served = named("sutradhar.v1.AgentService/Execute");
  assert.equal(served.attributes["rpc.response.status_code"], "DEADLINE_EXCEEDED");
  assert.equal(served.attributes["error.type"], "DEADLINE_EXCEEDED");
  assert.equal(served.attributes["sutradhar.task.success"], false);
  assert.equal(served.status.code, 2); // SpanStatusCode.ERROR
});

test("a task that arrives after its deadline is refused, and its span says so", async () => {
  await assert.rejects(client.execute({}, { context: { deadline: new Date(Date.now() - 1000) } }),
    (err: unknown) => String(err).includes("after its deadline had passed"));
  const served = named("sutradhar.v1.AgentService/Execute");
  assert.equal(served.attributes["rpc.response.status_code"], "DEADLINE_EXCEEDED");
  assert.equal(served.status.code, 2);
  assert.equal(exporter.getFinishedSpans().length, 1); // the agent's code never ran
});

test("a stream's span covers every step: the agent's spans in each are its children", async () => {
  const events = [];
  for await (const event of client.stream({}, { context: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } })) {
    events.push(event);
  }
  assert.ok(events.length >= 3);
  const served = named("sutradhar.v1.AgentService/ExecuteStream");
  assert.equal(parentOf(served), CALLER_SPAN);
  assert.equal(served.attributes["rpc.response.status_code"], "OK");
  for (const word of ["word a", "word b"]) assert.equal(parentOf(named(word)), served.spanContext().spanId);
});

test("a failing task's log line names the task's own span, not the caller's", async () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; }) as typeof write;
  configureLogging("json", "traced");
  try {
    const result = await client.execute({ crash: true }, { context: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } });
    assert.equal(result.success, false);
  } finally {
    process.stderr.write = write;
    configureLogging("text", "traced");
  }
  const failure = lines.map((l) => JSON.parse(l) as Record<string, string>).find((r) => r.level === "ERROR");
  const served = named("sutradhar.v1.AgentService/Execute");
  assert.equal(served.attributes["sutradhar.task.success"], false);
  assert.deepEqual([failure?.trace_id, failure?.span_id], [CALLER_TRACE, served.spanContext().spanId]);
});

test("a traceparent that is not valid W3C is no parent", () => {
  for (const bad of ["", "00-xyz", `ff-${CALLER_TRACE}-${CALLER_SPAN}-01`, `00-${"0".repeat(32)}-${CALLER_SPAN}-01`,
    `00-${CALLER_TRACE}-${"0".repeat(16)}-01`, `00-${CALLER_TRACE}-${CALLER_SPAN}-01-extra`]) {
    assert.equal(trace.getSpanContext(remoteParent(bad)), undefined, bad);
  }
  const good = trace.getSpanContext(remoteParent(` 00-${CALLER_TRACE.toUpperCase()}-${CALLER_SPAN}-01 `));
  assert.deepEqual([good?.traceId, good?.spanId, good?.traceFlags, good?.isRemote], [CALLER_TRACE, CALLER_SPAN, 1, true]);
});
