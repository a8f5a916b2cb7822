// Access reviews against a registry stand-in: a real grpc-js server on 127.0.0.1 serving RbacService/ReviewAccess
// (plaintext; the mesh's mutual TLS is tested with the real registry in tests/integration/test_typescript_sdk.py).
// The cache runs on a clock the tests move: answers kept for the TTL, one review for concurrent first calls of one
// caller, failures never kept, at most `size` callers.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";

import { AccessReviews, CACHE_SIZE, REVIEW_TTL_MS, ReviewCache } from "../access-review.js";
import { Credentials } from "../credentials.js";
import { SutradharError } from "../errors.js";
import {
  RbacService,
  ReviewAccessResponseSchema,
  type ReviewAccessRequest,
  type ReviewAccessResponse,
} from "../gen/sutradhar/v1/rbac_pb.js";
import { serviceDefinition } from "../grpc.js";
import { AgentServer } from "../serve.js";
import { meshCaller } from "../tls.js";
import { EchoLike } from "./support.js";

const TD = "sutradhar.local";
const AGENT = `spiffe://${TD}/ns/team-a/agent/echo/echo-1`;
const APP = `spiffe://${TD}/ns/team-a/user/app`;
const LOOKER = `spiffe://${TD}/ns/team-a/user/looker`;

/** What the stand-in registry answers: who may, how long it takes, or that it fails. */
const registry = {
  requests: [] as ReviewAccessRequest[],
  allowed: new Set([APP]),
  delayMs: 0,
  failing: false,
};
let server: Server;
let address: string;

before(async () => {
  server = new Server();
  server.addService(serviceDefinition(RbacService), {
    reviewAccess(call: ServerUnaryCall<ReviewAccessRequest, ReviewAccessResponse>, reply: sendUnaryData<ReviewAccessResponse>) {
      registry.requests.push(call.request);
      setTimeout(() => {
        if (registry.failing) {
          reply({ code: status.UNAVAILABLE, details: "etcd is not reachable" });
          return;
        }
        const { principal } = call.request;
        const allowed = registry.allowed.has(principal);
        reply(null, create(ReviewAccessResponseSchema, {
          allowed,
          reason: allowed ? "allowed by role invoker" : `${principal} may not execute agents 'echo' in namespace team-a`,
        }));
      }, registry.delayMs);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))));
  address = `127.0.0.1:${port}`;
});

after(() => {
  server.forceShutdown();
});

/** Access reviews at the stand-in on a clock the test moves (`now.ms`). */
function reviewsAt(options: { size?: number; at?: string; reviewer?: boolean } = {}): [AccessReviews, { ms: number }] {
  registry.requests = [];
  registry.delayMs = 0;
  registry.failing = false;
  const now = { ms: 1_000_000 };
  const reviewer = options.reviewer === false ? undefined : { credentials: Credentials.insecure(), identity: AGENT };
  const reviews = new AccessReviews(options.at ?? address, () => reviewer, {
    agent: "agent echo", clock: () => now.ms, ...(options.size !== undefined ? { size: options.size } : {}),
  });
  return [reviews, now];
}

test("the cache keeps an answer for its TTL and at most `size` callers, dropping the oldest", () => {
  assert.equal(REVIEW_TTL_MS, 10_000);
  assert.equal(CACHE_SIZE, 4096);
  const cache = new ReviewCache({ ttlMs: 10_000, size: 2 });
  cache.put("a", "", 0);
  assert.equal(cache.get("a", 9_999), "");
  assert.equal(cache.get("a", 10_000), undefined); // expired, and dropped
  assert.equal(cache.length, 0);
  cache.put("a", "no", 0);
  cache.put("b", "", 1);
  cache.put("a", "no", 2); // stored again: now the newest
  cache.put("c", "", 3);
  assert.deepEqual([cache.get("a", 4), cache.get("b", 4), cache.get("c", 4)], ["no", undefined, ""]);
  assert.equal(cache.length, 2);
  assert.throws(() => new ReviewCache({ size: 0 }), /at least 1 answer, not 0/);
  assert.throws(() => new ReviewCache({ ttlMs: 0 }), /positive time, not 0 ms/);
});

test("a review asks whether the caller may execute this agent, and keeps the answer, allowed or denied, for the TTL", async () => {
  const [reviews, now] = reviewsAt();
  try {
    assert.equal(await reviews.refusal(APP), "");
    assert.deepEqual(registry.requests.map((r) => [r.principal, r.verb, r.resource, r.namespace, r.name]),
      [[APP, "execute", "agents", "team-a", "echo"]]);
    const denied = await reviews.denial(LOOKER);
    assert.ok(denied instanceof SutradharError && denied.code === status.PERMISSION_DENIED);
    assert.equal(denied.message, `${LOOKER} may not execute agents 'echo' in namespace team-a (the access review agent ` +
      "echo asked the registry for this direct call; the router decides a routed call the same way)");
    assert.equal(reviews.reviews, 2);
    now.ms += REVIEW_TTL_MS - 1;
    assert.equal(await reviews.denial(APP), undefined);
    assert.ok((await reviews.denial(LOOKER))?.code === status.PERMISSION_DENIED);
    assert.equal(reviews.reviews, 2); // both answers kept
    registry.allowed.add(LOOKER);
    now.ms += 1; // past the TTL: asked again, and the new binding counts
    assert.equal(await reviews.denial(LOOKER), undefined);
    assert.equal(reviews.reviews, 3);
  } finally {
    registry.allowed.delete(LOOKER);
    reviews.close();
  }
});

test("concurrent first calls of one caller share one review", async () => {
  const [reviews] = reviewsAt();
  registry.delayMs = 50;
  try {
    const answers = await Promise.all([...Array(20).keys()].map(() => reviews.refusal(APP)));
    assert.deepEqual(new Set(answers), new Set([""]));
    assert.equal(registry.requests.length, 1);
    assert.equal(reviews.reviews, 1);
    await Promise.all([reviews.refusal(LOOKER), reviews.refusal(APP)]); // another caller: its own review
    assert.equal(registry.requests.length, 2);
  } finally {
    reviews.close();
  }
});

test("a registry that cannot answer fails the call UNAVAILABLE saying what to do, and the failure is not kept", async () => {
  const [reviews] = reviewsAt();
  registry.failing = true;
  registry.delayMs = 20;
  try {
    const failed = await Promise.all([reviews.denial(APP), reviews.denial(APP)]);
    assert.equal(registry.requests.length, 1); // shared, failure and all
    for (const error of failed) {
      assert.ok(error instanceof SutradharError && error.code === status.UNAVAILABLE);
      assert.equal(error.message, `agent echo cannot check whether ${APP} may call it: the access review at the ` +
        `registry ${address} failed (UNAVAILABLE: etcd is not reachable); retry when the registry is reachable, or ` +
        "call through the router");
    }
    registry.failing = false;
    assert.equal(await reviews.denial(APP), undefined); // asked again at once
    assert.equal(registry.requests.length, 2);
    assert.equal(reviews.reviews, 1);
  } finally {
    reviews.close();
  }
});

test("without a certificate yet, or with no registry at the address, nothing is allowed", async () => {
  const [uncertified] = reviewsAt({ reviewer: false });
  const early = await uncertified.denial(APP);
  assert.ok(early?.code === status.UNAVAILABLE);
  assert.equal(early.message, `agent echo has no certificate yet to ask the registry whether ${APP} may call it; ` +
    "retry in a moment, or call through the router");
  assert.equal(registry.requests.length, 0);

  const [nowhere] = reviewsAt({ at: "127.0.0.1:1" });
  try {
    const unreachable = await nowhere.denial(APP);
    assert.ok(unreachable?.code === status.UNAVAILABLE);
    assert.match(unreachable.message, /^agent echo cannot check whether .* the access review at the registry 127\.0\.0\.1:1 failed \(UNAVAILABLE: /);
    assert.equal(nowhere.cache.length, 0);
  } finally {
    nowhere.close();
  }
});

test("the cache holds at most `size` callers: the oldest answer is asked again", async () => {
  const [reviews] = reviewsAt({ size: 2 });
  try {
    for (const caller of [APP, LOOKER, `spiffe://${TD}/ns/team-a/user/third`]) await reviews.refusal(caller);
    assert.equal(reviews.cache.length, 2);
    await reviews.refusal(LOOKER);
    assert.equal(reviews.reviews, 3); // still kept
    await reviews.refusal(APP);
    assert.equal(reviews.reviews, 4); // dropped first, so asked again
  } finally {
    reviews.close();
  }
});

test("mesh services pass at once; users and agents of the trust domain are reviewed only with reviews; the rest is refused", () => {
  const peer = (...ids: string[]) => ({ subjectaltname: ids.map((id) => `URI:${id}`).join(", ") }) as never;
  const router = `spiffe://${TD}/ns/sutradhar-system/service/router`;
  assert.equal(meshCaller(peer(router), TD, "agent echo", true), undefined);
  assert.deepEqual(meshCaller(peer(APP), TD, "agent echo", true), { review: APP });
  assert.deepEqual(meshCaller(peer(AGENT), TD, "agent echo", true), { review: AGENT });
  const refusedBy = (id: string, reviews: boolean): string => {
    const verdict = meshCaller(peer(id), TD, "agent echo", reviews);
    assert.ok(Array.isArray(verdict) && verdict[0] === status.PERMISSION_DENIED);
    return verdict[1];
  };
  assert.equal(refusedBy(APP, false), `${APP} may not call agent echo: agents take calls from the mesh's health, ` +
    `router, scheduler services of trust domain '${TD}' (spiffe://${TD}/ns/sutradhar-system/service/<service>) only; ` +
    "route tasks through the router");
  refusedBy(`spiffe://${TD}/ns/sutradhar-system/service/registry`, true); // a mesh service that does not call agents
  refusedBy("spiffe://other.domain/ns/team-a/user/app", true);
  refusedBy(`spiffe://${TD}/ns/team-a/user/app/extra`, true);
  const anonymous = meshCaller(peer(), TD, "agent echo", true);
  assert.deepEqual(anonymous, [status.UNAUTHENTICATED, "agent echo takes calls over mutual TLS, from the mesh's " +
    "router, health and scheduler and from callers the registry allows to execute it; this call presented no " +
    "certificate with a SPIFFE ID (exactly one spiffe:// URI SAN)"]);
  assert.match((meshCaller(peer(APP, router), TD, "agent echo") as [status, string])[1], /scheduler only; this call/);
});

test("an identity shaped right but invalid (SpiffeId.parse refuses it) is refused, never sent for review", () => {
  const peer = (id: string) => ({ subjectaltname: `URI:${id}` }) as never;
  for (const id of [`spiffe://${TD}/ns/Team_A/user/app`, `spiffe://${TD}/ns/team-a/agent/Echo`,
    `spiffe://${TD}/ns/team-a/agent/echo/echo..1`, `spiffe://${TD}/ns/${"a".repeat(64)}/user/app`,
    `spiffe://${TD}/ns/team-a/robot/app`, `spiffe://${TD}/ns/sutradhar-system/service/Router`]) {
    const verdict = meshCaller(peer(id), TD, "agent echo", true);
    assert.ok(Array.isArray(verdict), `${id} was let through: ${JSON.stringify(verdict)}`);
    assert.equal(verdict[0], status.PERMISSION_DENIED);
    assert.match(verdict[1], new RegExp(`^${id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} may not call agent echo: `));
  }
  assert.deepEqual(meshCaller(peer(`spiffe://${TD}/ns/team-a/agent/echo/pod-1.node-2`), TD, "agent echo", true),
    { review: `spiffe://${TD}/ns/team-a/agent/echo/pod-1.node-2` }); // an instance id of labels joined by '.'
});

test("a secured agent asks SUTRADHAR_ACCESS_REVIEW, else the registry it registers with; an insecure one asks nobody", () => {
  const bootstrap = { bootstrap: "127.0.0.1:1", bootstrapTokenFile: "/t", tlsCaFile: "/ca.pem" };
  const at = (options: ConstructorParameters<typeof AgentServer>[1]): string | undefined =>
    new AgentServer(new EchoLike(), options).accessReviews?.address;
  assert.equal(at({ ...bootstrap, registry: "127.0.0.1:2" }), "127.0.0.1:2");
  assert.equal(at({ ...bootstrap, registry: "127.0.0.1:2", accessReview: "127.0.0.1:3" }), "127.0.0.1:3");
  assert.equal(at({ ...bootstrap, accessReview: "127.0.0.1:3" }), "127.0.0.1:3"); // a replica of the scheduler
  assert.equal(at(bootstrap), undefined); // mesh services only
  assert.equal(at({ insecure: true, registry: "127.0.0.1:2" }), undefined);
  assert.equal(new AgentServer(new EchoLike(), { ...bootstrap, registry: "127.0.0.1:2" }).accessReviews?.agent, "agent echo-like");
});
