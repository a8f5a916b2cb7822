// The decoder merges a message field that occurs more than once (the protobuf encoding rule), so fields a
// router splices in as a second occurrence are kept, not lost (decision 0018).
import assert from "node:assert/strict";
import { test } from "node:test";

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";

import { v1 } from "../index.js";
import { toValue, fromValue } from "../values.js";

test("a task sent in two fragments decodes whole", () => {
  const first = toBinary(v1.ExecuteRequestSchema, create(v1.ExecuteRequestSchema, {
    task: { type: "answer", payload: toValue({ question: "2 + 3" }) },
  }));
  const patch = toBinary(v1.ExecuteRequestSchema, create(v1.ExecuteRequestSchema, {
    task: { id: "routed-1", context: { requestId: "r-1" } },
  }));
  const request = fromBinary(v1.ExecuteRequestSchema, new Uint8Array([...first, ...patch]));
  assert.equal(request.task?.id, "routed-1");
  assert.equal(request.task?.type, "answer");
  assert.deepEqual(fromValue(request.task?.payload), { question: "2 + 3" });
  assert.equal(request.task?.context?.requestId, "r-1");
});

test("a result whose metadata is patched keeps its success and data", () => {
  const result = toBinary(v1.ExecuteResponseSchema, create(v1.ExecuteResponseSchema, {
    result: { success: true, data: toValue({ answer: 5 }), metadata: { agentId: "tutor", instanceId: "tutor-1" } },
  }));
  const patch = toBinary(v1.ExecuteResponseSchema, create(v1.ExecuteResponseSchema, {
    result: { metadata: { attempts: 2 } },
  }));
  const response = fromBinary(v1.ExecuteResponseSchema, new Uint8Array([...result, ...patch]));
  assert.equal(response.result?.success, true);
  assert.deepEqual(fromValue(response.result?.data), { answer: 5 });
  assert.deepEqual([response.result?.metadata?.agentId, response.result?.metadata?.instanceId,
    response.result?.metadata?.attempts], ["tutor", "tutor-1", 2]);
});
