// The one parser for `{ timeout, signal }` (Fence.wait/waitAny, SyncFile.wait,
// Resv.wait) and the one timer behind their timeouts.
import { invalidArgType, toTimeoutNs } from './args';

// The published types name AbortSignal without needing @types/node or the DOM
// lib: a consumer with neither gets an empty interface here (the runtime check
// below still insists on a real AbortSignal); with either, this merges away.
declare global {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface AbortSignal {}
}

export interface WaitOptions {
  /** Milliseconds; default forever. 0 polls. */
  timeout?: number;
  /** Aborting rejects the wait with an AbortError. */
  signal?: AbortSignal;
}

/** What a wait needs from its options. */
export interface ParsedWaitOptions {
  /** Milliseconds for a JS timer; Infinity: no timer. */
  timeoutMs: number;
  /** Nanoseconds for a native wait; -1: forever, 0: poll. */
  timeoutNs: number;
  signal: AbortSignal | undefined;
}

/**
 * Validates wait options: TypeError (ERR_INVALID_ARG_TYPE) for anything but an
 * object (or undefined), a non-number timeout or a signal that is not an
 * AbortSignal; RangeError (ERR_OUT_OF_RANGE) for a negative or NaN timeout.
 * An absent timeout or Infinity waits forever.
 */
export function parseWaitOptions(opts: unknown, name = 'opts'): ParsedWaitOptions {
  if (opts === undefined) return { timeoutMs: Infinity, timeoutNs: -1, signal: undefined };
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw invalidArgType(name, 'of type object', opts);
  }
  const { timeout, signal } = opts as WaitOptions;
  const timeoutNs = toTimeoutNs(`${name}.timeout`, timeout);
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType(`${name}.signal`, 'an instance of AbortSignal', signal);
  }
  return { timeoutMs: timeoutNs === -1 ? Infinity : (timeout as number), timeoutNs, signal };
}

/** The longest delay setTimeout() honours; it turns longer ones into 1 ms. */
export const MAX_TIMER_MS = 0x7fffffff;

/**
 * Calls `fn` once after `ms` milliseconds (any finite non-negative delay),
 * unless cancelled. Delays above MAX_TIMER_MS are a chain of timers, so they
 * never fire early.
 */
export function waitTimer(ms: number, fn: () => void): { cancel(): void } {
  let t: ReturnType<typeof setTimeout>;
  const arm = (left: number): void => {
    t = left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
  };
  arm(ms);
  return { cancel: () => clearTimeout(t) };
}
