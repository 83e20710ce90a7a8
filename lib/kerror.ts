// How kernel-backend failures cross the addon boundary: native code returns
// [negative errno, op, message] (KErrValue in native/addon) instead of throwing,
// and these helpers turn it into a DmaBufError.
import { DmaBufError } from './errors';

/** A kernel-backend failure: [negative errno, op, message]. */
export type KErr = [number, string, string];

export function isKErr(r: unknown): r is KErr {
  return Array.isArray(r) && r.length === 3 && typeof r[0] === 'number' && typeof r[1] === 'string';
}

/** The value, or a thrown DmaBufError with the kernel's errno and the op's name. */
export function kcheck<T>(r: T | KErr): T {
  if (isKErr(r)) {
    const [errno, op, msg] = r;
    throw new DmaBufError(errno, msg || `${op} failed`, op);
  }
  return r as T;
}
