// The chart of a sweep (`dmabuf bench --sweep NAME --svg FILE | --html FILE`):
// plain SVG 1.1 written here, no dependencies, so it renders the same in a
// browser, in an <img> and in a README on GitHub. One line per variant, the
// floor dashed, axes and units labelled, a legend with each line's ratio to the
// floor at the first and last point.
import type { SweepResult, SweepSeries } from './bench_sweep';

/** Line colours (Okabe-Ito: distinguishable with the common colour-vision deficiencies). */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];
const FLOOR_COLOUR = '#444444';

const WIDTH = 860;
const PLOT = { left: 90, right: WIDTH - 30, top: 70, bottom: 370 };
const LEGEND_ROW = 20;
const NOTE_ROW = 16;
/** About what fits on one line of notes (11px text across the plot's width). */
const NOTE_CHARS = 125;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** `text` in lines of at most `width` characters, broken at spaces where it can be. */
export function wrapWords(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = '';
    }
    line = line ? `${line} ${word}` : word;
    while (line.length > width) {
      out.push(line.slice(0, width));
      line = line.slice(width);
    }
  }
  if (line) out.push(line);
  return out;
}

/** 1, 2 or 5 times a power of ten: the tick step for about `count` ticks up to `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/**
 * A tick or legend number: integers below 10000 exactly (1024, not 1020),
 * round thousands and millions as k and M, anything else to 3 significant digits.
 */
export function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e4) return String(v);
  if (a >= 1e6 && v % 1e6 === 0) return `${v / 1e6}M`;
  if (a >= 1e4 && v % 1e3 === 0) return `${v / 1e3}k`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(3));
}

interface Scales {
  x: (v: number) => number;
  y: (v: number) => number;
  xTicks: number[];
  yTicks: number[];
  /** The y axis is logarithmic: the values span more than LOG_Y_SPAN. */
  logY: boolean;
}

/** Largest / smallest value above which a linear y axis flattens the small lines into its floor. */
const LOG_Y_SPAN = 30;

/** Linear from 0 past the largest value, in 1/2/5 steps. */
function linearY(max: number): { y: (v: number) => number; ticks: number[] } {
  const step = max > 0 ? niceStep(max * 1.05, 5) : 1;
  const top = Math.max(step, Math.ceil((max * 1.05) / step) * step);
  const ticks: number[] = [];
  for (let t = 0; t <= top + step / 2; t += step) ticks.push(+t.toPrecision(12));
  return { y: (v) => PLOT.bottom - (Math.max(0, v) / top) * (PLOT.bottom - PLOT.top), ticks };
}

/** Logarithmic between the powers of ten around the values, a tick per power. */
function logY(min: number, max: number): { y: (v: number) => number; ticks: number[] } {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) ticks.push(+(10 ** e).toPrecision(12));
  const span = hi - lo || 1;
  return { y: (v) => PLOT.bottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / span) * (PLOT.bottom - PLOT.top), ticks };
}

function scales(s: SweepResult): Scales {
  const all = [s.floor, ...s.variants];
  const xs = [...new Set(all.flatMap((l) => l.points.map(([x]) => x)))].sort((a, b) => a - b);
  const ys = all.flatMap((l) => l.points.map(([, y]) => y)).filter((y) => Number.isFinite(y) && y > 0);
  const yMax = Math.max(0, ...ys);
  const yMin = Math.min(...ys);
  const useLogY = ys.length > 0 && yMax / yMin > LOG_Y_SPAN;
  const y = useLogY ? logY(yMin, yMax) : linearY(yMax);
  const lo = xs[0] ?? 0;
  const hi = xs[xs.length - 1] ?? 1;
  const useLog = s.x.log && lo > 0;
  const f = (v: number): number => (useLog ? Math.log(v) : v);
  const span = f(hi) - f(lo) || 1;
  const pad = 20;
  return {
    x: (v) => PLOT.left + pad + ((f(v) - f(lo)) / span) * (PLOT.right - PLOT.left - 2 * pad),
    y: y.y,
    xTicks: xs,
    yTicks: y.ticks,
    logY: useLogY,
  };
}

/** A ratio for the legend: 2 decimals, 2 significant digits below 0.1. */
function formatRatio(r: number): string {
  return r < 0.1 ? String(+r.toPrecision(2)) : r.toFixed(2);
}

function ratioText(s: SweepResult, line: SweepSeries): string {
  const floorAt = new Map(s.floor.points);
  const ratios = line.points.map(([x, v]) => {
    const f = floorAt.get(x) ?? 0;
    return f > 0 ? v / f : NaN;
  });
  const first = ratios[0];
  const last = ratios[ratios.length - 1];
  if (first === undefined || last === undefined || !Number.isFinite(first) || !Number.isFinite(last)) return '';
  const x0 = formatNumber(line.points[0]![0]);
  const x1 = formatNumber(line.points[line.points.length - 1]![0]);
  return ` \u2014 ${formatRatio(first)}x floor at ${x0}, ${formatRatio(last)}x at ${x1}`;
}

function linePath(sc: Scales, line: SweepSeries): string {
  return line.points.map(([x, y], i) => `${i ? 'L' : 'M'}${sc.x(x).toFixed(1)},${sc.y(y).toFixed(1)}`).join(' ');
}

/** The chart of one sweep as a standalone SVG document. */
export function sweepSvg(s: SweepResult): string {
  const sc = scales(s);
  const lines = [
    { line: s.floor, colour: FLOOR_COLOUR, cls: 'floor', dash: ' stroke-dasharray="7 5"' },
    ...s.variants.map((line, i) => ({ line, colour: COLOURS[i % COLOURS.length]!, cls: 'series', dash: '' })),
  ];
  const legendTop = PLOT.bottom + 74;
  const notesTop = legendTop + lines.length * LEGEND_ROW + 10;
  const notes = s.notes.flatMap((n) => wrapWords(n, NOTE_CHARS));
  const height = notesTop + notes.length * NOTE_ROW + 12;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`,
    `<title>${esc(s.title)}</title>`,
    `<rect class="background" x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text class="title" x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold" fill="#111">${esc(s.title)}</text>`,
    `<text class="subtitle" x="${WIDTH / 2}" y="50" text-anchor="middle" font-size="12" fill="#555">${esc(
      `${s.y.better} is better; dashed: the floor, measured at every point of the same run`,
    )}</text>`,
  );
  // Grid and y axis.
  o.push('<g class="y-axis">');
  for (const t of sc.yTicks) {
    const y = sc.y(t).toFixed(1);
    o.push(
      `<line x1="${PLOT.left}" y1="${y}" x2="${PLOT.right}" y2="${y}" stroke="#e3e3e3"/>`,
      `<text class="tick" x="${PLOT.left - 8}" y="${y}" dy="4" text-anchor="end" fill="#333">${formatNumber(t)}</text>`,
    );
  }
  const midY = (PLOT.top + PLOT.bottom) / 2;
  o.push(
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}" stroke="#333"/>`,
    `<text class="axis-label" x="22" y="${midY}" text-anchor="middle" transform="rotate(-90 22 ${midY})" fill="#111">${esc(
      `${s.y.label} (${s.y.unit}${sc.logY ? ', log scale' : ''})`,
    )}</text>`,
    '</g>',
  );
  // x axis.
  o.push('<g class="x-axis">', `<line x1="${PLOT.left}" y1="${PLOT.bottom}" x2="${PLOT.right}" y2="${PLOT.bottom}" stroke="#333"/>`);
  for (const t of sc.xTicks) {
    const x = sc.x(t).toFixed(1);
    o.push(
      `<line x1="${x}" y1="${PLOT.bottom}" x2="${x}" y2="${PLOT.bottom + 5}" stroke="#333"/>`,
      `<text class="tick" x="${x}" y="${PLOT.bottom + 20}" text-anchor="middle" fill="#333">${formatNumber(t)}</text>`,
    );
  }
  o.push(
    `<text class="axis-label" x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 46}" text-anchor="middle" fill="#111">${esc(
      `${s.x.label} (${s.x.unit}${s.x.log ? ', log scale' : ''})`,
    )}</text>`,
    '</g>',
  );
  // The lines, floor first (drawn under the variants).
  for (const { line, colour, cls, dash } of lines) {
    o.push(
      `<g class="${cls}" data-series="${esc(line.id)}">`,
      `<path class="${cls}-line" d="${linePath(sc, line)}" fill="none" stroke="${colour}" stroke-width="2.5" stroke-linejoin="round"${dash}/>`,
      ...line.points.map(([x, y]) => `<circle cx="${sc.x(x).toFixed(1)}" cy="${sc.y(y).toFixed(1)}" r="3.5" fill="${colour}"/>`),
      '</g>',
    );
  }
  // Legend and notes.
  o.push('<g class="legend">');
  lines.forEach(({ line, colour, cls, dash }, i) => {
    const y = legendTop + i * LEGEND_ROW;
    const text = cls === 'floor' ? `floor: ${line.name}` : `${line.name}${ratioText(s, line)}`;
    o.push(
      `<line x1="${PLOT.left}" y1="${y}" x2="${PLOT.left + 30}" y2="${y}" stroke="${colour}" stroke-width="2.5"${dash}/>`,
      `<text x="${PLOT.left + 40}" y="${y}" dy="4" fill="#111">${esc(text)}</text>`,
    );
  });
  o.push('</g>');
  notes.forEach((n, i) => {
    o.push(`<text class="note" x="${PLOT.left}" y="${notesTop + i * NOTE_ROW}" font-size="11" fill="#555">${esc(n)}</text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/** An HTML page: the chart, then every point's value and ratio to the floor. */
export function sweepHtml(s: SweepResult): string {
  const head = ['x', 'floor', ...s.variants.map((v) => v.name)];
  const rows = s.floor.points.map(([x, floor]) => [
    `${formatNumber(x)} ${s.x.unit}`,
    `${formatNumber(floor)} ${s.y.unit}`,
    ...s.variants.map((v) => {
      const p = v.points.find(([vx]) => vx === x);
      return p ? `${formatNumber(p[1])} (${floor > 0 ? (p[1] / floor).toFixed(2) : '-'}x)` : '-';
    }),
  ]);
  const cells = (tag: string, r: string[]): string => `<tr>${r.map((c) => `<${tag}>${esc(c)}</${tag}>`).join('')}</tr>`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${esc(s.title)}</title>`,
    '<style>body{font-family:Helvetica,Arial,sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>',
    '</head><body>',
    sweepSvg(s),
    `<p>${esc(`${s.y.label} (${s.y.unit}), ${s.y.better} is better; (Nx): value / floor at the same x. Floor: ${s.floor.name}.`)}</p>`,
    '<table>',
    cells('th', head),
    ...rows.map((r) => cells('td', r)),
    '</table>',
    '</body></html>',
    '',
  ].join('\n');
}
