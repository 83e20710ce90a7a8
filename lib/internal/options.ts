// Option-object checks shared by the heap, platform and attachment modules:
// an options object, a string choice, a boolean.
import { invalidArgType, invalidArgValue } from './args';

/** One of `allowed` (undefined: `dflt`); TypeError otherwise. */
export function toChoice<T extends string>(name: string, v: unknown, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw invalidArgType(name, 'of type string', v);
  if (!(allowed as readonly string[]).includes(v)) throw invalidArgValue(name, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  return v as T;
}

/** An options object (undefined: {}). */
export function toOpts(name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object') throw invalidArgType(name, 'of type object', v);
  return v as Record<string, unknown>;
}

/** An optional boolean option. */
export function toBool(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalidArgType(name, 'of type boolean', v);
  return v;
}
