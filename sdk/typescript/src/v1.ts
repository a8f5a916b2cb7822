// Every generated message, enum and service descriptor of sutradhar.v1, in one namespace (`v1` of the package).
export * from "./gen/sutradhar/v1/agent_pb.js";
export * from "./gen/sutradhar/v1/audit_pb.js";
export * from "./gen/sutradhar/v1/health_pb.js";
export * from "./gen/sutradhar/v1/identity_pb.js";
export * from "./gen/sutradhar/v1/probe_pb.js";
export * from "./gen/sutradhar/v1/quota_pb.js";
export * from "./gen/sutradhar/v1/ratelimit_pb.js";
export * from "./gen/sutradhar/v1/rbac_pb.js";
export * from "./gen/sutradhar/v1/registry_pb.js";
export * from "./gen/sutradhar/v1/router_pb.js";
export * from "./gen/sutradhar/v1/routing_pb.js";
export * from "./gen/sutradhar/v1/scheduler_pb.js";
export * from "./gen/sutradhar/v1/secrets_pb.js";
export * from "./gen/sutradhar/v1/tokens_pb.js";
