// `dmabuf bench`: the native scenarios (run on native threads by the addon) plus
// the JS-facing round trip and (runBenchAsync) the sync_file wait latency from
// JS, each against a floor measured in the same run.
import { syncFileWaitRows } from './bench_sync_file';
import { Fence } from './fence';
import { invalidArgType, outOfRange } from './internal/args';
import { binding } from './internal/binding';
import { Issuer } from './issuer';

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  floorName: string;
  floor: number;
  ratio: number;
  target: string;
  met: boolean;
  note: string;
}

export interface BenchOptions {
  /** Only rows whose name contains this. */
  filter?: string;
  /** Milliseconds per measurement (each is repeated, best kept). */
  ms?: number;
  /** Only the rows measured from JavaScript: skip the native scenarios. */
  jsOnly?: boolean;
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

function nsPerOp(ms: number, op: (n: number) => void): number {
  let n = 1000;
  for (;;) {
    const t0 = process.hrtime.bigint();
    op(n);
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt > 5e6) {
      n = Math.max(1, Math.round((n * ms * 1e6) / dt));
      break;
    }
    n *= 4;
  }
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    op(n);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  return best;
}

const FENCE_ROW = 'JS new Fence(); signal(); dispose()';
const ISSUER_ROW = 'JS issuer.createFence(); signal(); dispose()';

function jsRows(opts: BenchOptions): BenchRow[] {
  const filter = opts.filter ?? '';
  if (!FENCE_ROW.includes(filter) && !ISSUER_ROW.includes(filter)) return [];
  const ms = opts.ms ?? 150;
  let sink = 0;
  const floor = nsPerOp(ms, (n) => {
    for (let i = 0; i < n; i++) {
      const f = new PlainFence();
      f.signal();
      f.dispose();
      sink += f.flags;
    }
  });
  const ours = nsPerOp(ms, (n) => {
    for (let i = 0; i < n; i++) {
      const f = new Fence();
      f.signal();
      f.dispose();
    }
  });
  // Fences of a names-only issuer: the issuer's own timeline, names copied into each fence.
  const issuer = new Issuer({ driverName: 'bench-driver', timelineName: 'bench-timeline' });
  const viaIssuer = nsPerOp(ms, (n) => {
    for (let i = 0; i < n; i++) {
      const f = issuer.createFence();
      f.signal();
      f.dispose();
    }
  });
  issuer.dispose();
  if (sink < 0) console.log(sink);
  const ratio = ours / floor;
  return [
    {
      name: FENCE_ROW,
      value: ours,
      unit: 'ns/op',
      floorName: 'same on a plain JS class',
      floor,
      ratio,
      target: '<= 3',
      met: ratio <= 3,
      note: '',
    },
    {
      name: ISSUER_ROW,
      value: viaIssuer,
      unit: 'ns/op',
      floorName: 'same on a plain JS class',
      floor,
      ratio: viaIssuer / floor,
      target: '',
      met: true,
      note: `names-only issuer; ${(viaIssuer / ours).toFixed(2)}x new Fence() (argument checks, the issuer's context and seqno, names copied into the fence)`,
    },
  ];
}

/**
 * Runs the synchronous benchmark scenarios (native, then JS) and returns one
 * row each. runBenchAsync() adds the rows that need the event loop.
 */
/** Validated options (TypeError / RangeError for bad ones, before anything runs). */
function checkBenchOptions(opts: unknown): { filter: string; ms: number; jsOnly: boolean } {
  if (opts === undefined) return { filter: '', ms: 150, jsOnly: false };
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw invalidArgType('opts', 'of type object', opts);
  const { filter, ms, jsOnly } = opts as BenchOptions;
  if (filter !== undefined && typeof filter !== 'string') throw invalidArgType('opts.filter', 'of type string', filter);
  if (ms !== undefined && typeof ms !== 'number') throw invalidArgType('opts.ms', 'of type number', ms);
  if (ms !== undefined && !(ms >= 1 && ms <= 60000)) throw outOfRange('opts.ms', '>= 1 and <= 60000', ms);
  if (jsOnly !== undefined && typeof jsOnly !== 'boolean') throw invalidArgType('opts.jsOnly', 'of type boolean', jsOnly);
  return { filter: filter ?? '', ms: ms ?? 150, jsOnly: jsOnly === true };
}

export function runBench(options?: BenchOptions): BenchRow[] {
  const { filter, ms, jsOnly } = checkBenchOptions(options);
  const opts: BenchOptions = { filter, ms, jsOnly };
  const rows = jsOnly ? [] : (JSON.parse(binding.benchRun(filter, ms)) as BenchRow[]);
  for (const r of jsRows(opts)) if (r.name.includes(filter)) rows.push(r);
  return rows;
}

/**
 * runBench() plus the sync_file wait latency from JS (kernel sw_sync when
 * present, else a skipped row saying why; and the emulated SyncFile): what
 * `dmabuf bench` prints.
 */
export async function runBenchAsync(options?: BenchOptions): Promise<BenchRow[]> {
  const rows = runBench(options);
  const opts = options ?? {};
  rows.push(...(await syncFileWaitRows(opts)));
  return rows;
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The human-readable table `dmabuf bench` prints. */
export function formatBench(rows: BenchRow[]): string {
  const head = ['scenario', 'value', 'unit', 'floor (same run)', 'floor', 'ratio', 'target'];
  const body = rows.map((r) => [
    r.name,
    fmt(r.value),
    r.unit,
    r.floorName,
    fmt(r.floor),
    `${fmt(r.ratio)}x`,
    r.target ? `${r.target} ${r.met ? 'ok' : 'MISS'}` : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(head), line(widths.map((w) => '-'.repeat(w)))];
  rows.forEach((r, i) => {
    out.push(line(body[i]!));
    if (r.note) out.push(`    ${r.note}`);
  });
  return out.join('\n') + '\n';
}
