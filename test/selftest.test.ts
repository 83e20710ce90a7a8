// dmabuf selftest: the runner (timeouts, crashes, skips), the emitters checked
// by real consumers (the kernel's kunit.py for KTAP, tap-parser for TAP 14,
// python's junitparser for JUnit), and the command's exit statuses.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Parser } from 'tap-parser';
import { formatRun, runSelftest, toKernelCiJson, type RunResult } from '../dist/selftest/index.js';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli.js');
const fixture = path.join(__dirname, 'fixtures', 'selftest-suites.cjs');

/** The kernel's KTAP parser (tools/testing/kunit) from the rig, when it is set up. */
function kunitDir(): string | null {
  if (process.env.RIG_KUNIT && existsSync(path.join(process.env.RIG_KUNIT, 'kunit.py'))) return process.env.RIG_KUNIT;
  const env = path.join(process.env.RIG_CACHE ?? '/var/cache/kernel-rig', 'rig.env');
  if (!existsSync(env)) return null;
  const m = /^RIG_KUNIT=(.*)$/m.exec(readFileSync(env, 'utf8'));
  return m && existsSync(path.join(m[1]!, 'kunit.py')) ? m[1]! : null;
}
const KUNIT = kunitDir();
// Python runs without the sanitizer runtimes scripts/test-asan-addon.sh preloads into node.
const pyEnv = { ...process.env };
delete pyEnv.LD_PRELOAD;
const PY = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import junitparser'], { stdio: 'ignore', env: pyEnv }).status === 0) ?? null;

function tmp(name: string, text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'selftest-'));
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

/** kunit.py parse: its exit status and the counts from "Ran N tests: ...". */
function kunitParse(ktap: string): { status: number | null; out: string; counts: Record<string, number> } {
  const r = spawnSync('python3', [path.join(KUNIT!, 'kunit.py'), 'parse', tmp('run.ktap', ktap)], { encoding: 'utf8', env: pyEnv });
  const out = r.stdout + r.stderr;
  const m = /Ran (\d+) tests?: (.*)$/m.exec(out);
  const counts: Record<string, number> = { total: m ? Number(m[1]) : -1 };
  for (const [, k, v] of (m?.[2] ?? '').matchAll(/(\w+): (\d+)/g)) counts[k!] = Number(v);
  return { status: r.status, out, counts };
}

let fixtureRun: RunResult;
const fixtureRunP = runSelftest({ module: fixture, timeoutMs: 1500 }).then((r) => (fixtureRun = r));

describe('runner', () => {
  it('runs every case; a hang or a death fails that case only and the run goes on', async () => {
    await fixtureRunP;
    const byName = Object.fromEntries(fixtureRun.suites.flatMap((s) => s.results.map((r) => [`${s.name}/${r.name}`, r])));
    expect(byName['alpha/first']!.status).toBe('pass');
    expect(byName['alpha/fails']!.status).toBe('fail');
    expect(byName['alpha/fails']!.diagnostics[0]).toBe('before the assertion');
    expect(byName['alpha/fails']!.diagnostics.join('\n')).toContain('arithmetic is off');
    expect(byName['alpha/skips itself']).toMatchObject({ status: 'skip', reason: 'not today' });
    expect(byName['alpha/kernel only']).toMatchObject({ status: 'skip', reason: 'needs the kernel' });
    expect(byName['alpha/async pass']!.status).toBe('pass');
    for (const hung of ['blocks the thread', 'never settles']) {
      expect(byName[`hangs/${hung}`]).toMatchObject({ status: 'fail', timedOut: true });
      expect(byName[`hangs/${hung}`]!.diagnostics[0]).toMatch(/^timed out after 1500 ms/);
    }
    expect(byName['hangs/process dies']!.status).toBe('fail');
    expect(byName['hangs/process dies']!.diagnostics[0]).toContain('signal SIGKILL');
    for (const after of ['after the block', 'after the promise', 'after the death']) expect(byName[`hangs/${after}`]!.status).toBe('pass');
    expect(fixtureRun.suites[3]!.skipReason).toBe('no emulated for gamma');
    expect(fixtureRun.suites[3]!.results.map((r) => r.status)).toEqual(['skip', 'skip']);
    expect(fixtureRun.counts).toEqual({ pass: 6, fail: 5, skip: 4, total: 15 });
  }, 30000);

  it('a suite whose availability check throws fails its cases; the rest of the run goes on', async () => {
    for (const backend of ['emulated', 'auto'] as const) {
      const r = await runSelftest({ module: path.join(__dirname, 'fixtures', 'selftest-broken.cjs'), backend, isolation: 'inline' });
      expect(r.suites.map((s) => s.results.map((c) => c.status))).toEqual([['fail'], ['pass']]);
      expect(r.suites[0]!.results[0]!.diagnostics[0]).toMatch(/availability check for emulated threw: TypeError: binding.tlBackend is not a function/);
    }
  });

  it("inline isolation abandons an async case at the timeout; 'auto' picks per suite", async () => {
    const r = await runSelftest({ module: fixture, suites: ['alpha', 'gamma'], backend: 'auto', isolation: 'inline', timeoutMs: 1000 });
    expect(r.suites.map((s) => s.backend)).toEqual(['kernel', 'emulated']); // alpha: unavailable('kernel') is null
    expect(r.suites[0]!.results.find((c) => c.name === 'kernel only')!.status).toBe('pass');
    const slow = await runSelftest({ module: fixture, suites: ['slow'], isolation: 'inline', timeoutMs: 200 });
    expect(slow.suites[0]!.results.map((c) => [c.status, c.timedOut ?? false])).toEqual([['fail', true], ['pass', false]]);
  }, 30000);
});

describe('ktap', () => {
  it('KTAP v1: version, plan, 2-space nested subtests with their own version and plan, SKIP, diagnostics before not ok', async () => {
    await fixtureRunP;
    const k = formatRun(fixtureRun, 'ktap');
    const lines = k.split('\n');
    expect(lines.slice(0, 2)).toEqual(['KTAP version 1', '1..4']);
    expect(lines.slice(2, 5)).toEqual(['  KTAP version 1', '  # Subtest: alpha', '  1..5']);
    const failAt = lines.indexOf('  not ok 2 fails');
    expect(failAt).toBeGreaterThan(0);
    expect(lines[failAt - 1]).toMatch(/^  # fails: /);
    expect(lines).toContain('  # fails: before the assertion');
    expect(lines).toContain('  ok 3 skips itself # SKIP not today');
    expect(lines).toContain('not ok 1 alpha');
    expect(lines).toContain('not ok 2 hangs');
    expect(lines).toContain('ok 4 gamma # SKIP no emulated for gamma');
    expect(lines).toContain('  # blocks the thread: timed out after 1500 ms: the case was abandoned and its process killed');
    for (const l of lines.filter((x) => x.length > 0)) expect(l).toMatch(/^(KTAP version 1|\d+\.\.\d+|(not )?ok \d+ [^#]+( # SKIP .*)?|#.*|  (KTAP version 1|# .*|\d+\.\.\d+|(not )?ok \d+ [^#]+( # SKIP .*)?))$/);
  });

  it.skipIf(!KUNIT)("the kernel's kunit.py parses it with the same counts", async () => {
    await fixtureRunP;
    const r = kunitParse(formatRun(fixtureRun, 'ktap'));
    expect(r.status).toBe(1); // kunit.py exits 1 when a test failed
    expect(r.out).not.toMatch(/\[ERROR\]|could not find|expected \d+ tests|missing/i);
    expect(r.counts).toEqual({ total: 15, passed: 6, failed: 5, skipped: 4 });
  }, 30000);
});

describe('tap', () => {
  it('TAP 14 that tap-parser reads: 4 suites, nested cases, YAML diagnostics under failures', async () => {
    await fixtureRunP;
    const text = formatRun(fixtureRun, 'tap');
    expect(text.startsWith('TAP version 14\n1..4\n# Subtest: alpha\n')).toBe(true);
    const children: Array<{ pass: number; fail: number; skip: number; count: number; failures: Array<{ name: string; diag?: { message?: string } }> }> = [];
    let top: { ok: boolean; count: number; pass: number; fail: number; skip: number; plan: { start: number; end: number } } | undefined;
    const bad: string[] = [];
    await new Promise<void>((resolve) => {
      const p = new Parser((res: typeof top) => {
        top = res;
        resolve();
      });
      p.on('child', (c: Parser) => c.on('complete', (res: (typeof children)[number]) => children.push(res)));
      p.on('extra', (e: string) => bad.push(e));
      p.end(text);
    });
    expect(bad).toEqual([]);
    expect(top).toMatchObject({ ok: false, count: 4, pass: 1, fail: 3, skip: 1, plan: { start: 1, end: 4 } });
    expect(children.map((c) => [c.count, c.pass, c.fail, c.skip])).toEqual([
      [5, 4, 1, 2],
      [6, 3, 3, 0],
      [2, 1, 1, 0],
      [2, 2, 0, 2],
    ]);
    const fails = children[0]!.failures;
    expect(fails[0]!.name).toBe('fails');
    expect(fails[0]!.diag?.message).toBe('before the assertion');
  });
});

describe('junit', () => {
  it('one <testsuite> per suite, read by python junitparser (a real consumer)', async () => {
    await fixtureRunP;
    const xml = formatRun(fixtureRun, 'junit');
    expect(xml.match(/<testsuite /g)!.length).toBe(4);
    if (!PY) return; // junitparser not installed (apt install python3-junitparser)
    const script = `
import json, sys
from junitparser import JUnitXml, Failure, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
out = []
for s in xml:
    cases = []
    for c in s:
        kind = 'pass'
        for r in c.result:
            kind = 'fail' if isinstance(r, Failure) else 'skip' if isinstance(r, Skipped) else 'other'
        cases.append([c.name, kind])
    out.append({'name': s.name, 'tests': s.tests, 'failures': s.failures, 'skipped': s.skipped, 'cases': cases})
print(json.dumps(out))`;
    const r = spawnSync(PY, ['-c', script, tmp('run.xml', xml)], { encoding: 'utf8', env: pyEnv });
    expect(r.stderr).toBe('');
    const suites = JSON.parse(r.stdout) as Array<{ name: string; tests: number; failures: number; skipped: number; cases: string[][] }>;
    expect(suites.map((s) => [s.name, s.tests, s.failures, s.skipped])).toEqual([
      ['alpha', 5, 1, 2],
      ['hangs', 6, 3, 0],
      ['slow', 2, 1, 0],
      ['gamma', 2, 0, 2],
    ]);
    expect(suites[1]!.cases[0]).toEqual(['blocks the thread', 'fail']);
  });
});

describe('json and lava', () => {
  it('json has the kunit.py --json shape (sub_groups of test_cases with PASS/FAIL/SKIP)', async () => {
    await fixtureRunP;
    const j = JSON.parse(formatRun(fixtureRun, 'json'));
    expect(j).toEqual(JSON.parse(JSON.stringify(toKernelCiJson(fixtureRun))));
    expect(j.name).toBe('dmabuf selftest');
    expect(j.sub_groups.map((g: { name: string }) => g.name)).toEqual(['alpha', 'hangs', 'slow', 'gamma']);
    expect(j.sub_groups[0].test_cases[1]).toMatchObject({ name: 'fails', status: 'FAIL' });
    expect(j.sub_groups[0].test_cases[2]).toMatchObject({ name: 'skips itself', status: 'SKIP', reason: 'not today' });
    expect(j.sub_groups[1].test_cases[0]).toMatchObject({ status: 'FAIL', timed_out: true });
    expect(j.totals).toEqual({ pass: 6, fail: 5, skip: 4, total: 15 });
  });

  it('lava: a test set per suite, LAVA_SIGNAL_TESTCASE per case with pass/fail/skip', async () => {
    await fixtureRunP;
    const lines = formatRun(fixtureRun, 'lava').split('\n');
    expect(lines.filter((l) => l.startsWith('<LAVA_SIGNAL_TESTSET START ')).length).toBe(4);
    expect(lines.filter((l) => l === '<LAVA_SIGNAL_TESTSET STOP>').length).toBe(4);
    const cases = lines.filter((l) => l.startsWith('<LAVA_SIGNAL_TESTCASE '));
    expect(cases.length).toBe(15);
    for (const c of cases) expect(c).toMatch(/^<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=[A-Za-z0-9_.-]+ RESULT=(pass|fail|skip) MEASUREMENT=[\d.]+ UNITS=ms>$/);
    expect(cases[1]).toContain('TEST_CASE_ID=fails RESULT=fail');
    expect(cases[2]).toContain('TEST_CASE_ID=skips_itself RESULT=skip');
  });
});

describe('dmabuf selftest (the command)', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'selftest', ...args], { encoding: 'utf8', timeout: 120000 });

  it('exit status: 1 when a case failed, 2 on bad usage, 0 for --help and --list', () => {
    const failed = run('--module', fixture, '--suite', 'alpha', '--format', 'tap');
    expect(failed.status).toBe(1);
    expect(failed.stdout).toContain('not ok 2 - fails');
    for (const bad of [['--format', 'xml'], ['--backend', 'gpu'], ['--suite', 'nope'], ['--timeout', '0'], ['--bogus'], ['extra']]) {
      const r = run(...bad);
      expect(r.status, bad.join(' ')).toBe(2);
      expect(r.stderr).toContain('usage: dmabuf selftest');
      expect(r.stdout).toBe('');
    }
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--format');
    const list = run('--list', '--backend', 'kernel');
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(/^dma-buf-fence \(kernel: skipped: /m);
    expect(list.stdout).toContain('  test_signaling_bookkeep');
  });

  it('the shipped suites pass on the emulation; kunit.py parses them clean with our counts', () => {
    const r = run('--output', path.join(mkdtempSync(path.join(os.tmpdir(), 'selftest-')), 'out.ktap'));
    expect(r.status, r.stderr).toBe(0);
    const k = run();
    expect(k.status).toBe(0);
    const m = /^# Totals: pass:(\d+) fail:(\d+) skip:(\d+) total:(\d+)$/m.exec(k.stdout)!;
    const [pass, fail, skip, total] = m.slice(1).map(Number);
    expect(fail).toBe(0);
    const names = k.stdout.match(/^(not )?ok \d+ \S+/gm)!.map((l) => l.split(' ').pop());
    expect(names).toEqual([
      'dma-buf-fence',
      'dma-buf-fence-chain',
      'dma-buf-fence-unwrap',
      'dma-buf-resv',
      'sync',
      'dmabuf-heap',
      'udmabuf',
      'dma-buf-implicit-sync',
      'issuers',
    ]);
    if (!KUNIT) return;
    const p = kunitParse(k.stdout);
    expect(p.status, p.out).toBe(0);
    expect(p.counts).toEqual({ total, passed: pass, ...(skip ? { skipped: skip } : {}) });
  }, 120000);
});
