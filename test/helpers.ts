// Shared test helpers.
import { expect } from 'vitest';
import { DmaBufError } from '../lib/errors';

/** Asserts that fn throws a DmaBufError with the given code (and matching errno). */
export function expectDmaBufError(fn: () => unknown, code: string): DmaBufError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(DmaBufError);
  const e = caught as DmaBufError;
  expect(e.code).toBe(code);
  expect(e.errno).toBeLessThan(0);
  return e;
}

/** Asserts a TypeError / RangeError with Node's code. */
export function expectArgError(fn: () => unknown, ctor: typeof TypeError | typeof RangeError, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ctor);
  expect((caught as { code?: string }).code).toBe(code);
}

export async function expectRejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  expect((caught as { code?: string }).code).toBe(code);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
