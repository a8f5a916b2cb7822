/**
 * OpenTelemetry tracing of an agent's tasks and of the tasks a client sends, through the OpenTelemetry API
 * (`@opentelemetry/api`) and whatever tracer provider the application registered. With none registered (the
 * API's no-op provider) nothing is recorded and the calls below cost a non-recording span each.
 *
 * The same spans as the Python SDK's (`sutradhar._tracing.task_span`): one SERVER span per task an agent runs,
 * named by its method (`sutradhar.v1.AgentService/Execute`, `.../ExecuteStream`), a child of the caller's
 * trace context (the call's `traceparent` and `tracestate` metadata, as the router sends them, else the task's
 * own: `traceContextOf`), current while the agent's code runs, so the spans that code starts are its children
 * and carry the caller's trace state on.
 */

import type { Metadata } from "@grpc/grpc-js";
import {
  context,
  createTraceState,
  ROOT_CONTEXT,
  type Context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type TraceState,
} from "@opentelemetry/api";

/** The instrumentation scope of an agent's task spans (the Python SDK's too). */
export const AGENT_TRACER = "sutradhar.agent";

/** gRPC status names that mark a SERVER span as an error (the RPC conventions: the server's fault). */
const SERVER_ERROR_CODES = new Set(["UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
  "DATA_LOSS"]);

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/** A W3C trace context as two header values: `tracestate` is "" when there is none. */
export interface TraceContext {
  traceparent: string;
  tracestate: string;
}

/** Whether `value` can be a header or metadata value as it is: printable ASCII (a W3C `tracestate` is nothing
 * else). The Python SDK's `header_safe`. */
function headerSafe(value: string): boolean {
  return /^[\x20-\x7e]*$/.test(value);
}

/** The trace context a call continues: the gRPC metadata's `traceparent` when it has one, with the metadata's own
 * `tracestate` entries (joined with ",", as W3C says of repeated headers), else the task's `traceparent` and
 * `tracestate`. A `tracestate` that is not printable ASCII is "". The Python SDK's rule
 * (`sutradhar._log_context.trace_context_of`), so a call reaching an agent in either language continues the same
 * context. */
export function traceContextOf(metadata: Metadata, task: TraceContext): TraceContext {
  const traceparent = String(metadata.get("traceparent")[0] ?? "");
  let tracestate = task.tracestate.trim();
  if (traceparent) {
    tracestate = metadata.get("tracestate").map((entry) => String(entry).trim()).filter(Boolean).join(",");
  }
  return {
    traceparent: traceparent || task.traceparent,
    tracestate: tracestate && headerSafe(tracestate) ? tracestate : "",
  };
}

/** A W3C `tracestate` list member, `key=value`, in the grammar OpenTelemetry's Python parser holds members to. */
const TRACESTATE_MEMBER = new RegExp("^([a-z][_0-9a-z\\-*/]{0,255}|[a-z0-9][_0-9a-z\\-*/]{0,240}@[a-z][_0-9a-z\\-*/]{0,13})" +
  "=([\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,255}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e])$");
/** The most members a `tracestate` may have (W3C). */
const MAX_TRACESTATE_MEMBERS = 32;

/** The trace state a W3C `tracestate` header value holds, read whole or not at all, as the Python SDK reads it
 * (OpenTelemetry Python's `TraceState.from_header`; the spec lets a vendor discard a header it cannot parse): a
 * member that is not `key=value` of the W3C grammar, a key that repeats or more than 32 members leave none (undefined);
 * empty members and spaces or tabs around a member are skipped. So an agent in either language carries on the same
 * trace state (OpenTelemetry JS's own parser keeps the members it can read and drops a header over 512 characters). */
export function traceStateOf(header: string): TraceState | undefined {
  const members: Array<[string, string]> = [];
  const keys = new Set<string>();
  for (const part of header.split(",")) {
    const member = part.replace(/^[ \t]+|[ \t]+$/g, "");
    if (!member) continue;
    const [, key = "", value = ""] = TRACESTATE_MEMBER.exec(member) ?? [];
    if (!key || keys.has(key)) return undefined;
    keys.add(key);
    members.push([key, value]);
  }
  if (members.length === 0 || members.length > MAX_TRACESTATE_MEMBERS) return undefined;
  // `set` puts a key first: set the last member first, so the state keeps the header's order.
  return members.reduceRight((state, [key, value]) => state.set(key, value), createTraceState());
}

/** The context of a W3C `traceparent` value (a remote parent) carrying the trace state of `tracestate`
 * (`traceStateOf`), the root context when the `traceparent` is not a valid one. */
export function remoteParent(traceparent: string, tracestate = ""): Context {
  const value = traceparent.trim().toLowerCase();
  const match = TRACEPARENT.exec(value);
  if (!match) return ROOT_CONTEXT;
  const [, version, traceId = "", spanId = "", flags = "00"] = match;
  // As the W3C Trace Context spec (and the Python SDK) says: version ff, an all-zero id, or a version 00 value
  // with extra fields is not a parent.
  if (version === "ff" || /^0+$/.test(traceId) || /^0+$/.test(spanId) || (version === "00" && value.length !== 55)) {
    return ROOT_CONTEXT;
  }
  const traceState = tracestate ? traceStateOf(tracestate) : undefined;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId, spanId, traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true,
    ...(traceState ? { traceState } : {}),
  });
}

/** The `traceparent` and `tracestate` of the active span (sampled or not); undefined when no span is active. The
 * clients put them in a task that has no `traceparent`, so the router or agent it reaches continues the caller's
 * trace. */
export function currentTraceContext(): TraceContext | undefined {
  const span = trace.getSpan(context.active());
  const ctx = span?.spanContext();
  if (!ctx || !trace.isSpanContextValid(ctx)) return undefined;
  return {
    traceparent: `00-${ctx.traceId}-${ctx.spanId}-${(ctx.traceFlags & TraceFlags.SAMPLED) ? "01" : "00"}`,
    tracestate: ctx.traceState?.serialize() ?? "",
  };
}

/** The trace and span ids of the active span when it records (a task's span while its agent's code runs);
 * undefined otherwise (a non-recording span only repeats its parent's ids, which the task's traceparent has). */
export function recordingIds(): { traceId: string; spanId: string } | undefined {
  const span = trace.getSpan(context.active());
  if (!span?.isRecording()) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

/** Where a task runs, for its span's attributes. */
export interface TaskPlace {
  namespace: string;
  agent: string;
  instance: string;
  taskType: string;
}

/** One task's SERVER span and the context the agent's code runs in (the span current in it). */
export interface TaskSpan {
  span: Span;
  context: Context;
}

/** Start the SERVER span of one task of `method` under the trace context `parent` (a root when its `traceparent`
 * is not valid). */
export function startTaskSpan(method: string, caller: TraceContext, place: TaskPlace): TaskSpan {
  const parent = remoteParent(caller.traceparent, caller.tracestate);
  const span = trace.getTracer(AGENT_TRACER).startSpan(method, {
    kind: SpanKind.SERVER,
    attributes: {
      "rpc.system.name": "grpc", "rpc.method": method, "sutradhar.namespace": place.namespace,
      "sutradhar.agent": place.agent, "sutradhar.instance": place.instance, "sutradhar.task.type": place.taskType,
    },
  }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** End a task span: the status name the call ends with (`code`, "OK" or e.g. "DEADLINE_EXCEEDED"), why
 * (`message`), and whether the task's result succeeded. */
export function endTaskSpan(span: Span, code: string, message: string, success: boolean): void {
  span.setAttribute("sutradhar.task.success", success);
  span.setAttribute("rpc.response.status_code", code);
  if (code !== "OK") {
    span.setAttribute("error.type", code);
    if (SERVER_ERROR_CODES.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, 512) });
  }
  span.end();
}
