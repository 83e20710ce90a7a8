// `dmabuf bench`: the native scenarios (run on native threads by the addon) plus
// the JS-facing round trip and (runBenchAsync) the sync_file wait latency from
// JS, each against a floor measured in the same run.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  EMULATED_WAIT_ROW,
  KERNEL_BRIDGE_ROW,
  KERNEL_SKIP_ROW,
  KERNEL_WAIT_ROW,
  syncFileWaitRows,
} from './bench_sync_file';
import { FD_CHANNEL_ROW, fdChannelRows } from './bench_fd_channel';
import { WORKER_SIGNAL_ROW, workerSignalRows } from './bench_worker';
import { RUN_ROWS, runRows } from './bench_run';
import { Fence } from './fence';
import { invalidArgType, outOfRange } from './internal/args';
import { binding } from './internal/binding';
import { Issuer } from './issuer';

/** One benchmark row, as `dmabuf bench --json` prints it. */
export interface BenchRow {
  /** Stable across runs and versions: `<group>/<slug of the name>`. */
  id: string;
  /** The scenario group (`fence`, `containers`, `heaps`, `issuer`, `kernel`, `js`). */
  group: BenchGroup;
  name: string;
  value: number;
  unit: string;
  floorName: string;
  floor: number;
  ratio: number;
  /** The target the ratio is held to (e.g. `<= 1.5`); empty when the row has none. */
  target: string;
  /** Whether the target was met; null when the row has no target or was skipped. */
  met: boolean | null;
  /** `skipped` rows measured nothing (the note says why); `miss` rows missed their target. */
  status: 'ok' | 'miss' | 'skipped';
  note: string;
}

/** Where runBenchAsync() is: about to run `group`, the `index`th of `total` stages (from 0). */
export interface BenchProgress {
  group: BenchGroup;
  index: number;
  total: number;
}

export interface BenchOptions {
  /** A group's name runs that group alone; any other text keeps the rows whose name contains it. */
  filter?: string;
  /** Milliseconds per measurement (each is repeated, best kept). */
  ms?: number;
  /** Only the rows measured from JavaScript: skip the native scenarios. */
  jsOnly?: boolean;
  /** runBenchAsync() only: called before each group runs. */
  onProgress?: (progress: BenchProgress) => void;
}

export const BENCH_GROUPS = ['fence', 'containers', 'heaps', 'issuer', 'kernel', 'js'] as const;
export type BenchGroup = (typeof BENCH_GROUPS)[number];
type NativeGroup = Exclude<BenchGroup, 'js'>;
const NATIVE_GROUPS = BENCH_GROUPS.filter((g): g is NativeGroup => g !== 'js');

const FENCE_ROW = 'JS new Fence(); signal(); dispose()';
const ISSUER_ROW = 'JS issuer.createFence(); signal(); dispose()';

/**
 * Every row each group can print (rows that stand for a skipped measurement
 * included), so a filter can be checked and `--list` answered without running
 * anything. test/cli.test.ts checks it against what the addon runs.
 */
const CATALOGUE: Record<BenchGroup, readonly string[]> = {
  fence: [
    'fence lifecycle (alloc, init, signal, put)',
    'fence lifecycle vs floor + refcount',
    'fence lifecycle + 4 callbacks',
    'signal, 2 threads, inline locks',
    'signal, 2 threads, one shared external lock',
  ],
  containers: [
    'chain 4096, tail waited on: signal forward',
    'chain 4096, tail waited on: signal backward',
    'chain 4096, every link enabled: forward',
    'array of 16: create, wait, signal members',
    'array of 256: create, wait, signal members',
    ...[1, 4, 16, 64].map((n) => `resv: lock, add ${n}, unlock, iterate`),
    'resv lock+unlock with ctx, 1 thread',
    'resv lock+unlock with ctx, 2 threads contending',
  ],
  heaps: [
    ...['4 KiB', '1 MiB', '64 MiB'].flatMap((s) => [`system heap alloc+free, ${s}`, `system heap alloc+free vs mmap, ${s}`]),
    'system_cc_shared alloc+free, 1 MiB',
  ],
  issuer: [
    'driver name under RCU, 2 readers + signaller',
    'driver name under RCU, 2 readers, module fences',
    'driver name, module fence (wrapper)',
    'named issuer fence lifecycle (create, signal, put)',
    ...[0, 1000, 100000].map((n) => `unload protocol, ${n} live detached fences`),
    'issuer benchmarks skipped',
  ],
  kernel: [
    'kernel: heap alloc+close 4 KiB',
    'kernel: heap alloc+close 1 MiB',
    'kernel: heap alloc+free (skipped)',
    'kernel: sw_sync inc -> sync_file poll wakes',
    'kernel: sw_sync inc -> bridged Fence wait returns',
    'kernel: sync_file wake-up latency (skipped)',
  ],
  js: [FENCE_ROW, ISSUER_ROW, KERNEL_WAIT_ROW, KERNEL_BRIDGE_ROW, KERNEL_SKIP_ROW, EMULATED_WAIT_ROW, WORKER_SIGNAL_ROW, FD_CHANNEL_ROW, ...RUN_ROWS],
};

/** `kernel/heap-alloc-close-4-kib` for 'kernel: heap alloc+close 4 KiB'. */
export function benchRowId(group: BenchGroup, name: string): string {
  const slug = name
    .replace(/^kernel: /, '')
    .replace(/ \(skipped\)$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return `${group}/${slug}`;
}

/** Every row `dmabuf bench` can print, by group: what `--list` shows. */
export function benchCatalogue(): Array<{ group: BenchGroup; id: string; name: string }> {
  return BENCH_GROUPS.flatMap((group) => CATALOGUE[group].map((name) => ({ group, id: benchRowId(group, name), name })));
}

/** The native groups a filter runs (a group's name: that one; other text: the groups with a row containing it). */
function nativeGroupsFor(filter: string, jsOnly: boolean): NativeGroup[] {
  if (jsOnly || filter === 'js') return [];
  if ((NATIVE_GROUPS as readonly string[]).includes(filter)) return [filter as NativeGroup];
  return NATIVE_GROUPS.filter((g) => CATALOGUE[g].some((n) => n.includes(filter)));
}

/** Whether a filter selects any row (what `dmabuf bench` checks before it runs anything). */
export function benchFilterMatches(filter: string, jsOnly = false): boolean {
  return nativeGroupsFor(filter, jsOnly).length > 0 || wantJs(filter);
}

function wantJs(filter: string): boolean {
  return filter === 'js' || CATALOGUE.js.some((n) => n.includes(filter));
}

type RawRow = Omit<BenchRow, 'id' | 'group' | 'status' | 'met'> & { met: boolean | null };

/** A measured row with its id, group (the one that ran it) and status. */
function finish(raw: RawRow, group: BenchGroup): BenchRow {
  const skipped = raw.unit === '' && raw.value === 0;
  const met = skipped || !raw.target ? null : raw.met === true;
  return {
    id: benchRowId(group, raw.name),
    group,
    ...raw,
    met,
    status: skipped ? 'skipped' : met === false ? 'miss' : 'ok',
  };
}

/** Native rows of one group, kept by the filter (a group's own name keeps them all). */
function keepNative(group: NativeGroup, json: string, filter: string): BenchRow[] {
  const rows = (JSON.parse(json) as RawRow[]).map((r) => finish(r, group));
  return filter === group ? rows : rows.filter((r) => r.name.includes(filter));
}

/**
 * The floor for the JS round trip: the same operations on a plain JavaScript
 * class with the same state (flags, error, callback list, a monotonic
 * timestamp taken at signal time).
 */
class PlainFence {
  flags = 1;
  error = 0;
  timestamp: bigint | null = null;
  callbacks: Array<(f: PlainFence) => void> | null = [];
  disposed = false;
  constructor(
    readonly context = 0n,
    readonly seqno = 0n,
  ) {}
  signal(): void {
    if (this.disposed) throw new Error('disposed');
    if (this.flags & 8) return;
    const cbs = this.callbacks;
    this.callbacks = null;
    this.timestamp = process.hrtime.bigint();
    this.flags |= 8 | 16;
    if (cbs) for (const cb of cbs) cb(this);
  }
  dispose(): void {
    this.disposed = true;
  }
}

/**
 * ns per op of each of `ops`: calibrates each to about `ms / 8` per run, then
 * runs them in turns (a, b, c, a, b, c, ...) 40 times and keeps each one's
 * best run, so a burst of load from elsewhere never lands on one of them
 * alone. A generator that yields between rounds, so runBenchAsync() lets the
 * event loop turn there (runBench() just drains it).
 */
function* nsPerOpInTurns(ms: number, ops: Array<(n: number) => void>): Generator<void, number[]> {
  const iters: number[] = [];
  for (const op of ops) {
    let n = 1000;
    for (;;) {
      yield; // calibrating blocks too: let the loop turn between steps
      const t0 = process.hrtime.bigint();
      op(n);
      const dt = Number(process.hrtime.bigint() - t0);
      if (dt > 2e6) {
        iters.push(Math.max(1, Math.round((n * ms * 1e6) / 8 / dt)));
        break;
      }
      n *= 4;
    }
  }
  const best = ops.map(() => Infinity);
  for (let r = 0; r < 40; r++) {
    yield;
    ops.forEach((op, i) => {
      const n = iters[i]!;
      const t0 = process.hrtime.bigint();
      op(n);
      best[i] = Math.min(best[i]!, Number(process.hrtime.bigint() - t0) / n);
    });
  }
  return best;
}

function* jsRows(opts: { filter: string; ms: number }): Generator<void, BenchRow[]> {
  const { filter, ms } = opts;
  const keep = (name: string): boolean => filter === 'js' || name.includes(filter);
  if (!keep(FENCE_ROW) && !keep(ISSUER_ROW)) return [];
  let sink = 0;
  // Fences of a names-only issuer: the issuer's own timeline, names copied into each fence.
  const issuer = new Issuer({ driverName: 'bench-driver', timelineName: 'bench-timeline' });
  let floor: number, ours: number, viaIssuer: number;
  try {
    [floor, ours, viaIssuer] = (yield* nsPerOpInTurns(ms, [
      (n) => {
        for (let i = 0; i < n; i++) {
          const f = new PlainFence();
          f.signal();
          f.dispose();
          sink += f.flags;
        }
      },
      (n) => {
        for (let i = 0; i < n; i++) {
          const f = new Fence();
          f.signal();
          f.dispose();
        }
      },
      (n) => {
        for (let i = 0; i < n; i++) {
          const f = issuer.createFence();
          f.signal();
          f.dispose();
        }
      },
    ])) as [number, number, number];
  } finally {
    issuer.dispose();
  }
  if (sink < 0) console.log(sink);
  const ratio = ours / floor;
  const rows: RawRow[] = [
    {
      name: FENCE_ROW,
      value: ours,
      unit: 'ns/op',
      floorName: 'same on a plain JS class',
      floor,
      ratio,
      target: '<= 2',
      met: ratio <= 2,
      note: '',
    },
    {
      name: ISSUER_ROW,
      value: viaIssuer,
      unit: 'ns/op',
      floorName: 'same on a plain JS class',
      floor,
      ratio: viaIssuer / floor,
      target: '<= 4',
      met: viaIssuer / floor <= 4,
      note: `names-only issuer; ${(viaIssuer / ours).toFixed(2)}x new Fence() (argument checks, the issuer's context and seqno, names copied into the fence)`,
    },
  ];
  return rows.filter((r) => keep(r.name)).map((r) => finish(r, 'js'));
}

/** Validated options (TypeError / RangeError for bad ones, before anything runs). */
function checkBenchOptions(opts: unknown): { filter: string; ms: number; jsOnly: boolean; onProgress: BenchOptions['onProgress'] } {
  if (opts === undefined) return { filter: '', ms: 150, jsOnly: false, onProgress: undefined };
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw invalidArgType('opts', 'of type object', opts);
  const { filter, ms, jsOnly, onProgress } = opts as BenchOptions;
  if (filter !== undefined && typeof filter !== 'string') throw invalidArgType('opts.filter', 'of type string', filter);
  if (ms !== undefined && typeof ms !== 'number') throw invalidArgType('opts.ms', 'of type number', ms);
  if (ms !== undefined && !(ms >= 1 && ms <= 60000)) throw outOfRange('opts.ms', '>= 1 and <= 60000', ms);
  if (jsOnly !== undefined && typeof jsOnly !== 'boolean') throw invalidArgType('opts.jsOnly', 'of type boolean', jsOnly);
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArgType('opts.onProgress', 'of type function', onProgress);
  return { filter: filter ?? '', ms: ms ?? 150, jsOnly: jsOnly === true, onProgress };
}

/**
 * Runs the synchronous benchmark scenarios (native, then JS) on this thread,
 * blocking it, and returns one row each. runBenchAsync() runs the native ones on
 * a worker thread and adds the rows that need the event loop.
 */
export function runBench(options?: BenchOptions): BenchRow[] {
  const { filter, ms, jsOnly } = checkBenchOptions(options);
  const rows: BenchRow[] = [];
  for (const g of nativeGroupsFor(filter, jsOnly)) rows.push(...keepNative(g, binding.benchRun(g, ms), filter));
  const gen = jsRows({ filter, ms });
  let step = gen.next();
  while (!step.done) step = gen.next();
  rows.push(...step.value);
  return rows;
}

// The worker that runs native groups: it loads the addon the way
// lib/internal/binding.ts does (DMABUF_ADDON_PATH, else node-gyp-build from the
// package root) and posts its group's JSON. Plain CommonJS, so it also runs
// from the TypeScript sources under vitest.
const NATIVE_WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const addon = w.addonPath ? require(w.addonPath) : require(w.gypBuild)(w.root);
parentPort.postMessage({ group: w.group, json: addon.benchRun(w.group, w.ms) });
`;

// One worker per group, one after another: a group measured on a thread that
// an earlier group used inherits what that group left there (its malloc arena,
// allocator caches), which measurably biased the heaps rows after containers
// (64 MiB: 1.21 on the same thread, 1.18 on a fresh one). A fresh thread per
// group measures each one as `--filter GROUP` does.
async function runNativeGroups(groups: NativeGroup[], ms: number, onGroup: (g: NativeGroup, json: string) => void): Promise<void> {
  for (const g of groups) await runNativeGroup(g, ms, onGroup);
}

function runNativeGroup(group: NativeGroup, ms: number, onGroup: (g: NativeGroup, json: string) => void): Promise<void> {
  const addonPath = process.env['DMABUF_ADDON_PATH'];
  const worker = new Worker(NATIVE_WORKER, {
    eval: true,
    workerData: {
      group,
      ms,
      addonPath: addonPath ? path.resolve(addonPath) : null,
      gypBuild: require.resolve('node-gyp-build'),
      root: path.join(__dirname, '..'),
    },
  });
  return new Promise((resolve, reject) => {
    let failed: unknown = null;
    worker.on('message', (m: { group: NativeGroup; json: string }) => {
      try {
        onGroup(m.group, m.json);
      } catch (e) {
        failed ??= e;
      }
    });
    worker.on('error', (e) => (failed ??= e));
    worker.on('exit', (code) => {
      if (failed) reject(failed);
      else if (code !== 0) reject(new Error(`the benchmark worker exited with ${code}`));
      else resolve();
    });
  });
}

/**
 * Everything `dmabuf bench` prints: the native scenarios on a worker thread (the
 * caller's event loop keeps turning), the JS rows on this thread in slices of
 * about `ms` with the loop turning between them, and the sync_file wait latency
 * from JS (kernel sw_sync when present, else a skipped row saying why; and the
 * emulated SyncFile).
 */
export async function runBenchAsync(options?: BenchOptions): Promise<BenchRow[]> {
  const { filter, ms, jsOnly, onProgress } = checkBenchOptions(options);
  const groups = nativeGroupsFor(filter, jsOnly);
  const js = wantJs(filter);
  const total = groups.length + (js ? 1 : 0);
  const progress = (group: BenchGroup, index: number): void => onProgress?.({ group, index, total });
  const byGroup = new Map<NativeGroup, BenchRow[]>();
  if (groups.length) progress(groups[0]!, 0);
  await runNativeGroups(groups, ms, (g, json) => {
    byGroup.set(g, keepNative(g, json, filter));
    const next = groups.indexOf(g) + 1;
    if (next < groups.length) progress(groups[next]!, next);
  });
  const rows = groups.flatMap((g) => byGroup.get(g) ?? []);
  if (!js) return rows;
  progress('js', groups.length);
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  const gen = jsRows({ filter, ms });
  let step = gen.next();
  while (!step.done) {
    await turn();
    step = gen.next();
  }
  rows.push(...step.value);
  const syncFileFilter = filter === 'js' ? '' : filter;
  for (const r of await syncFileWaitRows({ filter: syncFileFilter, ms })) rows.push(finish(r, 'js'));
  for (const r of await workerSignalRows({ filter: syncFileFilter, ms })) rows.push(finish(r, 'js'));
  for (const r of await fdChannelRows({ filter: syncFileFilter, ms })) rows.push(finish(r, 'js'));
  for (const r of await runRows({ filter: syncFileFilter, ms })) rows.push(finish(r, 'js'));
  return rows;
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The human-readable table `dmabuf bench` prints. */
export function formatBench(rows: BenchRow[]): string {
  const head = ['scenario', 'value', 'unit', 'floor (same run)', 'floor', 'ratio', 'target'];
  const body = rows.map((r) =>
    r.status === 'skipped'
      ? [r.name, '-', '', '', '', '', 'skipped']
      : [r.name, fmt(r.value), r.unit, r.floorName, fmt(r.floor), `${fmt(r.ratio)}x`, r.target ? `${r.target} ${r.met ? 'ok' : 'MISS'}` : ''],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(head), line(widths.map((w) => '-'.repeat(w)))];
  rows.forEach((r, i) => {
    out.push(line(body[i]!));
    if (r.note) out.push(`    ${r.note}`);
  });
  return out.join('\n') + '\n';
}
