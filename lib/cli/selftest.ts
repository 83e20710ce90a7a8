// `dmabuf selftest`: the conformance suites, in the formats test farms parse.
import { parseArgs } from 'node:util';
import { createReporter, FORMATS, type SelftestFormat } from '../selftest/emitters';
import { DEFAULT_SUITES_MODULE, DEFAULT_TIMEOUT_MS, loadSuites, planRun, runSelftest } from '../selftest/runner';
import type { SelftestBackendChoice } from '../selftest/types';

const BACKENDS = ['emulated', 'kernel', 'auto'] as const;

const usage = `usage: dmabuf selftest [--backend emulated|kernel|auto] [--suite NAME]... [--list]
                       [--format ktap|tap|junit|json|lava] [--timeout SECONDS] [--output FILE]

  Runs the dma-buf conformance suites (each named after the kernel suite it
  mirrors) and prints the results.

  --backend   emulated (default): this package's emulation; kernel: the real
              /dev/dma_heap, /dev/udmabuf, sw_sync and sync_file, suites the
              kernel cannot serve are skipped with the reason; auto: the kernel
              for each suite it can serve, else the emulation
  --suite     run only this suite (repeatable); --list names them
  --list      print the suites and their cases with the backend each would use
  --format    ktap (default, KTAP v1), tap (TAP 14), junit (JUnit XML), json
              (kunit.py --json / KernelCI shape), lava (LAVA test shell signals)
  --timeout   per case, in seconds (default ${DEFAULT_TIMEOUT_MS / 1000}); a case that runs longer
              fails and its process is killed; the run goes on
  --output    write the results to FILE instead of stdout
  --module    a module exporting \`suites\` to run instead of the shipped ones

  Exit status: 0 when no case failed, 1 when one did, 2 on bad usage.
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        backend: { type: 'string', default: 'emulated' },
        suite: { type: 'string', multiple: true },
        list: { type: 'boolean', default: false },
        format: { type: 'string', default: 'ktap' },
        timeout: { type: 'string' },
        output: { type: 'string', short: 'o' },
        module: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`dmabuf selftest: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const bad = (msg: string): number => {
    process.stderr.write(`dmabuf selftest: ${msg}\n${usage}`);
    return 2;
  };
  if (!(BACKENDS as readonly string[]).includes(values.backend)) return bad(`--backend must be one of ${BACKENDS.join(', ')}`);
  if (!(FORMATS as readonly string[]).includes(values.format)) return bad(`--format must be one of ${FORMATS.join(', ')}`);
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    const s = Number(values.timeout);
    if (!(s > 0) || !Number.isFinite(s)) return bad('--timeout must be a positive number of seconds');
    timeoutMs = s * 1000;
  }
  const backend = values.backend as SelftestBackendChoice;
  const module = values.module === undefined ? DEFAULT_SUITES_MODULE : require.resolve(values.module, { paths: [process.cwd()] });
  const all = loadSuites(module);
  let plan;
  try {
    plan = planRun(all, { backend, ...(values.suite ? { suites: values.suite } : {}) });
  } catch (e) {
    return bad((e as Error).message);
  }
  if (values.list) {
    for (const s of plan) {
      process.stdout.write(`${s.name} (${s.backend}${s.skipReason ? `: skipped: ${s.skipReason}` : ''})\n`);
      for (const c of s.cases) process.stdout.write(`  ${c}\n`);
    }
    return 0;
  }
  // `dmabuf selftest | head`: a closed stdout ends the run quietly (the child pool dies with us).
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  let out = '';
  const toFile = values.output;
  const write = toFile === undefined ? (t: string) => process.stdout.write(t) : (t: string) => (out += t);
  const run = await runSelftest({
    backend,
    timeoutMs,
    module,
    ...(values.suite ? { suites: values.suite } : {}),
    reporter: createReporter(values.format as SelftestFormat, write),
  });
  if (toFile !== undefined) {
    const fs = await import('node:fs');
    fs.writeFileSync(toFile, out);
  }
  return run.counts.fail > 0 ? 1 : 0;
}
