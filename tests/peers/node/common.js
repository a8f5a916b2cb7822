// Shared by agent.js and client.js: the protos loaded the way most Node users load them
// (@grpc/proto-loader over protos/ as they are; protobufjs decodes underneath), plain-JSON
// views of what protobufjs decoded, and a second decoder, protobuf-es, reading the same
// bytes from a descriptor set loaded at run time (no code generation).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const { createFileRegistry, fromBinary, toJson } = require("@bufbuild/protobuf");
const { FileDescriptorSetSchema } = require("@bufbuild/protobuf/wkt");

const PROTOS = path.resolve(__dirname, "..", "..", "..", "protos");

// The options of grpc-js's own examples.
const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTOS] };

function load() {
  const definition = protoLoader.loadSync(
    ["sutradhar/v1/agent.proto", "sutradhar/v1/router.proto", "sutradhar/v1/registry.proto"], LOADER_OPTIONS);
  return { definition, v1: grpc.loadPackageDefinition(definition).sutradhar.v1 };
}

// protobuf-es, from the FileDescriptorSet at `file` (every file the messages need).
function esRegistry(file) {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, fs.readFileSync(file)));
}

// The proto3 JSON of `bytes` (a serialized `typeName`) as protobuf-es decodes them.
function esJson(registry, typeName, bytes) {
  const schema = registry.getMessage(typeName);
  if (schema === undefined) throw new Error(`no message ${typeName} in the descriptor set`);
  return toJson(schema, fromBinary(schema, bytes), { registry, useProtoFieldName: true });
}

// Wrap a method definition's deserializer so each decoded object keeps its raw bytes
// (non-enumerable `__raw`), for protobuf-es to decode the very same bytes.
function keepRaw(method, side) {
  const key = side === "request" ? "requestDeserialize" : "responseDeserialize";
  const decode = method[key];
  method[key] = (buffer) => {
    const decoded = decode(buffer);
    Object.defineProperty(decoded, "__raw", { value: Buffer.from(buffer), enumerable: false });
    return decoded;
  };
}

// google.protobuf.Value as protobufjs/proto-loader gives it (oneofs: true) -> plain JSON, and back.
function fromValue(value) {
  if (value === null || value === undefined) return undefined;
  switch (value.kind) {
    case "nullValue": return null;
    case "numberValue": return value.numberValue;
    case "stringValue": return value.stringValue;
    case "boolValue": return value.boolValue;
    case "structValue": return fromStruct(value.structValue);
    case "listValue": return (value.listValue.values || []).map(fromValue);
    default: return undefined; // a Value with no kind set
  }
}

function fromStruct(struct) {
  if (struct === null || struct === undefined) return undefined;
  const out = {};
  for (const [key, v] of Object.entries(struct.fields || {})) out[key] = fromValue(v);
  return out;
}

function toValue(json) {
  if (json === null) return { nullValue: "NULL_VALUE" };
  if (Array.isArray(json)) return { listValue: { values: json.map(toValue) } };
  switch (typeof json) {
    case "number": return { numberValue: json };
    case "string": return { stringValue: json };
    case "boolean": return { boolValue: json };
    case "object": return { structValue: toStruct(json) };
    default: throw new Error(`not JSON: ${typeof json}`);
  }
}

function toStruct(json) {
  const fields = {};
  for (const [key, v] of Object.entries(json)) fields[key] = toValue(v);
  return { fields };
}

function seconds(t) {
  return t ? { seconds: Number(t.seconds), nanos: t.nanos } : null;
}

// Plain views of decoded messages: every field, absent sub-messages as null.
function taskView(task) {
  if (!task) return null;
  const c = task.context;
  return {
    id: task.id, type: task.type, payload: task.payload ? fromValue(task.payload) : null,
    context: c ? {
      session_id: c.session_id, user_id: c.user_id, request_id: c.request_id, deadline: seconds(c.deadline),
      traceparent: c.traceparent, tracestate: c.tracestate, attributes: { ...c.attributes },
    } : null,
  };
}

function resultView(result) {
  if (!result) return null;
  const e = result.error;
  const m = result.metadata;
  return {
    success: result.success, data: result.data ? fromValue(result.data) : null,
    error: e ? { code: e.code, message: e.message, retryable: e.retryable, details: e.details ? fromStruct(e.details) : null } : null,
    metadata: m ? {
      latency: seconds(m.latency), agent_id: m.agent_id, agent_version: m.agent_version,
      instance_id: m.instance_id, attempts: m.attempts, task_id: m.task_id,
    } : null,
  };
}

function eventView(event) {
  if (event.event === "progress") return { progress: { message: event.progress.message, fraction: event.progress.fraction } };
  if (event.event === "partial") return { partial: fromValue(event.partial) };
  if (event.event === "result") return { result: resultView(event.result) };
  return { none: true };
}

module.exports = {
  grpc, load, esRegistry, esJson, keepRaw, fromValue, toValue, toStruct, taskView, resultView, eventView,
};
