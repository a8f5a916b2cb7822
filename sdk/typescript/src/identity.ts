// Workload and user identities (mirrors sdk/sutradhar/_identity.py): one definition of a SPIFFE ID's shape and
// rules for the SDK, so a TypeScript agent accepts exactly the identities a Python agent accepts.
//
//   spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>
//
//   spiffe://sutradhar.local/ns/sutradhar-system/service/registry   a mesh service
//   spiffe://sutradhar.local/ns/team-a/agent/echo/echo-7f3a          a replica of agent echo
//   spiffe://sutradhar.local/ns/team-a/agent/echo                    an agent outside the scheduler
//   spiffe://sutradhar.local/ns/sutradhar-system/user/admin          a person or a CI job
//
// The trust domain is lowercase DNS-style labels joined by '.' (at most 200 characters), the namespace a DNS-1123
// label, the kind service, agent or user, and the name a DNS-1123 label or, for an agent replica,
// <agent-id>/<instance-id> (the instance id: DNS-1123 labels joined by '.'); the identity's DNS name
// (`SpiffeId.dnsName`, the name its certificate also carries) is at most 253 characters.
import { status } from "@grpc/grpc-js";

import { isDnsLabel } from "./agent.js";
import { SutradharError } from "./errors.js";

/** The trust domain a mesh uses unless told otherwise. */
export const DEFAULT_TRUST_DOMAIN = "sutradhar.local";
/** The namespace of the mesh's own services and of its cluster-wide principals. */
export const SYSTEM_NAMESPACE = "sutradhar-system";
/** A mesh service: registry, router, scheduler, health. */
export const SERVICE = "service";
/** An agent (name: the agent id) or one replica of it (name: agent id / instance id). */
export const AGENT = "agent";
/** A person, a CI job, a client program: whoever holds a user certificate or token. */
export const USER = "user";
export const KINDS = [SERVICE, AGENT, USER] as const;
export type Kind = (typeof KINDS)[number];
/** Longest trust domain. */
export const MAX_TRUST_DOMAIN = 200;
/** Longest DNS name of an identity (a DNS-1123 subdomain). */
export const MAX_DNS_NAME = 253;

const SCHEME = "spiffe://";
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const SHAPE = "spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>";

/** The text of the SPIFFE ID of these parts, unchecked (`SpiffeId` checks them). */
export function formatSpiffeId(trustDomain: string, namespace: string, kind: string, name: string): string {
  return `${SCHEME}${trustDomain}/ns/${namespace}/${kind}/${name}`;
}

/** Why `text` is not a trust domain (lowercase DNS-style labels joined by '.', e.g. sutradhar.local), or "". */
export function trustDomainProblem(text: string): string {
  if (text && text.length <= MAX_TRUST_DOMAIN && TRUST_DOMAIN.test(text)) return "";
  return `trust domain ${JSON.stringify(text)} is not valid: use lowercase letters, digits, '-' and '.', at most ` +
    `${MAX_TRUST_DOMAIN} characters (e.g. ${DEFAULT_TRUST_DOMAIN})`;
}

/** `[<instance>.]<name>.<kind>.<namespace>.<trust-domain>`: an instance id's own dots stay. */
function dnsNameOf(trustDomain: string, namespace: string, kind: string, name: string): string {
  return [...name.split("/").reverse(), kind, namespace, trustDomain].join(".");
}

/** What is wrong with an identity of these parts, and the part it is in; undefined when nothing is. */
function problemOf(trustDomain: string, namespace: string, kind: string, name: string): [string, string] | undefined {
  const domain = trustDomainProblem(trustDomain);
  if (domain) return [domain, "trustDomain"];
  if (!isDnsLabel(namespace)) return [`identity namespace ${JSON.stringify(namespace)} is not a DNS-1123 label`, "namespace"];
  if (!(KINDS as readonly string[]).includes(kind)) {
    return [`identity kind ${JSON.stringify(kind)} is not one of ${KINDS.join(", ")}`, "kind"];
  }
  const [first = "", ...rest] = name.split("/");
  const instance = (text: string): boolean => text.split(".").every(isDnsLabel);
  if (rest.length > (kind === AGENT ? 1 : 0) || !isDnsLabel(first) || !rest.every(instance)) {
    const shape = kind === AGENT ? "<agent-id> or <agent-id>/<instance-id>" : "a DNS-1123 label";
    return [`identity name ${JSON.stringify(name)} of kind ${kind} must be ${shape}`, "name"];
  }
  if (dnsNameOf(trustDomain, namespace, kind, name).length > MAX_DNS_NAME) {
    return [`identity ${formatSpiffeId(trustDomain, namespace, kind, name)} is too long: its DNS name would pass ` +
      `${MAX_DNS_NAME} characters; use a shorter instance id, agent id, namespace or trust domain`, "name"];
  }
  return undefined;
}

/** `spiffe://<trustDomain>/ns/<namespace>/<kind>/<name>`, checked; `name` may hold one '/' (an agent replica:
 * `<agent-id>/<instance-id>`). */
export class SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly kind: Kind;
  readonly name: string;

  /** INVALID_ARGUMENT saying what is wrong (its field: the part) when the parts break a rule. */
  constructor(trustDomain: string, namespace: string, kind: string, name: string) {
    const problem = problemOf(trustDomain, namespace, kind, name);
    if (problem) throw new SutradharError(status.INVALID_ARGUMENT, ...problem);
    this.trustDomain = trustDomain;
    this.namespace = namespace;
    this.kind = kind as Kind;
    this.name = name;
  }

  /** The identity `text` names, or what is wrong with it (the rules and messages of the Python SDK's
   * `SpiffeId.parse`). */
  static check(text: string): SpiffeId | string {
    if (!text.startsWith(SCHEME)) return `${JSON.stringify(text)} is not a SPIFFE ID (${SHAPE})`;
    const rest = text.slice(SCHEME.length);
    const slash = rest.indexOf("/");
    const [domain, path] = slash < 0 ? [rest, ""] : [rest.slice(0, slash), rest.slice(slash + 1)];
    const parts = path.split("/");
    if ((parts.length !== 4 && parts.length !== 5) || parts[0] !== "ns") {
      return `${JSON.stringify(text)} is not a Sutradhar identity (${SHAPE})`;
    }
    const [namespace = "", kind = "", ...names] = parts.slice(1);
    const name = names.join("/");
    const problem = problemOf(domain, namespace, kind, name);
    return problem ? problem[0] : new SpiffeId(domain, namespace, kind, name);
  }

  /** The identity `text` names, or undefined for anything the Python SDK's `SpiffeId.parse` rejects. */
  static parse(text: string): SpiffeId | undefined {
    const id = SpiffeId.check(text);
    return typeof id === "string" ? undefined : id;
  }

  /** The agent id of an agent identity ("" for other kinds). */
  get agentId(): string {
    return this.kind === AGENT ? (this.name.split("/")[0] ?? "") : "";
  }

  /** The instance id of a replica identity ("" otherwise). */
  get instanceId(): string {
    return this.kind === AGENT ? (this.name.split("/")[1] ?? "") : "";
  }

  /** The DNS name in this identity's certificate, which clients verify as the TLS target name:
   * `[<instance>.]<name>.<kind>.<namespace>.<trust-domain>`. */
  dnsName(): string {
    return dnsNameOf(this.trustDomain, this.namespace, this.kind, this.name);
  }

  toString(): string {
    return formatSpiffeId(this.trustDomain, this.namespace, this.kind, this.name);
  }
}
