#!/usr/bin/env node
// The sw_sync / sync_file scenario of test/kernel/swsync-differential: run
// with "emulated" or "kernel"; prints one JSON line per observation.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { SyncFile, SwSyncTimeline } = require('../../dist/index.js');
const backend = process.argv[2] ?? 'emulated';

const files = new Map();
const out = (step, obj) => console.log(JSON.stringify({ step, ...obj }));
const dump = (step) => {
  for (const [name, f] of files) {
    const i = f.info();
    out(step, {
      file: name,
      name: i.name,
      status: i.status,
      signaled: f.isSignaled(),
      fences: i.fences.map((l) => ({ obj: l.objName, drv: l.driverName, status: l.status, stamped: l.timestampNs > 0n })),
    });
  }
};
const tryOp = (step, what, fn) => {
  try {
    const r = fn();
    out(step, { op: what, ok: true, value: typeof r === 'bigint' ? String(r) : r ?? null });
  } catch (e) {
    out(step, { op: what, ok: false, code: e.code, syscall: e.syscall ?? null });
  }
};

const t1 = new SwSyncTimeline({ backend });
const t2 = new SwSyncTimeline({ backend });
if (t1.backend !== backend) throw new Error(`asked for ${backend}, got ${t1.backend}`);
files.set('f1', t1.createFence(1, 'name-ignored'));
files.set('f2', t1.createFence(3));
files.set('f3', t2.createFence(2));
files.set('m13', SyncFile.merge('m13', files.get('f1'), files.get('f3')));
files.set('m123', SyncFile.merge('m123', files.get('m13'), files.get('f2')));
files.set('same', SyncFile.merge('same', files.get('f1'), files.get('f2')));
dump('created');
tryOp('created', 'getDeadline(f1)', () => t1.getDeadline(files.get('f1')));
files.get('f1').setDeadline(5000n);
files.get('f1').setDeadline(4000n);
tryOp('deadline', 'getDeadline(f1)', () => t1.getDeadline(files.get('f1')));
tryOp('deadline', 'getDeadline(m13)', () => t1.getDeadline(files.get('m13')));
t1.inc(1);
dump('t1.inc(1)');
t2.inc(2);
dump('t2.inc(2)');
files.set('f4', t2.createFence(1)); // already reached
files.set('f5', t2.createFence(5));
files.set('f6', t2.createFence(5)); // same live point
dump('more points');
t1.close();
dump('t1.close()');
t2.inc(3);
dump('t2.inc(3)');
files.set('f7', t2.createFence(9));
t2.close();
dump('t2.close()');
tryOp('closed', 't2.inc(1)', () => t2.inc(1));
for (const f of files.values()) f.close();
tryOp('closed', 'f1.info()', () => files.get('f1').info());
