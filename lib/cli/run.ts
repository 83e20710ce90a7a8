// `dmabuf run [options] -- CMD ARGS...`: runs a command against the shared
// emulation (lib/run.ts, docs/run.md) and exits with its status.
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { RUN_PROFILES, startRun, type RunProfile } from '../run';
import { usageError } from './common';

const USAGE = `usage: dmabuf run [options] -- COMMAND [ARGS...]

Runs COMMAND (and everything it starts) with /dev/dma_heap/*, /dev/udmabuf and
/sys/kernel/debug/sync/sw_sync emulated by one shared broker, through
libdmabuf-preload.so (dynamically linked programs; see docs/run.md).

options:
  --profile NAME   platform to emulate: ${Object.keys(RUN_PROFILES).join(', ')} (default: default)
  --kernel VER     Linux version the emulation follows (default: 7.1)
  --emulate        emulate every device, even ones this host has
  -h, --help       print this and exit

Exit status: COMMAND's (128 + signal number if it was killed); 2 for a bad
command line; 1 if the broker could not start.
`;

export async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: own,
      options: {
        profile: { type: 'string' },
        kernel: { type: 'string' },
        emulate: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    return usageError(e, USAGE);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const cmd = dash < 0 ? positionals : [...positionals, ...argv.slice(dash + 1)];
  if (!cmd.length) return usageError('no command given', USAGE);
  const profile = (values.profile ?? 'default') as RunProfile;
  if (!Object.hasOwn(RUN_PROFILES, profile)) return usageError(`unknown profile '${profile}'`, USAGE);
  if (values.kernel !== undefined && !/^\d+\.\d+(\.\d+)?$/.test(values.kernel)) {
    return usageError(`--kernel expects a version like 7.1, not '${values.kernel}'`, USAGE);
  }
  let session;
  try {
    session = await startRun({
      profile,
      emulate: values.emulate === true,
      ...(values.kernel !== undefined ? { kernelVersion: values.kernel } : {}),
    });
  } catch (e) {
    process.stderr.write(`dmabuf run: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit', env: { ...process.env, ...session.env } });
    // The child owns the terminal's signals; we only wait for it.
    const ignore = (): void => {};
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, ignore);
    return await new Promise<number>((resolve) => {
      child.once('error', (e) => {
        process.stderr.write(`dmabuf run: ${cmd[0]}: ${e.message}\n`);
        resolve(127);
      });
      child.once('exit', (code, sig) => {
        const num = sig ? (os.constants.signals as Record<string, number>)[sig] ?? 0 : 0;
        resolve(code ?? 128 + num);
      });
    });
  } finally {
    await session.stop();
  }
}
