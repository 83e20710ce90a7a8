// dmabuf probe / probe(): every check is a row; on a host without the nodes
// they are ENOENT rows (the rig's test/kernel/probe_js.mjs checks the ok rows).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { probe, type ProbeReport } from '../lib';

const cli = path.join(__dirname, '..', 'dist', 'cli.js');

describe('probe()', () => {
  it('names the kernel and has a row for every area, each with a result', () => {
    const r: ProbeReport = probe();
    expect(r.kernel.release).toBe(os.release());
    expect(r.kernel.arch).toBe(os.machine());
    const areas = new Set(r.checks.map((c) => c.area));
    for (const a of ['heap', 'udmabuf', 'debugfs', 'sw_sync', 'dma-buf', 'sync_file', 'drm', 'emulation']) expect(areas.has(a), a).toBe(true);
    for (const c of r.checks) expect(c.result, JSON.stringify(c)).toMatch(/^(ok|untested|not mounted|E[A-Z0-9]+)$/);
    for (const n of ['SYNC_IOC_MERGE', 'SYNC_IOC_FILE_INFO', 'SYNC_IOC_SET_DEADLINE', 'SW_SYNC_GET_DEADLINE', 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE', 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE'])
      expect(r.checks.some((c) => c.name === n), n).toBe(true);
    expect(r.checks.find((c) => c.name === 'fence+heap')!.result).toBe('ok');
  });

  it.skipIf(existsSync('/dev/dma_heap') || existsSync('/dev/udmabuf'))('on a host without the nodes: ENOENT rows, the ioctls untested', () => {
    const r = probe();
    expect(r.checks.find((c) => c.area === 'heap')).toMatchObject({ name: '(none)', path: '/dev/dma_heap', result: 'ENOENT' });
    expect(r.checks.find((c) => c.area === 'udmabuf')).toMatchObject({ path: '/dev/udmabuf', result: 'ENOENT' });
    expect(r.checks.find((c) => c.name === 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE')!.result).toBe('untested');
    if (!existsSync('/dev/dri')) expect(r.checks.find((c) => c.area === 'drm')!.result).toBe('ENOENT');
  });

  it('dmabuf probe prints the table; --json the same report; bad usage is 2', () => {
    const t = spawnSync(process.execPath, [cli, 'probe'], { encoding: 'utf8' });
    expect(t.status).toBe(0);
    expect(t.stdout).toMatch(/^kernel \S+ \S+ \(uid \d+\)\nAREA +CHECK +RESULT +MODE OWNER +DETAIL\n/);
    expect(t.stdout).toMatch(/^udmabuf +udmabuf +(ok|E[A-Z]+)/m);
    const j = spawnSync(process.execPath, [cli, 'probe', '--json'], { encoding: 'utf8' });
    expect(j.status).toBe(0);
    const r = JSON.parse(j.stdout) as ProbeReport;
    expect(r.checks.map((c) => c.name)).toEqual(probe().checks.map((c) => c.name));
    const bad = spawnSync(process.execPath, [cli, 'probe', '--yaml'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('usage: dmabuf probe');
    const help = spawnSync(process.execPath, [cli, 'probe', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--json');
  });
});
