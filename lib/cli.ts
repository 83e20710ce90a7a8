#!/usr/bin/env node
// The `dmabuf` command: picks a subcommand; each lives in lib/cli/<name>.ts and
// exports `main(argv): Promise<exit status>`.

import { parseArgs } from 'node:util';
import { packageVersion, quietOnStdoutErrors, usageError } from './cli/common';

type Command = { summary: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  bench: { summary: 'run the benchmarks', load: () => import('./cli/bench.js') },
  selftest: { summary: 'run the conformance suites (KTAP, TAP, JUnit, JSON, LAVA)', load: () => import('./cli/selftest.js') },
  run: { summary: 'run a program against the shared emulation (LD_PRELOAD + broker)', load: () => import('./cli/run.js') },
  probe: { summary: 'what this node offers for dma-buf work (--json)', load: () => import('./cli/probe.js') },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`);
  return (
    `usage: dmabuf <command> [options]\n       dmabuf <command> --help\n\ncommands:\n${rows.join('\n')}\n\n` +
    `options:\n  -h, --help     print this and exit\n  -v, --version  print the version and exit\n`
  );
}

async function main(argv: string[]): Promise<number> {
  quietOnStdoutErrors();
  // Options before the command are the command's own (--help, --version).
  const at = argv.findIndex((a) => !a.startsWith('-'));
  let values;
  try {
    ({ values } = parseArgs({
      args: at < 0 ? argv : argv.slice(0, at),
      options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
      strict: true,
    }));
  } catch (e) {
    return usageError(e, usage());
  }
  if (values.help) {
    process.stdout.write(usage());
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const cmd = at < 0 ? undefined : argv[at]!;
  const c = cmd === undefined || !Object.hasOwn(commands, cmd) ? undefined : commands[cmd];
  if (!c) return usageError(cmd === undefined ? 'no command given' : `unknown command '${cmd}'`, usage());
  return (await c.load()).main(argv.slice(at + 1));
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`dmabuf: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
