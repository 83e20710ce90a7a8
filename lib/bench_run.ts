// `dmabuf bench` rows for the shared emulation of `dmabuf run`: the native
// dmabuf-run-bench, started under a run, measures broker round trips against an
// empty round trip on the same connection, poll() of an emulated sync_file
// against poll() of a pipe, and heap alloc+free through the broker against the
// in-process emulation (native/run/bench/run_bench.cc).
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { BenchOptions, BenchRow } from './bench';
import { runToolsDir, startRun } from './run';

/** A row before lib/bench.ts gives it its id, group and status. */
type Row = Omit<BenchRow, 'id' | 'group' | 'status'>;

const PREFIX = 'dmabuf run:';
const SKIP_ROW = `${PREFIX} broker round trips (skipped)`;

/** The rows' names, as dmabuf-run-bench prints them (the catalogue of `dmabuf bench --list`). */
export const RUN_ROWS = [
  ...[
    'sw_sync INC through the broker',
    'SYNC_IOC_MERGE through the broker (+ close of the new fd)',
    'poll() of a signalled emulated sync_file',
    'heap alloc+free 4 KiB through the broker',
    'heap alloc+free 1 MiB through the broker',
  ].map((n) => `${PREFIX} ${n}`),
  SKIP_ROW,
];

function meets(ratio: number, target: string): boolean | null {
  const m = /^<=\s*([\d.]+)$/.exec(target);
  return m ? ratio <= Number(m[1]) : null;
}

/** The rows opts.filter keeps (a part of their names), or one skipped row saying why (no broker built). */
export async function runRows(opts: BenchOptions = {}): Promise<Row[]> {
  const filter = opts.filter ?? '';
  if (!RUN_ROWS.some((n) => n.includes(filter))) return [];
  let dir: string;
  try {
    dir = runToolsDir();
  } catch (e) {
    return [
      {
        name: SKIP_ROW, value: 0, unit: '', floorName: '', floor: 0, ratio: 0,
        target: '', met: null, note: `skipped: ${(e as Error).message}`,
      },
    ];
  }
  const session = await startRun({ emulate: true, brokerStderr: 'ignore' });
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(path.join(dir, 'dmabuf-run-bench'), [String(opts.ms ?? 100)], { env: { ...process.env, ...session.env } },
        (err, stdout, stderr) => (err ? reject(new Error(`dmabuf-run-bench: ${stderr || err.message}`)) : resolve(stdout)));
    });
    const raw = JSON.parse(`[${out}]`) as { name: string; value: number; unit: string; floorName: string; floor: number; target: string }[];
    return raw.map((r) => {
      const ratio = r.floor > 0 ? r.value / r.floor : 0;
      return { ...r, name: `${PREFIX} ${r.name}`, ratio, met: meets(ratio, r.target), note: '' };
    }).filter((r) => r.name.includes(filter));
  } finally {
    await session.stop();
  }
}
