// Access reviews (mirrors sdk/sutradhar/_access_review.py): an agent asks the registry whether a caller that reached
// it directly may call it.
//
// In a secured mesh a DirectClient with a certificate calls agents itself, with no router to check its credentials.
// The agent does it instead, as Kubernetes' kubelet does with a SubjectAccessReview: `AccessReviews.refusal(caller)`
// asks the registry (RbacService/ReviewAccess, over mutual TLS with the agent's own certificate) whether the caller's
// SPIFFE ID may `execute` this agent, and the registry answers with the rule the router applies to
// RouterService/Execute (docs/rbac.md, "Access reviews").
//
// Answers, allowed and denied alike, are kept REVIEW_TTL_MS (10 s, by an injected clock), for at most CACHE_SIZE
// callers (the oldest answer goes first), so a revoked binding stops direct calls within the TTL and a busy caller
// costs one review per TTL; concurrent first calls of one caller share one review. A registry that cannot be asked
// (unreachable, no certificate yet, refusing the review) fails the call UNAVAILABLE, with what to do: nothing is ever
// allowed without an answer (fail closed), and failures are not cached.
import { status } from "@grpc/grpc-js";

import { RbacClient } from "./clients.js";
import type { Credentials } from "./credentials.js";
import { SutradharError } from "./errors.js";
import { AGENT, SpiffeId } from "./identity.js";

/** How long an answer is kept, in milliseconds. */
export const REVIEW_TTL_MS = 10_000;
/** How many callers' answers are kept. */
export const CACHE_SIZE = 4096;
/** How long one review may take, in milliseconds. */
export const REVIEW_TIMEOUT_MS = 5_000;

/** Answers by caller, each kept `ttlMs` from when it was stored, at most `size` of them (storing one more drops the
 * oldest). Times are the caller's clock's (milliseconds). */
export class ReviewCache {
  readonly ttlMs: number;
  readonly size: number;
  // caller -> [expiry, refusal or ""]; a Map iterates in insertion order, so its first key is the oldest answer
  private readonly answers = new Map<string, [number, string]>();

  constructor({ ttlMs = REVIEW_TTL_MS, size = CACHE_SIZE }: { ttlMs?: number; size?: number } = {}) {
    if (!(size >= 1)) throw new RangeError(`an access review cache holds at least 1 answer, not ${size}`);
    if (!(ttlMs > 0)) throw new RangeError(`an access review answer is kept for a positive time, not ${ttlMs} ms`);
    this.ttlMs = ttlMs;
    this.size = size;
  }

  /** How many answers are kept. */
  get length(): number {
    return this.answers.size;
  }

  /** The answer about `caller` ("" allowed, else the refusal), or undefined when none is kept (or it expired). */
  get(caller: string, now: number): string | undefined {
    const answer = this.answers.get(caller);
    if (answer === undefined) return undefined;
    if (answer[0] <= now) {
      this.answers.delete(caller);
      return undefined;
    }
    return answer[1];
  }

  /** Keep the answer about `caller` until `now` + ttl. */
  put(caller: string, refusal: string, now: number): void {
    this.answers.delete(caller); // stored again: now the newest
    this.answers.set(caller, [now + this.ttlMs, refusal]);
    for (const oldest of this.answers.keys()) {
      if (this.answers.size <= this.size) break;
      this.answers.delete(oldest);
    }
  }
}

/** What the agent asks with: its own credentials and SPIFFE ID (spiffe://TD/ns/NS/agent/ID[/INSTANCE]). */
export interface Reviewer {
  credentials: Credentials;
  identity: string;
}

/** Options of AccessReviews. */
export interface AccessReviewsOptions {
  /** Who asks, in messages ("agent echo"). */
  agent?: string;
  ttlMs?: number;
  size?: number;
  /** Milliseconds of a monotonic clock (default performance.now). */
  clock?: () => number;
  timeoutMs?: number;
}

/** The namespace and agent id of an agent identity, or undefined for another kind (or no valid identity:
 * `SpiffeId.parse`). */
function agentOf(identity: string): { namespace: string; agentId: string } | undefined {
  const id = SpiffeId.parse(identity);
  return id?.kind === AGENT ? { namespace: id.namespace, agentId: id.agentId } : undefined;
}

/**
 * The answers of the registry at `address` about this agent's callers. `reviewer` gives the agent's credentials and
 * identity when a review is made (a bootstrapped agent has them only once started); the identity names the namespace
 * and agent id reviewed.
 */
export class AccessReviews {
  readonly address: string;
  readonly agent: string;
  readonly cache: ReviewCache;
  clock: () => number;
  readonly timeoutMs: number;
  /** Reviews the registry answered (cache misses). */
  reviews = 0;
  private readonly reviewer: () => Reviewer | undefined;
  private readonly pending = new Map<string, Promise<string>>();
  private client: RbacClient | undefined;

  constructor(address: string, reviewer: () => Reviewer | undefined, options: AccessReviewsOptions = {}) {
    this.address = address;
    this.reviewer = reviewer;
    this.agent = options.agent ?? "this agent";
    this.cache = new ReviewCache({
      ...(options.ttlMs !== undefined ? { ttlMs: options.ttlMs } : {}),
      ...(options.size !== undefined ? { size: options.size } : {}),
    });
    this.clock = options.clock ?? (() => performance.now());
    this.timeoutMs = options.timeoutMs ?? REVIEW_TIMEOUT_MS;
  }

  /** "" when `caller` (a SPIFFE ID) may execute this agent, else why not (the registry's reason, naming who, what
   * and where). Rejects with UNAVAILABLE when the registry cannot answer. */
  refusal(caller: string): Promise<string> {
    const answer = this.cache.get(caller, this.clock());
    if (answer !== undefined) return Promise.resolve(answer);
    let pending = this.pending.get(caller);
    if (pending === undefined) {
      pending = this.review(caller).finally(() => this.pending.delete(caller));
      this.pending.set(caller, pending);
    }
    return pending;
  }

  /** Undefined when `caller` may execute this agent; else the error its direct call gets: PERMISSION_DENIED with
   * the registry's reason (who, what and where), or UNAVAILABLE when the registry cannot answer. */
  async denial(caller: string): Promise<SutradharError | undefined> {
    let refusal: string;
    try {
      refusal = await this.refusal(caller);
    } catch (err) {
      return err instanceof SutradharError ? err : new SutradharError(status.UNAVAILABLE, String(err));
    }
    if (!refusal) return undefined;
    return new SutradharError(status.PERMISSION_DENIED, `${refusal} (the access review ${this.agent} asked the ` +
      "registry for this direct call; the router decides a routed call the same way)");
  }

  private async review(caller: string): Promise<string> {
    const reviewer = this.reviewer();
    const own = reviewer && agentOf(reviewer.identity);
    if (reviewer === undefined || own === undefined) {
      throw new SutradharError(status.UNAVAILABLE, `${this.agent} has no certificate yet to ask the registry whether ` +
        `${caller} may call it; retry in a moment, or call through the router`);
    }
    let allowed: boolean;
    let reason: string;
    try {
      this.client ??= new RbacClient(this.address, { credentials: reviewer.credentials });
      ({ allowed, reason } = await this.client.reviewAccess(caller, own.namespace, own.agentId,
        { timeoutMs: this.timeoutMs }));
    } catch (err) {
      const [code, message] = err instanceof SutradharError ? [err.codeName, err.message] : ["UNKNOWN", String(err)];
      throw new SutradharError(status.UNAVAILABLE, `${this.agent} cannot check whether ${caller} may call it: the ` +
        `access review at the registry ${this.address} failed (${code}: ${message}); retry when the registry is ` +
        "reachable, or call through the router");
    }
    this.reviews += 1;
    const refusal = allowed ? "" : reason || `${caller} may not execute ${this.agent}`;
    this.cache.put(caller, refusal, this.clock());
    return refusal;
  }

  /** Close the channel to the registry. */
  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}
