// ServeSettings: how an agent is served, read from the same SUTRADHAR_* variables as the Python SDK
// (sdk/sutradhar/_serve_settings.py), so the scheduler's process and container runtimes start a Node agent the
// same way. An option is the explicit value when given, else SUTRADHAR_<NAME> when set and non-empty, else the default.
import { status } from "@grpc/grpc-js";

import { SutradharError } from "./errors.js";
import { DEFAULT_TRUST_DOMAIN, MAX_TRUST_DOMAIN, trustDomainProblem } from "./identity.js";
import { DEFAULT_LOG_LEVEL, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./logs.js";

export interface ServeSettings {
  /** Address to listen on (0.0.0.0: every interface). */
  host: string;
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Registry host:port to register with; undefined: only serve (the scheduler registers its replicas itself). */
  registry: string | undefined;
  /** Registry host:port that decides callers which are not mesh services (a DirectClient's user): it answers whether
   * they may execute this agent (RbacService/ReviewAccess, docs/security.md, "Who may call an agent"). Undefined: the
   * registry this agent registers with, if any; with neither, only the mesh's router, health and scheduler may call
   * it. The scheduler sets it (SUTRADHAR_ACCESS_REVIEW) for the replicas it runs, which do not register themselves. */
  accessReview: string | undefined;
  namespace: string;
  /** This instance's id; undefined: the agent id and 8 random hex digits. */
  instanceId: string | undefined;
  /** Endpoint registered for this instance; undefined: the listen address (127.0.0.1 for every interface). */
  advertise: string | undefined;
  /** Agent id to report instead of the class's (the scheduler sets the deployed definition's). */
  agentId: string | undefined;
  /** Semantic version to report instead of the class's (the scheduler sets the deployed definition's). */
  agentVersion: string | undefined;
  labels: Record<string, string>;
  /** Registration lease TTL in milliseconds; renewed every ttl/3. */
  ttlMs: number;
  /** How long in-flight tasks get to finish on shutdown before they are cancelled, in milliseconds. */
  graceMs: number;
  /** Create the agent definition in the registry when it is missing. */
  registerAgent: boolean;
  /** How often checkHealth() is polled, and how long one poll may take, in milliseconds. */
  healthPeriodMs: number;
  /** Largest message accepted or sent. */
  maxMessageBytes: number;
  /** PEM certificate (chain) this agent presents; rewritten files are picked up while running. */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /** PEM trust bundle of the mesh CA. */
  tlsCaFile: string | undefined;
  /** SPIFFE trust domain of the mesh. */
  trustDomain: string;
  /** Serve plaintext with no authentication: development only, refused on an address other than loopback. */
  insecure: boolean;
  /** Set by the container runtime: listening on 0.0.0.0 inside a container published on the host's loopback only. */
  publishedOnLoopback: boolean;
  /** Port to serve the agent's Prometheus GET /metrics on (0: a free one); undefined: no /metrics. */
  metricsPort: number | undefined;
  /** A metrics port that cannot be bound is a warning and the agent serves without /metrics. */
  metricsOptional: boolean;
  /** Log lines on stderr: "text", or "json" (one JSON object per line, the Python SDK's fields); serve() only. */
  logFormat: LogFormat;
  /** The registry's bootstrap port, host:port: an agent without certificate files trades its bootstrap token
   * (bootstrapTokenFile) there for a certificate of its agent identity, kept in memory and renewed at 70 % over the
   * registry's mTLS port (`registry`). Needs tlsCaFile (to verify the registry) and no cert/key files. */
  bootstrap: string | undefined;
  /** File holding the agent's bootstrap token (`sutradhar token create --agent ID`; keep it 0600): a file, never the
   * token itself in a variable or on a command line. */
  bootstrapTokenFile: string | undefined;
  /** Lowest level of the log lines written (DEBUG, INFO, WARNING, ERROR, CRITICAL; any case); serve() only. */
  logLevel: LogLevel;
}

export const DEFAULT_SETTINGS: ServeSettings = {
  host: "127.0.0.1",
  port: 0,
  registry: undefined,
  accessReview: undefined,
  namespace: "default",
  instanceId: undefined,
  advertise: undefined,
  agentId: undefined,
  agentVersion: undefined,
  labels: {},
  ttlMs: 10_000,
  graceMs: 10_000,
  registerAgent: true,
  healthPeriodMs: 1_000,
  maxMessageBytes: 4 * 1024 * 1024,
  tlsCertFile: undefined,
  tlsKeyFile: undefined,
  tlsCaFile: undefined,
  trustDomain: DEFAULT_TRUST_DOMAIN,
  insecure: false,
  publishedOnLoopback: false,
  metricsPort: undefined,
  metricsOptional: false,
  logFormat: "text",
  logLevel: DEFAULT_LOG_LEVEL,
  bootstrap: undefined,
  bootstrapTokenFile: undefined,
};

const TRUE = ["1", "true", "yes", "on"];
const FALSE = ["0", "false", "no", "off"];
const DURATION = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10" (seconds), "0.5s", "250ms", "5m", "1h" in milliseconds; undefined for anything else. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * (UNIT_MS[match[2] ?? "s"] ?? 1000);
}

type Kind = "string" | "trust-domain" | "log-format" | "log-level" | "port" | "count" | "duration" | "positive-duration" | "boolean" | "pairs";

const KINDS: Record<keyof ServeSettings, Kind> = {
  host: "string", port: "port", registry: "string", accessReview: "string", namespace: "string", instanceId: "string", advertise: "string",
  agentId: "string", agentVersion: "string", labels: "pairs", ttlMs: "positive-duration", graceMs: "duration",
  registerAgent: "boolean", healthPeriodMs: "positive-duration", maxMessageBytes: "count", tlsCertFile: "string",
  tlsKeyFile: "string", tlsCaFile: "string", trustDomain: "trust-domain", insecure: "boolean", publishedOnLoopback: "boolean",
  metricsPort: "port", metricsOptional: "boolean", logFormat: "log-format", logLevel: "log-level",
  bootstrap: "string", bootstrapTokenFile: "string",
};

const HELP: Record<Kind, string> = {
  string: "a string",
  "trust-domain": `a trust domain: lowercase letters, digits, '-' and '.', at most ${MAX_TRUST_DOMAIN} characters ` +
    `(e.g. ${DEFAULT_TRUST_DOMAIN})`,
  "log-format": `one of ${LOG_FORMATS.join(", ")}`,
  "log-level": `one of ${LOG_LEVELS.join(", ")}`,
  port: "a port number (0-65535)",
  count: "a whole number above zero",
  duration: "a duration of zero or more (e.g. 10, 0.5s, 250ms, 5m)",
  "positive-duration": "a duration above zero (e.g. 10, 0.5s, 250ms, 5m)",
  boolean: `a boolean (${TRUE.join(", ")} or ${FALSE.join(", ")})`,
  pairs: "comma-separated key=value pairs",
};

/** What an explicit value of a kind must be, where it differs from what its variable's text must be (durations are
 * given in milliseconds there). */
const EXPLICIT_HELP: Partial<Record<Kind, string>> = {
  duration: "a number of milliseconds, zero or more",
  "positive-duration": "a number of milliseconds above zero",
  pairs: "an object of string values",
};

/** Whether `value`, given explicitly (not as a variable's text), is a valid setting of `kind`. */
function explicitValid(kind: Kind, value: unknown): boolean {
  switch (kind) {
    case "string":
      return typeof value === "string";
    case "trust-domain":
      return typeof value === "string" && !trustDomainProblem(value);
    case "log-format":
      return LOG_FORMATS.some((format) => format === value);
    case "log-level":
      return LOG_LEVELS.some((level) => level === value);
    case "port":
      return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
    case "count":
      return Number.isInteger(value) && (value as number) > 0;
    case "duration":
      return typeof value === "number" && Number.isFinite(value) && value >= 0;
    case "positive-duration":
      return typeof value === "number" && Number.isFinite(value) && value > 0;
    case "boolean":
      return typeof value === "boolean";
    case "pairs":
      return typeof value === "object" && value !== null && !Array.isArray(value) &&
        Object.values(value).every((v) => typeof v === "string");
  }
}

/** SUTRADHAR_<NAME> of a setting: ttlMs -> SUTRADHAR_TTL, tlsCertFile -> SUTRADHAR_TLS_CERT_FILE. */
export function variableName(key: keyof ServeSettings): string {
  const base = key.replace(/Ms$/, "").replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
  return `SUTRADHAR_${base}`;
}

function parse(kind: Kind, text: string): unknown {
  const word = text.trim();
  switch (kind) {
    case "string":
      return text;
    case "trust-domain":
      return trustDomainProblem(word) ? undefined : word;
    case "log-format":
      return LOG_FORMATS.find((format) => format === word.toLowerCase());
    case "log-level":
      return LOG_LEVELS.find((level) => level === word.toUpperCase());
    case "port": {
      const n = Number(word);
      return /^\d+$/.test(word) && n <= 65535 ? n : undefined;
    }
    case "count": {
      const n = Number(word);
      return /^\d+$/.test(word) && n > 0 ? n : undefined;
    }
    case "duration":
      return parseDurationMs(text);
    case "positive-duration": {
      const ms = parseDurationMs(text);
      return ms !== undefined && ms > 0 ? ms : undefined;
    }
    case "boolean":
      return TRUE.includes(word.toLowerCase()) ? true : FALSE.includes(word.toLowerCase()) ? false : undefined;
    case "pairs": {
      const pairs: Record<string, string> = {};
      for (const item of text.split(",").map((s) => s.trim()).filter(Boolean)) {
        const eq = item.indexOf("=");
        if (eq <= 0) return undefined;
        pairs[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
      }
      return pairs;
    }
  }
}

/**
 * The settings: each is `explicit`'s value when not undefined, else SUTRADHAR_<NAME> from `env` when set and
 * non-empty, else the default. INVALID_ARGUMENT naming the option or the variable and what it should be for a
 * malformed value (an explicit one is checked by the same rule as the variable's text: a port in range, a trust
 * domain, a duration above zero, ...).
 */
export function serveSettings(explicit: Partial<ServeSettings> = {}, env: NodeJS.ProcessEnv = process.env): ServeSettings {
  const settings: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(KINDS) as (keyof ServeSettings)[]) {
    const given = explicit[key];
    if (given !== undefined) {
      const kind = KINDS[key];
      if (!explicitValid(kind, given)) {
        throw new SutradharError(status.INVALID_ARGUMENT,
          `serve option ${key}=${JSON.stringify(given)} is not ${EXPLICIT_HELP[kind] ?? HELP[kind]}`, key);
      }
      settings[key] = given;
      continue;
    }
    const name = variableName(key);
    const text = env[name];
    if (text === undefined || text === "") continue;
    const value = parse(KINDS[key], text);
    if (value === undefined) {
      throw new SutradharError(status.INVALID_ARGUMENT, `${name}=${JSON.stringify(text)} is not ${HELP[KINDS[key]]}`, name);
    }
    settings[key] = value;
  }
  return settings as unknown as ServeSettings;
}
