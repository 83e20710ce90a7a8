// `dmabuf bench`: the benchmarks, from the command line.
import { formatBench, runBenchAsync } from '../bench';

const usage = `usage: dmabuf bench [--json] [--filter <text>] [--ms <per-measurement>] [--js-only]

  bench    run the benchmarks (native threads, then the rows measured from JS)
           and print each row with the floor it is compared against, measured
           in the same run, and the ratio
           --filter   a native group (fence, containers, heaps, issuer, kernel) runs
                      that group alone; any other <text> keeps the rows whose
                      name contains it
           --js-only  skip the native scenarios
`;

/** Runs `dmabuf bench ARGS`; resolves to the exit status. */
export async function main(rest: string[]): Promise<number> {
  let json = false;
  let jsOnly = false;
  let filter = '';
  let ms = 150;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--json') json = true;
    else if (a === '--js-only') jsOnly = true;
    else if (a === '--filter' && i + 1 < rest.length) filter = rest[++i]!;
    else if (a.startsWith('--filter=')) filter = a.slice(9);
    else if ((a === '--ms' && i + 1 < rest.length) || a.startsWith('--ms=')) {
      ms = Number(a.startsWith('--ms=') ? a.slice(5) : rest[++i]);
      if (!(ms > 0)) {
        process.stderr.write('dmabuf: --ms must be a positive number\n');
        return 2;
      }
    } else {
      process.stderr.write(`dmabuf: unknown option ${a}\n${usage}`);
      return 2;
    }
  }
  const rows = await runBenchAsync({ filter, ms, jsOnly });
  process.stdout.write(json ? JSON.stringify(rows, null, 2) + '\n' : formatBench(rows));
  return 0;
}
