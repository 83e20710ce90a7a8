// The `dmabuf` command as a user runs it: `node dist/cli.js ...` (npm run build:ts
// first), its exit status, stdout and stderr. Plus runBenchAsync() off the main
// thread and the bench catalogue against what the addon really runs.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENCH_GROUPS, benchCatalogue, benchFilterMatches, runBenchAsync, type BenchProgress } from '../lib/bench';
import { binding } from '../lib/internal/binding';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dmabuf: help, version, bad command lines', () => {
  it.each([['--help'], ['-h']])('%s prints the usage on stdout, exit 0', (flag) => {
    const r = run(flag);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: dmabuf <command>/);
    expect(r.stdout).toMatch(/\n {2}bench /);
    expect(r.stderr).toBe('');
  });

  it.each([['--version'], ['-v']])('%s prints the package version, exit 0', (flag) => {
    const r = run(flag);
    expect(r).toEqual({ status: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('bench --help prints the bench usage on stdout, exit 0', () => {
    const r = run('bench', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: dmabuf bench/);
    expect(r.stdout).toMatch(/--check/);
    expect(r.stderr).toBe('');
  });

  it.each([
    [['--bogus'], /Unknown option '--bogus'/, /usage: dmabuf <command>/],
    [[], /no command given/, /usage: dmabuf <command>/],
    [['frobnicate'], /unknown command 'frobnicate'/, /usage: dmabuf <command>/],
    [['toString'], /unknown command 'toString'/, /usage: dmabuf <command>/],
    [['bench', '--bogus'], /Unknown option '--bogus'/, /usage: dmabuf bench/],
    [['bench', '--filter'], /--filter <value>' argument missing/, /usage: dmabuf bench/],
    [['bench', '--ms'], /--ms <value>' argument missing/, /usage: dmabuf bench/],
    [['bench', 'fence'], /positional/i, /usage: dmabuf bench/],
    [['bench', '--ms', '0'], /--ms must be a number from 1 to 10000/, /usage: dmabuf bench/],
    [['bench', '--ms', '10001'], /--ms must be a number from 1 to 10000/, /usage: dmabuf bench/],
    [['bench', '--ms=abc'], /--ms must be a number/, /usage: dmabuf bench/],
  ])('%j: the reason and the usage on stderr, exit 2', (args, reason, usage) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toMatch(usage);
  });
});

describe('dmabuf bench', () => {
  it('refuses a filter that matches no row before running anything (exit 2)', () => {
    const t0 = Date.now();
    const r = run('bench', '--filter', 'no such row', '--progress');
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--filter 'no such row' matches no row/);
    expect(r.stderr).not.toMatch(/\[1\//); // no progress: nothing ran
    expect(Date.now() - t0).toBeLessThan(10000);
    // native-only rows are no match for --js-only
    expect(run('bench', '--js-only', '--filter', 'fence lifecycle').status).toBe(2);
    expect(benchFilterMatches('fence lifecycle', true)).toBe(false);
    expect(benchFilterMatches('fence lifecycle')).toBe(true);
    expect(benchFilterMatches('js', true)).toBe(true);
  });

  it('--list prints every group and row, with ids, and runs nothing', () => {
    const r = run('bench', '--list');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    for (const g of BENCH_GROUPS) expect(lines).toContain(g);
    for (const row of benchCatalogue()) expect(r.stdout).toContain(`${row.id} `);
    const ids = benchCatalogue().map((x) => x.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('the catalogue knows every row the addon runs', () => {
    const known = new Set(benchCatalogue().map((x) => x.name));
    for (const g of BENCH_GROUPS) {
      if (g === 'js') continue;
      for (const row of JSON.parse(binding.benchRun(g, 1)) as Array<{ name: string }>) expect(known, `${g}: ${row.name}`).toContain(row.name);
    }
  }, 120000);

  it('--json is an envelope; rows carry id, status and met (null without a target)', () => {
    const r = run('bench', '--json', '--ms', '1', '--filter', 'heaps');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { rows: Array<Record<string, unknown>> };
    expect(Object.keys(j)).toEqual(['version', 'node', 'kernel', 'arch', 'cpus', 'started', 'rows']);
    expect(j.version).toBe(version);
    expect(j.node).toBe(process.version);
    expect(j.arch).toBe(process.arch);
    expect(j.cpus).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(j.started as string))).toBe(false);
    expect(j.rows.length).toBeGreaterThan(0);
    for (const row of j.rows) {
      expect(row.id).toMatch(/^heaps\/[a-z0-9-]+$/);
      expect(row.group).toBe('heaps');
      expect(['ok', 'miss']).toContain(row.status);
      // The rows against the memfd floor carry a target; those against mmap+munmap none.
      expect(row.met === null).toBe(row.target === '');
      expect(row.target).toBe(String(row.name).includes('vs mmap') || String(row.name).startsWith('system_cc') ? '' : '<= 1.2');
    }
  });

  it('skipped rows say status skipped and met null', () => {
    const r = run('bench', '--json', '--ms', '1', '--filter', 'kernel');
    expect(r.status).toBe(0);
    const rows = (JSON.parse(r.stdout) as { rows: Array<Record<string, unknown>> }).rows;
    for (const row of rows) {
      if (row.status === 'skipped') {
        expect(row.met).toBeNull();
        expect(row.note).not.toBe('');
      } else {
        expect(row.status).toMatch(/^(ok|miss)$/);
      }
    }
    if (!fs.existsSync('/dev/dma_heap/system')) expect(rows.some((x) => x.id === 'kernel/heap-alloc-free' && x.status === 'skipped')).toBe(true);
  });

  it('--check exits 1 exactly when a row with a target misses it', () => {
    const r = run('bench', '--json', '--check', '--ms', '1', '--filter', 'fence');
    const rows = (JSON.parse(r.stdout) as { rows: Array<{ id: string; status: string; target: string; met: boolean | null }> }).rows;
    const missed = rows.filter((x) => x.status === 'miss');
    for (const x of rows) expect(x.met === null ? x.target === '' : true).toBe(true);
    expect(missed.every((x) => x.target !== '' && x.met === false)).toBe(true);
    expect(r.status).toBe(missed.length ? 1 : 0);
    if (missed.length) expect(r.stderr).toContain(missed[0]!.id);
    // rows without targets never fail --check (the heap rows against mmap+munmap have none)
    expect(run('bench', '--check', '--ms', '1', '--filter', 'vs mmap').status).toBe(0);
  });

  it('--progress reports each group on stderr; without it (not a terminal) stderr stays empty', () => {
    const r = run('bench', '--progress', '--ms', '1', '--filter', 'system heap alloc+free, 4 KiB');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('dmabuf bench: [1/1] heaps\n');
    expect(r.stdout).toMatch(/system heap alloc\+free, 4 KiB/);
    const quiet = run('bench', '--ms', '1', '--filter', 'system heap alloc+free, 4 KiB');
    expect(quiet.stderr).toBe('');
  });

  it('ends quietly when stdout is closed (EPIPE: `dmabuf bench | head`)', async () => {
    const child = spawn(process.execPath, [cli, 'bench', '--ms', '1', '--filter', 'heaps'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before anything is written
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('a full disk on stdout (ENOSPC) is one line and exit 1, no stack', () => {
    if (!fs.existsSync('/dev/full')) return;
    const fd = fs.openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, [cli, 'bench', '--list'], { cwd: root, encoding: 'utf8', stdio: ['ignore', fd, 'pipe'] });
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('dmabuf: cannot write the output: ENOSPC\n');
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('runBenchAsync', () => {
  it('runs the native scenarios off the main thread: an interval keeps ticking', async () => {
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const progress: BenchProgress[] = [];
    const t0 = performance.now();
    try {
      const rows = await runBenchAsync({ filter: 'containers', ms: 20, onProgress: (p) => progress.push(p) });
      expect(rows.length).toBeGreaterThan(5);
      expect(rows.every((r) => r.group === 'containers')).toBe(true);
    } finally {
      clearInterval(timer);
    }
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThan(1000); // on this thread it would be one gap that long
    let gap = 0;
    for (let i = 1; i < ticks.length; i++) gap = Math.max(gap, ticks[i]! - ticks[i - 1]!);
    expect(gap).toBeLessThan(500); // slack for a loaded CI machine
    expect(ticks.length).toBeGreaterThan(elapsed / 50);
    expect(progress).toEqual([{ group: 'containers', index: 0, total: 1 }]);
  }, 120000);

  it('JS rows let the loop turn between measurements', async () => {
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const t0 = performance.now();
    try {
      const rows = await runBenchAsync({ filter: 'JS new Fence', ms: 50 });
      expect(rows.map((r) => r.id)).toEqual(['js/js-new-fence-signal-dispose']);
    } finally {
      clearInterval(timer);
    }
    // 3 measurements, each 5 runs of ~50 ms after calibrating: blocking, that would be
    // one gap as long as the whole call; sliced, no gap comes near it.
    const elapsed = performance.now() - t0;
    let gap = 0;
    for (let i = 1; i < ticks.length; i++) gap = Math.max(gap, ticks[i]! - ticks[i - 1]!);
    expect(ticks.length).toBeGreaterThan(5);
    expect(gap).toBeLessThan(elapsed / 2);
  }, 120000);

  it('rejects a bad onProgress before running anything', async () => {
    await expect(runBenchAsync({ onProgress: 5 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });
});
