// An agent replica's Prometheus metrics and its /metrics endpoint (mirrors sdk/sutradhar/_prometheus.py; see
// docs/observability.md, "Agents (SDK)"): the same names, types, labels and buckets as a Python agent's, in their
// own registry (no default process metrics, as the Python agent has none). Task type labels are bounded: a type the
// agent declares in `taskTypes` is its own label value; without declared types the first MAX_TASK_TYPES distinct
// types are, and later ones count as "other". The task id never is.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Latency buckets in seconds, the router's (sutradhar/_prometheus.py, LATENCY_BUCKETS): 100 microseconds to 30 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** Distinct task types labelled as themselves when the agent declares none. */
export const MAX_TASK_TYPES = 32;
export const OTHER = "other";
/** Label of a self-registered instance holding the port of its /metrics (sdk/sutradhar/_labels.py). */
export const METRICS_PORT_LABEL = "sutradhar.metrics-port";

type TaskLabels = "namespace" | "agent" | "task_type" | "outcome";
type LatencyLabels = "namespace" | "agent" | "task_type";

/** The bound series of one task type: tasks that succeeded, tasks that failed, and their latency. */
interface Children {
  success: Counter.Internal;
  failure: Counter.Internal;
  latency: Histogram.Internal<LatencyLabels>;
}

export interface AgentPrometheusOptions {
  agent: string;
  namespace: string;
  taskTypes: readonly string[];
  /** Tasks running now, read at scrape time. */
  inFlight: () => number;
}

/** Tasks by type and outcome, task latency and in-flight of one replica, in their own registry. */
export class AgentPrometheus {
  readonly registry = new Registry();
  private readonly tasks: Counter<TaskLabels>;
  private readonly latency: Histogram<LatencyLabels>;
  private readonly constant: { namespace: string; agent: string };
  private readonly declared: ReadonlySet<string>;
  private readonly children = new Map<string, Children>();
  private server: Server | undefined;

  constructor(options: AgentPrometheusOptions) {
    const { agent, namespace, taskTypes, inFlight } = options;
    const registers = [this.registry];
    this.tasks = new Counter({
      name: "sutradhar_agent_tasks_total",
      help: "Tasks this replica ran, by task type and outcome (failure: a failed result, an exception, a deadline " +
        "or a cancellation).",
      labelNames: ["namespace", "agent", "task_type", "outcome"], registers,
    });
    this.latency = new Histogram({
      name: "sutradhar_agent_task_duration_seconds", help: "Time from a task's arrival to its result.",
      labelNames: ["namespace", "agent", "task_type"], buckets: [...LATENCY_BUCKETS], registers,
    });
    const constant = { namespace, agent };
    this.constant = constant;
    new Gauge({
      name: "sutradhar_agent_in_flight", help: "Tasks running on this replica now.",
      labelNames: ["namespace", "agent"], registers,
      collect() {
        this.set(constant, inFlight());
      },
    });
    this.declared = new Set(taskTypes);
    for (const taskType of taskTypes.length ? taskTypes : [""]) this.bind(taskType);
  }

  /** Bind (and expose at zero) the series of `taskType`. */
  private bind(taskType: string): Children {
    const labels = { ...this.constant, task_type: taskType };
    const children: Children = {
      success: this.tasks.labels({ ...labels, outcome: "success" }),
      failure: this.tasks.labels({ ...labels, outcome: "failure" }),
      latency: this.latency.labels(labels),
    };
    children.success.inc(0);
    children.failure.inc(0);
    this.latency.zero(labels);
    this.children.set(taskType, children);
    return children;
  }

  /** One task ended, after `seconds`. */
  taskDone(taskType: string, ok: boolean, seconds: number): void {
    let children = this.children.get(taskType);
    if (children === undefined) {
      children = this.declared.size || this.children.size >= MAX_TASK_TYPES
        ? this.children.get(OTHER) ?? this.bind(OTHER)
        : this.bind(taskType);
    }
    (ok ? children.success : children.failure).inc();
    children.latency.observe(seconds);
  }

  /** The metrics in Prometheus' text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serve GET /metrics on host:port (0: a free port); the bound port. Rejects with the listen error. */
  serve(host: string, port: number): Promise<number> {
    const server = createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0];
      if (path !== "/metrics" || (request.method !== "GET" && request.method !== "HEAD")) {
        response.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("only GET /metrics is served\n");
        return;
      }
      this.registry.metrics().then((body) => {
        response.writeHead(200, { "Content-Type": this.registry.contentType });
        response.end(request.method === "HEAD" ? undefined : body);
      }, (err: unknown) => {
        response.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" }).end(`${(err as Error).message}\n`);
      });
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host.replace(/^\[(.*)\]$/, "$1"), () => {
        server.removeListener("error", reject);
        this.server = server;
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  /** Stop serving /metrics. */
  close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
