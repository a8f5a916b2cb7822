// The Agent contract as plain TypeScript: `Agent`, `Task`, `Result` and friends (mirrors sdk/sutradhar/_agent.py).
//
// How outcomes map onto the wire (sutradhar.v1.Result):
//   return JSON-like data          -> success, data
//   return a `Result`              -> exactly that result (metadata filled in)
//   throw `TaskFailed(code, ...)`  -> success = false, error = code/message
//   throw anything else            -> success = false, error.code = "AGENT_ERROR"
// `stream` is an async generator yielding `Progress`, `Partial` (or bare JSON-like values: partial data) and at most
// one `Result`, which is final; it may instead return the final Result (or data). Ending without one, the result is a
// success whose data is the list of partial values. So a stream always ends with exactly one result.
import { status } from "@grpc/grpc-js";

import { SutradharError } from "./errors.js";
import { log, taskFields } from "./logs.js";
import type { Json } from "./values.js";

const LOGGER = "sutradhar.agent";

/** The error code of a result produced from an unexpected exception. */
export const AGENT_ERROR = "AGENT_ERROR";

/** Who asked, on whose behalf, until when, and the trace a task belongs to. */
export interface TaskContext {
  sessionId: string;
  userId: string;
  requestId: string;
  /** Absolute deadline; undefined when the caller set none. */
  deadline: Date | undefined;
  traceparent: string;
  tracestate: string;
  attributes: Record<string, string>;
}

/** One unit of work handed to `Agent.execute` / `Agent.stream`. */
export interface Task {
  /** Task identifier (the SDK generates one when the caller sent none). */
  id: string;
  /** Task type, e.g. "answer"; empty when the caller did not say. */
  type: string;
  /** The input, a plain JSON-like value. */
  payload: Json;
  context: TaskContext;
  /** Aborted when the task's deadline passes, its caller cancels, or the shutdown grace ends: stop working then. */
  signal: AbortSignal;
}

/** An application-level failure carried in a `Result`. */
export interface TaskError {
  code: string;
  message: string;
  retryable: boolean;
  details?: Record<string, Json> | undefined;
}

/** Where and how a result was produced; the SDK fills it in. */
export interface ResultMetadata {
  latencyMs?: number | undefined;
  agentId?: string | undefined;
  agentVersion?: string | undefined;
  instanceId?: string | undefined;
  /** Attempts the router made (0 when the task did not go through a router). */
  attempts?: number | undefined;
  taskId?: string | undefined;
}

/** The outcome of a task: success with data, or failure with an error. */
export class Result {
  constructor(
    readonly success: boolean,
    readonly data: Json = null,
    readonly error: TaskError | undefined = undefined,
    readonly metadata: ResultMetadata = {},
  ) {}

  /** A successful result carrying `data`. */
  static ok(data: Json = null): Result {
    return new Result(true, data);
  }

  /** A failed result with an application error. */
  static failure(code: string, message = "", options: { retryable?: boolean; details?: Record<string, Json> } = {}): Result {
    return new Result(false, null, { code, message, retryable: options.retryable ?? false, details: options.details });
  }

  /** The data of a successful result; throws `TaskFailed` for a failed one. */
  unwrap(): Json {
    if (this.success) return this.data;
    const err = this.error ?? { code: "UNKNOWN", message: "the result failed without an error", retryable: false };
    throw new TaskFailed(err.code, err.message, { retryable: err.retryable, details: err.details });
  }

  /** This result with its unset metadata fields taken from `metadata`. */
  withMetadata(metadata: ResultMetadata): Result {
    const own = this.metadata;
    return new Result(this.success, this.data, this.error, {
      latencyMs: own.latencyMs ?? metadata.latencyMs,
      agentId: own.agentId || metadata.agentId,
      agentVersion: own.agentVersion || metadata.agentVersion,
      instanceId: own.instanceId || metadata.instanceId,
      attempts: own.attempts || metadata.attempts,
      taskId: own.taskId || metadata.taskId,
    });
  }
}

/** A progress report yielded by `Agent.stream`. */
export class Progress {
  /** `fraction` is the completion in [0, 1]; negative when unknown. */
  constructor(readonly message = "", readonly fraction = -1) {}
}

/** A partial piece of output yielded by `Agent.stream` (agents may also yield the bare value). */
export class Partial {
  constructor(readonly data: Json) {}
}

/** What a stream yields: progress, partial data (wrapped or bare), or the final result. */
export type StreamItem = Progress | Partial | Result | Json;
/** What a normalized stream produces: progress and partial events, then exactly one Result. */
export type StreamEvent = Progress | Partial | Result;

/** Throw from `execute`/`stream` to fail a task with an application error. */
export class TaskFailed extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly details: Record<string, Json> | undefined;

  constructor(code: string, message = "", options: { retryable?: boolean; details?: Record<string, Json> | undefined } = {}) {
    super(message ? `${code}: ${message}` : code);
    this.name = "TaskFailed";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
    this.taskMessage = message;
  }

  readonly taskMessage: string;

  /** The failed `Result` this error stands for. */
  toResult(): Result {
    return Result.failure(this.code, this.taskMessage, { retryable: this.retryable, ...(this.details ? { details: this.details } : {}) });
  }
}

/**
 * Base class of TypeScript agents: set the identity fields and implement `execute` and/or `stream`.
 *
 *     class Greeter extends Agent {
 *       id = "greeter"; type = "greeter"; version = "1.0.0"; capabilities = ["greet"];
 *       async execute(task: Task) { return { greeting: `hello ${(task.payload as { name: string }).name}` }; }
 *     }
 *
 * Implement either method: the default `stream` yields the result of `execute`, the default `execute` runs
 * `stream` and returns its final result.
 */
export abstract class Agent {
  /** Agent definition id (DNS-1123 label), e.g. "echo". */
  id = "";
  /** Agent type, the routing key (DNS-1123 label). */
  type = "";
  /** Semantic version, e.g. "1.4.0". */
  version = "0.1.0";
  /** Capabilities offered, e.g. ["answer", "hint"]. */
  capabilities: readonly string[] = [];
  /** Human description. */
  description = "";
  /** Task types understood; empty means any (others are refused with INVALID_ARGUMENT before execute runs). */
  taskTypes: readonly string[] = [];

  /** Run `task`; return JSON-like data or a `Result`, or throw `TaskFailed`. */
  async execute(task: Task): Promise<Json | Result> {
    if (!this.implementsStream()) throw new Error(`${this.constructor.name} implements neither execute() nor stream()`);
    let final: Result | undefined;
    for await (const event of streamEvents(this, task)) if (event instanceof Result) final = event;
    return final ?? Result.ok(null);
  }

  /** Run `task` with streamed output (see the module comment). The default yields the result of `execute`. */
  async *stream(task: Task): AsyncGenerator<StreamItem, Json | Result | void, undefined> {
    const out = await this.execute(task);
    yield out instanceof Result ? out : Result.ok(out);
  }

  /** Readiness, polled by the server every health period and served through grpc.health.v1. */
  async checkHealth(): Promise<boolean> {
    return true;
  }

  /** Called once after the server has bound its port, before it reports SERVING. */
  async onStart(): Promise<void> {}

  /** Called once after the server has drained and stopped. */
  async onStop(): Promise<void> {}

  /** Agent-specific numeric gauges served by the Metrics RPC. */
  customMetrics(): Record<string, number> {
    return {};
  }

  /** Whether this agent's class implements `stream` itself. */
  implementsStream(): boolean {
    return overrides(this, "stream");
  }
}

/** True when `agent`'s class implements `method` itself rather than inheriting Agent's. */
export function overrides(agent: Agent, method: "execute" | "stream" | "checkHealth"): boolean {
  return agent[method] !== Agent.prototype[method];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Whether `text` is a DNS-1123 label (lowercase letters, digits and '-', at most 63). */
export function isDnsLabel(text: string): boolean {
  return DNS_LABEL.test(text);
}

/** Throw INVALID_ARGUMENT when the agent's identity is unusable or it implements neither execute nor stream. */
export function validateAgent(agent: Agent): void {
  const invalid = (message: string, field: string): never => {
    throw new SutradharError(status.INVALID_ARGUMENT, message, field);
  };
  if (!isDnsLabel(agent.id)) invalid(`agent id ${JSON.stringify(agent.id)} is not a DNS-1123 label (lowercase letters, digits, '-')`, "id");
  if (!isDnsLabel(agent.type)) invalid(`agent type ${JSON.stringify(agent.type)} is not a DNS-1123 label`, "type");
  if (!SEMVER.test(agent.version)) invalid(`agent version ${JSON.stringify(agent.version)} is not a semantic version`, "version");
  if (!overrides(agent, "execute") && !overrides(agent, "stream")) {
    invalid(`${agent.constructor.name} implements neither execute() nor stream()`, "execute");
  }
}

/** The failed result that stands for an unexpected error. */
export function crashResult(err: unknown): Result {
  const name = err instanceof Error ? err.name : typeof err;
  const message = err instanceof Error ? err.message : String(err);
  return Result.failure(AGENT_ERROR, `${name}: ${message}`);
}

function failureResult(err: unknown): Result {
  return err instanceof TaskFailed ? err.toResult() : crashResult(err);
}

/** Call `agent.execute` and turn every outcome into a Result (never rejects). */
export async function runExecute(agent: Agent, task: Task): Promise<Result> {
  try {
    const out = await agent.execute(task);
    return out instanceof Result ? out : Result.ok(out);
  } catch (err) {
    if (!(err instanceof TaskFailed) && !task.signal.aborted) log("ERROR", LOGGER, `agent ${agent.id} failed on task ${task.id}:`, taskFields(task), err);
    return failureResult(err);
  }
}

/**
 * `agent.stream(task)` normalized: Progress and Partial events, then exactly one final Result (never throws).
 * Closing it early (`return()`) closes the agent's generator, so its `finally` blocks run.
 */
export async function* streamEvents(agent: Agent, task: Task): AsyncGenerator<StreamEvent, void, undefined> {
  const partials: Json[] = [];
  const gen = agent.stream(task);
  let final: Result | undefined;
  try {
    for (;;) {
      const step = await gen.next();
      if (step.done) {
        const out = step.value;
        final = out instanceof Result ? out : out === undefined ? Result.ok(partials) : Result.ok(out);
        break;
      }
      const item = step.value;
      if (item instanceof Result) {
        final = item;
        break;
      }
      if (item instanceof Progress) {
        yield item;
        continue;
      }
      const part = item instanceof Partial ? item : new Partial(item);
      partials.push(part.data);
      yield part;
    }
  } catch (err) {
    if (!(err instanceof TaskFailed) && !task.signal.aborted) log("ERROR", LOGGER, `agent ${agent.id} failed streaming task ${task.id}:`, taskFields(task), err);
    final = failureResult(err);
  } finally {
    await gen.return(undefined);
  }
  yield final;
}

/** Resolves after `ms` milliseconds, or rejects with the signal's reason once `signal` aborts (e.g. task.signal). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
