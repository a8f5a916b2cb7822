// Keeping an agent replica registered with the registry under a lease (mirrors sdk/sutradhar/_registration.py):
// `start()` registers the agent definition when it is missing, then the instance under a lease of `ttlMs`; the
// keep-alive loop renews it every ttl/3, registers again when the lease lapsed (NOT_FOUND), and retries with a
// jittered back-off (200 ms doubling, at most 5 s and never longer than ttl/3) while the registry is unreachable;
// it logs and never throws. `drain()` and `deregister()` are the shutdown steps.
import { status } from "@grpc/grpc-js";

import type { Agent } from "./agent.js";
import type { RegistryClient } from "./clients.js";
import { SutradharError } from "./errors.js";
import { InstanceState } from "./gen/sutradhar/v1/registry_pb.js";
import { warn } from "./logs.js";
import { checkedObject } from "./values.js";

const LOGGER = "sutradhar.registration";

const RETRY_INITIAL_MS = 200;
const MAX_BACKOFF_MS = 5_000;

/** The command that starts another replica like this process: node and its arguments. */
export function processCommand(): string[] {
  return [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
}

export interface RegistrationOptions {
  client: RegistryClient;
  agent: Agent;
  instanceId: string;
  endpoint: string;
  namespace: string;
  labels: Record<string, string>;
  ttlMs: number;
  registerAgent: boolean;
  /** Whether the agent reports healthy now: it registers SERVING or NOT_SERVING. */
  healthy: () => boolean;
  /** The SPIFFE ID of the agent's certificate (empty: insecure). */
  identity: string;
}

export class Registration {
  leaseId = 0n;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(readonly options: RegistrationOptions) {}

  private get callTimeoutMs(): number {
    return Math.min(Math.max(this.options.ttlMs / 3, 1_000), 5_000);
  }

  private get call(): { timeoutMs: number } {
    return { timeoutMs: this.callTimeoutMs };
  }

  private async ensureAgent(): Promise<void> {
    const { client, agent, namespace } = this.options;
    if (!this.options.registerAgent) return;
    try {
      await client.registerAgent({
        id: agent.id, namespace, type: agent.type, version: agent.version, capabilities: [...agent.capabilities],
        runtime: "process", description: agent.description,
        config: checkedObject({ command: processCommand(), workdir: process.cwd() }),
      }, this.call);
    } catch (err) {
      if (err instanceof SutradharError && err.code === status.ALREADY_EXISTS) return;
      if (err instanceof SutradharError && err.code === status.PERMISSION_DENIED) {
        // A secured mesh: what code an agent runs is an admin's to define, not the agent's.
        try {
          await client.getAgent(agent.id, namespace, this.call);
          return;
        } catch (missing) {
          if (missing instanceof SutradharError && missing.code === status.NOT_FOUND) {
            throw new SutradharError(status.FAILED_PRECONDITION,
              `agent ${namespace}/${agent.id} is not defined in the registry and this replica's identity may not ` +
              `define it (${err.message}); ask an admin of ${namespace} to register it (\`sutradhar deploy -f ` +
              "agent.yaml`), or serve with SUTRADHAR_REGISTER_AGENT=false once it exists");
          }
          throw missing;
        }
      }
      throw err;
    }
  }

  private async registerInstance(): Promise<void> {
    const o = this.options;
    const stored = await o.client.registerInstance({
      id: o.instanceId, namespace: o.namespace, agentId: o.agent.id, endpoint: o.endpoint, runtime: "process",
      state: o.healthy() ? InstanceState.SERVING : InstanceState.NOT_SERVING, labels: { ...o.labels },
      version: o.agent.version, identity: o.identity,
    }, o.ttlMs, true, this.call);
    this.leaseId = stored?.leaseId ?? 0n;
  }

  /** Register the agent (when missing and allowed) and the instance. */
  async register(): Promise<void> {
    await this.ensureAgent();
    try {
      await this.registerInstance();
    } catch (err) {
      const again = [status.NOT_FOUND, status.FAILED_PRECONDITION, status.ABORTED];
      if (!(err instanceof SutradharError && again.includes(err.code))) throw err;
      // The definition vanished between the two calls (or was never created): create it and try once more.
      await this.ensureAgent();
      await this.registerInstance();
    }
  }

  /** First registration, then the keep-alive loop. Configuration errors throw; an unreachable registry is logged. */
  async start(): Promise<void> {
    try {
      await this.register();
    } catch (err) {
      const transient = err instanceof SutradharError && [status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(err.code);
      if (!transient) throw err;
      warn(LOGGER, `registry ${this.options.client.address} unreachable, will keep trying: ${(err as Error).message}`);
    }
    this.schedule(this.leaseId ? this.options.ttlMs / 3 : 0, 0);
  }

  /** Milliseconds before the next try after `failures` failures in a row (full jitter over the doubled delay). */
  retryDelayMs(failures: number, rand: () => number = Math.random): number {
    const cap = Math.min(MAX_BACKOFF_MS, this.options.ttlMs / 3);
    const ceiling = Math.min(cap, Math.min(RETRY_INITIAL_MS, cap) * 2 ** Math.max(0, failures - 1));
    return ceiling / 2 + (ceiling / 2) * rand();
  }

  private schedule(delayMs: number, failures: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(failures), delayMs);
  }

  private async tick(failures: number): Promise<void> {
    const o = this.options;
    try {
      if (!this.leaseId) {
        await this.register();
      } else {
        try {
          await o.client.keepAliveInstance(o.instanceId, this.leaseId, o.namespace, this.call);
        } catch (err) {
          if (!(err instanceof SutradharError && err.code === status.NOT_FOUND)) throw err;
          warn(LOGGER, `lease of instance ${o.instanceId} lapsed; registering again`);
          this.leaseId = 0n;
          await this.register();
        }
      }
      this.schedule(o.ttlMs / 3, 0);
    } catch (err) {
      const delay = this.retryDelayMs(failures + 1);
      const name = err instanceof SutradharError ? err.errorName : "Error";
      warn(LOGGER, `registry ${o.client.address}: keep-alive of instance ${o.instanceId} failed ` +
        `(${name}: ${(err as Error).message}); retrying in ${(delay / 1000).toFixed(1)}s`);
      this.schedule(delay, failures + 1);
    }
  }

  /** Stop the keep-alive loop. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Tell the registry this instance takes no new work (best effort). */
  async drain(): Promise<void> {
    if (!this.leaseId) return;
    try {
      await this.options.client.updateInstanceState(this.options.instanceId, InstanceState.DRAINING, this.options.namespace, this.call);
    } catch (err) {
      warn(LOGGER, `could not mark instance ${this.options.instanceId} DRAINING: ${(err as Error).message}`);
    }
  }

  /** Remove the instance (best effort: its lease lapses anyway). */
  async deregister(): Promise<void> {
    this.stop();
    try {
      await this.options.client.deregisterInstance(this.options.instanceId, this.options.namespace, this.call);
    } catch (err) {
      if (!(err instanceof SutradharError && err.code === status.NOT_FOUND)) {
        warn(LOGGER, `could not deregister instance ${this.options.instanceId}: ${(err as Error).message}`);
      }
    }
    this.leaseId = 0n;
  }
}
