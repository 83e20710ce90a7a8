// `dmabuf bench --baseline OLD.json`: this run against an earlier `--json` run,
// row by row, by each row's ratio to its own floor (absolute times move with
// the machine's load; the ratio to a floor measured in the same run does not,
// much). A row is worse when its ratio moved the wrong way by more than the
// tolerance (10%): for ns-like rows new/old > 1.10, for throughput rows
// (Mops/s, or a `>=` target) old/new > 1.10.

/** The fields a row needs to be compared: what `--json` prints, normal rows and sweep rows alike. */
export interface ComparableRow {
  id: string;
  name?: string;
  unit?: string;
  ratio: number;
  target?: string;
  status?: string;
  /** Sweep rows say it; other rows: higher for `.../s` units and `>=` targets, else lower. */
  better?: 'lower' | 'higher';
}

export interface RowChange {
  id: string;
  name: string;
  before: number;
  after: number;
  /** How many times worse (> 1) or better (< 1) the ratio got, direction taken into account. */
  factor: number;
}

/** What compareWithBaseline() found. Rows missing on either side are listed, never failed. */
export interface BaselineComparison {
  tolerance: number;
  /** Worse by more than the tolerance: these fail the run. */
  worse: RowChange[];
  /** Better by more than the tolerance. */
  better: RowChange[];
  /** Compared, within the tolerance. */
  same: number;
  /** In the baseline, not in this run (another filter, a row renamed or removed). */
  missingNow: string[];
  /** In this run, not in the baseline (new rows). */
  newRows: string[];
  /** On both sides but skipped or without a usable ratio on one of them. */
  notCompared: string[];
}

export const DEFAULT_TOLERANCE = 0.1;

function higherIsBetter(r: ComparableRow): boolean {
  if (r.better) return r.better === 'higher';
  return /\/s$/.test(r.unit ?? '') || /^\s*>=/.test(r.target ?? '');
}

function usable(r: ComparableRow): boolean {
  return r.status !== 'skipped' && typeof r.ratio === 'number' && Number.isFinite(r.ratio) && r.ratio > 0;
}

/**
 * The rows of a `dmabuf bench --json` file's text: `{ rows: [...] }` (bench and
 * sweep envelopes) or a bare array of rows. Throws an Error saying what is
 * wrong with anything else.
 */
export function parseBaseline(text: string): ComparableRow[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message})`);
  }
  const rows = Array.isArray(doc) ? doc : (doc as { rows?: unknown } | null)?.rows;
  if (!Array.isArray(rows)) throw new Error('no "rows" array: not the output of dmabuf bench --json');
  return rows.map((r: unknown, i) => {
    const row = r as Partial<ComparableRow> | null;
    if (!row || typeof row !== 'object' || typeof row.id !== 'string' || typeof row.ratio !== 'number') {
      throw new Error(`row ${i} has no string "id" and number "ratio"`);
    }
    return row as ComparableRow;
  });
}

/** Compares each row of `now` with the row of the same id in `before`. */
export function compareWithBaseline(now: ComparableRow[], before: ComparableRow[], tolerance = DEFAULT_TOLERANCE): BaselineComparison {
  const old = new Map(before.map((r) => [r.id, r]));
  const ids = new Set(now.map((r) => r.id));
  const out: BaselineComparison = { tolerance, worse: [], better: [], same: 0, missingNow: [], newRows: [], notCompared: [] };
  for (const r of now) {
    const b = old.get(r.id);
    if (!b) {
      out.newRows.push(r.id);
      continue;
    }
    if (!usable(r) || !usable(b)) {
      out.notCompared.push(r.id);
      continue;
    }
    const factor = higherIsBetter(r) ? b.ratio / r.ratio : r.ratio / b.ratio;
    const change: RowChange = { id: r.id, name: r.name ?? r.id, before: b.ratio, after: r.ratio, factor };
    if (factor > 1 + tolerance) out.worse.push(change);
    else if (factor < 1 / (1 + tolerance)) out.better.push(change);
    else out.same++;
  }
  for (const b of before) if (!ids.has(b.id)) out.missingNow.push(b.id);
  return out;
}

/** The report `dmabuf bench --baseline` prints after the run. */
export function formatComparison(c: BaselineComparison, file: string): string {
  const pct = Math.round(c.tolerance * 100);
  const compared = c.worse.length + c.better.length + c.same;
  const out = [
    `against ${file}: ${compared} row(s) compared by ratio to their floor; ${c.worse.length} worse by more than ${pct}%, ${c.better.length} better, ${c.same} within ${pct}%`,
  ];
  const change = (tag: string, x: RowChange): string =>
    `  ${tag} ${x.id}: ${x.before.toFixed(2)}x -> ${x.after.toFixed(2)}x (${(x.factor > 1 ? x.factor : 1 / x.factor).toFixed(2)}x ${x.factor > 1 ? 'worse' : 'better'})`;
  for (const x of c.worse) out.push(change('WORSE ', x));
  for (const x of c.better) out.push(change('better', x));
  if (c.missingNow.length) out.push(`  not in this run (not compared): ${c.missingNow.join(', ')}`);
  if (c.newRows.length) out.push(`  not in the baseline (not compared): ${c.newRows.join(', ')}`);
  if (c.notCompared.length) out.push(`  skipped or without a ratio on one side (not compared): ${c.notCompared.join(', ')}`);
  return out.join('\n') + '\n';
}
