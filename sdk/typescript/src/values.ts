// JSON-like values <-> google.protobuf.Value / Struct / Duration / Timestamp.
import { create, fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import {
  DurationSchema,
  TimestampSchema,
  ValueSchema,
  type Duration,
  type Timestamp,
  type Value,
} from "@bufbuild/protobuf/wkt";

import { SutradharError } from "./errors.js";
import { status } from "@grpc/grpc-js";

/** A JSON-like value: what payloads, results and partial data are. */
export type Json = JsonValue;

/** `value` as a google.protobuf.Value; TypeError naming what is not JSON-like (undefined, a function, NaN, ...). */
export function toValue(value: unknown): Value {
  checkJson(value, "value");
  return fromJson(ValueSchema, value as JsonValue);
}

function checkJson(value: unknown, where: string): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`${where} is not JSON-like: ${value}`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${where}[${i}]`));
    return;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value)) checkJson(item, `${where}.${key}`);
    return;
  }
  const kind = value === undefined ? "undefined" : typeof value === "object" ? value.constructor?.name : typeof value;
  throw new TypeError(`${where} is not JSON-like: ${kind}`);
}

/** A google.protobuf.Value as plain JSON; an unset value is null. */
export function fromValue(value: Value | undefined): Json {
  return value === undefined ? null : (toJson(ValueSchema, value) as Json);
}

/** `value` itself once checked JSON-like (google.protobuf.Struct fields are plain JSON objects); TypeError if not. */
export function checkedObject(value: JsonObject): JsonObject {
  checkJson(value, "struct");
  return value;
}

/** Milliseconds as a google.protobuf.Duration. */
export function durationFromMs(ms: number): Duration {
  const whole = Math.floor(ms / 1000);
  return create(DurationSchema, { seconds: BigInt(whole), nanos: Math.round((ms - whole * 1000) * 1e6) });
}

/** A google.protobuf.Duration in milliseconds (undefined when unset). */
export function durationToMs(duration: Duration | undefined): number | undefined {
  return duration === undefined ? undefined : Number(duration.seconds) * 1000 + duration.nanos / 1e6;
}

/** A Date as a google.protobuf.Timestamp. */
export function timestampFromDate(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1e6 });
}

/** A google.protobuf.Timestamp as a Date (undefined when unset). */
export function timestampToDate(timestamp: Timestamp | undefined): Date | undefined {
  return timestamp === undefined ? undefined : new Date(Number(timestamp.seconds) * 1000 + timestamp.nanos / 1e6);
}

/** INVALID_ARGUMENT naming `field` when `value` is not JSON-like (for clients building requests). */
export function valueArgument(value: unknown, field: string): Value {
  try {
    return toValue(value);
  } catch (err) {
    throw new SutradharError(status.INVALID_ARGUMENT, `${field}: ${(err as Error).message}`, field);
  }
}
