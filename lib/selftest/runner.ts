// The runner: picks the suites and backend, runs every case with a timeout,
// and tells a Reporter as it goes.
//
// Isolation (the default, 'process'): cases run one at a time in a child
// process (child.ts) that the runner forks. A case that runs past the timeout,
// whether it awaits forever or blocks its thread in a synchronous call, is
// reported as failed and the child is killed (SIGKILL); the next case gets a
// fresh child, so the run goes on. A child that dies by itself (a crash in the
// addon) fails only the case it was running. 'inline' runs cases in this
// process: cheaper, and an async case that never settles is still abandoned
// at the timeout, but a case blocking the thread cannot be interrupted.
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { errorLines, execCase } from './exec';
import type {
  CaseResult,
  Reporter,
  RunResult,
  SelftestBackend,
  SelftestBackendChoice,
  SelftestSuite,
  SuitePlan,
  SuiteResult,
} from './types';
import { countResults } from './types';

export interface SelftestOptions {
  /** Suite names to run (default: all, in their order). */
  suites?: readonly string[];
  /** Default 'emulated'. */
  backend?: SelftestBackendChoice;
  /** Per case, in ms (default 30000). */
  timeoutMs?: number;
  /** Default 'process'. */
  isolation?: 'process' | 'inline';
  /** A module exporting `suites: SelftestSuite[]` (default: the shipped suites). */
  module?: string;
  reporter?: Reporter;
}

export const DEFAULT_SUITES_MODULE = path.join(__dirname, 'suites', 'index.js');
export const DEFAULT_TIMEOUT_MS = 30000;

export function loadSuites(module: string = DEFAULT_SUITES_MODULE): readonly SelftestSuite[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(module) as { suites: readonly SelftestSuite[] }).suites;
}

/** suite.unavailable(backend), with a throw turned into { error }. */
function checkAvailable(suite: SelftestSuite, backend: SelftestBackend): { why: string | null; error?: string } {
  try {
    return { why: suite.unavailable(backend) };
  } catch (e) {
    return { why: null, error: `the suite's availability check for ${backend} threw: ${errorLines(e).join(' | ')}` };
  }
}

/** The backend `choice` gives `suite`: 'auto' is the kernel where it can serve the suite. */
export function backendFor(suite: SelftestSuite, choice: SelftestBackendChoice): SelftestBackend {
  if (choice !== 'auto') return choice;
  const k = checkAvailable(suite, 'kernel');
  return k.why === null && k.error === undefined ? 'kernel' : 'emulated';
}

/** The plan: each suite with its backend, its cases and, when it cannot run, why. */
export function planRun(all: readonly SelftestSuite[], opts: SelftestOptions = {}): SuitePlan[] {
  const choice = opts.backend ?? 'emulated';
  let picked = all;
  if (opts.suites && opts.suites.length > 0) {
    const unknown = opts.suites.filter((n) => !all.some((s) => s.name === n));
    if (unknown.length) throw new RangeError(`unknown suite ${unknown.join(', ')} (known: ${all.map((s) => s.name).join(', ')})`);
    picked = all.filter((s) => opts.suites!.includes(s.name));
  }
  return picked.map((s) => {
    const backend = backendFor(s, choice);
    const a = checkAvailable(s, backend);
    return {
      name: s.name,
      description: s.description,
      backend,
      skipReason: a.why,
      ...(a.error !== undefined ? { setupError: a.error } : {}),
      cases: s.cases.map((c) => c.name),
    };
  });
}

type Pending = { id: number; resolve: (r: CaseResult) => void };

/** One child process at a time; replaced after a timeout or a crash. */
class ChildPool {
  private child: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private pending: Pending | null = null;
  private output: string[] = [];
  private nextId = 1;

  private start(): Promise<void> {
    const child = fork(path.join(__dirname, 'child.js'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' });
    this.child = child;
    this.output = [];
    const keep = (chunk: Buffer) => {
      this.output.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.ready = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.on('message', (m: { type: string; id?: number; result?: CaseResult }) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'result' && this.pending && m.id === this.pending.id) {
          const p = this.pending;
          this.pending = null;
          p.resolve(m.result!);
        }
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = null;
        reject(new Error(`selftest child exited before it was ready (${signal ?? `status ${code}`})`));
        const p = this.pending;
        if (p) {
          this.pending = null;
          p.resolve({
            name: '',
            status: 'fail',
            diagnostics: [`the case's process died (${signal ? `signal ${signal}` : `exit status ${code}`})`, ...this.output.slice(-20)],
            durationMs: 0,
          });
        }
      });
    });
    return this.ready;
  }

  async run(module: string, suite: string, name: string, backend: SelftestBackend, timeoutMs: number): Promise<CaseResult> {
    if (!this.child) await this.start();
    else await this.ready;
    const child = this.child!;
    this.output = [];
    const id = this.nextId++;
    const start = performance.now();
    return new Promise<CaseResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        this.child = null;
        child.kill('SIGKILL');
        resolve({
          name,
          status: 'fail',
          timedOut: true,
          diagnostics: [`timed out after ${timeoutMs} ms: the case was abandoned and its process killed`, ...this.output.slice(-20)],
          durationMs: performance.now() - start,
        });
      }, timeoutMs);
      this.pending = {
        id,
        resolve: (r) => {
          clearTimeout(timer);
          resolve({ ...r, name, durationMs: r.durationMs || performance.now() - start });
        },
      };
      child.send({ type: 'run', id, module, suite, case: name, backend });
    });
  }

  close(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

async function runInline(suite: SelftestSuite, name: string, backend: SelftestBackend, timeoutMs: number): Promise<CaseResult> {
  const c = suite.cases.find((x) => x.name === name)!;
  let timer: NodeJS.Timeout | undefined;
  const start = performance.now();
  const timeout = new Promise<CaseResult>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          name,
          status: 'fail',
          timedOut: true,
          diagnostics: [`timed out after ${timeoutMs} ms: the case was abandoned (inline: it may still be running)`],
          durationMs: performance.now() - start,
        }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([execCase(c, backend), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the suites; resolves to every result (the reporter has seen them as they came). */
export async function runSelftest(opts: SelftestOptions = {}): Promise<RunResult> {
  const module = opts.module ?? DEFAULT_SUITES_MODULE;
  const all = loadSuites(module);
  const plan = planRun(all, opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be a positive number');
  const reporter = opts.reporter;
  const startedAt = new Date();
  const t0 = performance.now();
  const pool = opts.isolation === 'inline' ? null : new ChildPool();
  const suites: SuiteResult[] = [];
  reporter?.begin(plan);
  try {
    for (const [i, p] of plan.entries()) {
      reporter?.suiteBegin(p, i);
      const suite = all.find((s) => s.name === p.name)!;
      const s0 = performance.now();
      const results: CaseResult[] = [];
      for (const c of suite.cases) {
        let r: CaseResult;
        let why: string | null = null;
        let setupError = p.setupError;
        if (setupError === undefined) {
          try {
            why = p.skipReason ?? c.unavailable?.(p.backend) ?? null;
          } catch (e) {
            setupError = `the case's availability check threw: ${errorLines(e).join(' | ')}`;
          }
        }
        if (setupError !== undefined) r = { name: c.name, status: 'fail', diagnostics: [setupError], durationMs: 0 };
        else if (why !== null) r = { name: c.name, status: 'skip', reason: why, diagnostics: [], durationMs: 0 };
        else if (pool) r = await pool.run(module, suite.name, c.name, p.backend, timeoutMs);
        else r = await runInline(suite, c.name, p.backend, timeoutMs);
        results.push(r);
        reporter?.caseEnd(p, i, r);
      }
      const sr: SuiteResult = { ...p, results, durationMs: performance.now() - s0 };
      suites.push(sr);
      reporter?.suiteEnd(sr, i);
    }
  } finally {
    pool?.close();
  }
  const run: RunResult = {
    backend: opts.backend ?? 'emulated',
    suites,
    counts: countResults(suites),
    startedAt: startedAt.toISOString(),
    durationMs: performance.now() - t0,
  };
  reporter?.end(run);
  return run;
}
