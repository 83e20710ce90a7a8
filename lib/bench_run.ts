// `dmabuf bench` rows for the shared emulation of `dmabuf run`: the native
// dmabuf-run-bench, started under a run, measures broker round trips against an
// empty round trip on the same connection, poll() of an emulated sync_file
// against poll() of a pipe, and heap alloc+free through the broker against the
// in-process emulation (native/run/bench/run_bench.cc).
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { BenchRow } from './bench';
import { runToolsDir, startRun } from './run';

/** A row before lib/bench.ts gives it its id, group and status. */
type Row = Omit<BenchRow, 'id' | 'group' | 'status'>;

export const RUN_ROWS_PREFIX = 'dmabuf run:';

function meets(ratio: number, target: string): boolean | null {
  const m = /^<=\s*([\d.]+)$/.exec(target);
  return m ? ratio <= Number(m[1]) : null;
}

/** The rows, or one skipped row saying why (no broker built). */
export async function runRows(opts: { ms?: number } = {}): Promise<Row[]> {
  let dir: string;
  try {
    dir = runToolsDir();
  } catch (e) {
    return [
      {
        name: `${RUN_ROWS_PREFIX} broker round trips`, value: 0, unit: 'ns/op', floorName: '', floor: 0, ratio: 0,
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
      return { ...r, name: `${RUN_ROWS_PREFIX} ${r.name}`, ratio, met: meets(ratio, r.target), note: '' };
    });
  } finally {
    await session.stop();
  }
}
