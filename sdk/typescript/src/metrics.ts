// The counters an agent replica serves through AgentService/Metrics (mirrors sdk/sutradhar/_metrics.py): requests,
// errors, in-flight, uptime, and latency percentiles over a sliding window.

export interface MetricsSnapshot {
  requestsTotal: number;
  errorsTotal: number;
  inFlight: number;
  uptimeMs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/** Task counters with latency percentiles over the last `windowMs` (at most `maxSamples` samples). */
export class TaskMetrics {
  private requests = 0;
  private errors = 0;
  private running = 0;
  private readonly started = performance.now();
  private samples: [at: number, latencyMs: number][] = [];

  constructor(private readonly windowMs = 60_000, private readonly maxSamples = 10_000) {}

  get inFlight(): number {
    return this.running;
  }

  begin(): void {
    this.requests += 1;
    this.running += 1;
  }

  end(latencyMs: number, ok: boolean): void {
    this.running -= 1;
    if (!ok) this.errors += 1;
    this.samples.push([performance.now(), latencyMs]);
    if (this.samples.length > this.maxSamples) this.samples.shift();
  }

  snapshot(): MetricsSnapshot {
    const now = performance.now();
    this.samples = this.samples.filter(([at]) => at >= now - this.windowMs);
    const sorted = this.samples.map(([, ms]) => ms).sort((a, b) => a - b);
    const percentile = (p: number): number =>
      sorted.length ? (sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0) : 0;
    return {
      requestsTotal: this.requests,
      errorsTotal: this.errors,
      inFlight: this.running,
      uptimeMs: now - this.started,
      latencyP50Ms: percentile(0.5),
      latencyP99Ms: percentile(0.99),
    };
  }
}
