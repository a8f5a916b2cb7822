// The SDK's plain types <-> the generated messages of sutradhar.v1 (mirrors sdk/sutradhar/_convert.py).
import { create } from "@bufbuild/protobuf";

import { Partial, Progress, Result, type ResultMetadata, type StreamEvent, type Task, type TaskContext } from "./agent.js";
import {
  ProgressSchema,
  ResultMetadataSchema,
  ResultSchema,
  TaskContextSchema,
  TaskErrorSchema,
  TaskSchema,
  type Result as ResultMessage,
  type Task as TaskMessage,
  type TaskContext as TaskContextMessage,
} from "./gen/sutradhar/v1/agent_pb.js";
import type { Json } from "./values.js";
import {
  durationFromMs,
  durationToMs,
  fromValue,
  timestampFromDate,
  timestampToDate,
  checkedObject,
  toValue,
} from "./values.js";

/** A task's context as sent by a caller: every field optional. */
export type TaskContextInit = { [K in keyof TaskContext]?: TaskContext[K] };

export function contextFromProto(context: TaskContextMessage | undefined): TaskContext {
  return {
    sessionId: context?.sessionId ?? "",
    userId: context?.userId ?? "",
    requestId: context?.requestId ?? "",
    deadline: timestampToDate(context?.deadline),
    traceparent: context?.traceparent ?? "",
    tracestate: context?.tracestate ?? "",
    attributes: { ...context?.attributes },
  };
}

export function contextToProto(context: TaskContextInit = {}): TaskContextMessage {
  return create(TaskContextSchema, {
    sessionId: context.sessionId ?? "",
    userId: context.userId ?? "",
    requestId: context.requestId ?? "",
    ...(context.deadline ? { deadline: timestampFromDate(context.deadline) } : {}),
    traceparent: context.traceparent ?? "",
    tracestate: context.tracestate ?? "",
    attributes: { ...context.attributes },
  });
}

/** A task message as the plain Task handed to an agent (with `signal`). */
export function taskFromProto(task: TaskMessage | undefined, signal: AbortSignal): Task {
  return {
    id: task?.id ?? "",
    type: task?.type ?? "",
    payload: fromValue(task?.payload),
    context: contextFromProto(task?.context),
    signal,
  };
}

/** A task message from its parts; TypeError when the payload is not JSON-like. */
export function taskToProto(task: { id?: string; type?: string; payload?: unknown; context?: TaskContextInit }): TaskMessage {
  return create(TaskSchema, {
    id: task.id ?? "",
    type: task.type ?? "",
    payload: toValue(task.payload === undefined ? null : task.payload),
    context: contextToProto(task.context),
  });
}

function metadataToProto(meta: ResultMetadata): ResultMessage["metadata"] {
  return create(ResultMetadataSchema, {
    ...(meta.latencyMs !== undefined ? { latency: durationFromMs(meta.latencyMs) } : {}),
    agentId: meta.agentId ?? "",
    agentVersion: meta.agentVersion ?? "",
    instanceId: meta.instanceId ?? "",
    attempts: meta.attempts ?? 0,
    taskId: meta.taskId ?? "",
  });
}

/** A Result as its message; TypeError when its data (or error details) is not JSON-like. */
export function resultToProto(result: Result): ResultMessage {
  return create(ResultSchema, {
    success: result.success,
    ...(result.success ? { data: toValue(result.data) } : {}),
    ...(result.error
      ? {
          error: create(TaskErrorSchema, {
            code: result.error.code,
            message: result.error.message,
            retryable: result.error.retryable,
            ...(result.error.details ? { details: checkedObject(result.error.details) } : {}),
          }),
        }
      : {}),
    metadata: metadataToProto(result.metadata),
  });
}

/** A result message as a Result. */
export function resultFromProto(result: ResultMessage | undefined): Result {
  const meta = result?.metadata;
  const error = result?.error;
  return new Result(
    result?.success ?? false,
    fromValue(result?.data),
    error ? { code: error.code, message: error.message, retryable: error.retryable, details: error.details as Record<string, Json> | undefined } : undefined,
    {
      latencyMs: durationToMs(meta?.latency),
      agentId: meta?.agentId ?? "",
      agentVersion: meta?.agentVersion ?? "",
      instanceId: meta?.instanceId ?? "",
      attempts: meta?.attempts ?? 0,
      taskId: meta?.taskId ?? "",
    },
  );
}

/** The oneof `event` of a streamed response (agent's or router's) as a StreamEvent; undefined for an empty one. */
export function eventFromProto(
  event: { case: "progress"; value: { message: string; fraction: number } } | { case: "partial"; value: Parameters<typeof fromValue>[0] } | { case: "result"; value: ResultMessage } | { case: undefined; value?: undefined },
): StreamEvent | undefined {
  switch (event.case) {
    case "progress":
      return new Progress(event.value.message, event.value.fraction);
    case "partial":
      return new Partial(fromValue(event.value));
    case "result":
      return resultFromProto(event.value);
    default:
      return undefined;
  }
}

/** A Progress or Partial as the oneof `event` of a streamed response; TypeError for partial data not JSON-like. */
export function eventToProto(event: Progress | Partial):
  | { case: "progress"; value: ReturnType<typeof create<typeof ProgressSchema>> }
  | { case: "partial"; value: ReturnType<typeof toValue> } {
  if (event instanceof Progress) {
    return { case: "progress", value: create(ProgressSchema, { message: event.message, fraction: event.fraction }) };
  }
  return { case: "partial", value: toValue(event.data) };
}
