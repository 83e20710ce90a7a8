// `dmabuf bench`: the benchmarks, from the command line.
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { BENCH_GROUPS, benchCatalogue, benchFilterMatches, formatBench, runBenchAsync, type BenchProgress } from '../bench';
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
  -h, --help       print this and exit
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
  if (values.json) {
    const envelope = {
      version: packageVersion(),
      node: process.version,
      kernel: os.release(),
      arch: process.arch,
      cpus: os.availableParallelism?.() ?? os.cpus().length,
      started,
      rows,
    };
    process.stdout.write(JSON.stringify(envelope, null, 2) + '\n');
  } else {
    process.stdout.write(formatBench(rows));
  }
  const missed = rows.filter((r) => r.status === 'miss');
  if (values.check && missed.length) {
    process.stderr.write(`dmabuf bench: ${missed.length} row(s) missed their target: ${missed.map((r) => r.id).join(', ')}\n`);
    return 1;
  }
  return 0;
}
