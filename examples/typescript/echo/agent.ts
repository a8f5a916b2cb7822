// The echo agent in TypeScript: the same payload options as examples/echo_agent.py, for tests and benchmarks.
//   node examples/typescript/dist/echo/agent.js          (SUTRADHAR_INSECURE=1 for a development mesh)
// The payload may carry options (anything else is simply echoed back):
//   {"sleep": 1.5}     wait that many seconds first (honours deadlines and cancellation)
//   {"fail": "CODE"}   fail with TaskFailed(CODE) ("retryable": true too)
//   {"crash": true}    throw an unexpected error (-> AGENT_ERROR)
//   {"text": "..."}    text that `stream` splits into chunks of "chunk" characters (default 4), one Progress and one
//                      partial per chunk, "delay" seconds apart.
import { Agent, Progress, Result, TaskFailed, serve, sleep, type Json, type StreamItem, type Task } from "@sutradhar/sdk";

type Options = Record<string, Json>;

function options(task: Task): Options {
  const payload = task.payload;
  return payload !== null && typeof payload === "object" && !Array.isArray(payload) ? payload : {};
}

/** Honour the sleep / fail / crash options. */
async function apply(opts: Options, signal: AbortSignal): Promise<void> {
  if (typeof opts.sleep === "number" && opts.sleep > 0) await sleep(opts.sleep * 1000, signal);
  if (opts.fail) throw new TaskFailed(String(opts.fail), "failed on request", { retryable: Boolean(opts.retryable) });
  if (opts.crash) throw new Error("crashed on request");
}

export class EchoAgent extends Agent {
  override id = "echo";
  override type = "echo";
  override version = "1.0.0";
  override capabilities = ["echo", "stream"];
  override description = "Echoes the payload; options sleep/fail/crash for tests; streams text in chunks.";

  override async execute(task: Task): Promise<Json> {
    await apply(options(task), task.signal);
    return { echo: task.payload, task_type: task.type, pid: process.pid };
  }

  override async *stream(task: Task): AsyncGenerator<StreamItem, Result, undefined> {
    const opts = options(task);
    await apply(opts, task.signal);
    const text = typeof opts.text === "string" ? opts.text : task.payload === null ? "" : String(task.payload);
    const size = typeof opts.chunk === "number" && opts.chunk >= 1 ? Math.floor(opts.chunk) : 4;
    const delay = typeof opts.delay === "number" && opts.delay > 0 ? opts.delay : 0;
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
    for (const [n, chunk] of chunks.entries()) {
      if (delay) await sleep(delay * 1000, task.signal);
      yield new Progress(`chunk ${n + 1}/${chunks.length}`, (n + 1) / chunks.length);
      yield chunk;
    }
    return Result.ok({ echo: task.payload, chunks: chunks.length, pid: process.pid });
  }
}

await serve(new EchoAgent());
