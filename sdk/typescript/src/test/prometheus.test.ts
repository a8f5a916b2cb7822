// The agent's Prometheus /metrics: served for real on 127.0.0.1, fed by tasks called through the SDK's AgentClient.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";

import { AgentClient, AgentPrometheus, LATENCY_BUCKETS, MAX_TASK_TYPES, SutradharError, status } from "../index.js";
import { EchoLike, served } from "./support.js";

/** The value of the sample `series` (name and labels, as exposed) in `text`; undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return response.text();
}

const tasks = (type: string, outcome: string): string =>
  `sutradhar_agent_tasks_total{namespace="ns",agent="echo-like",task_type="${type}",outcome="${outcome}"}`;

test("an agent with a metrics port serves /metrics: tasks by outcome, latency, in-flight, only its own metrics",
  async () => {
    const server = await served(new EchoLike(), { metricsPort: 0, namespace: "ns" });
    const client = new AgentClient(server.address);
    try {
      assert.ok(server.metricsPort !== undefined && server.metricsPort > 0);
      assert.equal(server.metricsUrl, `http://127.0.0.1:${server.metricsPort}/metrics`);
      assert.equal(sample(await scrape(server.metricsUrl), tasks("", "success")), 0);
      await client.execute({}, { type: "say" });
      await client.execute({}, { type: "say" });
      await client.execute({ fail: "INVALID_INPUT" }, { type: "say" });
      await client.execute({ crash: true });
      const slow = client.execute({ sleep: 0.3 }, { type: "slow" });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const during = await scrape(server.metricsUrl);
      assert.equal(sample(during, 'sutradhar_agent_in_flight{namespace="ns",agent="echo-like"}'), 1);
      await slow;
      const text = await scrape(server.metricsUrl);
      assert.equal(sample(text, tasks("say", "success")), 2);
      assert.equal(sample(text, tasks("say", "failure")), 1);
      assert.equal(sample(text, tasks("", "failure")), 1);
      assert.equal(sample(text, tasks("slow", "success")), 1);
      assert.equal(sample(text, 'sutradhar_agent_in_flight{namespace="ns",agent="echo-like"}'), 0);
      const latency = 'namespace="ns",agent="echo-like",task_type="slow"';
      assert.equal(sample(text, `sutradhar_agent_task_duration_seconds_count{${latency}}`), 1);
      assert.equal(sample(text, `sutradhar_agent_task_duration_seconds_bucket{le="0.25",${latency}}`), 0);
      assert.equal(sample(text, `sutradhar_agent_task_duration_seconds_bucket{le="0.5",${latency}}`), 1);
      const buckets = [...text.matchAll(/_bucket\{le="([^"]+)",namespace="ns",agent="echo-like",task_type="slow"\}/g)]
        .map((m) => m[1]);
      assert.deepEqual(buckets, [...LATENCY_BUCKETS.map(String), "+Inf"]);
      assert.match(text, /# TYPE sutradhar_agent_tasks_total counter/);
      assert.match(text, /# TYPE sutradhar_agent_task_duration_seconds histogram/);
      assert.match(text, /# TYPE sutradhar_agent_in_flight gauge/);
      const names = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
      assert.deepEqual(names, new Set(["sutradhar_agent_tasks_total", "sutradhar_agent_task_duration_seconds",
        "sutradhar_agent_in_flight"]));
      assert.equal((await fetch(server.metricsUrl.replace("/metrics", "/other"))).status, 404);
    } finally {
      client.close();
      await server.stop(0);
    }
    await assert.rejects(fetch(server.metricsUrl ?? ""), "/metrics stops with the agent");
  });

test("task types are bounded: declared types, else the first 32 then other", async () => {
  const open = new AgentPrometheus({ agent: "a", namespace: "n", taskTypes: [], inFlight: () => 0 });
  for (let i = 0; i < MAX_TASK_TYPES + 5; i++) open.taskDone(`t${i}`, i % 2 === 0, 0.001);
  const text = await open.text();
  const types = new Set([...text.matchAll(/sutradhar_agent_tasks_total\{[^}]*task_type="([^"]*)"/g)].map((m) => m[1]));
  // "" is bound from the start (tasks with no type), so 31 named types get their own label
  assert.equal(types.size, MAX_TASK_TYPES + 1);
  assert.ok(types.has("") && types.has("t30") && !types.has("t31") && types.has("other"));
  assert.equal(sample(text, 'sutradhar_agent_tasks_total{namespace="n",agent="a",task_type="other",outcome="success"}'), 3);
  assert.equal(sample(text, 'sutradhar_agent_tasks_total{namespace="n",agent="a",task_type="other",outcome="failure"}'), 3);

  const declared = new AgentPrometheus({ agent: "a", namespace: "n", taskTypes: ["say"], inFlight: () => 0 });
  declared.taskDone("say", true, 0.001);
  declared.taskDone("", false, 0.001);
  declared.taskDone("shout", true, 0.001);
  const fixed = await declared.text();
  assert.equal(sample(fixed, 'sutradhar_agent_tasks_total{namespace="n",agent="a",task_type="say",outcome="success"}'), 1);
  assert.equal(sample(fixed, 'sutradhar_agent_tasks_total{namespace="n",agent="a",task_type="other",outcome="success"}'), 1);
  assert.equal(sample(fixed, 'sutradhar_agent_tasks_total{namespace="n",agent="a",task_type="other",outcome="failure"}'), 1);
  assert.doesNotMatch(fixed, /task_type="(shout|)"/);
});

test("a metrics port in use: FAILED_PRECONDITION, or with metricsOptional a warning and no /metrics", async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  const port = (taken.address() as { port: number }).port;
  try {
    await assert.rejects(served(new EchoLike(), { metricsPort: port }), (err: unknown) => {
      assert.ok(err instanceof SutradharError);
      assert.equal(err.code, status.FAILED_PRECONDITION);
      assert.match(err.message, new RegExp(`cannot serve /metrics on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*SUTRADHAR_METRICS_OPTIONAL=1`));
      return true;
    });
    const server = await served(new EchoLike(), { metricsPort: port, metricsOptional: true });
    try {
      assert.equal(server.metricsPort, undefined);
      assert.equal(server.metricsUrl, undefined);
      const client = new AgentClient(server.address);
      assert.equal((await client.execute({})).success, true);
      client.close();
    } finally {
      await server.stop(0);
    }
  } finally {
    taken.close();
  }
});
