// Typed clients of the mesh: RouterClient, RegistryClient, RbacClient, SchedulerClient, HealthClient (and AgentClient, to call
// one agent directly). Every method takes CallOptions (timeoutMs / deadline, an AbortSignal, metadata) and fails
// with SutradharError carrying the gRPC code and the Sutradhar error name. `rpc` is the typed stub of every method
// of the service; the named methods are conveniences over it in plain SDK types.
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { status, type Client } from "@grpc/grpc-js";

import { Result, type StreamEvent } from "./agent.js";
import { eventFromProto, resultFromProto, taskToProto, type TaskContextInit } from "./convert.js";
import { currentTraceContext } from "./tracing.js";
import { Credentials } from "./credentials.js";
import { SutradharError } from "./errors.js";
import { SpiffeId } from "./identity.js";
import { AgentService, type DescribeResponse, type MetricsResponse } from "./gen/sutradhar/v1/agent_pb.js";
import { HealthService } from "./gen/sutradhar/v1/health_pb.js";
import { RbacService, type ReviewAccessResponse } from "./gen/sutradhar/v1/rbac_pb.js";
import {
  AgentSchema,
  InstanceSchema,
  RegistryService,
  type Agent as AgentDefinition,
  type Instance,
  type InstanceState,
} from "./gen/sutradhar/v1/registry_pb.js";
import { RouteOptionsSchema, RouterService, SelectorSchema } from "./gen/sutradhar/v1/router_pb.js";
import { SchedulerService } from "./gen/sutradhar/v1/scheduler_pb.js";
import { stub, type CallOptions, type Stub } from "./grpc.js";
import { durationFromMs } from "./values.js";

/** How a client connects. */
export interface ClientOptions {
  /** Default: Credentials.insecure() (a development mesh). */
  credentials?: Credentials;
  /** Default per-call timeout in milliseconds (none when unset). */
  timeoutMs?: number;
  /** Largest message accepted or sent (default 4 MiB). */
  maxMessageBytes?: number;
  /** The SPIFFE ID the server must present over TLS, such as an agent replica's (`Instance.identity` in the
   * registry); a mesh service's client expects that service's own when unset, an AgentClient any CA-signed server.
   * INVALID_ARGUMENT when it is not a Sutradhar identity, or with insecure credentials (nothing to check it by). */
  expected?: string;
}

/** The identity `text` names, which a TLS server must present (the Python SDK's `expected=`). */
function expectedIdentity(text: string, credentials: Credentials): SpiffeId {
  const id = SpiffeId.check(text);
  if (typeof id === "string") throw new SutradharError(status.INVALID_ARGUMENT, `expected: ${id}`, "expected");
  if (credentials.isInsecure) {
    throw new SutradharError(status.INVALID_ARGUMENT,
      `expected ${text} needs TLS credentials: an identity is only checked over TLS`, "expected");
  }
  return id;
}

/** The base of every client: one channel to `address`, closed by `close()`. */
export class ServiceClient<S extends DescService> {
  /** The typed stub of every method of the service. */
  readonly rpc: Stub<S>;
  readonly address: string;
  readonly credentials: Credentials;
  private readonly channel: Client;

  /** `meshService`: the mesh service whose SPIFFE ID a TLS server must present unless `options.expected` says
   * another (none for an agent). */
  constructor(service: S, address: string, options: ClientOptions = {}, meshService?: string) {
    this.address = address;
    this.credentials = options.credentials ?? Credentials.insecure();
    const expected = options.expected !== undefined ? expectedIdentity(options.expected, this.credentials) : meshService;
    const bytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
    const connection = this.credentials.connection(expected);
    [this.rpc, this.channel] = stub(service, address, {
      ...connection,
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      channelOptions: {
        ...connection.channelOptions,
        "grpc.max_receive_message_length": bytes,
        "grpc.max_send_message_length": bytes,
      },
    });
  }

  /** Close the channel. */
  close(): void {
    this.channel.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** What to run: a task's parts (the payload must be JSON-like). */
export interface TaskInit {
  id?: string;
  type?: string;
  context?: TaskContextInit;
}

/** Where the router sends a task and how. */
export interface RouteInit extends CallOptions, TaskInit {
  namespace?: string;
  versionRange?: string;
  capabilities?: string[];
  /** A label selector, e.g. "tier=gold". */
  labels?: string;
  agentId?: string;
  strategy?: string;
  maxAttempts?: number;
  /** The router's own per-attempt budget, in milliseconds. */
  routeTimeoutMs?: number;
}

/** The task message of `payload` and `init`; a context without a `traceparent` gets the active span's
 * `traceparent` and `tracestate` (sampled or not), so the router or agent it reaches continues the caller's trace
 * (`./tracing.js`). */
function task(payload: unknown, init: TaskInit): ReturnType<typeof taskToProto> {
  const current = init.context?.traceparent ? undefined : currentTraceContext();
  const context = current ? { ...init.context, ...current } : init.context;
  try {
    return taskToProto({ ...init, context, payload });
  } catch (err) {
    throw new SutradharError(status.INVALID_ARGUMENT, `payload: ${(err as Error).message}`, "payload");
  }
}

function route(agentType: string, init: RouteInit): {
  selector: MessageInitShape<typeof SelectorSchema>;
  options: MessageInitShape<typeof RouteOptionsSchema>;
} {
  const selector: MessageInitShape<typeof SelectorSchema> = {
    namespace: init.namespace ?? "",
    agentType,
    versionRange: init.versionRange ?? "",
    capabilities: init.capabilities ?? [],
    labelSelector: init.labels ?? "",
    agentId: init.agentId ?? "",
  };
  const options: MessageInitShape<typeof RouteOptionsSchema> = {
    strategy: init.strategy ?? "",
    maxAttempts: init.maxAttempts ?? 0,
    ...(init.routeTimeoutMs !== undefined ? { timeout: durationFromMs(init.routeTimeoutMs) } : {}),
  };
  return { selector, options };
}

/** The router: send tasks to agents by type, version range, capabilities and labels. */
export class RouterClient extends ServiceClient<typeof RouterService> {
  constructor(address: string, options: ClientOptions = {}) {
    super(RouterService, address, options, "router");
  }

  /** Route one task to an agent of `agentType` and return its result (application failures in `result.error`). */
  async execute(agentType: string, payload: unknown, init: RouteInit = {}): Promise<Result> {
    const response = await this.rpc.execute({ task: task(payload, init), ...route(agentType, init) }, init);
    return resultFromProto(response.result);
  }

  /** Route one task with streamed output: progress and partial events, then one Result. Break out to cancel. */
  async *stream(agentType: string, payload: unknown, init: RouteInit = {}): AsyncGenerator<StreamEvent> {
    for await (const message of this.rpc.executeStream({ task: task(payload, init), ...route(agentType, init) }, init)) {
      const event = eventFromProto(message.event);
      if (event !== undefined) yield event;
      if (event instanceof Result) return;
    }
  }
}

/** One agent replica, called directly (tests, the conformance suite; in a secured mesh the mesh's services may, and
 * callers whose certificate the agent's access review allows). */
export class AgentClient extends ServiceClient<typeof AgentService> {
  constructor(address: string, options: ClientOptions = {}) {
    super(AgentService, address, options);
  }

  describe(options?: CallOptions): Promise<DescribeResponse> {
    return this.rpc.describe({}, options);
  }

  async execute(payload: unknown, init: TaskInit & CallOptions = {}): Promise<Result> {
    return resultFromProto((await this.rpc.execute({ task: task(payload, init) }, init)).result);
  }

  async *stream(payload: unknown, init: TaskInit & CallOptions = {}): AsyncGenerator<StreamEvent> {
    for await (const message of this.rpc.executeStream({ task: task(payload, init) }, init)) {
      const event = eventFromProto(message.event);
      if (event !== undefined) yield event;
      if (event instanceof Result) return;
    }
  }

  metrics(options?: CallOptions): Promise<MetricsResponse> {
    return this.rpc.metrics({}, options);
  }
}

/** The registry: agent definitions and instances. */
export class RegistryClient extends ServiceClient<typeof RegistryService> {
  constructor(address: string, options: ClientOptions = {}) {
    super(RegistryService, address, options, "registry");
  }

  /** Define an agent (ALREADY_EXISTS when it is defined). */
  async registerAgent(agent: MessageInitShape<typeof AgentSchema>, options?: CallOptions): Promise<AgentDefinition | undefined> {
    return (await this.rpc.registerAgent({ agent }, options)).agent;
  }

  async getAgent(id: string, namespace = "default", options?: CallOptions): Promise<AgentDefinition | undefined> {
    return (await this.rpc.getAgent({ id, namespace }, options)).agent;
  }

  /** Register (or, with `replace`, re-register) an instance under a lease of `ttlMs`. */
  async registerInstance(instance: MessageInitShape<typeof InstanceSchema>, ttlMs: number, replace = true,
    options?: CallOptions): Promise<Instance | undefined> {
    return (await this.rpc.registerInstance({ instance, ttl: durationFromMs(ttlMs), replace }, options)).instance;
  }

  async keepAliveInstance(instanceId: string, leaseId: bigint, namespace = "default", options?: CallOptions): Promise<void> {
    await this.rpc.keepAliveInstance({ id: instanceId, leaseId, namespace }, options);
  }

  async updateInstanceState(instanceId: string, state: InstanceState, namespace = "default", options?: CallOptions): Promise<void> {
    await this.rpc.updateInstanceState({ id: instanceId, state, namespace }, options);
  }

  async deregisterInstance(instanceId: string, namespace = "default", options?: CallOptions): Promise<void> {
    await this.rpc.deregisterInstance({ id: instanceId, namespace }, options);
  }

  async listInstances(agentId: string, namespace = "default", options?: CallOptions): Promise<Instance[]> {
    return (await this.rpc.listInstances({ agentId, namespace }, options)).instances;
  }
}

/** Role bindings and roles, and access reviews (RbacService, served by the registry; see `rpc`). */
export class RbacClient extends ServiceClient<typeof RbacService> {
  constructor(address: string, options: ClientOptions = {}) {
    super(RbacService, address, options, "registry");
  }

  /** Whether `principal` (a SPIFFE ID) may `verb` `resource` `name` in `namespace`, as the router decides it: asked
   * by an agent, about calls to itself (docs/rbac.md, "Access reviews"). */
  reviewAccess(principal: string, namespace: string, name: string, options?: CallOptions & { verb?: string; resource?: string }):
    Promise<ReviewAccessResponse> {
    return this.rpc.reviewAccess({
      principal, namespace, name, verb: options?.verb ?? "execute", resource: options?.resource ?? "agents",
    }, options);
  }
}

/** The scheduler: deployments, scaling, rollouts and replica logs (see `rpc`). */
export class SchedulerClient extends ServiceClient<typeof SchedulerService> {
  constructor(address: string, options: ClientOptions = {}) {
    super(SchedulerService, address, options, "scheduler");
  }
}

/** The health service: probe results, drain/enable and health events (see `rpc`). */
export class HealthClient extends ServiceClient<typeof HealthService> {
  constructor(address: string, options: ClientOptions = {}) {
    super(HealthService, address, options, "health");
  }
}
