// An emulated SwSyncTimeline shared between worker threads (exportHandle /
// importHandle), as IGT's sw_sync tests share a timeline between a producer
// and a consumer thread: one timeline, released with its last holder.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SwSyncTimeline } from '../lib';
import { expectDmaBufError } from './helpers';

const DIST = path.resolve(__dirname, '..', 'dist', 'index.js');

function worker(src: string, data: unknown): Worker {
  return new Worker(`const { parentPort, workerData } = require('node:worker_threads');
const { SwSyncTimeline } = require(${JSON.stringify(DIST)});
${src}`, { eval: true, workerData: data });
}

describe('SwSyncTimeline across workers', () => {
  it('a worker advances the timeline the main thread waits on', async () => {
    const tl = new SwSyncTimeline();
    const points = [1, 2, 3].map((v) => tl.createFence(v));
    const w = worker(`
      const t = SwSyncTimeline.importHandle(workerData.h);
      parentPort.postMessage(t.backend);
      parentPort.once('message', (n) => { t.inc(n); t.close(); parentPort.postMessage('done'); });
    `, { h: tl.exportHandle() });
    const msgs: unknown[] = [];
    w.on('message', (m) => msgs.push(m));
    while (msgs.length < 1) await new Promise((r) => setTimeout(r, 5));
    expect(msgs[0]).toBe('emulated');
    const waits = points.map((p) => p.wait({ timeout: 10000 }));
    w.postMessage(2);
    expect(await waits[0]).toBe(true);
    expect(await waits[1]).toBe(true);
    await new Promise((r) => w.once('exit', r));
    // The worker's close() dropped its reference only: point 3 is still pending.
    expect(points[2]!.status).toBe(0);
    tl.inc(1);
    expect(await waits[2]).toBe(true);
    for (const p of points) p.close();
    tl.close();
  });

  it('the last holder to close releases it: pending points signal with ENOENT', async () => {
    const tl = new SwSyncTimeline();
    const p = tl.createFence(5);
    const h = tl.exportHandle();
    tl.close();
    expect(p.status).toBe(0); // the export still holds it
    const w = worker(`const t = SwSyncTimeline.importHandle(workerData.h); t.close(); parentPort.postMessage('closed');`, { h });
    await new Promise((r) => w.once('exit', r));
    expect(await p.wait({ timeout: 10000 })).toBe(true);
    expect(p.status).toBe(-2);
    p.close();
  });

  it('a handle is adopted once; unknown and bad handles are refused', () => {
    const tl = new SwSyncTimeline();
    const h = tl.exportHandle();
    const t2 = SwSyncTimeline.importHandle(h);
    expect(t2.backend).toBe('emulated');
    expectDmaBufError(() => SwSyncTimeline.importHandle(h), 'EINVAL');
    expectDmaBufError(() => SwSyncTimeline.importHandle(12345n), 'EINVAL');
    expect(() => SwSyncTimeline.importHandle(1 as unknown as bigint)).toThrow(TypeError);
    expect(() => SwSyncTimeline.importHandle(-1n)).toThrow(RangeError);
    t2.close();
    tl.close();
    expectDmaBufError(() => tl.exportHandle(), 'EBADF');
  });
});
