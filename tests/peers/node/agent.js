// An agent written directly on @grpc/grpc-js + @grpc/proto-loader (no SDK). It registers itself
// through RegistryService, serves AgentService on 127.0.0.1, and answers every task with what it
// decoded: result.data = { task: <the task as protobufjs decoded it>, task_es: <as protobuf-es
// decoded the same bytes> }. The task's payload steers the answer: { fail: {code, message,
// retryable, details} } answers success=false with that error. Streams send a progress event,
// the payload as a partial, then the result.
//
//   node agent.js REGISTRY NAMESPACE AGENT_ID DESCRIPTOR_SET
//
// Prints one line, "READY <instance id> <endpoint>", once registered; SIGTERM deregisters and exits.
"use strict";

const { grpc, load, esRegistry, esJson, keepRaw, toValue, toStruct, taskView } = require("./common");

const [registryAddress, namespace, agentId, descriptorSet] = process.argv.slice(2);
if (!descriptorSet) {
  console.error("usage: node agent.js REGISTRY NAMESPACE AGENT_ID DESCRIPTOR_SET");
  process.exit(2);
}
const { v1 } = load();
const es = esRegistry(descriptorSet);
const VERSION = "2.0.1";
const LATENCY = { seconds: 0, nanos: 1234000 };

// `request`: an ExecuteRequest as protobufjs decoded it, with its raw bytes (see keepRaw).
function answer(request) {
  const task = request.task;
  const echo = { task: taskView(task), task_es: esJson(es, "sutradhar.v1.ExecuteRequest", request.__raw).task ?? null };
  const payload = echo.task ? echo.task.payload : null;
  const fail = payload && typeof payload === "object" && !Array.isArray(payload) ? payload.fail : undefined;
  return {
    success: fail === undefined,
    data: toValue(echo),
    error: fail === undefined ? null : {
      code: fail.code, message: fail.message, retryable: fail.retryable, details: toStruct(fail.details),
    },
    // The router overwrites instance_id and attempts (and task_id when it assigned the id).
    metadata: {
      latency: LATENCY, agent_id: agentId, agent_version: VERSION, instance_id: "set-by-the-agent", attempts: 7,
      task_id: task ? task.id : "",
    },
  };
}

const service = v1.AgentService.service;
keepRaw(service.Execute, "request");
keepRaw(service.ExecuteStream, "request");

const server = new grpc.Server();
server.addService(service, {
  Describe(_call, callback) {
    callback(null, { id: agentId, type: "node-echo", version: VERSION, capabilities: ["echo"], streaming: true });
  },
  Execute(call, callback) {
    try {
      callback(null, { result: answer(call.request) });
    } catch (err) {
      callback({ code: grpc.status.INTERNAL, details: String(err) });
    }
  },
  ExecuteStream(call) {
    try {
      call.write({ progress: { message: "working", fraction: 0.5 } });
      call.write({ partial: (call.request.task && call.request.task.payload) || toValue(null) });
      call.write({ result: answer(call.request) });
      call.end();
    } catch (err) {
      call.destroy(Object.assign(new Error(String(err)), { code: grpc.status.INTERNAL }));
    }
  },
  Metrics(_call, callback) {
    callback(null, {});
  },
});

const registry = new v1.RegistryService(registryAddress, grpc.credentials.createInsecure());
const unary = (method, request) => new Promise((resolve, reject) => {
  registry[method](request, { deadline: Date.now() + 10000 }, (err, response) => (err ? reject(err) : resolve(response)));
});

let instance = null;
let keepAlive = null;

async function main() {
  const port = await new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const endpoint = `127.0.0.1:${port}`;
  await unary("RegisterAgent", {
    agent: { id: agentId, namespace, type: "node-echo", version: VERSION, capabilities: ["echo"], runtime: "process" },
  });
  const registered = await unary("RegisterInstance", {
    instance: { id: `${agentId}-0`, namespace, agent_id: agentId, endpoint, runtime: "process", state: "INSTANCE_STATE_SERVING", version: VERSION },
    ttl: { seconds: 30 },
  });
  instance = registered.instance;
  keepAlive = setInterval(() => {
    unary("KeepAliveInstance", { namespace, id: instance.id, lease_id: instance.lease_id }).catch((err) => {
      console.error(`keep-alive failed: ${err.message}`);
    });
  }, 10000);
  process.stdout.write(`READY ${instance.id} ${endpoint}\n`);
}

process.on("SIGTERM", async () => {
  clearInterval(keepAlive);
  if (instance) {
    await unary("DeregisterInstance", { namespace, id: instance.id }).catch((err) => console.error(err.message));
  }
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});

main().catch((err) => {
  console.error(`agent failed to start: ${err.stack || err}`);
  process.exit(1);
});
