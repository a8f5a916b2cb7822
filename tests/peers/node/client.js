// A client written directly on @grpc/grpc-js + @grpc/proto-loader (no SDK): calls
// RouterService/Execute or ExecuteStream and prints, as one JSON line, what came back as
// protobufjs decoded it and as protobuf-es decoded the same bytes.
//
//   node client.js ROUTER execute|stream DESCRIPTOR_SET < request.json
//
// request.json: { task: {id, type, payload: <plain JSON>, context: {..., deadline: {seconds, nanos}}},
//                 selector: {...}, options: {...} } (field names as in the protos).
// Output: { protobufjs: <result view | [event views]>, protobuf_es: <proto3 JSON | [...]> }
// or { error: {code, details} } when the call fails.
"use strict";

const fs = require("node:fs");
const { grpc, load, esRegistry, esJson, keepRaw, toValue, resultView, eventView } = require("./common");

const [routerAddress, mode, descriptorSet] = process.argv.slice(2);
if (!descriptorSet || !["execute", "stream"].includes(mode)) {
  console.error("usage: node client.js ROUTER execute|stream DESCRIPTOR_SET < request.json");
  process.exit(2);
}
const { v1 } = load();
const es = esRegistry(descriptorSet);
const request = JSON.parse(fs.readFileSync(0, "utf8"));
if (request.task && "payload" in request.task) request.task.payload = toValue(request.task.payload);

const service = v1.RouterService.service;
keepRaw(service.Execute, "response");
keepRaw(service.ExecuteStream, "response");
const Client = grpc.makeGenericClientConstructor(service, "RouterService");
const client = new Client(routerAddress, grpc.credentials.createInsecure());
// No gRPC deadline: the router then takes the request's options.timeout (the caller of this
// script bounds its run).
const options = {};

let finished = false;

function done(output) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(output) + "\n");
  client.close();
}

function failed(err) {
  done({ error: { code: grpc.status[err.code], details: err.details } });
}

if (mode === "execute") {
  client.Execute(request, options, (err, response) => {
    if (err) return failed(err);
    done({
      protobufjs: resultView(response.result),
      protobuf_es: esJson(es, "sutradhar.v1.RouterServiceExecuteResponse", response.__raw),
    });
  });
} else {
  const views = [];
  const json = [];
  const call = client.ExecuteStream(request, options);
  call.on("data", (event) => {
    views.push(eventView(event));
    json.push(esJson(es, "sutradhar.v1.RouterServiceExecuteStreamResponse", event.__raw));
  });
  call.on("error", failed);
  call.on("end", () => done({ protobufjs: views, protobuf_es: json }));
}
