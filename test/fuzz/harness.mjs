// Runs one fuzz seed in a child process and judges the outcome: a finding the
// child reported, a sanitizer report, a signal, a nonzero exit that was not
// ours, or a hang (timeout). Shared by run.mjs and test/fuzz-corpus.test.ts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FUZZ_DIR = path.dirname(fileURLToPath(import.meta.url));
export const CORPUS_DIR = path.join(FUZZ_DIR, 'corpus');
export const DEFAULT_PKG = path.resolve(FUZZ_DIR, '..', '..', 'dist', 'index.js');

const SANITIZER = [
  [/ERROR: AddressSanitizer: ([\w-]+)/, 'asan'],
  [/ERROR: LeakSanitizer/, 'lsan'],
  [/WARNING: ThreadSanitizer: ([\w- ]+)/, 'tsan'],
  [/runtime error: ([^\n]{0,80})/, 'ubsan'],
];
// Lines worth naming a crash by (the first match wins).
const CRASH_LINES = [
  /terminate called after throwing[^\n]*/,
  /FATAL ERROR:[^\n]*/,
  /free\(\): [^\n]*/,
  /double free[^\n]*/,
  /corrupted [^\n]*/,
  /malloc\(\)[^\n]*/,
  /Assertion [^\n]*failed[^\n]*/,
  /Segmentation fault[^\n]*/,
  /what\(\): [^\n]*/,
  /Check failed: [^\n]*/,
];

/**
 * Runs seed `seed`. opts: { ops, timeoutMs, pkg, without: string[], addon, node, env }.
 * Resolves { seed, ok, kind, reason, key, code, signal, ms, trace, stderrTail, infra }.
 */
export function runSeed(seed, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 10000;
  const args = [
    '--expose-gc',
    '-r', path.join(FUZZ_DIR, 'addon-shim.cjs'),
    path.join(FUZZ_DIR, 'child.mjs'),
    '--seed', String(seed >>> 0),
    '--ops', String(opts.ops ?? 300),
    '--pkg', opts.pkg ?? DEFAULT_PKG,
  ];
  if (opts.without?.length) args.push('--without', opts.without.join(','));
  // The environment passes through untouched (LD_PRELOAD, ASAN_OPTIONS, DMABUF_ADDON_PATH...).
  const env = { ...process.env, ...(opts.env ?? {}) };
  if (opts.addon) env.DMABUF_ADDON_PATH = path.resolve(opts.addon);
  env.DMABUF_FUZZ_PKG = opts.pkg ?? DEFAULT_PKG;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(opts.node ?? process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > 4_000_000) stderr = stderr.slice(-2_000_000); // keep the tail
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(judgeOutcome({ seed: seed >>> 0, code, signal, timedOut, stderr, ms: Date.now() - started, without: opts.without ?? [] }));
    });
  });
}

function normalize(s) {
  return String(s)
    .replace(/0x[0-9a-f]+/gi, '0x…')
    .replace(/\d+/g, 'N')
    .slice(0, 160);
}

export function judgeOutcome({ seed, code, signal, timedOut, stderr, ms, without }) {
  const lines = stderr.split('\n');
  const trace = lines.filter((l) => l.startsWith('FUZZ-TRACE')).map((l) => l.slice(11));
  const lastOps = trace.slice(-12);
  const other = lines.filter((l) => l && !l.startsWith('FUZZ-'));
  const stderrTail = other.slice(-40).join('\n');
  const base = { seed, code, signal, ms, without, lastOps, stderrTail };
  const fail = (kind, reason, key = `${kind}: ${normalize(reason)}`) => ({ ...base, ok: false, kind, reason, key });

  if (lines.some((l) => l.startsWith('FUZZ-LOAD-FAILED'))) {
    const l = lines.find((x) => x.startsWith('FUZZ-LOAD-FAILED'));
    return { ...base, ok: false, infra: true, kind: 'load-failed', reason: l, key: 'load-failed' };
  }
  for (const [re, kind] of SANITIZER) {
    const m = stderr.match(re);
    if (m) return fail(kind, m[0], `${kind}: ${normalize(m[1] ?? m[0])}`);
  }
  const findingLine = lines.find((l) => l.startsWith('FUZZ-FINDING '));
  if (findingLine) {
    let f;
    try {
      f = JSON.parse(findingLine.slice('FUZZ-FINDING '.length));
    } catch {
      f = { kind: 'finding', message: findingLine };
    }
    const what = `${f.name ? `${f.name}: ` : ''}${f.message}`;
    // Key by what was thrown (one native message = one bug, whatever member reached it).
    return { ...fail(f.kind, `${what} (at ${f.where})`, `${f.kind}: ${normalize(what)}`), finding: f };
  }
  const crashLine = CRASH_LINES.map((re) => stderr.match(re)?.[0]).find(Boolean);
  // Where it died: the last op, and for a hostile call the member it called.
  const lastOp = (lastOps.filter((l) => !l.startsWith('  ')).at(-1) ?? '?').replace(/^#\d+ /, '');
  const lastCall = lastOps.at(-1)?.startsWith('  ') ? lastOps.at(-1).trim().split(' ')[0] : '';
  const at = lastCall && lastOp === 'hostile call' ? `${lastOp} ${lastCall}` : lastOp;
  if (timedOut) return fail('hang', `no exit after ${ms} ms; last op: ${lastOps.at(-1) ?? '?'}`, `hang @ ${normalize(at)}`);
  if (signal) return fail('signal', `${signal}${crashLine ? `: ${crashLine}` : ''}`, `signal ${signal}: ${normalize(crashLine ?? '')} @ ${normalize(at)}`);
  const deliberate = lines.some((l) => l.startsWith('FUZZ-EXIT-DELIBERATE'));
  const ok = lines.some((l) => l === 'FUZZ-OK');
  if (code !== 0) return fail('exit', `exit code ${code}${crashLine ? `: ${crashLine}` : ''}`, `exit ${code}: ${normalize(crashLine ?? '')} @ ${normalize(at)}`);
  if (!ok && !deliberate) return fail('exit', 'exit code 0 without finishing', 'exit 0 unfinished');
  if (crashLine) return fail('stderr', crashLine);
  return { ...base, ok: true, kind: 'ok', reason: '', key: '' };
}

/** Corpus entries: { seed, without, ops, reason, key, kind, triggers, found }. */
export function readCorpus() {
  if (!fs.existsSync(CORPUS_DIR)) return [];
  return fs
    .readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, ...JSON.parse(fs.readFileSync(path.join(CORPUS_DIR, f), 'utf8')) }));
}

export function writeCorpus(result, extra = {}) {
  fs.mkdirSync(CORPUS_DIR, { recursive: true });
  const entry = {
    seed: result.seed,
    ops: extra.ops ?? 300,
    without: result.without ?? [],
    kind: result.kind,
    key: result.key,
    reason: result.reason,
    lastOps: result.lastOps,
    found: new Date().toISOString().slice(0, 10),
    ...extra,
  };
  const file = path.join(CORPUS_DIR, `${result.seed}.json`);
  fs.writeFileSync(file, `${JSON.stringify(entry, null, 2)}\n`);
  return file;
}

/** CPU time (user + system, seconds) of this process's reaped children, from /proc/self/stat. */
export function childrenCpuSeconds() {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): cutime is field 16, cstime field 17.
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return NaN;
  }
}
