// Shared test helpers.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
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

/** How many fds this process has open. */
export const openFds = (): number => readdirSync('/proc/self/fd').length;

/** The fd count once it is `want`, or after ~2 s (the fence watcher thread drops what it watched asynchronously). */
export async function settledFds(want: number): Promise<number> {
  for (let i = 0; i < 200 && openFds() !== want; i++) await sleep(10);
  return openFds();
}

let fifoSeq = 0;
/**
 * A new FIFO in `dir`, both ends open and non-blocking: the read end polls
 * readable once bytes are in it (never writable); a plain fd that works.
 */
export function fifo(dir: string): { rd: number; wr: number; close(): void } {
  const p = path.join(dir, `fifo${fifoSeq++}`);
  expect(spawnSync('mkfifo', [p]).status).toBe(0);
  const rd = openSync(p, constants.O_RDONLY | constants.O_NONBLOCK);
  const wr = openSync(p, constants.O_WRONLY | constants.O_NONBLOCK);
  return {
    rd,
    wr,
    close() {
      closeSync(rd);
      closeSync(wr);
    },
  };
}
