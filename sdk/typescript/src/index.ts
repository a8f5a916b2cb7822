// @sutradhar/sdk: write Sutradhar agents in TypeScript and call the mesh from Node.js.
export {
  AGENT_ERROR,
  Agent,
  Partial,
  Progress,
  Result,
  TaskFailed,
  sleep,
  type ResultMetadata,
  type StreamEvent,
  type StreamItem,
  type Task,
  type TaskContext,
  type TaskError,
} from "./agent.js";
export {
  AgentClient,
  HealthClient,
  RegistryClient,
  RouterClient,
  SchedulerClient,
  ServiceClient,
  type ClientOptions,
  type RouteInit,
  type TaskInit,
} from "./clients.js";
export { Credentials } from "./credentials.js";
export { ERROR_NAMES, SutradharError, errorName, fromServiceError, type ErrorName } from "./errors.js";
export { SpiffeId } from "./identity.js";
export type { CallOptions, Stub } from "./grpc.js";
export {
  DEFAULT_LOG_LEVEL,
  LOG_FORMATS,
  LOG_LEVELS,
  REDACTED,
  configureLogging,
  redact,
  type LogFields,
  type LogFormat,
  type LogLevel,
} from "./logs.js";
export {
  AgentPrometheus,
  LATENCY_BUCKETS,
  MAX_TASK_TYPES,
  METRICS_PORT_LABEL,
  type AgentPrometheusOptions,
} from "./prometheus.js";
export { AgentServer, serve, type AgentServerOptions } from "./serve.js";
export { DEFAULT_SETTINGS, serveSettings, type ServeSettings } from "./settings.js";
export type { TlsFiles } from "./tls.js";
export type { Json } from "./values.js";
export { status } from "@grpc/grpc-js";
/** The generated messages and service descriptors of sutradhar.v1 (protoc-gen-es). */
export * as v1 from "./v1.js";
