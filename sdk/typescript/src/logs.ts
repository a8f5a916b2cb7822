// The SDK's log lines on stderr: text (the default, as before) or, with SUTRADHAR_LOG_FORMAT=json, one JSON object
// per line with the fields of the Python SDK's (sdk/sutradhar/_logs.py): time (RFC 3339 UTC, milliseconds), level,
// service (the agent's id), logger, message, exception (a stack) when there is one, and the call's fields where they
// apply (request_id, task_id, trace_id, span_id, namespace, agent, instance). Both formats redact bearer tokens,
// JWT-shaped strings and PEM private keys. Lines below the level (SUTRADHAR_LOG_LEVEL: Python's logging names,
// WARNING by default, as the Python SDK's agents) are dropped, except what `announce` writes ("listening on").
import type { TaskContext } from "./agent.js";
import { recordingIds } from "./tracing.js";

export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** The levels of Python's `logging`, lowest first (sdk/sutradhar/_settings.py LOG_LEVELS). */
export const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** The level of an agent's log lines unless SUTRADHAR_LOG_LEVEL says otherwise (the Python SDK's `serve()`'s). */
export const DEFAULT_LOG_LEVEL: LogLevel = "WARNING";

/** What a line says about the call (or the agent) it was written for; empty values are left out. */
export interface LogFields {
  request_id?: string;
  task_id?: string;
  trace_id?: string;
  span_id?: string;
  namespace?: string;
  agent?: string;
  instance?: string;
  /** Any other JSON scalar (e.g. the address of "listening on"). */
  [name: string]: string | number | boolean | undefined;
}

const BEARER = /\b(bearer)\s+[A-Za-z0-9._~+/=-]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const PRIVATE_KEY = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$(?![\s\S]))/g;
export const REDACTED = "[redacted]";

/** `text` with bearer tokens, JWT-shaped strings and PEM private keys replaced by "[redacted]". */
export function redact(text: string): string {
  return text.replace(BEARER, (_, word: string) => `${word} ${REDACTED}`).replace(JWT, REDACTED)
    .replace(PRIVATE_KEY, REDACTED);
}

let json: { service: string; fields: LogFields } | undefined;
let threshold = LOG_LEVELS.indexOf(DEFAULT_LOG_LEVEL);

/**
 * Log in `format` from now on, lines at `level` and above; `service` names the agent in JSON lines, `fields` are
 * added to every one.
 */
export function configureLogging(format: LogFormat, service: string, fields: LogFields = {},
  level: LogLevel = DEFAULT_LOG_LEVEL): void {
  json = format === "json" ? { service, fields } : undefined;
  threshold = LOG_LEVELS.indexOf(level);
}

/** Add `fields` to every JSON line from now on (the agent's id, instance and namespace once known). */
export function addLogFields(fields: LogFields): void {
  if (json) json.fields = { ...json.fields, ...fields };
}

/** The request, task and trace ids of a task, for its log lines: the trace of its span while one records (the
 * task's own, `./tracing.js`), else of the task's traceparent (the caller's). */
export function taskFields(task: { id: string; context: Pick<TaskContext, "requestId" | "traceparent"> }): LogFields {
  const recording = recordingIds();
  if (recording) {
    return { request_id: task.context.requestId, task_id: task.id, trace_id: recording.traceId, span_id: recording.spanId };
  }
  const trace = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}/.exec(task.context.traceparent);
  return { request_id: task.context.requestId, task_id: task.id, trace_id: trace?.[1], span_id: trace?.[2] };
}

function stackOf(error: unknown): string {
  return error instanceof Error ? error.stack ?? `${error.name}: ${error.message}` : String(error);
}

/** Write one line to stderr, when `level` is at or above the configured one: `message` (and `error`'s stack) as
 * text, or one JSON object. */
export function log(level: LogLevel, logger: string, message: string, fields: LogFields = {}, error?: unknown): void {
  if (LOG_LEVELS.indexOf(level) >= threshold) write(level, logger, message, fields, error);
}

/** Write a line people and tools read whatever the level ("agent ID listening on HOST:PORT"), at INFO in JSON. */
export function announce(logger: string, message: string, fields: LogFields = {}): void {
  write("INFO", logger, message, fields);
}

function write(level: LogLevel, logger: string, message: string, fields: LogFields, error?: unknown): void {
  if (json === undefined) {
    process.stderr.write(`${redact(error === undefined ? message : `${message} ${stackOf(error)}`)}\n`);
    return;
  }
  const out: Record<string, unknown> = {
    time: new Date().toISOString(), level, service: json.service, logger, message: redact(message),
  };
  if (error !== undefined) out.exception = redact(stackOf(error));
  for (const [name, value] of Object.entries({ ...json.fields, ...fields })) {
    if (value !== undefined && value !== "") out[name] = typeof value === "string" ? redact(value) : value;
  }
  process.stderr.write(`${JSON.stringify(out)}\n`);
}

export const warn = (logger: string, message: string, fields?: LogFields): void => log("WARNING", logger, message, fields);
