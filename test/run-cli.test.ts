// `dmabuf run` from JS and as a command: the session API (lib/run.ts) and the
// CLI's argument handling. The multi-process and fault cases are C programs
// in test/run/ (run-tests.sh).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { devicesToEmulate, runToolsDir, startRun } from '../lib/run';

const cli = path.join(__dirname, '..', 'dist', 'cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'run', ...args], { encoding: 'utf8' });

describe('dmabuf run (CLI)', () => {
  it('runs the command with the emulated nodes and returns its status', () => {
    const r = run('--emulate', '--', 'sh', '-c', 'echo "$DMABUF_RUN_EMULATE"; ls /dev/dma_heap; exit 3');
    expect(r.status).toBe(3);
    expect(r.stdout.split('\n')).toEqual(['heaps,udmabuf,sw_sync', 'system', '']);
  });

  it('--profile picks the heaps', () => {
    expect(run('--emulate', '--profile', 'cc', '--', 'ls', '/dev/dma_heap').stdout).toBe('system\nsystem_cc_shared\n');
  });

  it.each([
    [['--', 'true'], 0, ''],
    [[], 2, 'no command given'],
    [['--profile', 'nosuch', '--', 'true'], 2, "unknown profile 'nosuch'"],
    [['--kernel', 'seven', '--', 'true'], 2, "--kernel expects a version like 7.1, not 'seven'"],
    [['--bogus', '--', 'true'], 2, "Unknown option '--bogus'"],
    [['--', '/nonexistent/cmd'], 127, '/nonexistent/cmd'],
  ])('%j exits %i', (args, status, message) => {
    const r = run(...args);
    expect(r.status).toBe(status);
    if (message) expect(r.stderr).toContain(message);
  });

  it('--help prints the usage', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: dmabuf run/);
  });
});

describe('startRun()', () => {
  it('gives an environment, and stop() removes everything (idempotent)', async () => {
    const s = await startRun({ emulate: true, brokerStderr: 'ignore' });
    expect(s.emulated).toEqual(['heaps', 'udmabuf', 'sw_sync']);
    expect(s.env.LD_PRELOAD).toContain(path.join(runToolsDir(), 'libdmabuf-preload.so'));
    const root = s.env.DMABUF_RUN_ROOT!;
    expect(fs.readdirSync(path.join(root, 'dev', 'dma_heap'))).toEqual(['system']);
    const r = spawnSync('sh', ['-c', 'test -e /dev/dma_heap/system && sed -n 2p /sys/kernel/debug/dma_buf/bufinfo'], {
      env: { ...process.env, ...s.env },
      encoding: 'utf8',
    });
    expect(r.stdout).toMatch(/^Dma-buf Objects:/);
    await Promise.all([s.stop(), s.stop()]);
    expect(fs.existsSync(root)).toBe(false);
    expect(() => process.kill(s.brokerPid, 0)).toThrow();
  });

  it('refuses an unknown profile with a RangeError', async () => {
    await expect(startRun({ profile: 'nosuch' as never })).rejects.toThrow(RangeError);
  });

  it('a broker that cannot start is an error, and leaves nothing behind', async () => {
    const before = fs.readdirSync(require('node:os').tmpdir()).filter((d) => d.startsWith('dmabuf-run-')).length;
    process.env['DMABUF_RUN_BROKER'] = '/bin/false';
    try {
      await expect(startRun({})).rejects.toThrow(/exited before it was ready/);
    } finally {
      delete process.env['DMABUF_RUN_BROKER'];
    }
    const after = fs.readdirSync(require('node:os').tmpdir()).filter((d) => d.startsWith('dmabuf-run-')).length;
    expect(after).toBe(before);
  });

  it('devicesToEmulate() keeps what the host has unless forced', () => {
    expect(devicesToEmulate(true)).toEqual(['heaps', 'udmabuf', 'sw_sync']);
    for (const d of devicesToEmulate(false)) expect(['heaps', 'udmabuf', 'sw_sync']).toContain(d);
  });
});
