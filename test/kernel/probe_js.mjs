#!/usr/bin/env node
// `dmabuf probe` in the kernel rig: every capability the rig's kernel has must
// be found ok (heap system with its mode and owner, udmabuf, debugfs, sw_sync,
// dma-buf export/import sync_file, the sync_file ioctls). Output: KTAP.
import { suite } from './tap.mjs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { probe } = require('../../dist/index.js');
const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist/cli.js');

const { test, run } = suite('probe_js');
const find = (r, name) => r.checks.find((c) => c.name === name) ?? assert.fail(`no ${name} row`);

test('probe() finds what the rig kernel offers, by trying it', () => {
  const r = probe();
  assert.match(r.kernel.release, /^6\./);
  const heap = find(r, 'system');
  assert.equal(heap.result, 'ok', heap.detail);
  assert.equal(heap.path, '/dev/dma_heap/system');
  assert.match(heap.mode, /^crw/);
  assert.equal(heap.owner, 'root:root');
  assert.match(heap.detail, /ALLOC of one page: ok/);
  assert.equal(find(r, 'udmabuf').result, 'ok', find(r, 'udmabuf').detail);
  assert.equal(find(r, 'debugfs').result, 'ok');
  assert.equal(find(r, 'sw_sync').result, 'ok', find(r, 'sw_sync').detail);
  for (const n of ['DMA_BUF_IOCTL_EXPORT_SYNC_FILE', 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE', 'SYNC_IOC_MERGE', 'SYNC_IOC_FILE_INFO', 'SYNC_IOC_SET_DEADLINE', 'SW_SYNC_GET_DEADLINE'])
    assert.equal(find(r, n).result, 'ok', `${n}: ${find(r, n).detail}`);
  assert.equal(find(r, 'fence+heap').result, 'ok');
});

test('dmabuf probe --json is the same report; the table has the heap row', () => {
  const j = spawnSync(process.execPath, [cli, 'probe', '--json'], { encoding: 'utf8' });
  assert.equal(j.status, 0, j.stderr);
  assert.deepEqual(JSON.parse(j.stdout).checks.map((c) => [c.name, c.result]), probe().checks.map((c) => [c.name, c.result]));
  const t = spawnSync(process.execPath, [cli, 'probe'], { encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^heap +system +ok +crw------- root:root +DMA_HEAP_IOCTL_ALLOC of one page: ok$/m);
});

test('an unprivileged user: the heap and udmabuf rows say EACCES, with mode and owner', () => {
  if (process.getuid() !== 0) return 'needs root to drop to an unprivileged uid';
  const r = spawnSync(process.execPath, [cli, 'probe', '--json'], { encoding: 'utf8', uid: 65534, gid: 65534, cwd: '/' });
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.user.uid, 65534);
  const heap = find(rep, 'system');
  assert.deepEqual([heap.result, heap.mode, heap.owner], ['EACCES', 'crw-------', 'root:root']);
  const u = find(rep, 'udmabuf');
  assert.deepEqual([u.result, u.mode, u.owner], ['EACCES', 'crw-------', 'root:root']);
  assert.equal(find(rep, 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE').result, 'untested', 'no heap this user can open');
  assert.equal(find(rep, 'fence+heap').result, 'ok', 'the emulation needs no device');
});

// The expectations are the rig kernel's (6.12 with heaps, udmabuf, sw_sync).
await run({ why: process.env.KERNEL_RIG ? null : 'expects the kernel rig (KERNEL_RIG=1): run it with test/kernel/run-in-rig.sh' });
