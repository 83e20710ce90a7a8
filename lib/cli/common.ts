// What the `dmabuf` command and its subcommands share.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The package's version (package.json beside dist/ or lib/). */
export function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * A bad command line: the reason (a parseArgs error's message, or text) and the
 * usage on stderr; resolves to exit status 2.
 */
export function usageError(e: unknown, usage: string): number {
  const msg = typeof e === 'string' ? e : e instanceof Error ? e.message : String(e);
  process.stderr.write(`dmabuf: ${msg}\n\n${usage}`);
  return 2;
}

/**
 * stdout that a reader stopped reading (`dmabuf bench | head`: EPIPE) or that
 * cannot be written (ENOSPC, EIO) ends the process quietly: status 0 for EPIPE
 * (the reader had what it wanted), 1 with one line for the others.
 */
export function quietOnStdoutErrors(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    process.stderr.write(`dmabuf: cannot write the output: ${e.code ?? e.message}\n`);
    process.exit(1);
  });
}
