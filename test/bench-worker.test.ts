// The `dmabuf bench` row for a fence signalled on a worker thread
// (lib/bench_worker.ts): its shape through the public API, that it leaves no
// worker or port behind (a process that ran it exits by itself), and the
// skipped row when the worker cannot start. The worker loads the built package
// (npm run build:ts first). Timing is not asserted: only the row's structure.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchCatalogue, benchFilterMatches, runBenchAsync, type BenchRow } from '../lib/bench';
import { WORKER_SIGNAL_ROW } from '../lib/bench_worker';

const dist = path.join(__dirname, '..', 'dist', 'index.js');
const ID = 'js/js-worker-signal-await-fence-wait-resumes-p50';

function expectMeasured(rows: BenchRow[]): void {
  expect(rows).toHaveLength(1);
  const r = rows[0]!;
  expect(r).toMatchObject({
    id: ID,
    group: 'js',
    name: WORKER_SIGNAL_ROW,
    unit: 'ns',
    floorName: 'MessagePort round trip on the same threads (p50)',
    target: '<= 1.2',
  });
  expect(Number.isFinite(r.value) && r.value > 0, `value ${r.value}`).toBe(true);
  expect(Number.isFinite(r.floor) && r.floor > 0, `floor ${r.floor}`).toBe(true);
  expect(r.ratio).toBeCloseTo(r.value / r.floor, 9);
  expect(r.met).toBe(r.ratio <= 1.2);
  expect(r.status).toBe(r.met ? 'ok' : 'miss');
  expect(r.note).toMatch(/^p50 of 50 rounds each/);
}

describe('bench: worker signal -> await fence.wait() resumes', () => {
  it('is in the js group of the catalogue, and --filter "worker signal" selects it', () => {
    expect(benchCatalogue().filter((x) => x.name === WORKER_SIGNAL_ROW)).toEqual([{ group: 'js', id: ID, name: WORKER_SIGNAL_ROW }]);
    expect(benchFilterMatches('worker signal', true)).toBe(true);
  });

  it('one row: value and floor in ns, ratio = value / floor, the target, status ok or miss', async () => {
    expectMeasured(await runBenchAsync({ jsOnly: true, filter: 'worker signal', ms: 1 }));
  });

  it('from the built package, leaves nothing running: the process exits by itself', async () => {
    const script = `require(${JSON.stringify(dist)}).runBenchAsync({ jsOnly: true, filter: 'worker signal', ms: 1 })
      .then((rows) => process.stdout.write(JSON.stringify(rows)));`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 20000);
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    clearTimeout(timer);
    expect({ status, killed, stderr }).toEqual({ status: 0, killed: false, stderr: '' });
    expectMeasured(JSON.parse(stdout) as BenchRow[]);
  }, 30000);

  it('a worker that cannot load the package: one skipped row saying why', async () => {
    const saved = process.env['DMABUF_ADDON_PATH'];
    process.env['DMABUF_ADDON_PATH'] = path.join(__dirname, 'no-such-dir', 'dmabuf.node'); // the worker's copy of the env
    let rows: BenchRow[];
    try {
      rows = await runBenchAsync({ jsOnly: true, filter: 'worker signal', ms: 1 });
    } finally {
      if (saved === undefined) delete process.env['DMABUF_ADDON_PATH'];
      else process.env['DMABUF_ADDON_PATH'] = saved;
    }
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: ID, name: WORKER_SIGNAL_ROW, status: 'skipped', met: null, value: 0 });
    expect(rows[0]!.note).toMatch(/^skipped: the worker thread did not start: .*no-such-dir/);
  });
});
