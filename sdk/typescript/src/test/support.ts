// Test agents served in-process on 127.0.0.1 (real gRPC, no mocks).
import { Agent, AgentServer, Progress, Result, TaskFailed, sleep, type Json, type StreamItem, type Task } from "../index.js";

/** An agent that echoes and honours {sleep, fail, crash, text, bad} payload options, recording what it saw. */
export class EchoLike extends Agent {
  override id = "echo-like";
  override type = "echo-like";
  override version = "1.2.3";
  override capabilities = ["echo"];
  override taskTypes: readonly string[] = [];
  aborted: unknown[] = [];
  closed = 0;
  healthy = true;

  private async apply(task: Task): Promise<void> {
    const opts = (task.payload ?? {}) as Record<string, Json>;
    if (typeof opts.sleep === "number") {
      try {
        await sleep(opts.sleep * 1000, task.signal);
      } catch (err) {
        this.aborted.push(err);
        throw err;
      }
    }
    if (opts.fail) throw new TaskFailed(String(opts.fail), "failed on request", { retryable: true, details: { why: "asked" } });
    if (opts.crash) throw new RangeError("crashed on request");
  }

  override async execute(task: Task): Promise<Json | Result> {
    await this.apply(task);
    const opts = (task.payload ?? {}) as Record<string, Json>;
    if (opts.bad) return new Date() as unknown as Json;
    return { echo: task.payload, type: task.type, id: task.id, user: task.context.userId };
  }

  override async *stream(task: Task): AsyncGenerator<StreamItem, Json | void, undefined> {
    try {
      const opts = (task.payload ?? {}) as Record<string, Json>;
      const words = typeof opts.text === "string" ? opts.text.split(" ") : [];
      for (const [i, word] of words.entries()) {
        yield new Progress(`word ${i + 1}/${words.length}`, (i + 1) / words.length);
        yield word;
        if (typeof opts.delay === "number") await sleep(opts.delay * 1000, task.signal);
      }
      await this.apply(task);
      if (opts.final === "return") return { words: words.length };
      if (opts.final === "yield") yield Result.ok({ yielded: true });
    } finally {
      this.closed += 1;
    }
  }

  override async checkHealth(): Promise<boolean> {
    return this.healthy;
  }

  override customMetrics(): Record<string, number> {
    return { closed: this.closed };
  }
}

/** Serve `agent` insecurely on a free loopback port; stop it when done. */
export async function served<A extends Agent>(agent: A, options: ConstructorParameters<typeof AgentServer>[1] = {}):
  Promise<AgentServer & { agent: A }> {
  const server = new AgentServer(agent, { insecure: true, healthPeriodMs: 100, graceMs: 2000, ...options });
  await server.start();
  return server as AgentServer & { agent: A };
}
