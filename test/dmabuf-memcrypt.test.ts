// system_cc_shared's set_memory_{de,en}crypted hooks in JavaScript: the
// allocation's error path re-encrypts what it decrypted, a failed re-encrypt
// leaks the chunk (counted, listed, warned about, never reused), hooks only
// run on their own thread, and every misuse fails cleanly.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Platform, createPlatform, diagnostics } from '../lib';
import { expectArgError, expectDmaBufError } from './helpers';

const dist = JSON.stringify(require.resolve('../dist/index.js'));
type Call = [string, bigint, number];

function ccPlatform(ramMiB = 16) {
  const p = createPlatform({ memEncrypt: true, ramSize: ramMiB << 20 });
  const heap = p.openHeap('system_cc_shared');
  return { p, heap, [Symbol.dispose]: () => { heap.close(); p.dispose(); } };
}

// Warnings go to stderr; tests that provoke them expect that.
describe('hooks on allocation and free', () => {
  it('a successful allocation decrypts every chunk, its free re-encrypts them', () => {
    using cc = ccPlatform();
    const { p, heap } = cc;
    const calls: Call[] = [];
    p.setMemCryptHooks({
      decrypt: (addr, n) => { calls.push(['dec', addr, n]); return 0; },
      encrypt: (addr, n) => { calls.push(['enc', addr, n]); },
    });
    const buf = heap.alloc((1 << 20) + 65536 + 4096);
    expect(calls.map(([k, , n]) => [k, n])).toEqual([['dec', 256], ['dec', 16], ['dec', 1]]);
    expect(p.stats().sharedPages).toBe(256 + 16 + 1);
    const decAddrs = calls.map(([, a]) => a);
    calls.length = 0;
    buf.close();
    expect(calls.map(([k, a, n]) => [k, a, n])).toEqual([
      ['enc', decAddrs[0], 256],
      ['enc', decAddrs[1], 16],
      ['enc', decAddrs[2], 1],
    ]);
    const s = p.stats();
    expect(s.sharedPages).toBe(0);
    expect(s.freePages).toBe(s.totalPages);
    expect([s.decryptCalls, s.decryptFailures, s.encryptCalls, s.encryptFailures]).toEqual([3, 0, 3, 0]);
  });

  it('decrypt fails midway: the allocation fails with that errno; decrypted chunks are re-encrypted and freed', () => {
    using cc = ccPlatform();
    const { p, heap } = cc;
    const calls: Call[] = [];
    p.setMemCryptHooks({
      decrypt: (addr, n) => { calls.push(['dec', addr, n]); return calls.length === 2 ? -12 : 0; },
      encrypt: (addr, n) => { calls.push(['enc', addr, n]); return 0; },
    });
    const warns = diagnostics.warnCount();
    const e = expectDmaBufError(() => heap.alloc((1 << 20) + 65536 + 4096), 'ENOMEM');
    expect(e.syscall).toBe('DMA_HEAP_IOCTL_ALLOC');
    // chunk 0 decrypted, chunk 1 failed, chunk 2 never tried; only chunk 0 goes back
    expect(calls.map(([k, , n]) => [k, n])).toEqual([['dec', 256], ['dec', 16], ['enc', 256]]);
    expect(calls[2]![1]).toBe(calls[0]![1]);
    expect(diagnostics.warnCount()).toBe(warns + 1); // "failed to decrypt page"
    const s = p.stats();
    expect([s.sharedPages, s.leakedPages, s.freePages]).toEqual([0, 0, s.totalPages]);
    expect([s.decryptFailures, s.encryptFailures]).toEqual([1, 0]);
    // an errno name works as well
    p.setMemCryptHooks({ decrypt: () => 'EIO' });
    expectDmaBufError(() => heap.alloc(4096), 'EIO');
  });

  it('re-encryption fails on free: the chunk is leaked, counted, listed, warned about and never reused', () => {
    using cc = ccPlatform(2); // 512 pages
    const { p, heap } = cc;
    const decrypted: bigint[] = [];
    p.setMemCryptHooks({ decrypt: (addr) => void decrypted.push(addr) });
    const buf = heap.alloc(4096);
    const leakedAddr = decrypted[0]!;
    let failEncrypt = true;
    p.setMemCryptHooks({
      decrypt: (addr) => void decrypted.push(addr),
      encrypt: () => (failEncrypt ? -5 : 0),
    });
    const warns = diagnostics.warnCount();
    buf.close();
    expect(diagnostics.warnCount()).toBe(warns + 1); // "failed to re-encrypt page ..., leaking memory"
    let s = p.stats();
    expect([s.leakedPages, s.leakedBlocks, s.encryptFailures, s.sharedPages, s.violations]).toEqual([1, 1, 1, 0, 0]);
    expect(s.freePages).toBe(s.totalPages - 1);
    expect(p.leaked()).toEqual([{ addr: leakedAddr, numPages: 1 }]);
    // everything that is left can be allocated, and none of it is the leaked page
    failEncrypt = false;
    decrypted.length = 0;
    const rest = heap.alloc(s.freePages * 4096);
    expect(decrypted).not.toContain(leakedAddr);
    expect(p.stats().freePages).toBe(0);
    expectDmaBufError(() => heap.alloc(4096), 'ENOMEM');
    rest.close();
    s = p.stats();
    expect(s.freePages).toBe(s.totalPages - 1);
    expect(p.leaked().length).toBe(1);
  });

  it('a buffer collected by GC runs the encrypt hook from its finalizer', () => {
    const script = `
      const { createPlatform } = require(${dist});
      const p = createPlatform({ memEncrypt: true, ramSize: 8 << 20 });
      const calls = [];
      p.setMemCryptHooks({ encrypt: (a, n) => void calls.push(n) });
      const heap = p.openHeap('system_cc_shared');
      (() => { heap.alloc(65536); })();
      gc();
      setTimeout(() => { gc(); setTimeout(() => {
        const s = p.stats();
        console.log('calls', JSON.stringify(calls), s.freePages === s.totalPages, s.leakedPages);
      }, 20); }, 20);
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 20000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('calls [16] true 0');
  });

  it('the fault point fires before the hook (the hook is not called)', () => {
    using cc = ccPlatform();
    const { p, heap } = cc;
    let called = 0;
    p.setMemCryptHooks({ decrypt: () => void called++ });
    p.setFault('set_memory_decrypted', { nth: 1, error: 'EACCES' });
    expectDmaBufError(() => heap.alloc(4096), 'EACCES');
    expect(called).toBe(0);
    heap.alloc(4096).close();
    expect(called).toBe(1);
  });

  it('null removes the hooks; a missing hook always succeeds', () => {
    using cc = ccPlatform();
    const { p, heap } = cc;
    p.setMemCryptHooks({ decrypt: () => -22, encrypt: null });
    expectDmaBufError(() => heap.alloc(4096), 'EINVAL');
    p.setMemCryptHooks(null);
    heap.alloc(4096).close();
    p.setMemCryptHooks({});
    heap.alloc(4096).close();
    expect(p.stats().leakedPages).toBe(0);
  });
});

describe('misuse', () => {
  it('argument errors, disposed platform', () => {
    const p = createPlatform({ memEncrypt: true });
    expectArgError(() => p.setMemCryptHooks(5 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => p.setMemCryptHooks(undefined as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => p.setMemCryptHooks({ decrypt: 1 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => p.setMemCryptHooks({ encrypt: 'x' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    p.dispose();
    expectDmaBufError(() => p.setMemCryptHooks(null), 'EBADF');
    expectDmaBufError(() => p.stats(), 'EBADF');
    expectDmaBufError(() => p.leaked(), 'EBADF');
    expectDmaBufError(() => p.exportHandle(), 'EBADF');
    expectArgError(() => createPlatform({ ramSize: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => createPlatform({ ramSize: '1G' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectDmaBufError(() => createPlatform({ ramSize: 100 }), 'EINVAL'); // less than a page
    expectDmaBufError(() => createPlatform({ ramSize: 1 << 20, cmaSize: 2 << 20 }), 'EINVAL');
    expectDmaBufError(() => Platform.importHandle(12345n), 'EINVAL');
    expectArgError(() => Platform.importHandle(1 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
  });

  it('setMemCryptHooks() or dispose() inside a hook: EDEADLK', () => {
    using cc = ccPlatform();
    const { p, heap } = cc;
    const seen: string[] = [];
    p.setMemCryptHooks({
      decrypt: () => {
        for (const f of [() => p.setMemCryptHooks(null), () => p.dispose()]) {
          try {
            f();
          } catch (e) {
            seen.push((e as { code: string }).code);
          }
        }
        return 0;
      },
    });
    heap.alloc(4096).close();
    expect(seen).toEqual(['EDEADLK', 'EDEADLK']);
    p.setMemCryptHooks(null); // fine outside
  });

  it('a hook that throws or returns garbage fails the conversion with EIO and is reported as uncaught', () => {
    const script = `
      const { createPlatform } = require(${dist});
      process.on('uncaughtException', (e) => console.log('uncaught:' + (e.code || '') + ':' + e.message));
      const p = createPlatform({ memEncrypt: true, ramSize: 8 << 20 });
      const heap = p.openHeap('system_cc_shared');
      const tryAlloc = () => { try { heap.alloc(4096).close(); return 'ok'; } catch (e) { return e.code; } };
      p.setMemCryptHooks({ decrypt: () => { throw new Error('boom'); } });
      console.log('throw:' + tryAlloc());
      p.setMemCryptHooks({ decrypt: () => 42 });
      console.log('positive:' + tryAlloc());
      p.setMemCryptHooks({ decrypt: () => 'EWHAT' });
      console.log('name:' + tryAlloc());
      p.setMemCryptHooks({ decrypt: () => -0.5 });
      console.log('fraction:' + tryAlloc());
      p.setMemCryptHooks({ decrypt: () => 0 });
      console.log('zero:' + tryAlloc());
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('throw:EIO');
    expect(r.stdout).toContain('positive:EIO');
    expect(r.stdout).toContain('name:EIO');
    expect(r.stdout).toContain('fraction:EIO');
    expect(r.stdout).toContain('zero:ok');
    expect(r.stdout).toContain('uncaught::boom');
    expect(r.stdout.match(/uncaught:ERR_INVALID_RETURN_VALUE/g)?.length).toBe(3);
  });

  it('a conversion on another thread fails with EPERM without calling JS; the worker\'s own hooks go with it', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const { createPlatform, Platform } = require(${dist});
      const p = createPlatform({ memEncrypt: true, ramSize: 8 << 20 });
      let mainCalls = 0;
      p.setMemCryptHooks({ decrypt: () => { mainCalls++; return 0; }, encrypt: () => { mainCalls++; return 0; } });
      const worker = (code) => new Promise((resolve) => {
        const w = new Worker(code, { eval: true, workerData: p.exportHandle() });
        w.on('message', (m) => console.log(m));
        w.on('exit', resolve);
      });
      (async () => {
        // main's hooks, conversion on the worker's thread: EPERM
        await worker(\`
          const { workerData, parentPort } = require('node:worker_threads');
          const { Platform } = require(${dist.replace(/"/g, "'")});
          const p = Platform.importHandle(workerData);
          const heap = p.openHeap('system_cc_shared');
          try { heap.alloc(4096); parentPort.postMessage('worker-alloc:ok'); }
          catch (e) { parentPort.postMessage('worker-alloc:' + e.code); }
          heap.close(); p.dispose();
        \`);
        console.log('mainCalls:' + mainCalls);
        // a worker sets hooks, then exits: its environment's teardown removes them
        await worker(\`
          const { workerData } = require('node:worker_threads');
          const { Platform } = require(${dist.replace(/"/g, "'")});
          const p = Platform.importHandle(workerData);
          p.setMemCryptHooks({ decrypt: () => -1 });
        \`);
        const heap = p.openHeap('system_cc_shared');
        heap.alloc(4096).close();
        console.log('after-worker:ok ' + mainCalls + ' leaked:' + p.stats().leakedPages);
      })();
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
    expect(r.stdout).toContain('worker-alloc:EPERM');
    expect(r.stdout).toContain('mainCalls:0');
    expect(r.stdout).toContain('after-worker:ok 0 leaked:0');
  });

  it('exportHandle/importHandle: the same platform, adopted once', () => {
    using p = createPlatform({ ramSize: 4 << 20 });
    const h = p.exportHandle();
    using q = Platform.importHandle(h);
    expectDmaBufError(() => Platform.importHandle(h), 'EINVAL');
    using heap = q.openHeap('system');
    using buf = heap.alloc(8192);
    expect(p.stats().freePages).toBe(p.stats().totalPages - 2);
    void buf;
  });
});
