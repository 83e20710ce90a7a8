// `dmabuf bench` rows that need the event loop: how long after a sw_sync
// timeline reaches a point a JS `await` on its sync_file resumes. Kernel rows
// (when debugfs sw_sync is there; otherwise one skipped row with the reason)
// and the emulated SyncFile, each against a floor measured in the same run:
// a plain Promise resolved from setImmediate (one turn of the event loop).
import type { BenchOptions, BenchRow } from './bench';

/** A row before lib/bench.ts gives it its id, group and status. */
type Row = Omit<BenchRow, 'id' | 'group' | 'status'>;
import { SwSyncTimeline, type SyncFile } from './sync_file';

const FLOOR_NAME = 'setImmediate -> Promise resolves (one loop turn)';
export const KERNEL_WAIT_ROW = 'kernel: JS sw_sync inc -> await SyncFile.wait() resumes';
export const KERNEL_BRIDGE_ROW = 'kernel: JS sw_sync inc -> await syncFile.fence.wait() resumes';
export const KERNEL_SKIP_ROW = 'kernel: JS sync_file wait latency (skipped)';
export const EMULATED_WAIT_ROW = 'JS emulated sw_sync inc -> await SyncFile.wait() resumes';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One round: set up (untimed), start waiting, let the loop turn, then time fire() -> the await resuming. */
interface LatencyCase {
  prepare(): void;
  start(): Promise<unknown>;
  fire(): void;
  cleanup(): void;
}

async function medianLatencyNs(iters: number, c: LatencyCase): Promise<number> {
  const lat: number[] = [];
  try {
    for (let i = -Math.min(10, iters); i < iters; i++) {
      c.prepare();
      const p = c.start();
      await turn(); // the waiter is registered and the loop idle before firing
      const t0 = process.hrtime.bigint();
      c.fire();
      await p;
      const dt = Number(process.hrtime.bigint() - t0);
      if (i >= 0) lat.push(dt); // the first rounds warm up
    }
  } finally {
    c.cleanup();
  }
  lat.sort((a, b) => a - b);
  return lat[lat.length >> 1]!;
}

function floorCase(): LatencyCase {
  let resolve: (() => void) | null = null;
  return {
    prepare() {},
    start: () => new Promise<void>((r) => (resolve = r)),
    fire: () => setImmediate(resolve!),
    cleanup() {},
  };
}

/** Points of one timeline: `wait` starts the wait on the new point's SyncFile. */
function timelineCase(tl: SwSyncTimeline, wait: (sf: SyncFile) => Promise<unknown>): LatencyCase {
  let value = 0;
  let sf: SyncFile | null = null;
  return {
    prepare() {
      sf?.close();
      sf = tl.createFence(++value);
    },
    start: () => wait(sf!),
    fire: () => tl.inc(1),
    cleanup() {
      sf?.close();
      tl.close();
    },
  };
}

function row(name: string, value: number, floor: number, note: string): Row {
  return { name, value: value / 1000, unit: 'us', floorName: FLOOR_NAME, floor: floor / 1000, ratio: value / floor, target: '', met: null, note };
}

function kernelSkipReason(): string | null {
  if (SwSyncTimeline.kernelAvailable()) return null;
  try {
    new SwSyncTimeline({ backend: 'kernel' }).close();
    return 'kernel sw_sync opened but was reported unavailable';
  } catch (e) {
    return `no kernel sw_sync: ${(e as Error).message}`;
  }
}

/** The sync_file wait-latency rows whose names contain opts.filter (median of opts.ms rounds, at least 50). */
export async function syncFileWaitRows(opts: BenchOptions): Promise<Row[]> {
  const filter = opts.filter ?? '';
  const want = (n: string): boolean => n.includes(filter);
  const wantKernel = [KERNEL_WAIT_ROW, KERNEL_BRIDGE_ROW, KERNEL_SKIP_ROW].some(want);
  if (!wantKernel && !want(EMULATED_WAIT_ROW)) return [];
  const iters = Math.max(50, Math.round(opts.ms ?? 150));
  const floor = await medianLatencyNs(iters, floorCase());
  const rows: Row[] = [];
  if (wantKernel) {
    const why = kernelSkipReason();
    if (why !== null) {
      if (want(KERNEL_SKIP_ROW)) {
        rows.push({ name: KERNEL_SKIP_ROW, value: 0, unit: '', floorName: '', floor: 0, ratio: 0, target: '', met: null, note: why });
      }
    } else {
      if (want(KERNEL_WAIT_ROW)) {
        const tl = new SwSyncTimeline({ backend: 'kernel' });
        const v = await medianLatencyNs(iters, timelineCase(tl, (sf) => sf.wait()));
        rows.push(row(KERNEL_WAIT_ROW, v, floor, `median of ${iters}; uv_poll on the sync_file fd, woken by SW_SYNC_IOC_INC`));
      }
      if (want(KERNEL_BRIDGE_ROW)) {
        const tl = new SwSyncTimeline({ backend: 'kernel' });
        const v = await medianLatencyNs(iters, timelineCase(tl, (sf) => sf.fence.wait()));
        rows.push(row(KERNEL_BRIDGE_ROW, v, floor, `median of ${iters}; the kernel-fence bridge: watcher thread, then the environment's uv_async`));
      }
    }
  }
  if (want(EMULATED_WAIT_ROW)) {
    const tl = new SwSyncTimeline({ backend: 'emulated' });
    const v = await medianLatencyNs(iters, timelineCase(tl, (sf) => sf.wait()));
    rows.push(row(EMULATED_WAIT_ROW, v, floor, `median of ${iters}; inc() signals on this thread: the Promise resolves before the loop turns`));
  }
  return rows;
}
