// One WaitOptions parser (lib/internal/wait_options.ts) behind Fence.wait,
// Fence.waitAny, SyncFile.wait (both backends) and Resv.wait: the same errors
// for the same bad options, and timeouts past setTimeout's 2^31 - 1 ms limit
// that do not fire early.
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Fence, Resv, SyncFile } from '../lib';
import { binding } from '../lib/internal/binding';
import { MAX_TIMER_MS, parseWaitOptions, waitTimer } from '../lib/internal/wait_options';
import { wrapSyncFile } from '../lib/sync_file';

const LONG = 2 ** 31 + 1000; // ms: setTimeout alone would fire this after 1 ms

const BAD: Array<[string, unknown]> = [
  ['null', null],
  ['a number', 5],
  ['a string', 'soon'],
  ['an array', []],
  ['a function', () => {}],
  ['a string timeout', { timeout: '10' }],
  ['a bigint timeout', { timeout: 10n }],
  ['a negative timeout', { timeout: -1 }],
  ['-Infinity', { timeout: -Infinity }],
  ['a NaN timeout', { timeout: NaN }],
  ['a plain-object signal', { signal: {} }],
  ['a non-object signal', { signal: 'abort' }],
  ['a null signal', { signal: null }],
];

function errorOf(p: Promise<unknown>): Promise<{ cls: string; code: unknown; message: string } | null> {
  return p.then(
    () => null,
    (e: Error & { code?: unknown }) => ({ cls: e.constructor.name, code: e.code, message: e.message }),
  );
}

describe('WaitOptions', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('parseWaitOptions: forever by default and for Infinity; ms and ns otherwise', () => {
    expect(parseWaitOptions(undefined)).toEqual({ timeoutMs: Infinity, timeoutNs: -1, signal: undefined });
    expect(parseWaitOptions({})).toEqual({ timeoutMs: Infinity, timeoutNs: -1, signal: undefined });
    expect(parseWaitOptions({ timeout: Infinity })).toEqual({ timeoutMs: Infinity, timeoutNs: -1, signal: undefined });
    expect(parseWaitOptions({ timeout: 0 })).toEqual({ timeoutMs: 0, timeoutNs: 0, signal: undefined });
    const signal = new AbortController().signal;
    expect(parseWaitOptions({ timeout: 1.5, signal })).toEqual({ timeoutMs: 1.5, timeoutNs: 1_500_000, signal });
    expect(parseWaitOptions({ timeout: LONG }).timeoutMs).toBe(LONG);
  });

  it('parseWaitOptions: TypeError / RangeError with Node codes, naming the argument', () => {
    for (const [what, opts] of BAD) {
      let err: (Error & { code?: string }) | undefined;
      try {
        parseWaitOptions(opts, 'options');
      } catch (e) {
        err = e as Error & { code?: string };
      }
      expect(err, what).toBeDefined();
      const range = what.includes('negative') || what.includes('NaN') || what === '-Infinity';
      expect(err, what).toBeInstanceOf(range ? RangeError : TypeError);
      expect(err!.code, what).toBe(range ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE');
      expect(err!.message, what).toMatch(/"options(\.timeout|\.signal)?"/);
    }
  });

  it('Fence.wait, Fence.waitAny, SyncFile.wait (both backends) and Resv.wait reject bad options alike', async () => {
    const f = new Fence();
    const sf = SyncFile.create(f);
    // A kernel-backend sync_file over /dev/null (the addon's test hook): the
    // options are checked before the fd is polled, so it stands in for a real one.
    const nullFd = openSync('/dev/null', 'r');
    const kernelSf = wrapSyncFile(binding.diagWrapFd('sync_file', nullFd));
    closeSync(nullFd);
    expect(kernelSf.fd).toBeGreaterThan(2);
    const r = new Resv();
    for (const [what, opts] of BAD) {
      const o = opts as never;
      const results = await Promise.all([
        errorOf(f.wait(o)),
        errorOf(Fence.waitAny([f], o)),
        errorOf(sf.wait(o)),
        errorOf(kernelSf.wait(o)),
        errorOf(r.wait('read', o)),
      ]);
      expect(results[0], what).not.toBeNull();
      for (const res of results) expect(res, what).toEqual(results[0]);
      expect(['TypeError', 'RangeError']).toContain(results[0]!.cls);
      expect(['ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE']).toContain(results[0]!.code);
    }
    kernelSf.close();
    sf.close();
    r.dispose();
    f.dispose();
  });

  it(`waitTimer: a delay above 2^31 - 1 ms is a chain of timers, not 1 ms`, () => {
    vi.useFakeTimers();
    let fired = 0;
    waitTimer(LONG, () => fired++);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(MAX_TIMER_MS); // the first link re-arms for the rest
    expect(fired).toBe(0);
    vi.advanceTimersByTime(LONG - MAX_TIMER_MS - 2);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(LONG);
    expect(fired).toBe(1);

    // Three links, and cancel() stops whichever link is armed.
    const t = waitTimer(2 * MAX_TIMER_MS + 5, () => fired++);
    vi.advanceTimersByTime(MAX_TIMER_MS + 1);
    t.cancel();
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fired).toBe(1);

    // Short delays are one setTimeout.
    waitTimer(0, () => fired++);
    waitTimer(10, () => fired++);
    vi.advanceTimersByTime(10);
    expect(fired).toBe(3);
  });

  it('Fence.wait, Fence.waitAny, SyncFile.wait and Resv.wait do not time out early past 2^31 ms', async () => {
    vi.useFakeTimers();
    const f = new Fence();
    const sf = SyncFile.create(f);
    const r = new Resv();
    r.lock();
    r.reserveFences(1);
    r.addFence(f, 'write');
    r.unlock();
    const settled: string[] = [];
    const track = (name: string, p: Promise<unknown>): Promise<unknown> =>
      p.then((v) => {
        settled.push(`${name}:${String(v)}`);
        return v;
      });
    const waits = [
      track('wait', f.wait({ timeout: LONG })),
      track('waitAny', Fence.waitAny([f], { timeout: LONG })),
      track('syncFile', sf.wait({ timeout: LONG })),
      track('resv', r.wait('read', { timeout: LONG })),
    ];
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 10);
    expect(settled).toEqual([]);
    await vi.advanceTimersByTimeAsync(LONG - MAX_TIMER_MS - 20);
    expect(settled).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    await Promise.all(waits);
    expect(settled.sort()).toEqual(['resv:false', 'syncFile:false', 'wait:false', 'waitAny:-1']);
    sf.close();
    r.dispose();
    f.dispose();
  });

  it('a long timeout still resolves as soon as the fence signals', async () => {
    vi.useFakeTimers();
    const f = new Fence();
    const p = f.wait({ timeout: LONG });
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 1);
    f.signal();
    await expect(p).resolves.toBe(true);
    f.dispose();
  });

  it('lib/ arms wait timeouts only through waitTimer, and parses wait options only through parseWaitOptions', () => {
    // The kernel SyncFile.wait path needs a real sync_file to run; this keeps
    // it (and any later wait) on the one timer and the one parser.
    const lib = path.join(__dirname, '..', 'lib');
    const files = readdirSync(lib, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    for (const f of files) {
      if (f === path.join('internal', 'wait_options.ts')) continue;
      if (f.startsWith(`selftest${path.sep}`)) continue; // `dmabuf selftest`: per-case timeouts and test cases that schedule signals, not waits
      const text = readFileSync(path.join(lib, f), 'utf8');
      expect(text, f).not.toMatch(/\bsetTimeout\(|\bsetInterval\(/);
      expect(text, f).not.toMatch(/instanceof AbortSignal/);
    }
    const users = files.filter((f) => readFileSync(path.join(lib, f), 'utf8').includes('parseWaitOptions('));
    expect(users.sort()).toEqual(['dma_buf.ts', 'fd_channel.ts', 'fence.ts', path.join('internal', 'wait_options.ts'), 'resv.ts', 'sync_file.ts'].sort());
  });
});
