#!/usr/bin/env node
// The `dmabuf` command: picks a subcommand; each lives in lib/cli/<name>.ts and
// exports `main(argv): Promise<exit status>`.

type Command = { summary: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  bench: { summary: 'run the benchmarks', load: () => import('./cli/bench.js') },
  selftest: { summary: 'run the conformance suites (KTAP, TAP, JUnit, JSON, LAVA)', load: () => import('./cli/selftest.js') },
  probe: { summary: 'what this node offers for dma-buf work (--json)', load: () => import('./cli/probe.js') },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`);
  return `usage: dmabuf <command> [options]\n\n${rows.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const c = cmd === undefined ? undefined : commands[cmd];
  if (!c) {
    process.stderr.write(usage());
    return cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2;
  }
  return (await c.load()).main(rest);
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
