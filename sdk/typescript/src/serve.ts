// Serving an Agent (mirrors sdk/sutradhar/_serve.py): `AgentServer` hosts one agent on a grpc-js Server
// (sutradhar.v1.AgentService, grpc.health.v1.Health, server reflection). With a registry address it also registers
// the instance under a kept-alive lease. `stop()` drains: health NOT_SERVING, the registry hears DRAINING, new tasks
// get UNAVAILABLE "draining", in-flight tasks get up to the grace to finish (then their signals abort and their
// callers get UNAVAILABLE), the instance is deregistered and the server stops. `serve()` reads the SUTRADHAR_*
// variables and does all of that until SIGTERM / SIGINT.
import { randomBytes, randomUUID } from "node:crypto";
import type { PeerCertificate } from "node:tls";

import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  Metadata,
  Server,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { context } from "@opentelemetry/api";
import { HealthImplementation, service as healthService } from "grpc-health-check";

import {
  Agent,
  Result,
  crashResult,
  overrides,
  runExecute,
  streamEvents,
  validateAgent,
  type StreamEvent,
  type Task,
} from "./agent.js";
import { AccessReviews } from "./access-review.js";
import { bootstrapOf, type Bootstrap, type IssuedTlsSource } from "./bootstrap.js";
import { RegistryClient } from "./clients.js";
import { eventToProto, resultToProto, taskFromProto } from "./convert.js";
import { Credentials } from "./credentials.js";
import { SutradharError } from "./errors.js";
import {
  AgentService,
  DescribeResponseSchema,
  ExecuteResponseSchema,
  ExecuteStreamResponseSchema,
  MetricsResponseSchema,
  file_sutradhar_v1_agent,
  type DescribeResponse,
  type ExecuteRequest,
  type ExecuteResponse,
  type ExecuteStreamRequest,
  type ExecuteStreamResponse,
  type MetricsResponse,
} from "./gen/sutradhar/v1/agent_pb.js";
import { UndecodableRequest, serviceDefinition } from "./grpc.js";
import { AGENT, SpiffeId } from "./identity.js";
import { addLogFields, announce, configureLogging, log, warn } from "./logs.js";
import { TaskMetrics } from "./metrics.js";
import { endTaskSpan, startTaskSpan, traceContextOf, type TaskSpan } from "./tracing.js";
import { AgentPrometheus, METRICS_PORT_LABEL } from "./prometheus.js";
import { Registration } from "./registration.js";
import { DEFAULT_SETTINGS, serveSettings, type ServeSettings } from "./settings.js";
import {
  instanceOfIdentity,
  meshCaller,
  providedServerSecurity,
  serverSecurity,
  type ServerSecurity,
} from "./tls.js";
import { durationFromMs } from "./values.js";

const LOGGER = "sutradhar.serve";

/** How long a stopping server waits after its last task before it closes its connections, in milliseconds. */
const ANSWER_FLUSH_MS = 50;

/** The full name of the Agent service. */
export const AGENT_SERVICE = AgentService.typeName;
/** The full name of the standard health service. */
const HEALTH_SERVICE = "grpc.health.v1.Health";

/** `file` and every file it imports, each once, as serialized FileDescriptorProtos (what reflection serves). */
function fileDescriptors(file: DescFile, seen = new Set<string>()): Buffer[] {
  if (seen.has(file.name)) return [];
  seen.add(file.name);
  const own = Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto));
  return [own, ...file.dependencies.flatMap((dep) => fileDescriptors(dep, seen))];
}

/** A task being run: its abort controller, the task, when it started, and whether its call has been answered. */
interface Running {
  controller: AbortController;
  task: Task;
  started: number;
  answered: boolean;
  /** The task's SERVER span, and the context the agent's code runs in (`./tracing.js`). */
  trace: TaskSpan;
  /** Count the task done (ok or not) and stop watching it; true when its call is still to be answered. */
  finish(ok: boolean): boolean;
}

/** AgentService over one Agent: decode, check, run, count, encode. */
export class AgentServicer {
  readonly metrics = new TaskMetrics();
  /** The agent's Prometheus metrics when it serves /metrics. */
  prometheus: AgentPrometheus | undefined;
  draining = false;
  private readonly running = new Set<Running>();
  private idleWaiters: (() => void)[] = [];

  constructor(readonly agent: Agent, readonly instanceId: string, readonly namespace = DEFAULT_SETTINGS.namespace) {}

  /** Resolves once no task runs, or after `limitMs`; true when idle. */
  waitIdle(limitMs: number): Promise<boolean> {
    if (this.metrics.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), limitMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Abort every running task (the shutdown grace ended). */
  abortAll(reason: SutradharError): void {
    for (const run of this.running) run.controller.abort(reason);
  }

  private end(run: Running, ok: boolean): void {
    this.running.delete(run);
    const latencyMs = performance.now() - run.started;
    this.metrics.end(latencyMs, ok);
    this.prometheus?.taskDone(run.task.type, ok, latencyMs / 1000);
    if (this.metrics.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * Admit the call's task and start counting it, watching its deadline and its caller: `refuse` answers the
   * call with an error status (the refusal, or the reason the task was aborted, after `onAbort`). Undefined
   * when the call was refused.
   */
  private open(
    call: ServerUnaryCall<ExecuteRequest, ExecuteResponse> | ServerWritableStream<ExecuteStreamRequest, ExecuteStreamResponse>,
    streamed: boolean, refuse: (error: Partial<ServiceError>) => void, onAbort: () => void = () => {},
  ): Running | undefined {
    const controller = new AbortController();
    let task: Task;
    let deadline: number | undefined;
    try {
      [task, deadline] = this.admit(call, controller.signal);
    } catch (err) {
      refuse(fromError(err));
      return undefined;
    }
    const method = `${AGENT_SERVICE}/${streamed ? "ExecuteStream" : "Execute"}`;
    const trace = startTaskSpan(method, traceContextOf(call.metadata, task.context), {
      namespace: this.namespace, agent: this.agent.id, instance: this.instanceId, taskType: task.type,
    });
    /** Answer the call with `err`'s status, ending the task's span with it. */
    const refuseTraced = (err: unknown): void => {
      const error = fromError(err);
      endTaskSpan(trace.span, status[error.code ?? status.UNKNOWN], error.details ?? "", false);
      refuse(error);
    };
    if (deadline !== undefined && deadline <= Date.now()) {
      // Refused, yet recorded: the caller's trace shows the task arrived too late (as a Python agent's does).
      refuseTraced(new SutradharError(status.DEADLINE_EXCEEDED,
        `task ${task.id} reached agent ${this.agent.id} after its deadline had passed`));
      return undefined;
    }
    const unwatch = this.watch(call, controller, task, deadline, streamed);
    const aborted = (): void => {
      if (run.answered) return;
      run.answered = true;
      onAbort();
      refuseTraced(controller.signal.reason);
    };
    const run: Running = {
      controller, task, started: performance.now(), answered: false, trace,
      finish: (ok) => {
        unwatch();
        controller.signal.removeEventListener("abort", aborted);
        const unanswered = !run.answered;
        run.answered = true;
        if (unanswered) endTaskSpan(trace.span, "OK", "", ok);
        this.end(run, ok && unanswered);
        return unanswered;
      },
    };
    this.running.add(run);
    this.metrics.begin();
    controller.signal.addEventListener("abort", aborted, { once: true });
    return run;
  }

  /** The call's task and its deadline (the earlier of the call's and the task's), or the status that refuses it
   * (draining, caller, task type); `open` refuses a deadline that has passed. */
  private admit(
    call: ServerUnaryCall<ExecuteRequest, ExecuteResponse> | ServerWritableStream<ExecuteStreamRequest, ExecuteStreamResponse>,
    signal: AbortSignal,
  ): [Task, number | undefined] {
    const agent = this.agent;
    if (this.draining) {
      throw new SutradharError(status.UNAVAILABLE,
        `agent ${agent.id} instance ${this.instanceId} is draining; send the task to another instance`);
    }
    let task = taskFromProto(call.request.task, signal);
    const accepted = agent.taskTypes;
    if (task.type && accepted.length && !accepted.includes(task.type)) {
      throw new SutradharError(status.INVALID_ARGUMENT,
        `agent ${agent.id} does not accept task type '${task.type}'; it accepts ` +
        `${accepted.map((t) => `'${t}'`).join(", ")} (or an empty type)`, "task.type");
    }
    if (!task.id) task = { ...task, id: randomUUID().replaceAll("-", "") };
    const candidates: number[] = [];
    const grpcDeadline = call.getDeadline();
    const grpcMs = grpcDeadline instanceof Date ? grpcDeadline.getTime() : grpcDeadline;
    if (Number.isFinite(grpcMs)) candidates.push(grpcMs);
    if (task.context.deadline) candidates.push(task.context.deadline.getTime());
    const deadline = candidates.length ? Math.min(...candidates) : undefined;
    return [task, deadline];
  }

  /** `result` with the SDK's metadata, as a message (a result whose data is not JSON-like becomes AGENT_ERROR). */
  private final(result: Result, task: Task, started: number): [ReturnType<typeof resultToProto>, boolean] {
    const meta = {
      latencyMs: performance.now() - started, agentId: this.agent.id, agentVersion: this.agent.version,
      instanceId: this.instanceId, taskId: task.id,
    };
    const full = result.withMetadata(meta);
    try {
      return [resultToProto(full), full.success];
    } catch (err) {
      return [resultToProto(crashResult(new TypeError(`result data is not JSON-like: ${(err as Error).message}`)).withMetadata(meta)), false];
    }
  }

  /** Abort `controller` when the deadline passes or the caller cancels; returns the cleanup. */
  private watch(call: { on(event: "cancelled", listener: () => void): unknown; removeListener(event: "cancelled", listener: () => void): unknown },
    controller: AbortController, task: Task, deadline: number | undefined, streamed: boolean): () => void {
    const onCancel = (): void => controller.abort(new SutradharError(status.CANCELLED, `task ${task.id} was cancelled by its caller`));
    call.on("cancelled", onCancel);
    const timer = deadline === undefined ? undefined : setTimeout(() => controller.abort(new SutradharError(
      status.DEADLINE_EXCEEDED,
      `${streamed ? "streamed task" : "task"} ${task.id} on agent ${this.agent.id} did not finish before its deadline`,
    )), Math.max(0, deadline - Date.now()));
    return () => {
      clearTimeout(timer);
      call.removeListener("cancelled", onCancel);
    };
  }

  describe(_call: ServerUnaryCall<unknown, DescribeResponse>, callback: sendUnaryData<DescribeResponse>): void {
    const agent = this.agent;
    callback(null, create(DescribeResponseSchema, {
      id: agent.id, type: agent.type, version: agent.version, capabilities: [...agent.capabilities],
      description: agent.description, taskTypes: [...agent.taskTypes], streaming: overrides(agent, "stream"),
    }));
  }

  execute(call: ServerUnaryCall<ExecuteRequest, ExecuteResponse>, callback: sendUnaryData<ExecuteResponse>): void {
    const run = this.open(call, false, (error) => callback(error));
    if (!run) return;
    void context.with(run.trace.context, () => runExecute(this.agent, run.task)).then((result) => {
      const [message, ok] = this.final(result, run.task, run.started);
      if (run.finish(ok)) callback(null, create(ExecuteResponseSchema, { result: message }));
    });
  }

  executeStream(call: ServerWritableStream<ExecuteStreamRequest, ExecuteStreamResponse>): void {
    let events: AsyncGenerator<StreamEvent, void, undefined> | undefined;
    // aborted: the agent's generator is closed once its pending step settles
    const run = this.open(call, true, (error) => endStream(call, error), () => void events?.return(undefined));
    if (!run) return;
    const stream = streamEvents(this.agent, run.task);
    events = stream;
    const finalResult = (result: Result): boolean => {
      const [message, ok] = this.final(result, run.task, run.started);
      call.write(create(ExecuteStreamResponseSchema, { event: { case: "result", value: message } }));
      return ok;
    };
    const pump = async (): Promise<boolean> => {
      for (;;) {
        const step = await context.with(run.trace.context, () => stream.next());
        if (run.answered || step.done) return false;
        const event = step.value;
        if (event instanceof Result) return finalResult(event);
        let out: ReturnType<typeof eventToProto>;
        try {
          out = eventToProto(event);
        } catch (err) {
          finalResult(crashResult(new TypeError(`partial data is not JSON-like: ${(err as Error).message}`)));
          await stream.return(undefined);
          return false;
        }
        call.write(create(ExecuteStreamResponseSchema, { event: out }));
      }
    };
    void pump().then((ok) => {
      if (run.finish(ok)) call.end();
    });
  }

  metricsRpc(_call: ServerUnaryCall<unknown, MetricsResponse>, callback: sendUnaryData<MetricsResponse>): void {
    const snap = this.metrics.snapshot();
    let custom: Record<string, number> = {};
    try {
      custom = Object.fromEntries(Object.entries(this.agent.customMetrics()).map(([k, v]) => [String(k), Number(v)]));
    } catch (err) {
      log("ERROR", LOGGER, `customMetrics() of agent ${this.agent.id} failed:`, {}, err);
    }
    callback(null, create(MetricsResponseSchema, {
      requestsTotal: BigInt(snap.requestsTotal), errorsTotal: BigInt(snap.errorsTotal), inFlight: BigInt(snap.inFlight),
      uptime: durationFromMs(snap.uptimeMs), latencyP50: durationFromMs(snap.latencyP50Ms),
      latencyP99: durationFromMs(snap.latencyP99Ms), custom,
    }));
  }
}

/** End a server stream with an error status (grpc-js sends it on the stream's "error" event; `destroy()` would
 * leave the call without a status). */
function endStream(call: ServerWritableStream<unknown, unknown>, error: Partial<ServiceError>): void {
  call.emit("error", error);
}

function fromError(err: unknown): Partial<ServiceError> {
  if (err instanceof SutradharError) return err.toServiceError();
  return { code: status.UNKNOWN, details: err instanceof Error ? err.message : String(err), metadata: new Metadata() };
}

/** Options of AgentServer: any ServeSettings field (the rest are the defaults; no variable is read). */
export type AgentServerOptions = Partial<ServeSettings>;

/** Serves one agent; registers it when given a registry address. */
export class AgentServer {
  readonly settings: ServeSettings;
  readonly agent: Agent;
  readonly instanceId: string;
  readonly servicer: AgentServicer;
  /** How it serves: undefined until start() for an agent that bootstraps its certificate. */
  security: ServerSecurity | undefined;
  /** The certificate a bootstrap token was traded for, renewed while serving (after start()). */
  issued: IssuedTlsSource | undefined;
  registration: Registration | undefined;
  /** Who answers about callers that are not mesh services (undefined: they are refused): the registry at
   * `accessReview`, else at `registry`, when the agent serves mutual TLS. */
  readonly accessReviews: AccessReviews | undefined;
  /** URL of the agent's /metrics once started with a metrics port, else undefined. */
  metricsUrl: string | undefined;
  /** The bound port of the agent's /metrics once it serves one, else undefined. */
  metricsPort: number | undefined;
  private readonly server: Server;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING", [AGENT_SERVICE]: "NOT_SERVING" });
  private boundPort = 0;
  private serving = false;
  private started = false;
  private stopped = false;
  private healthTimer: NodeJS.Timeout | undefined;
  private readonly bootstrap: Bootstrap | undefined;

  /**
   * The agent serves mutual TLS with tlsCertFile / tlsKeyFile / tlsCaFile, or with the certificate it trades its
   * bootstrap token for at start() (bootstrap, bootstrapTokenFile, tlsCaFile), taking AgentService calls from the
   * mesh's router, health and scheduler, and from the users and agents the registry allows to execute it (an access
   * review at accessReview, else at registry; with neither, from the mesh's services only); or, with `insecure`
   * (loopback only), plaintext. One is required (FAILED_PRECONDITION says how to fix it). agentId / agentVersion
   * replace the agent's id and version.
   */
  constructor(agent: Agent, options: AgentServerOptions = {}) {
    const settings: ServeSettings = { ...DEFAULT_SETTINGS, ...definedOnly(options) };
    this.settings = settings;
    if (settings.agentId) agent.id = settings.agentId;
    if (settings.agentVersion) agent.version = settings.agentVersion;
    validateAgent(agent);
    this.agent = agent;
    this.bootstrap = bootstrapOf(settings, `agent ${agent.id}`);
    this.security = this.bootstrap ? undefined : serverSecurity({
      what: `agent ${agent.id}`, host: settings.publishedOnLoopback ? "127.0.0.1" : settings.host,
      insecure: settings.insecure, certFile: settings.tlsCertFile, keyFile: settings.tlsKeyFile, caFile: settings.tlsCaFile,
    });
    const certified = this.security?.identity ? instanceOfIdentity(this.security.identity) : "";
    this.instanceId = settings.instanceId || certified || `${agent.id}-${randomBytes(4).toString("hex")}`;
    this.servicer = new AgentServicer(agent, this.instanceId, this.settings.namespace || DEFAULT_SETTINGS.namespace);
    this.server = new Server({
      "grpc.max_receive_message_length": settings.maxMessageBytes,
      "grpc.max_send_message_length": settings.maxMessageBytes,
    });
    const servicer = this.servicer;
    const secured = this.bootstrap !== undefined || this.security?.files !== undefined;
    const reviewAt = settings.accessReview || settings.registry;
    this.accessReviews = secured && reviewAt ? new AccessReviews(reviewAt, () => this.security && {
      credentials: ownCredentials(this.security, settings.trustDomain), identity: this.security.identity,
    }, { agent: `agent ${agent.id}` }) : undefined;
    const reviews = this.accessReviews;
    // Each handler first refuses, with mTLS, a caller that is not one of the mesh's router, health and scheduler
    // nor (with access reviews) a user or agent the registry allows (grpc health and reflection stay open), then a
    // request that did not decode (INVALID_ARGUMENT).
    const checked = <C extends {
      request: unknown; cancelled: boolean; getAuthContext(): { sslPeerCertificate?: PeerCertificate | undefined } | null;
    }, R extends unknown[]>(handler: (call: C, ...rest: R) => void) => (call: C, ...rest: R): void => {
      const refuse = (error: SutradharError): void => {
        const reply = rest[0];
        if (typeof reply === "function") reply(error.toServiceError());
        else endStream(call as unknown as ServerWritableStream<unknown, unknown>, error.toServiceError());
      };
      const verdict = secured
        ? meshCaller(call.getAuthContext()?.sslPeerCertificate, settings.trustDomain, `agent ${agent.id}`, reviews !== undefined)
        : undefined;
      if (Array.isArray(verdict)) {
        refuse(new SutradharError(...verdict));
        return;
      }
      const proceed = (): void => {
        if (call.request instanceof UndecodableRequest) refuse(call.request.error);
        else handler(call, ...rest);
      };
      if (verdict === undefined) {
        proceed();
        return;
      }
      void (reviews as AccessReviews).denial(verdict.review).then((denied) => {
        if (call.cancelled) return; // its caller left while the registry was asked
        if (denied) refuse(denied);
        else proceed();
      });
    };
    this.server.addService(serviceDefinition(AgentService), {
      describe: checked(servicer.describe.bind(servicer)),
      execute: checked(servicer.execute.bind(servicer)),
      executeStream: checked(servicer.executeStream.bind(servicer)),
      metrics: checked(servicer.metricsRpc.bind(servicer)),
    });
    this.health.addToServer(this.server);
    // Reflection lists every service of the files it is given: the Agent service's, and grpc.health.v1's (the
    // descriptor grpc-health-check loaded its service from), so a client can discover both.
    new ReflectionService({
      [AGENT_SERVICE]: { fileDescriptorProtos: fileDescriptors(file_sutradhar_v1_agent) },
      [HEALTH_SERVICE]: { fileDescriptorProtos: healthService.Check?.requestType.fileDescriptorProtos ?? [] },
    } as never).addToServer(this.server);
  }

  /** The bound port (after start()). */
  get port(): number {
    return this.boundPort;
  }

  /** "host:port" the server listens on (after start()). */
  get address(): string {
    return joinHostPort(this.settings.host, this.boundPort);
  }

  /** The endpoint registered for this instance: `advertise`, or the address (127.0.0.1 for every interface). */
  get endpoint(): string {
    if (this.settings.advertise) return this.settings.advertise;
    const host = ["0.0.0.0", "", "[::]", "::"].includes(this.settings.host) ? "127.0.0.1" : this.settings.host;
    return joinHostPort(host, this.boundPort);
  }

  /** Bind, run onStart, report SERVING (when healthy), then register (when configured). */
  async start(): Promise<void> {
    if (this.started) return;
    const security = this.security ?? await this.obtainCertificate(this.bootstrap as Bootstrap);
    this.started = true;
    try {
      this.boundPort = await new Promise<number>((resolve, reject) => {
        const listen = joinHostPort(this.settings.host, this.settings.port);
        this.server.bindAsync(listen, security.credentials, (err, port) => (err ? reject(
          new SutradharError(status.FAILED_PRECONDITION, `agent ${this.agent.id} cannot listen on ${listen}: ${err.message}`),
        ) : resolve(port)));
      });
      if (this.settings.metricsPort !== undefined) await this.startMetrics(this.settings.metricsPort);
      await this.agent.onStart();
    } catch (err) {
      this.server.forceShutdown();
      this.issued?.stop();
      await this.servicer.prometheus?.close();
      throw err;
    }
    this.setServing(await this.checkHealth());
    if (this.settings.registry) {
      this.registration = new Registration({
        client: new RegistryClient(this.settings.registry, { credentials: ownCredentials(security, this.settings.trustDomain) }),
        identity: security.identity, agent: this.agent, instanceId: this.instanceId, endpoint: this.endpoint,
        namespace: this.settings.namespace, ttlMs: this.settings.ttlMs,
        labels: {
          ...this.settings.labels,
          ...(this.metricsPort !== undefined ? { [METRICS_PORT_LABEL]: String(this.metricsPort) } : {}),
        },
        registerAgent: this.settings.registerAgent, healthy: () => this.serving,
      });
      try {
        await this.registration.start();
      } catch (err) {
        await this.stop(0);
        throw err;
      }
    }
    if (overrides(this.agent, "checkHealth")) this.scheduleHealth();
  }

  /** Trade the bootstrap token for this agent's certificate, and keep it renewed while serving. */
  private async obtainCertificate(bootstrap: Bootstrap): Promise<ServerSecurity> {
    const source = await bootstrap.source();
    const identity = source.identity;
    const id = SpiffeId.parse(identity);
    if (id?.kind === AGENT && id.agentId !== this.agent.id) {
      throw new SutradharError(status.FAILED_PRECONDITION, `agent ${this.agent.id}: the bootstrap token is for agent ` +
        `'${id.agentId}' (${identity}); use a token minted with \`sutradhar token create --agent ${this.agent.id}\``);
    }
    this.issued = source;
    this.security = providedServerSecurity(source, identity);
    source.start();
    log("INFO", LOGGER, `agent ${this.agent.id} obtained a certificate for ${identity}, valid until ` +
      source.current().notAfter.toISOString());
    return this.security;
  }

  /** Serve the agent's /metrics on `port`; with `metricsOptional`, a port that cannot be bound is a warning and
   * the agent serves without it (else FAILED_PRECONDITION). */
  private async startMetrics(port: number): Promise<void> {
    const host = this.settings.host;
    const prometheus = new AgentPrometheus({
      agent: this.agent.id, namespace: this.settings.namespace, taskTypes: this.agent.taskTypes,
      inFlight: () => this.servicer.metrics.inFlight,
    });
    let bound: number;
    try {
      bound = await prometheus.serve(host, port);
    } catch (err) {
      const reason = (err as Error).message;
      if (!this.settings.metricsOptional) {
        throw new SutradharError(status.FAILED_PRECONDITION, `agent ${this.agent.id} cannot serve /metrics on ` +
          `${joinHostPort(host, port)}: ${reason}; free the port, pick another SUTRADHAR_METRICS_PORT (0: a free ` +
          "one), or set SUTRADHAR_METRICS_OPTIONAL=1 to serve without /metrics");
      }
      warn(LOGGER, `agent ${this.agent.id} serves no /metrics: ${reason}`);
      return;
    }
    this.metricsUrl = `http://${joinHostPort(host, bound)}/metrics`;
    this.metricsPort = bound;
    this.servicer.prometheus = prometheus;
  }

  private scheduleHealth(): void {
    this.healthTimer = setTimeout(async () => {
      const healthy = await this.checkHealth();
      if (this.servicer.draining) return;
      this.setServing(healthy);
      this.scheduleHealth();
    }, this.settings.healthPeriodMs);
  }

  /** One poll of checkHealth, with the health period as its timeout: a timeout or an error counts as unhealthy. */
  private async checkHealth(): Promise<boolean> {
    const limit = this.settings.healthPeriodMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`TimeoutError: timed out after ${limit / 1000}s`)), limit);
    });
    try {
      return Boolean(await Promise.race([this.agent.checkHealth(), timeout]));
    } catch (err) {
      warn(LOGGER, `checkHealth() of agent ${this.agent.id} failed: ${(err as Error).message}; reporting NOT_SERVING`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private setServing(serving: boolean): void {
    this.serving = serving;
    const state = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", state);
    this.health.setStatus(AGENT_SERVICE, state);
  }

  /** Drain and stop: NOT_SERVING, DRAINING in the registry, refuse new tasks, wait up to `graceMs` for in-flight ones
   * (then abort them: their callers get UNAVAILABLE), deregister, stop. */
  async stop(graceMs: number = this.settings.graceMs): Promise<void> {
    if (this.stopped || !this.started) return;
    this.stopped = true;
    this.servicer.draining = true;
    clearTimeout(this.healthTimer);
    this.setServing(false);
    await this.registration?.drain();
    if (!(await this.servicer.waitIdle(graceMs))) {
      warn(LOGGER, `agent ${this.agent.id}: ${this.servicer.metrics.inFlight} task(s) still running after ` +
        `${(graceMs / 1000).toFixed(1)}s grace; cancelling them`);
      this.servicer.abortAll(new SutradharError(status.UNAVAILABLE,
        `agent ${this.agent.id} instance ${this.instanceId} shut down before the task finished; retry it elsewhere`));
    }
    if (this.registration) {
      await this.registration.deregister();
      this.registration.options.client.close();
    }
    // Let the last answers reach the wire first: the idle wake-up runs as soon as a final response is handed to
    // grpc-js, and closing the sessions at once drops it on some Node versions (18: "Connection dropped").
    await new Promise<void>((resolve) => setTimeout(resolve, ANSWER_FLUSH_MS));
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 200);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.issued?.stop();
    this.accessReviews?.close();
    await this.servicer.prometheus?.close();
    try {
      await this.agent.onStop();
    } catch (err) {
      log("ERROR", LOGGER, `onStop() of agent ${this.agent.id} failed:`, {}, err);
    }
  }

  /** Start, announce ("agent ID listening on HOST:PORT" on stderr), serve until SIGTERM/SIGINT, then drain and stop. */
  async runUntilSignal(): Promise<void> {
    let wake: () => void = () => {};
    const signalled = new Promise<void>((resolve) => (wake = resolve));
    process.once("SIGTERM", wake);
    process.once("SIGINT", wake);
    await this.start();
    announce(LOGGER, `agent ${this.agent.id} listening on ${this.address}`, { address: this.address });
    if (this.metricsUrl) announce(LOGGER, `agent ${this.agent.id} metrics on ${this.metricsUrl}`);
    await signalled;
    await this.stop();
  }
}

/** What the agent presents when it calls the mesh: its own certificate (following its renewal or rewritten files),
 * never the credential file of whoever started it; nothing when it serves insecure. */
function ownCredentials(security: ServerSecurity, trustDomain: string): Credentials {
  return security.provider ? Credentials.issued(security.provider, trustDomain) : Credentials.insecure();
}

function joinHostPort(host: string, port: number): string {
  return `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Serve `agent` until SIGTERM/SIGINT, then drain and exit 0. Options left undefined fall back to the SUTRADHAR_*
 * variables (SUTRADHAR_PORT, HOST, REGISTRY, ACCESS_REVIEW, NAMESPACE, INSTANCE_ID, AGENT_ID, AGENT_VERSION, INSECURE,
 * TLS_CERT_FILE, BOOTSTRAP, BOOTSTRAP_TOKEN_FILE, METRICS_PORT, METRICS_OPTIONAL, LOG_LEVEL, LOG_FORMAT, ...), so `node agent.js` runs under the scheduler exactly like a Python agent. A configuration
 * error is printed and the process exits 2.
 */
export async function serve(agent: Agent, options: AgentServerOptions = {}): Promise<void> {
  let server: AgentServer;
  try {
    const settings = serveSettings(options);
    configureLogging(settings.logFormat, settings.agentId || agent.id, {}, settings.logLevel);
    server = new AgentServer(agent, settings);
    addLogFields({ agent: server.agent.id, instance: server.instanceId, namespace: server.settings.namespace });
    await server.runUntilSignal();
  } catch (err) {
    log("ERROR", LOGGER, `agent ${agent.id}: ${err instanceof SutradharError ? `${err.errorName}: ` : ""}${(err as Error).message}`);
    process.exit(2);
  }
  process.exit(0);
}
