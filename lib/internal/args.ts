// Argument checks shared by every class (not public API): the Node-style
// TypeError / RangeError constructors (ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE,
// ERR_OUT_OF_RANGE), AbortError, and the u64 / i64 / timeout conversions.
import { inspect } from 'node:util';

function describeReceived(v: unknown): string {
  if (v === null || v === undefined) return `Received ${v}`;
  if (typeof v === 'function') return `Received function ${v.name || '<anonymous>'}`;
  if (typeof v === 'object') {
    const ctor = (v as object).constructor?.name;
    return ctor ? `Received an instance of ${ctor}` : `Received ${inspect(v, { depth: -1 })}`;
  }
  return `Received type ${typeof v} (${inspect(v)})`;
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const e = new TypeError(`The "${name}" argument must be ${expected}. ${describeReceived(actual)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

export function invalidArgValue(name: string, reason: string, actual: unknown): TypeError {
  const e = new TypeError(`The argument "${name}" ${reason}. Received ${inspect(actual)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return e;
}

export function outOfRange(name: string, range: string, actual: unknown): RangeError {
  const e = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(actual)}`,
  );
  (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return e;
}

export function abortError(reason: unknown): Error {
  const e = new Error('The operation was aborted', { cause: reason });
  e.name = 'AbortError';
  (e as Error & { code: string }).code = 'ABORT_ERR';
  return e;
}

export const U64_MAX = (1n << 64n) - 1n;

/** A u64 given as bigint or non-negative safe integer. */
export function toU64(name: string, v: unknown): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw outOfRange(name, '>= 0n and <= 2n ** 64n - 1n', v);
    return v;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw outOfRange(name, 'a non-negative safe integer', v);
    return BigInt(v);
  }
  throw invalidArgType(name, 'of type bigint or number', v);
}

/** An i64 nanosecond value given as bigint. */
export function toI64(name: string, v: unknown): bigint {
  if (typeof v !== 'bigint') throw invalidArgType(name, 'of type bigint', v);
  if (v < -(1n << 63n) || v >= 1n << 63n) throw outOfRange(name, 'a signed 64-bit value', v);
  return v;
}

/** A timeout in milliseconds: a non-negative number or Infinity; undefined = forever. */
export function toTimeoutNs(name: string, ms: unknown): number {
  if (ms === undefined || ms === Infinity) return -1;
  if (typeof ms !== 'number') throw invalidArgType(name, 'of type number', ms);
  if (!(ms >= 0)) throw outOfRange(name, '>= 0 (milliseconds) or Infinity', ms);
  return Math.min(Math.round(ms * 1e6), 9.2e18);
}
