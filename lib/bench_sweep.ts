// `dmabuf bench --sweep NAME`: one parameter varied, a series per variant and a
// floor series measured at every point of the same run (native/bench/sweep_bench.cc),
// plus the rows --json prints and --baseline compares.
import type { BenchRow } from './bench';
import { invalidArgType, invalidArgValue, outOfRange } from './internal/args';
import { binding } from './internal/binding';

/** The sweeps, in the order `dmabuf bench --help` lists them. */
export const SWEEPS = ['threads', 'callbacks', 'live-fences', 'chain-length', 'array-width'] as const;
export type SweepName = (typeof SWEEPS)[number];

/** What each sweep varies and compares, for `--help` and docs/bench.md. */
export const SWEEP_SUMMARIES: Record<SweepName, string> = {
  threads: 'signals/s on 1..2x cores threads: inline per-fence locks, one shared external lock, the sw_sync timeline (and the real kernel sw_sync when present)',
  callbacks: 'fence lifecycle with 0..64 callbacks per fence (run at signal, or added then removed)',
  'live-fences': 'issuer unload (the 7.1 protocol) with 1..100000 detached fences alive',
  'chain-length': 'fence chains of 1..4096 links: build, signal in order, signal in reverse (ns per link)',
  'array-width': 'fence arrays of 1..1024 members: create, wait, signal (all / any), ns per member',
};

/** One line of a sweep: `[x, value]` points, in x order. */
export interface SweepSeries {
  /** Stable across runs: part of the row ids --baseline matches. */
  id: string;
  /** The legend's text. */
  name: string;
  note: string;
  points: Array<[number, number]>;
}

/** A sweep as measured: `sweep` in `dmabuf bench --sweep NAME --json`. */
export interface SweepResult {
  name: SweepName;
  title: string;
  /** The swept parameter; `log`: the points grow geometrically (the chart's x axis is logarithmic). */
  x: { label: string; unit: string; log: boolean };
  /** What is measured; `better` says which way is good (throughput: higher). */
  y: { label: string; unit: string; better: 'lower' | 'higher' };
  /** Measured at every x in the same run; each variant's ratio is to the floor at the same x. */
  floor: SweepSeries;
  variants: SweepSeries[];
  notes: string[];
}

/**
 * One point of one variant as a row, the shape --baseline compares: the fields of
 * a `dmabuf bench --json` row that apply, plus `better`. `id` is
 * `sweep/<sweep>/<variant>/<x>` (e.g. `sweep/threads/inline-locks/2`) and
 * `ratio` is value / floor at the same x.
 */
export type SweepRow = Pick<BenchRow, 'id' | 'name' | 'value' | 'unit' | 'floorName' | 'floor' | 'ratio'> & {
  better: 'lower' | 'higher';
};

/** Whether `name` is a sweep `dmabuf bench --sweep` knows. */
export function isSweepName(name: string): name is SweepName {
  return (SWEEPS as readonly string[]).includes(name);
}

/**
 * Runs one sweep on native threads, blocking this thread (seconds at the
 * default `ms`; about 30 measurements each of `ms`, repeated, best kept).
 * Throws when the sweep cannot run here (live-fences without the example
 * issuer modules: set DMABUF_ISSUER_DIR).
 */
export function runSweep(name: SweepName, opts?: { ms?: number }): SweepResult {
  if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
  if (!isSweepName(name)) throw invalidArgValue('name', `must be one of ${SWEEPS.join(', ')}`, name);
  const ms = opts?.ms ?? 150;
  if (typeof ms !== 'number') throw invalidArgType('opts.ms', 'of type number', ms);
  if (!(ms >= 1 && ms <= 60000)) throw outOfRange('opts.ms', '>= 1 and <= 60000', ms);
  return JSON.parse(binding.benchSweep(name, Math.round(ms))) as SweepResult;
}

/** Every variant's points as rows (ratio to the floor at the same x), in series order. */
export function sweepRows(s: SweepResult): SweepRow[] {
  const floorAt = new Map(s.floor.points);
  return s.variants.flatMap((v) =>
    v.points.map(([x, value]): SweepRow => {
      const floor = floorAt.get(x) ?? 0;
      return {
        id: `sweep/${s.name}/${v.id}/${x}`,
        name: `${v.name}, ${x} ${s.x.unit}`,
        value,
        unit: s.y.unit,
        floorName: s.floor.name,
        floor,
        ratio: floor > 0 ? value / floor : 0,
        better: s.y.better,
      };
    }),
  );
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/**
 * The table `dmabuf bench --sweep NAME` prints: one line per x, the floor and
 * each variant as value and ratio to the floor.
 */
export function formatSweep(s: SweepResult): string {
  const head = [`${s.x.unit}`, `floor (${s.y.unit})`, ...s.variants.map((v) => v.id)];
  const rows = s.floor.points.map(([x, floor]) => [
    String(x),
    fmt(floor),
    ...s.variants.map((v) => {
      const p = v.points.find(([vx]) => vx === x);
      return p ? `${fmt(p[1])} (${fmt(floor > 0 ? p[1] / floor : 0)}x)` : '-';
    }),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const out = [s.title, `y: ${s.y.label} (${s.y.unit}), ${s.y.better} is better; (Nx) = value / floor at the same x`, ''];
  out.push(line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '');
  out.push(`floor: ${s.floor.name}`);
  for (const v of s.variants) out.push(`${v.id}: ${v.name}${v.note ? ` (${v.note})` : ''}`);
  for (const n of s.notes) out.push(`note: ${n}`);
  return out.join('\n') + '\n';
}
