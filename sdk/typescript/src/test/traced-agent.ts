// A TypeScript agent that traces with a tracer provider of its own program, for the cross-language trace test in
// tests/integration/test_typescript_sdk.py (not a unit test: `node --test dist/test/*.test.js` leaves it out).
// Serves EchoLike with `serve()` (the SUTRADHAR_* variables), and writes every span it ends as one JSON line to
// the file named by TRACED_SPANS_FILE.
//   TRACED_SPANS_FILE=spans.jsonl SUTRADHAR_INSECURE=1 node sdk/typescript/dist/test/traced-agent.js
import { appendFileSync } from "node:fs";

import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";

import { serve } from "../index.js";
import { EchoLike } from "./support.js";

const file = process.env.TRACED_SPANS_FILE;
if (!file) throw new Error("set TRACED_SPANS_FILE to the file the spans go to");

/** Each ended span as a JSON line: the fields the test compares with the Python mesh's spans. */
class JsonLines implements SpanExporter {
  export(spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    for (const span of spans) {
      const ids = span.spanContext();
      appendFileSync(file!, `${JSON.stringify({
        name: span.name, kind: span.kind, trace_id: ids.traceId, span_id: ids.spanId,
        parent_span_id: span.parentSpanContext?.spanId ?? "", trace_state: ids.traceState?.serialize() ?? "",
        attributes: span.attributes,
      })}\n`);
    }
    done({ code: 0 }); // ExportResultCode.SUCCESS
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new JsonLines())] }));
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

class TracedEchoLike extends EchoLike {
  override id = "echo";
  override type = "echo";
}

await serve(new TracedEchoLike());
