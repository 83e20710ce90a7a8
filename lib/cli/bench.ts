// `dmabuf bench`: the benchmarks, from the command line.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { BENCH_GROUPS, benchCatalogue, benchFilterMatches, formatBench, runBenchAsync, type BenchProgress } from '../bench';
import { compareWithBaseline, formatComparison, parseBaseline, type BaselineComparison, type ComparableRow } from '../bench_baseline';
import { sweepHtml, sweepSvg, wrapWords } from '../bench_chart';
import { SWEEPS, SWEEP_SUMMARIES, formatSweep, isSweepName, runSweep, sweepRows, type SweepName } from '../bench_sweep';
import { packageVersion, usageError } from './common';

/** The longest --ms: a full run at this is already about 40 minutes. */
const MAX_MS = 10000;

export const usage = `usage: dmabuf bench [options]

Runs the benchmarks (native scenarios on a worker thread, then the rows measured
from JS) and prints each row with the floor it is compared against, measured in
the same run, and the ratio.

options:
  --filter <text>  a group runs that group alone (${BENCH_GROUPS.join(', ')});
                   any other text keeps the rows whose name contains it
                   (refused when it matches no row)
  --ms <n>         milliseconds per measurement, 1..${MAX_MS} (default 150)
  --js-only        skip the native scenarios
  --json           print { version, node, kernel, arch, cpus, started, rows } as JSON
  --check          exit 1 when a row with a target misses it
  --progress       report progress on stderr (the default when stderr is a terminal)
  --no-progress    never report progress
  --list           print the groups and their rows (id, name) and exit
  --baseline <f>   compare with an earlier --json run (of the same rows or the
                   same sweep): a row whose ratio to its floor got more than 10%
                   worse is flagged and the exit status is 1. Rows on one side
                   only, or skipped on one side, are listed and not compared;
                   no row in common at all is an error (exit 2)
  -h, --help       print this and exit

sweeps: how a cost scales with one parameter, a line per variant and the floor
measured at every point of the same run:
  --sweep <name>   run one sweep instead of the rows:
${SWEEPS.map((n) => `                     ${n.padEnd(13)} ${wrapWords(SWEEP_SUMMARIES[n], 45).join(`\n${' '.repeat(35)}`)}`).join('\n')}
                   --ms applies to each point; --json prints
                   { version, node, kernel, arch, cpus, started, sweep, rows }
  --svg <file>     with --sweep: write the chart as SVG (browsers, GitHub READMEs)
  --html <file>    with --sweep: write an HTML page: the chart and a table
`;

/** Runs `dmabuf bench ARGS`; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        filter: { type: 'string' },
        ms: { type: 'string' },
        'js-only': { type: 'boolean' },
        json: { type: 'boolean' },
        check: { type: 'boolean' },
        progress: { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        list: { type: 'boolean' },
        sweep: { type: 'string' },
        svg: { type: 'string' },
        html: { type: 'string' },
        baseline: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return usageError(e, usage);
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (values.list) {
    let group = '';
    const lines: string[] = [];
    for (const r of benchCatalogue()) {
      if (r.group !== group) lines.push(`${(group = r.group)}`);
      lines.push(`  ${r.id.padEnd(58)} ${r.name}`);
    }
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  }
  const filter = values.filter ?? '';
  const jsOnly = values['js-only'] === true;
  let ms = 150;
  if (values.ms !== undefined) {
    ms = Number(values.ms);
    if (!/^\d+(\.\d+)?$/.test(values.ms.trim()) || !(ms >= 1 && ms <= MAX_MS)) {
      return usageError(`--ms must be a number from 1 to ${MAX_MS} (got '${values.ms}')`, usage);
    }
  }
  let baseline: ComparableRow[] | undefined;
  if (values.baseline !== undefined) {
    try {
      baseline = parseBaseline(fs.readFileSync(values.baseline, 'utf8'));
    } catch (e) {
      process.stderr.write(`dmabuf bench: --baseline ${values.baseline}: ${(e as Error).message}\n`);
      return 2;
    }
  }
  if (values.sweep !== undefined) {
    const sweep = values.sweep;
    if (!isSweepName(sweep)) return usageError(`unknown sweep '${sweep}' (one of: ${SWEEPS.join(', ')})`, usage);
    for (const flag of ['filter', 'js-only', 'check'] as const) {
      if (values[flag] !== undefined) return usageError(`--${flag} does not apply to --sweep`, usage);
    }
    return sweepMain(sweep, { ms, json: values.json === true, svg: values.svg, html: values.html, baseline, baselineFile: values.baseline });
  }
  for (const flag of ['svg', 'html'] as const) {
    if (values[flag] !== undefined) return usageError(`--${flag} needs --sweep (a chart is drawn from a sweep)`, usage);
  }
  if (!benchFilterMatches(filter, jsOnly)) {
    process.stderr.write(`dmabuf bench: --filter '${filter}' matches no row${jsOnly ? ' measured from JS' : ''} (dmabuf bench --list shows them)\n`);
    return 2;
  }
  const showProgress = values['no-progress'] ? false : values.progress === true || process.stderr.isTTY === true;
  const tty = process.stderr.isTTY === true;
  const onProgress = showProgress
    ? (p: BenchProgress): void => {
        const text = `dmabuf bench: [${p.index + 1}/${p.total}] ${p.group}`;
        process.stderr.write(tty ? `\r\x1b[K${text}` : `${text}\n`);
      }
    : undefined;
  const started = new Date().toISOString();
  const rows = await runBenchAsync({ filter, ms, jsOnly, ...(onProgress ? { onProgress } : {}) });
  if (showProgress && tty) process.stderr.write('\r\x1b[K');
  const comparison = baseline && compare(rows, baseline, values.baseline!);
  if (comparison === null) return 2;
  if (values.json) {
    const envelope = { ...environment(started), rows, ...(comparison ? { comparison } : {}) };
    process.stdout.write(JSON.stringify(envelope, null, 2) + '\n');
  } else {
    process.stdout.write(formatBench(rows));
  }
  if (comparison) reportComparison(comparison, values.baseline!, values.json === true);
  const missed = rows.filter((r) => r.status === 'miss');
  if (values.check && missed.length) {
    process.stderr.write(`dmabuf bench: ${missed.length} row(s) missed their target: ${missed.map((r) => r.id).join(', ')}\n`);
    return 1;
  }
  return comparison && comparison.worse.length ? 1 : 0;
}

/** What every --json envelope starts with: where and when it ran. */
function environment(started: string): Record<string, string | number> {
  return {
    version: packageVersion(),
    node: process.version,
    kernel: os.release(),
    arch: process.arch,
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    started,
  };
}

/** The comparison with the baseline; null (after saying so) when no row is in common. */
function compare(rows: ComparableRow[], baseline: ComparableRow[], file: string): BaselineComparison | null {
  const ids = new Set(rows.map((r) => r.id));
  if (rows.length && baseline.length && !baseline.some((b) => ids.has(b.id))) {
    process.stderr.write(`dmabuf bench: --baseline ${file} has no row in common with this run (another sweep, or other rows?)\n`);
    return null;
  }
  return compareWithBaseline(rows, baseline);
}

/** The report: after the table on stdout, or on stderr when stdout carries JSON. */
function reportComparison(c: BaselineComparison, file: string, json: boolean): void {
  (json ? process.stderr : process.stdout).write((json ? '' : '\n') + formatComparison(c, file));
  if (c.worse.length) process.stderr.write(`dmabuf bench: ${c.worse.length} row(s) more than ${Math.round(c.tolerance * 100)}% worse than ${file}\n`);
}

interface SweepArgs {
  ms: number;
  json: boolean;
  svg: string | undefined;
  html: string | undefined;
  baseline: ComparableRow[] | undefined;
  baselineFile: string | undefined;
}

/** `dmabuf bench --sweep NAME ...`; resolves to the exit status. */
function sweepMain(name: SweepName, a: SweepArgs): number {
  const started = new Date().toISOString();
  let result;
  try {
    result = runSweep(name, { ms: a.ms });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  }
  const rows = sweepRows(result);
  try {
    if (a.svg !== undefined) fs.writeFileSync(a.svg, sweepSvg(result));
    if (a.html !== undefined) fs.writeFileSync(a.html, sweepHtml(result));
  } catch (e) {
    process.stderr.write(`dmabuf bench: cannot write the chart: ${(e as Error).message}\n`);
    return 1;
  }
  const comparison = a.baseline && compare(rows, a.baseline, a.baselineFile!);
  if (comparison === null) return 2;
  if (a.json) {
    const envelope = { ...environment(started), sweep: result, rows, ...(comparison ? { comparison } : {}) };
    process.stdout.write(JSON.stringify(envelope, null, 2) + '\n');
  } else {
    process.stdout.write(formatSweep(result));
  }
  if (comparison) reportComparison(comparison, a.baselineFile!, a.json);
  return comparison && comparison.worse.length ? 1 : 0;
}
