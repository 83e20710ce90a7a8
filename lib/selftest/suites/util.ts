// Helpers the suites share: errno assertions, sleeping, where the package is.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { DmaBufError } from '../../index';
import type { SelftestBackend, SelftestCase, CaseContext } from '../types';

/**
 * dist/index.js, for code that runs in worker threads: beside these suites once
 * compiled (dist/selftest/suites), or the repo's dist/ when they run from lib/
 * (the vitest tests run the same cases from the TypeScript sources).
 */
export const LIB = __dirname.split(path.sep).slice(-3, -2)[0] === 'lib'
  ? path.resolve(__dirname, '..', '..', '..', 'dist', 'index.js')
  : path.resolve(__dirname, '..', '..', 'index.js');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Asserts fn throws a DmaBufError with `code` (and `syscall`, when given); returns it. */
export function throwsErrno(fn: () => unknown, code: string, syscall?: string): DmaBufError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DmaBufError, `expected DmaBufError ${code}, got ${err === undefined ? 'no error' : String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.ok(err.errno < 0, 'errno is negative');
  if (syscall !== undefined) assert.equal(err.syscall, syscall, err.message);
  return err;
}

/** Asserts fn throws `ctor` (TypeError, RangeError) with Node's `code`. */
export function throwsArg(fn: () => unknown, ctor: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ctor && (e as { code?: string }).code === code);
}

/** One case: `def('name', (t) => ...)`. */
export function def(
  name: string,
  run: (t: CaseContext) => void | Promise<void>,
  unavailable?: (backend: SelftestBackend) => string | null,
): SelftestCase {
  return unavailable ? { name, run, unavailable } : { name, run };
}

/** Why an in-kernel API suite cannot run on the kernel backend. */
export const inKernelOnly = (what: string) => (backend: SelftestBackend): string | null =>
  backend === 'kernel'
    ? `${what} is in-kernel API, not reachable from userspace (the kernel's dmabuf_selftests module covers it); run on the emulation`
    : null;
