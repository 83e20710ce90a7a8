// The operations a fuzz run interleaves: ordinary use of every class (so the
// objects reach interesting states), hostile calls (surface.mjs), re-entrant
// callbacks, waits that time out or are aborted, workers terminated at random
// points, issuer unloads with waits in flight, GC, and the teardown.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Surface, describeValue } from './surface.mjs';
import { Deliberate, safeGet } from './values.mjs';

const USAGES = ['kernel', 'write', 'read', 'bookkeep'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const EXAMPLES = ['names', 'ring', 'polled', 'pinned'];
const TEST_MODULES = ['badabi', 'newminor', 'noinit', 'noentry', 'initfail', 'badops', 'cxx', 'forgetful'];

export class Ops {
  constructor(fz) {
    this.fz = fz;
    this.dm = fz.dm;
    this.surface = new Surface(fz);
    this.iterables = [];
    this.ids = new WeakMap();
    this.nextId = 1;
    this.table = this.buildTable().filter((o) => !o.tag || fz.allow(o.tag));
  }

  get r() {
    return this.fz.rng;
  }

  choose() {
    return this.r.weighted(this.table.map((o) => [o.w, o]));
  }

  fence() {
    return this.fz.pick('Fence');
  }
  /** A short description of an object for the trace: class and identity. */
  desc(o) {
    if (!o || typeof o !== 'object') return describeValue(o);
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = this.nextId++));
    let extra = '';
    try {
      if (o instanceof this.dm.Fence) extra = o.disposed ? ' disposed' : ` ${o.describe().trim()}`;
    } catch {
      extra = ' ?';
    }
    return `${describeValue(o)}#${id}${extra}`;
  }
  fences(max = 4) {
    const out = [];
    const n = this.r.range(1, max);
    for (let i = 0; i < n; i++) {
      const f = this.fence();
      if (f) out.push(f);
    }
    if (!this.fz.allow('dup')) {
      // No two objects of one native fence either (unwrap(), getFences()... make aliases).
      return out.filter((f, i) => {
        try {
          return !out.slice(0, i).some((g) => g === f || g.is(f));
        } catch {
          return false;
        }
      });
    }
    if (out.length && this.r.chance(0.4)) out.push(this.r.pick(out)); // duplicates
    return out;
  }
  usage() {
    return this.r.chance(0.95) ? this.r.pick(USAGES) : this.fz.values.any(1);
  }
  reg(o) {
    return this.fz.register(o);
  }
  track(p, label) {
    return this.fz.track(p, label);
  }
  waitOpts() {
    const r = this.r;
    return r.weighted([
      [3, () => undefined],
      [4, () => ({ timeout: r.pick([0, 1, 2, 5, 20]) })],
      [3, () => ({ signal: this.fz.abortSignal() })],
      [2, () => ({ timeout: r.pick([1, 3, 10]), signal: this.fz.abortSignal() })],
      [1, () => ({ signal: AbortSignal.abort() })],
      [1, () => ({ signal: AbortSignal.timeout(r.int(5)) })],
      [1, () => this.fz.values.options(1)],
    ])();
  }
  modulePath() {
    const r = this.r;
    const root = path.resolve(path.dirname(this.fz.pkgPath), '..', 'build');
    if (r.chance(0.75)) return path.join(root, 'issuers', `issuer_${r.pick(EXAMPLES)}.so`);
    return path.join(root, 'test-issuers', `test_issuer_${r.pick(TEST_MODULES)}.so`);
  }

  buildTable() {
    const dm = this.dm;
    const fz = this.fz;
    const r = () => this.r;
    const op = (name, w, fn, tag) => ({ name, w, fn, tag });
    return [
      op('hostile call', 30, () => this.surface.call(), 'hostile'),
      // --- fences
      op('new Fence', 8, () => {
        const init = r().weighted([
          [3, () => undefined],
          [3, () => ({ context: dm.Fence.allocContext(), seqno: r().int(8) })],
          [1, () => ({ seqno64: true, seqno: 2n ** 63n })],
          [1, () => ({ lock: fz.pick('FenceLock') ?? this.reg(new dm.FenceLock()) })],
          [2, () => ({ issuer: fz.pick('Issuer') })],
          [1, () => fz.values.options(0)],
        ])();
        fz.note(`init ${describeValue(init)} ${init ? Object.keys(init).join(',') : ''}`);
        this.reg(new dm.Fence(init));
      }),
      op('new FenceLock', 1, () => this.reg(new dm.FenceLock())),
      op('signal', 6, () => {
        const f = this.fence();
        fz.note(`on ${this.desc(f)}`);
        if (r().chance(0.2)) f?.signal(r().chance(0.5) ? fz.values.bigint() : 12345n);
        else f?.signal();
      }),
      op('checkAndSignal', 1, () => this.fence()?.checkAndSignal()),
      op('setError', 2, () => this.fence()?.setError(r().chance(0.7) ? r().pick(['EIO', -5, 'ENOMEM', -4095]) : fz.values.any(1))),
      op('enableSignaling', 1, () => this.fence()?.enableSignaling()),
      op('setDeadline', 1, () => this.fence()?.setDeadline(fz.values.bigint())),
      op('read fence', 4, () => {
        const f = this.fence();
        if (!f) return;
        for (const k of ['context', 'seqno', 'flags', 'signaled', 'status', 'error', 'timestamp', 'driverName', 'timelineName', 'opsDetached', 'disposed']) {
          try {
            void f[k];
          } catch (e) {
            fz.judge(e);
          }
        }
        f.isSignaled();
        f.describe();
      }),
      op('dispose fence', 4, () => {
        const f = this.fence();
        if (!f) return;
        const h = safeGet(f, 'handle');
        f.dispose();
        if (typeof h === 'number') fz.deadHandles.push(h);
        if (r().chance(0.3)) f.dispose();
      }),
      op('addCallback', 6, () => {
        const f = this.fence();
        const cb = f?.addCallback(fz.reentrantCallback('addCallback'));
        if (cb) this.reg(cb);
      }),
      op('removeCallback', 2, () => {
        const cb = fz.pick('FenceCallback');
        if (cb) this.fence()?.removeCallback(cb);
      }),
      op('wait', 6, () => {
        const f = this.fence();
        if (f) this.track(f.wait(this.waitOpts()), 'wait');
      }),
      op('waitSync short', 1, () => this.fence()?.waitSync(r().int(3))),
      op('waitAny', 3, () => {
        const fs = this.fences();
        if (fs.length) this.track(dm.Fence.waitAny(fs, this.waitOpts()), 'waitAny');
      }, 'waitany'),
      op('waitAnySync short', 1, () => {
        const fs = this.fences();
        fz.note(`fences ${fs.map((f) => `${describeValue(f)}:${safeGet(f, 'handle')}`).join(' ')}`);
        if (fs.length) dm.Fence.waitAnySync(fs, r().int(3));
      }, 'waitany'),
      op('isLater/later', 1, () => {
        const a = this.fence();
        const b = this.fence();
        if (!a || !b) return;
        dm.Fence.isLater(a, b);
        const l = dm.Fence.later(a, b);
        if (l && r().chance(0.3)) l.dispose();
      }),
      op('stub', 1, () => this.reg(r().chance(0.5) ? dm.Fence.stub() : dm.Fence.privateStub(r().chance(0.5) ? undefined : fz.values.bigint()))),
      op('export/import fence', 3, () => {
        const f = this.fence();
        if (!f) return;
        const h = f.exportHandle();
        const how = r().int(5);
        if (how === 0) return; // never imported
        const Cls = r().pick([dm.Fence, dm.Fence, dm.FenceArray, dm.FenceChain].filter(Boolean));
        try {
          this.reg(Cls.importHandle(h));
        } catch (e) {
          fz.judge(e);
        }
        if (how >= 3) this.reg(dm.Fence.importHandle(r().chance(0.5) ? h : h + 1n)); // retry / neighbour
      }),
      op('is', 1, () => this.fence()?.is(this.fence() ?? fz.values.any(0))),
      // --- containers
      op('new FenceArray', 3, () => this.reg(new dm.FenceArray(this.fences(), r().chance(0.5) ? undefined : { seqno: r().int(5) }))),
      op('new FenceChain', 3, () => {
        const prev = r().chance(0.3) ? null : fz.pick('FenceChain') ?? this.fence() ?? null;
        const f = this.fence();
        const sn = r().chance(0.8) ? r().int(20) : fz.values.any(1);
        fz.note(`prev ${this.desc(prev)} fence ${this.desc(f)} seqno ${describeValue(sn)}`);
        if (f) this.reg(new dm.FenceChain(prev, f, sn));
      }),
      op('unwrap', 2, () => {
        const f = this.fence();
        if (!f) return;
        const it = dm.unwrap(f)[Symbol.iterator]();
        const n = r().int(4);
        for (let i = 0; i < n; i++) {
          const x = it.next();
          if (x.done) break;
          this.reg(x.value);
        }
        if (r().chance(0.5)) it.return?.();
        else this.iterables.push(it);
      }),
      op('merge/dedup', 2, () => {
        const fs = this.fences();
        if (r().chance(0.5)) this.reg(dm.merge(...fs));
        else this.reg(dm.dedup(fs));
      }),
      op('chain ops', 2, () => {
        const c = fz.pick('FenceChain');
        if (!c) return;
        const k = r().int(4);
        if (k === 0) this.reg(c.findSeqno(r().chance(0.8) ? r().int(25) : fz.values.any(1)));
        else if (k === 1) this.reg([c.fence, c.prev]);
        else {
          const it = c.walk();
          for (let i = 0; i < r().int(4); i++) {
            const x = it.next();
            if (x.done) break;
            this.reg(x.value);
          }
          this.iterables.push(it);
        }
      }),
      op('array ops', 1, () => {
        const a = fz.pick('FenceArray');
        if (!a) return;
        this.reg(a.fences);
        void a.length;
        void a.error;
        a.matchContext(r().chance(0.5) ? a.context : fz.values.bigint());
      }),
      op('resume iterable', 2, () => {
        const it = r().pick(this.iterables);
        if (!it) return;
        const i = typeof it.next === 'function' ? it : it[Symbol.iterator]();
        const x = r().chance(0.8) ? i.next() : i.return?.();
        if (x && !x.done) this.reg(x.value);
      }),
      // --- dma_resv
      op('new Resv', 2, () => this.reg(new dm.Resv())),
      op('new AcquireContext', 1, () => this.reg(new dm.AcquireContext())),
      op('resv lock/add/unlock', 6, () => {
        const resv = fz.pick('Resv');
        if (!resv) return;
        const ctx = r().chance(0.3) ? fz.pick('AcquireContext') : undefined;
        if (r().chance(0.8)) resv.lock(ctx);
        else resv.tryLock();
        const n = r().int(4);
        for (let i = 0; i < n; i++) {
          try {
            resv.reserveFences(r().chance(0.9) ? r().range(1, 3) : fz.values.any(1));
            const f = this.fence();
            if (f) resv.addFence(f, this.usage());
          } catch (e) {
            fz.judge(e);
          }
        }
        if (r().chance(0.85)) resv.unlock();
      }),
      op('resv ctx dance', 2, () => {
        const ctx = fz.pick('AcquireContext') ?? this.reg(new dm.AcquireContext());
        const a = fz.pick('Resv');
        const b = fz.pick('Resv');
        if (!a || !b) return;
        for (const x of [a, b]) {
          try {
            x.lock(ctx);
          } catch (e) {
            fz.judge(e);
            if (safeGet(e, 'code') === 'EDEADLK') {
              for (const y of [a, b]) if (y.held) try { y.unlock(); } catch (e2) { fz.judge(e2); }
              x.lockSlow(ctx);
            }
          }
        }
        if (r().chance(0.5)) ctx.done();
        for (const x of [a, b]) if (r().chance(0.9)) try { x.unlock(); } catch (e) { fz.judge(e); }
        if (r().chance(0.5)) ctx.fini();
      }),
      op('resv query', 4, () => {
        const resv = fz.pick('Resv');
        if (!resv) return;
        switch (r().int(9)) {
          case 0: this.reg(resv.getFences(this.usage())); break;
          case 1: this.reg([...resv.fences(this.usage())]); break;
          case 2: this.reg(resv.entries(this.usage()).map(([f]) => f)); break;
          case 3: this.reg(resv.getSingleton(this.usage())); break;
          case 4: resv.testSignaled(this.usage()); break;
          case 5: resv.describe(); break;
          case 6: resv.setDeadline(this.usage(), fz.values.bigint()); break;
          case 7: resv.waitSync(this.usage(), r().int(3)); break;
          default: void [resv.locked, resv.held, resv.disposed];
        }
      }),
      op('resv copy/replace', 1, () => {
        const a = fz.pick('Resv');
        const b = fz.pick('Resv');
        if (!a || !b) return;
        a.lock();
        try {
          if (r().chance(0.5)) a.copyFences(b);
          else {
            const f = this.fence();
            if (f) a.replaceFences(r().chance(0.5) ? f.context : fz.values.bigint(), f, this.usage());
          }
        } finally {
          if (r().chance(0.9)) a.unlock();
        }
      }),
      op('resv wait', 3, () => {
        const resv = fz.pick('Resv');
        if (resv) this.track(resv.wait(this.usage(), this.waitOpts()), 'resv.wait');
      }),
      op('resv export/import/dispose', 2, () => {
        const resv = fz.pick('Resv');
        if (!resv) return;
        if (r().chance(0.5)) this.reg(dm.Resv.importHandle(resv.exportHandle()));
        else resv.dispose();
      }),
      // --- sync_file and sw_sync
      op('SyncFile.create', 3, () => {
        const f = this.fence();
        if (f) this.reg(dm.SyncFile.create(f));
      }),
      op('SyncFile.merge', 1, () => {
        const a = fz.pick('SyncFile');
        const b = fz.pick('SyncFile');
        if (a && b) this.reg(dm.SyncFile.merge(r().pick(['m', '', 'x'.repeat(40)]), a, b));
      }),
      op('sync_file ops', 3, () => {
        const s = fz.pick('SyncFile');
        if (!s) return;
        switch (r().int(7)) {
          case 0: s.info(); void s.status; break;
          case 1: this.reg(s.fence); break;
          case 2: s.isSignaled(); break;
          case 3: s.setDeadline(r().chance(0.5) ? 1000n : fz.values.any(1)); break;
          case 4: this.track(s.wait(this.waitOpts()), 'syncfile.wait'); break;
          case 5: void s.fd; break;
          default: s.close();
        }
      }),
      op('sw_sync', 4, () => {
        let tl = fz.pick('SwSyncTimeline');
        if (!tl || r().chance(0.1)) tl = this.reg(new dm.SwSyncTimeline(r().chance(0.8) ? { name: 'fz' } : fz.values.options(1)));
        switch (r().int(6)) {
          case 0: case 1: this.reg(tl.createFence(r().chance(0.9) ? r().int(10) : fz.values.any(1))); break;
          case 2: case 3: tl.inc(r().chance(0.9) ? r().range(1, 3) : fz.values.any(1)); break;
          case 4: {
            const s = fz.pick('SyncFile');
            if (s) tl.getDeadline(s);
            break;
          }
          default: tl.close();
        }
      }),
      // --- heaps, dma-bufs, attachments, platforms
      op('heaps', 2, () => {
        if (r().chance(0.3)) dm.listHeaps(r().chance(0.5) ? undefined : { backend: r().pick(['emulated', 'kernel', 'all']) });
        let heap = fz.pick('Heap');
        if (!heap || r().chance(0.2)) heap = this.reg(dm.openHeap(r().pick(['system', 'system', 'default_cma_region', 'system_cc_shared', 'nope'])));
        const opts = r().chance(0.8) ? undefined : fz.values.options(1);
        this.reg(heap.alloc(r().chance(0.9) ? 4096 * r().range(1, 8) : this.surface.capSize(fz.values.any(1)), opts));
      }, 'buffer'),
      op('vfio buffer', 1, () => {
        const p = fz.pick('Platform');
        this.reg(p && r().chance(0.5) ? p.exportVfioBuffer(4096 * r().range(1, 4)) : dm.exportVfioBuffer(4096 * r().range(1, 4)));
      }, 'buffer'),
      op('dma-buf ops', 8, () => this.bufOp(), 'buffer'),
      op('attachment ops', 3, () => {
        const a = fz.pick('Attachment');
        if (!a) return;
        switch (r().int(5)) {
          case 0: case 1: {
            const sgt = a.map(r().chance(0.9) ? r().pick(['bidirectional', 'to-device', 'from-device']) : fz.values.any(1));
            if (r().chance(0.5)) (this.sgts ??= []).push([a, sgt]);
            break;
          }
          case 2: {
            const x = this.sgts?.length ? this.r.pick(this.sgts) : undefined;
            if (x) (r().chance(0.8) ? x[0] : a).unmap(x[1]);
            break;
          }
          case 3: a.stats(); void a.moves; break;
          default: a.detach();
        }
      }, 'buffer'),
      op('touch mapping', 2, () => {
        const ab = fz.pick('ArrayBuffer');
        if (!ab || ab.byteLength === 0) return;
        const u = new Uint8Array(ab);
        u[0] ^= 1;
        u[u.length - 1] ^= 1;
      }, 'buffer'),
      op('platform', 2, () => {
        let p = fz.pick('Platform');
        if (!p || r().chance(0.2)) {
          const o = r().chance(0.7) ? { memEncrypt: r().chance(0.5), cmaSize: r().pick([0, 1 << 20]), arch: r().pick(['x86_64', 'aarch64', 's390x']) } : fz.values.options(1);
          fz.note(`createPlatform(${describeValue(o)} ${Object.entries(o).map(([a, b]) => `${a}=${describeValue(b)}`).join(' ')})`);
          p = this.reg(dm.createPlatform(o));
        }
        const k = r().int(7);
        fz.note(`case ${k} on ${this.desc(p)}`);
        switch (k) {
          case 0: p.listHeaps(); break;
          case 1: this.reg(p.openHeap(r().pick(['system', 'system_cc_shared', 'default_cma_region', 'x']))); break;
          case 2: p.setFault(r().pick(['alloc_pages', 'cma_alloc', 'set_memory_decrypted', 'set_memory_encrypted', 'dma_buf_export', 'dma_buf_fd', 'nope']), { nth: r().int(3), times: r().int(3) }); break;
          case 3: p.setMemCryptHooks(r().chance(0.8) ? { decrypt: fz.reentrantCallback('decrypt'), encrypt: fz.reentrantCallback('encrypt') } : null); break;
          case 4: p.stats(); p.leaked(); break;
          case 5: this.reg(dm.Platform.importHandle(p.exportHandle())); break;
          default: p.dispose();
        }
      }, 'buffer'),
      op('memfd/udmabuf', 1, () => {
        let m = fz.pick('Memfd');
        if (!m || r().chance(0.3)) m = this.reg(dm.createMemfd(r().chance(0.8) ? 4096 * r().range(1, 4) : this.surface.capSize(fz.values.any(1))));
        switch (r().int(4)) {
          case 0: void [m.fd, m.size, m.seals]; break;
          case 1: m.addSeals(r().pick([['grow'], ['seal'], ['write'], []])); break;
          case 2: this.reg(dm.udmabufCreate(m)); break;
          default: m.close();
        }
      }, 'buffer'),
      // --- issuers
      op('issuer', 4, () => this.issuerOp(), 'issuer'),
      // --- workers
      op('worker', 2, () => this.spawnWorker(), 'worker'),
      op('worker storm', 1, () => {
        // Workers ended at random points: during require, mid-call, with pending waits.
        if (fz.stats.workers > 12) return;
        const n = r().range(2, 5);
        for (let i = 0; i < n; i++) this.spawnWorker(r().pick(['require', 'calls', 'waits', 'calls']), true);
      }, 'worker'),
      op('terminate worker', 1, () => {
        const w = this.r.pick(this.fz.workers.filter((x) => !x.exited) ?? []);
        if (w) this.track(w.worker.terminate(), 'terminate');
      }, 'worker'),
      // --- hostile tricks that are not calls
      op('redefine property', 1, () => {
        const o = fz.randomObject();
        if (!o) return;
        const key = r().pick(['handle', 'context', 'seqno', 'backend', 'signaled', 'fd', 'closed', 'disposed']);
        const value = key === 'handle' ? fz.values.forgedNumber() : fz.values.any(1);
        Object.defineProperty(o, key, r().chance(0.8) ? { value, configurable: true } : { get() { throw new Deliberate('redefined getter'); }, configurable: true });
        fz.note(`defineProperty(${describeValue(o)}, ${key})`);
      }, 'forge'),
      op('abort', 3, () => {
        const c = this.r.pick(fz.controllers);
        if (c) c.abort(r().chance(0.5) ? undefined : new Deliberate('abort reason'));
      }),
      op('gc', 2, () => globalThis.gc?.(), 'gc'),
      op('drop references', 1, () => {
        for (const [k, pool] of fz.pools) {
          if (pool.length && r().chance(0.3)) fz.note(`dropped ${k} ${this.desc(pool.splice(r().int(pool.length), 1)[0])}`);
        }
      }, 'gc'),
      op('sleep', 3, () => sleep(r().int(4))),
      op('tick', 3, () => new Promise((res) => (r().chance(0.5) ? setImmediate(res) : queueMicrotask(res)))),
      op('await something', 2, () => {
        const p = this.r.pick(fz.promises);
        if (p) return Promise.race([p.p.catch(() => {}), sleep(5)]);
        return undefined;
      }),
    ];
  }

  bufOp() {
    const fz = this.fz;
    const r = this.r;
    const b = fz.pick('DmaBuf');
    if (!b) return;
    const k = r.int(16);
    fz.note(`case ${k}`);
    switch (k) {
      case 0: this.reg(b.map()); break;
      case 1: b.unmap(); break;
      case 2: {
        const dir = r.chance(0.9) ? r.pick(['read', 'write', 'readwrite']) : fz.values.any(1);
        if (this.surface.cpuAccessWontBlock(b)) b.beginCpuAccess(dir);
        b.endCpuAccess(dir);
        break;
      }
      case 3: b.setName(r.chance(0.8) ? r.pick(['n', 'x'.repeat(31), 'x'.repeat(32)]) : fz.values.any(1)); break;
      case 4: b.fdinfo(); void [b.name, b.exporterName, b.size, b.fd, b.closed, b.backend]; break;
      case 5: case 6: this.reg(b.resv); break;
      case 7: case 8: {
        const o = r.chance(0.8)
          ? { pinned: r.chance(0.3), peer2peer: r.chance(0.5), moveNotify: r.chance(0.6) ? fz.reentrantCallback('moveNotify') : undefined }
          : fz.values.options(1);
        this.reg(b.attach(o));
        break;
      }
      case 9: this.reg(b.exportSyncFile(r.pick(['read', 'write', 'readwrite']))); break;
      case 10: {
        const s = fz.pick('SyncFile');
        if (s) b.importSyncFile(s, r.pick(['read', 'write', 'readwrite']));
        break;
      }
      case 11: b.revoke(); break;
      case 12: b.restore(); break;
      case 13: void b.revoked; break;
      case 14: b.sync(r.chance(0.5) ? 4n | BigInt(r.int(4)) : fz.values.any(1)); break;
      default: b.close();
    }
  }

  issuerOp() {
    const fz = this.fz;
    const dm = this.dm;
    const r = this.r;
    let iss = fz.pick('Issuer');
    if (!iss || r.chance(0.15)) {
      iss = this.reg(r.chance(0.4) ? new dm.Issuer({ driverName: 'fz-drv', timelineName: r.pick(['fz-tl', 'x'.repeat(255)]) }) : dm.Issuer.load(this.modulePath()));
    }
    const k = r.int(9);
    fz.note(`issuer ${safeGet(iss, 'kind')} ${safeGet(iss, 'name')} case ${k}`);
    switch (k) {
      case 0: case 1: case 2: {
        const f = this.reg(iss.createFence(r.chance(0.8) ? undefined : fz.values.options(1)));
        if (r.chance(0.5)) this.track(f.wait(this.waitOpts()), 'issuer fence wait');
        break;
      }
      case 3: {
        const p = iss.params;
        if (p.length) {
          const name = r.pick(p);
          if (r.chance(0.5)) iss.getParam(name);
          else iss.setParam(name, r.pick([0, 1, 10, 500, -1, 2n ** 62n, 60_000_000]));
        } else iss.getParam('nope');
        break;
      }
      case 4: void [iss.kind, iss.name, iss.path, iss.timelineName, iss.keepOps, iss.state, iss.pinnedFences, iss.fencesCreated, iss.lastUnloadStats]; break;
      case 5: case 6: this.track(iss.unload(r.chance(0.7) ? { timeout: r.pick([0, 1, 5, 50]) } : undefined), 'unload'); break;
      case 7: iss.dispose(); break;
      default: fz.note(`issuer ${iss.name}`);
    }
  }

  spawnWorker(forceMode, storm = false) {
    const fz = this.fz;
    const r = this.r;
    if (fz.workers.filter((w) => !w.exited).length >= (storm ? 8 : 3)) return;
    const mode = forceMode ?? r.pick(['require', 'calls', 'waits', 'signal', 'waitSync', 'lock', 'platform']);
    const fences = [];
    const resvs = [];
    const platforms = [];
    const n = r.range(1, 3);
    for (let i = 0; i < n; i++) {
      const f = this.fence();
      if (f) try { fences.push(f.exportHandle()); } catch (e) { fz.judge(e); }
    }
    let lockAfter = null;
    if (mode === 'lock') {
      const x = fz.pick('Resv');
      if (x) try { resvs.push(x.exportHandle()); } catch (e) { fz.judge(e); }
      // The worker adds (possibly never-signalled) fences to it at a time of its
      // choosing, so no later check can tell that a CPU access would not block.
      if (x) fz.resvHandedToWorker = true;
      // Once the worker is gone, the lock must be free again (issue 9 #5).
      if (x && r.chance(0.6)) lockAfter = x;
    }
    if (mode === 'platform') {
      const p = fz.pick('Platform');
      if (p) try { platforms.push(p.exportHandle()); } catch (e) { fz.judge(e); }
    }
    const workerData = {
      pkg: fz.pkgPath, seed: r.int(2 ** 31), mode, fences, resvs, platforms,
      allowBlock: fz.allow('block'), allowLockExit: fz.allow('lockexit'),
    };
    const worker = new Worker(new URL('./worker.mjs', import.meta.url), { workerData, stdout: false, stderr: false });
    const rec = { worker, mode, exited: false, label: `${fz.stats.workers++}:${mode}` };
    fz.workers.push(rec);
    fz.note(`worker ${rec.label} fences=${fences.length}`);
    const when = storm ? r.pick(['now', 'delay', 'delay', 'ready']) : r.weighted([[3, 'now'], [3, 'delay'], [3, 'ready'], [2, 'never']]);
    const delay = r.int(storm ? 40 : 15);
    const stop = () => {
      if (!rec.exited) this.track(worker.terminate(), 'terminate');
    };
    worker.on('message', (m) => {
      if (m?.finding) fz.finding(m.finding.kind, Object.assign(new Error(m.finding.message), { name: m.finding.name, stack: m.finding.stack }), m.finding.where);
      if (m?.state === 'ready' && when === 'ready') setTimeout(stop, delay);
    });
    worker.on('error', (e) => fz.judge(e, `worker ${rec.label} error`));
    worker.on('exit', () => {
      rec.exited = true;
      if (lockAfter) {
        setImmediate(() => {
          try {
            fz.note(`lock after worker ${rec.label} exited`);
            if (!lockAfter.disposed && !lockAfter.held) {
              lockAfter.lock();
              lockAfter.unlock();
            }
          } catch (e) {
            fz.judge(e, `lock after worker ${rec.label} exited`);
          }
        });
      }
    });
    if (when === 'now') stop();
    else if (when === 'delay') setTimeout(stop, delay);
  }

  /** A short operation a callback runs re-entrantly (dispose, abort, signal, unload...). */
  reentrant(self) {
    const fz = this.fz;
    const r = this.r;
    const dm = this.dm;
    switch (r.int(14)) {
      case 0: (self instanceof dm.Fence ? self : this.fence())?.dispose(); break;
      case 1: this.fence()?.dispose(); break;
      case 2: this.fence()?.signal(); break;
      case 3: this.r.pick(fz.controllers)?.abort(); break;
      case 4: if (fz.allow('issuer')) { const i = fz.pick('Issuer'); if (i) this.track(i.unload({ timeout: r.int(3) }), 'unload'); } break;
      case 5: fz.pick('SwSyncTimeline')?.[r.chance(0.5) ? 'close' : 'inc'](); break;
      case 6: { const cb = fz.pick('FenceCallback'); if (cb) this.fence()?.removeCallback(cb); break; }
      case 7: { const f = this.fence(); if (f) this.track(f.wait(this.waitOpts()), 'reentrant wait'); break; }
      case 8: { const f = this.fence(); const cb = f?.addCallback(fz.reentrantCallback('nested')); if (cb) this.reg(cb); break; }
      case 9: { const fs = this.fences(3); if (fs.length && fz.allow('waitany')) this.track(dm.Fence.waitAny(fs, this.waitOpts()), 'reentrant waitAny'); break; }
      case 10: if (fz.allow('gc')) globalThis.gc?.(); break;
      case 11: if (fz.allow('buffer')) fz.pick('DmaBuf')?.close(); else fz.pick('Resv')?.dispose(); break;
      case 12: if (fz.allow('hostile')) this.surface.call(); break;
      default:
        if (fz.allow('exit') && r.chance(0.05)) fz.exitNow('from a callback');
        fz.pick('Resv')?.dispose();
    }
  }

  /** Signals and releases what is left; terminates workers. */
  async teardown() {
    const fz = this.fz;
    const dm = this.dm;
    const r = this.r;
    const live = fz.all.map((w) => w.deref()).filter(Boolean);
    const attempt = (fn) => {
      try {
        return fn();
      } catch (e) {
        fz.judge(e, 'teardown');
        return undefined;
      }
    };
    // Workers first, before anything they wait for is signalled: terminate() must
    // end a worker blocked in waitSync() or holding a lock (issue 9 #5, #6).
    const terms = fz.workers.filter((w) => !w.exited).map((w) => ({ w, p: w.worker.terminate(), done: false }));
    for (const t of terms) t.p.then(() => (t.done = true), (e) => { t.done = true; fz.judge(e, 'teardown terminate'); });
    const tDeadline = Date.now() + 3000;
    while (Date.now() < tDeadline && terms.some((t) => !t.done)) await sleep(10);
    const stuck = terms.filter((t) => !t.done);
    if (stuck.length) {
      fz.finding('worker-terminate-hang', new Error(`worker.terminate() did not finish within 3 s (${stuck.map((t) => t.w.label).join(', ')})`), 'teardown');
    }
    for (const o of live) {
      attempt(() => {
        if (o instanceof dm.Resv && !o.disposed) {
          if (o.held) o.unlock();
          for (const f of o.getFences('bookkeep')) attempt(() => { f.signal(); f.dispose(); });
        }
        if (o instanceof dm.FenceArray && !o.disposed) for (const f of o.fences) attempt(() => { f.signal(); f.dispose(); });
        if (o instanceof dm.SyncFile) o.fence.signal();
        if (o instanceof dm.SwSyncTimeline) o.close();
      });
    }
    for (const o of live) attempt(() => { if (o instanceof dm.Fence && !o.disposed) o.signal(); });
    for (const c of fz.controllers) attempt(() => c.abort());
    for (const o of live) attempt(() => { if (o instanceof dm.Issuer && !o.disposed) this.track(o.unload({ timeout: 50 }), 'unload'); });
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline && fz.promises.some((p) => !p.settled && p.label !== 'unload')) await sleep(10);
    // Release most things explicitly; leave the rest to finalizers and environment teardown.
    for (const o of live) {
      if (r.chance(0.25)) continue;
      for (const m of ['dispose', 'close', 'detach']) {
        if (typeof o[m] === 'function') {
          attempt(() => o[m]());
          break;
        }
      }
    }
    if (fz.allow('gc')) globalThis.gc?.();
    await sleep(5);
  }
}
