// `dmabuf bench --sweep NAME [--svg F] [--html F] [--json]` and `--baseline OLD.json`
// as a user runs them (node dist/cli.js: npm run build:ts first), plus the chart
// and the baseline comparison on crafted data. Sweeps run at --ms 1: shapes and
// outcomes are asserted, never timings.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareWithBaseline, parseBaseline, type ComparableRow } from '../lib/bench_baseline';
import { sweepHtml, sweepSvg } from '../lib/bench_chart';
import { SWEEPS, runSweep, sweepRows, type SweepResult, type SweepRow } from '../lib/bench_sweep';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-sweep-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 120000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  text: string;
  children: XmlElement[];
}

/**
 * A strict parser for the XML subset the chart uses (elements, attributes in
 * double quotes, text, the five predefined entities): throws on anything
 * malformed (unbalanced tags, stray `<` or `&`, bad attributes).
 */
function parseXml(src: string): XmlElement {
  const body = src.replace(/^<!doctype html>\s*/i, '').trim();
  const top: XmlElement = { name: '#document', attrs: {}, text: '', children: [] };
  const stack = [top];
  const token = /<\/([A-Za-z][\w-]*)\s*>|<([A-Za-z][\w-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  const checkEntities = (s: string): string => {
    if (/&(?!(amp|lt|gt|quot|apos);)/.test(s)) throw new Error(`bare & in ${JSON.stringify(s)}`);
    return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  };
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < body.length && (m = token.exec(body))) {
    at = token.lastIndex;
    const cur = stack[stack.length - 1]!;
    if (m[1]) {
      if (cur.name !== m[1]) throw new Error(`</${m[1]}> closes <${cur.name}>`);
      stack.pop();
    } else if (m[2]) {
      const attrs: Record<string, string> = {};
      for (const a of m[3]!.matchAll(/([A-Za-z_:][\w:.-]*)="([^"]*)"/g)) {
        if (a[1]! in attrs) throw new Error(`attribute ${a[1]} twice`);
        attrs[a[1]!] = checkEntities(a[2]!);
      }
      const el: XmlElement = { name: m[2], attrs, text: '', children: [] };
      cur.children.push(el);
      if (!m[4] && !/^(meta)$/i.test(m[2])) stack.push(el);
    } else {
      cur.text += checkEntities(m[5]!);
    }
  }
  if (at !== body.length) throw new Error(`unparsable at ${at}: ${body.slice(at, at + 40)}`);
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1]!.name}> never closed`);
  return top;
}

function all(el: XmlElement, pred: (e: XmlElement) => boolean): XmlElement[] {
  return [...(pred(el) ? [el] : []), ...el.children.flatMap((c) => all(c, pred))];
}
const textOf = (el: XmlElement): string => el.text + el.children.map(textOf).join('');

/** Checks a chart against the sweep it draws; returns the root <svg>. */
function checkSvg(svg: string, s: SweepResult): XmlElement {
  const doc = parseXml(svg);
  expect(doc.children.map((c) => c.name)).toEqual(['svg']);
  const root = doc.children[0]!;
  expect(root.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
  expect(root.attrs.viewBox).toMatch(/^0 0 \d+ \d+$/);
  expect(Number(root.attrs.width)).toBeGreaterThan(0);
  expect(Number(root.attrs.height)).toBeGreaterThan(0);
  // one line per variant, one for the floor, each with a point per x
  const lines = all(root, (e) => e.name === 'path' && e.attrs.class === 'series-line');
  expect(lines).toHaveLength(s.variants.length);
  const floor = all(root, (e) => e.name === 'path' && e.attrs.class === 'floor-line');
  expect(floor).toHaveLength(1);
  expect(floor[0]!.attrs['stroke-dasharray']).toBeDefined();
  lines.forEach((p, i) => {
    expect(p.attrs.d!.match(/[ML]/g)).toHaveLength(s.variants[i]!.points.length);
    for (const n of p.attrs.d!.match(/-?\d+(\.\d+)?/g)!) expect(Number.isFinite(Number(n))).toBe(true);
  });
  expect(new Set(lines.map((p) => p.attrs.stroke)).size).toBe(lines.length); // distinguishable
  // axes: labels with units, ticks
  const labels = all(root, (e) => e.name === 'text' && e.attrs.class === 'axis-label').map(textOf);
  expect(labels).toHaveLength(2);
  expect(labels.some((l) => l.includes(`(${s.y.unit}`) && l.includes(s.y.label))).toBe(true);
  expect(labels.some((l) => l.includes(s.x.unit) && l.includes(s.x.label))).toBe(true);
  const xAxis = all(root, (e) => e.attrs.class === 'x-axis')[0]!;
  expect(all(xAxis, (e) => e.attrs.class === 'tick')).toHaveLength(s.floor.points.length);
  expect(all(all(root, (e) => e.attrs.class === 'y-axis')[0]!, (e) => e.attrs.class === 'tick').length).toBeGreaterThanOrEqual(2);
  // legend: the floor and every variant by name
  const legend = textOf(all(root, (e) => e.attrs.class === 'legend')[0]!);
  expect(legend).toContain(s.floor.name);
  for (const v of s.variants) expect(legend).toContain(v.name);
  expect(textOf(all(root, (e) => e.name === 'title')[0]!)).toBe(s.title);
  return root;
}

/** A sweep with known numbers (and names that need escaping). */
function crafted(): SweepResult {
  return {
    name: 'threads',
    title: 'A <test> & its title',
    x: { label: 'threads signalling', unit: 'threads', log: false },
    y: { label: 'signals per second', unit: 'Mops/s', better: 'higher' },
    floor: { id: 'floor', name: '"flag" + clock', note: '', points: [[1, 100], [2, 200], [4, 200]] },
    variants: [
      { id: 'inline-locks', name: 'inline <per-fence> locks', note: '', points: [[1, 50], [2, 100], [4, 90]] },
      { id: 'shared-external-lock', name: 'one shared & external lock', note: '', points: [[1, 50], [2, 20], [4, 10]] },
    ],
    notes: ['2 cores & no more'],
  };
}

describe('dmabuf bench --sweep: command line', () => {
  it('--help lists --sweep, every sweep, --svg, --html and --baseline', () => {
    const r = run('bench', '--help');
    expect(r.status).toBe(0);
    for (const w of ['--sweep <name>', '--svg <file>', '--html <file>', '--baseline <f>', ...SWEEPS]) expect(r.stdout).toContain(w);
  });

  it.each([
    [['--sweep', 'nope'], /unknown sweep 'nope' \(one of: threads, callbacks, live-fences, chain-length, array-width\)/],
    [['--sweep'], /--sweep <value>' argument missing/],
    [['--sweep', 'threads', '--filter', 'fence'], /--filter does not apply to --sweep/],
    [['--sweep', 'threads', '--check'], /--check does not apply to --sweep/],
    [['--sweep', 'threads', '--js-only'], /--js-only does not apply to --sweep/],
    [['--svg', 'x.svg'], /--svg needs --sweep/],
    [['--html', 'x.html', '--filter', 'fence'], /--html needs --sweep/],
    [['--sweep', 'threads', '--ms', '0'], /--ms must be a number from 1/],
  ])('%j: the reason and the usage on stderr, exit 2, nothing run', (args, reason) => {
    const r = run('bench', ...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toMatch(/usage: dmabuf bench/);
  });

  it('a --baseline that is missing, not JSON or not bench output: exit 2 before anything runs', () => {
    const notJson = path.join(tmp, 'not.json');
    fs.writeFileSync(notJson, 'hello');
    const noRows = path.join(tmp, 'norows.json');
    fs.writeFileSync(noRows, '{"version": "0.1.0"}');
    const badRow = path.join(tmp, 'badrow.json');
    fs.writeFileSync(badRow, '{"rows": [{"id": "x"}]}');
    for (const [file, why] of [
      [path.join(tmp, 'absent.json'), /ENOENT/],
      [notJson, /not JSON/],
      [noRows, /no "rows" array/],
      [badRow, /row 0 has no string "id" and number "ratio"/],
    ] as const) {
      const r = run('bench', '--sweep', 'threads', '--baseline', file);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(why);
    }
  });
});

describe('dmabuf bench --sweep: a tiny run', () => {
  const svgFile = path.join(tmp, 'chain.svg');
  const htmlFile = path.join(tmp, 'chain.html');
  let json: { sweep: SweepResult; rows: SweepRow[] } & Record<string, unknown>;

  it('--json: the envelope, the sweep and one row per variant and x; --svg and --html written', () => {
    const r = run('bench', '--sweep', 'chain-length', '--ms', '1', '--json', '--svg', svgFile, '--html', htmlFile);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    json = JSON.parse(r.stdout);
    expect(Object.keys(json)).toEqual(['version', 'node', 'kernel', 'arch', 'cpus', 'started', 'sweep', 'rows']);
    const s = json.sweep;
    expect(s.name).toBe('chain-length');
    expect(s.x).toEqual({ label: 'links in the chain', unit: 'links', log: true });
    expect(s.y.unit).toBe('ns/link');
    expect(s.y.better).toBe('lower');
    const xs = s.floor.points.map(([x]) => x);
    expect(xs).toEqual([1, 4, 16, 64, 256, 1024, 4096]);
    expect(s.variants.map((v) => v.id)).toEqual(['build', 'signal-in-order', 'signal-in-reverse']);
    for (const line of [s.floor, ...s.variants]) {
      expect(line.points.map(([x]) => x)).toEqual(xs);
      for (const [, v] of line.points) expect(v).toBeGreaterThan(0);
    }
    expect(json.rows).toHaveLength(s.variants.length * xs.length);
    expect(new Set(json.rows.map((r) => r.id)).size).toBe(json.rows.length);
    const row = json.rows.find((r) => r.id === 'sweep/chain-length/signal-in-order/64')!;
    const floor64 = s.floor.points.find(([x]) => x === 64)![1];
    const value64 = s.variants[1]!.points.find(([x]) => x === 64)![1];
    expect(row).toMatchObject({ unit: 'ns/link', floor: floor64, value: value64, better: 'lower', floorName: s.floor.name });
    expect(row.ratio).toBeCloseTo(value64 / floor64, 10);
  });

  it('the SVG is well-formed: axes with units, one line per variant, the floor, a legend', () => {
    checkSvg(fs.readFileSync(svgFile, 'utf8'), json.sweep);
  });

  it('the HTML page holds the chart and a row per x', () => {
    const doc = parseXml(fs.readFileSync(htmlFile, 'utf8'));
    const page = doc.children[0]!;
    expect(page.name).toBe('html');
    expect(all(page, (e) => e.name === 'svg')).toHaveLength(1);
    expect(all(page, (e) => e.name === 'tr')).toHaveLength(1 + json.sweep.floor.points.length);
  });

  it('text output: a line per x with each variant\'s ratio to the floor', () => {
    const r = run('bench', '--sweep', 'array-width', '--ms', '1');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Fence arrays: cost per member vs width\n/);
    for (const x of [1, 2, 4, 16, 64, 256, 1024]) expect(r.stdout).toMatch(new RegExp(`^ *${x}  .*\\(\\d+(\\.\\d+)?x\\).*\\(\\d+(\\.\\d+)?x\\)$`, 'm'));
    expect(r.stdout).toMatch(/^floor: /m);
  });

  it('--baseline: only a row more than 10% worse by ratio fails the run (exit 1); missing rows are listed, not failed', () => {
    // Every row 100x better in the baseline file than any noise could explain, except one.
    const base = structuredClone(json);
    const moved = (r: SweepRow, by: number): SweepRow => ({ ...r, ratio: r.better === 'lower' ? r.ratio * by : r.ratio / by });
    base.rows = base.rows.map((r) => moved(r, 100));
    const target = 'sweep/chain-length/build/16';
    const i = base.rows.findIndex((r) => r.id === target);
    base.rows[i] = moved(json.rows[i]!, 1 / 100); // the baseline was far better here
    const gone = base.rows.pop()!; // a row this run has and the baseline lacks
    base.rows.push({ ...gone, id: 'sweep/chain-length/removed-variant/4' }); // and the reverse
    const file = path.join(tmp, 'baseline.json');
    fs.writeFileSync(file, JSON.stringify(base));

    const r = run('bench', '--sweep', 'chain-length', '--ms', '1', '--baseline', file);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^ {2}WORSE  ${target}: `, 'm'));
    expect(r.stdout.match(/WORSE/g)).toHaveLength(1);
    expect(r.stdout).toContain(`not in this run (not compared): sweep/chain-length/removed-variant/4`);
    expect(r.stdout).toContain(`not in the baseline (not compared): ${gone.id}`);
    expect(r.stderr).toContain(`1 row(s) more than 10% worse than ${file}`);

    // Without that row nothing is worse: exit 0. With --json the report goes to stderr
    // and the comparison into the envelope.
    base.rows.splice(i, 1);
    fs.writeFileSync(file, JSON.stringify(base));
    const ok = run('bench', '--sweep', 'chain-length', '--ms', '1', '--baseline', file, '--json');
    expect(ok.status).toBe(0);
    const j = JSON.parse(ok.stdout) as { comparison: { worse: unknown[]; missingNow: string[]; newRows: string[]; better: unknown[] } };
    expect(j.comparison.worse).toEqual([]);
    expect(j.comparison.missingNow).toEqual(['sweep/chain-length/removed-variant/4']);
    expect(j.comparison.newRows).toEqual([gone.id, target].sort((a, b) => json.rows.findIndex((x) => x.id === a) - json.rows.findIndex((x) => x.id === b)));
    expect(j.comparison.better.length).toBe(json.rows.length - 2);
    expect(ok.stderr).toMatch(/against .*baseline\.json: \d+ row\(s\) compared/);
  });

  it('live-fences without the example issuer modules: the reason on stderr, exit 1', () => {
    const r = spawnSync(process.execPath, [cli, 'bench', '--sweep', 'live-fences', '--ms', '1'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, DMABUF_ISSUER_DIR: path.join(tmp, 'no-modules-here') },
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('dmabuf bench: the example issuer modules were not found: set DMABUF_ISSUER_DIR to build/issuers\n');
  });

  it('--baseline of another sweep has no row in common: exit 2', () => {
    const file = path.join(tmp, 'other.json');
    fs.writeFileSync(file, JSON.stringify({ rows: [{ id: 'sweep/threads/inline-locks/1', ratio: 0.5 }] }));
    const r = run('bench', '--sweep', 'chain-length', '--ms', '1', '--baseline', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/has no row in common with this run/);
  });
});

describe('runSweep: every sweep, tiny', () => {
  it.each(SWEEPS.map((s) => [s]))('%s: a floor and variants over the same x values, positive finite values', (name) => {
    const s = runSweep(name, { ms: 1 });
    expect(s.name).toBe(name);
    expect(s.variants.length).toBeGreaterThanOrEqual(2);
    const xs = s.floor.points.map(([x]) => x);
    expect(xs.length).toBeGreaterThanOrEqual(4);
    expect([...xs].sort((a, b) => a - b)).toEqual(xs);
    for (const line of [s.floor, ...s.variants]) {
      expect(line.points.map(([x]) => x)).toEqual(xs);
      for (const [, v] of line.points) expect(Number.isFinite(v) && v > 0, `${line.id}`).toBe(true);
    }
    checkSvg(sweepSvg(s), s);
    if (name === 'threads') {
      expect(s.y.better).toBe('higher');
      expect(xs[0]).toBe(1);
      expect(xs[xs.length - 1]).toBe(2 * os.availableParallelism());
      expect(s.variants.map((v) => v.id).slice(0, 3)).toEqual(['inline-locks', 'shared-external-lock', 'sw-sync-timeline']);
    }
  }, 120000);

  it('refuses an unknown name and a bad ms before running anything', () => {
    expect(() => runSweep('nope' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => runSweep('threads', { ms: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => runSweep('threads', { ms: '5' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('the chart', () => {
  it('escapes names, draws each line through its points, scales the y axis from 0 past the largest value', () => {
    const s = crafted();
    const svg = sweepSvg(s);
    const root = checkSvg(svg, s);
    expect(svg).toContain('inline &lt;per-fence&gt; locks');
    const ticks = all(all(root, (e) => e.attrs.class === 'y-axis')[0]!, (e) => e.attrs.class === 'tick').map((t) => Number(textOf(t)));
    expect(ticks[0]).toBe(0);
    expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(200);
    // higher points are drawn higher (smaller y); the floor at 2 and 4 threads level
    const ys = (id: string): number[] => all(all(root, (e) => e.attrs['data-series'] === id)[0]!, (e) => e.name === 'circle').map((c) => Number(c.attrs.cy));
    const floor = ys('floor');
    expect(floor[1]).toBeLessThan(floor[0]!);
    expect(floor[2]).toBeCloseTo(floor[1]!, 5);
    expect(ys('shared-external-lock')[2]).toBeGreaterThan(ys('inline-locks')[2]!);
    // the legend gives each line's ratio to the floor at the first and last x
    expect(textOf(all(root, (e) => e.attrs.class === 'legend')[0]!)).toContain('inline <per-fence> locks \u2014 0.50x floor at 1, 0.45x at 4');
  });

  it('values spanning more than 30x get a log y axis with a tick per power of ten', () => {
    const s = crafted();
    s.variants[1]!.points = [[1, 0.5], [2, 0.2], [4, 0.05]];
    const root = checkSvg(sweepSvg(s), s);
    const ticks = all(all(root, (e) => e.attrs.class === 'y-axis')[0]!, (e) => e.attrs.class === 'tick').map((t) => Number(textOf(t)));
    expect(ticks).toEqual([0.01, 0.1, 1, 10, 100, 1000]);
    expect(textOf(all(root, (e) => e.attrs.class === 'axis-label')[0]!)).toContain('log scale');
    const cy = all(all(root, (e) => e.attrs['data-series'] === 'shared-external-lock')[0]!, (e) => e.name === 'circle').map((c) => Number(c.attrs.cy));
    expect(cy[2]! - cy[1]!).toBeCloseTo((cy[1]! - cy[0]!) * (Math.log10(4) / Math.log10(2.5)), 0);
    expect(textOf(all(root, (e) => e.attrs.class === 'legend')[0]!)).toContain('one shared & external lock \u2014 0.005x floor at 1, 0.00025x at 4');
  });

  it('a log x axis puts geometric x values at equal steps', () => {
    const s: SweepResult = { ...crafted(), x: { label: 'links', unit: 'links', log: true } };
    for (const l of [s.floor, ...s.variants]) l.points = l.points.map(([, y], i) => [4 ** i, y] as [number, number]);
    const root = checkSvg(sweepSvg(s), s);
    const cx = all(all(root, (e) => e.attrs['data-series'] === 'floor')[0]!, (e) => e.name === 'circle').map((c) => Number(c.attrs.cx));
    expect(cx[2]! - cx[1]!).toBeCloseTo(cx[1]! - cx[0]!, 5);
    expect(sweepHtml(s)).toContain('<svg');
  });
});

describe('compareWithBaseline', () => {
  const row = (id: string, ratio: number, extra: Partial<ComparableRow> = {}): ComparableRow => ({ id, ratio, unit: 'ns/op', ...extra });

  it('flags a ns row whose ratio grew more than 10%, a throughput row whose ratio fell more than 10%', () => {
    const before = [row('a', 1.0), row('b', 1.0), row('t', 2.0, { unit: 'Mops/s' }), row('u', 2.0, { target: '>= 1.8', unit: 'x' }), row('s', 1.0, { better: 'higher' })];
    const now = [row('a', 1.12), row('b', 1.08), row('t', 1.7, { unit: 'Mops/s' }), row('u', 2.5, { target: '>= 1.8', unit: 'x' }), row('s', 0.95, { better: 'higher' })];
    const c = compareWithBaseline(now, before);
    expect(c.worse.map((x) => x.id)).toEqual(['a', 't']);
    expect(c.worse[1]!.factor).toBeCloseTo(2 / 1.7, 10);
    expect(c.better.map((x) => x.id)).toEqual(['u']);
    expect(c.same).toBe(2);
  });

  it('rows on one side only, skipped rows and rows without a ratio are listed, not compared', () => {
    const before = [row('gone', 1), row('both', 1), row('skip', 1), row('zero', 0)];
    const now = [row('both', 1), row('new', 9), row('skip', 50, { status: 'skipped' }), row('zero', 3)];
    const c = compareWithBaseline(now, before);
    expect(c).toMatchObject({ worse: [], better: [], same: 1, missingNow: ['gone'], newRows: ['new'], notCompared: ['skip', 'zero'] });
  });

  it('reads bench envelopes, sweep envelopes and bare row arrays', () => {
    expect(parseBaseline('[{"id": "fence/x", "ratio": 1.5}]')).toEqual([{ id: 'fence/x', ratio: 1.5 }]);
    expect(parseBaseline('{"version": "0", "rows": [{"id": "x", "ratio": 2, "unit": "us"}]}')[0]!.unit).toBe('us');
    expect(() => parseBaseline('{"rows": {}}')).toThrow(/no "rows" array/);
    expect(() => parseBaseline('null')).toThrow(/no "rows" array/);
  });

  it('sweep rows carry their direction: a threads sweep row is higher-is-better', () => {
    const rows = sweepRows(crafted());
    expect(rows.map((r) => r.id)).toEqual([
      'sweep/threads/inline-locks/1',
      'sweep/threads/inline-locks/2',
      'sweep/threads/inline-locks/4',
      'sweep/threads/shared-external-lock/1',
      'sweep/threads/shared-external-lock/2',
      'sweep/threads/shared-external-lock/4',
    ]);
    const worse = rows.map((r) => ({ ...r, ratio: r.ratio * 0.8 }));
    expect(compareWithBaseline(worse, rows).worse).toHaveLength(rows.length);
  });
});
