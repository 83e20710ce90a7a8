// `dmabuf selftest`: the shapes shared by the suites, the runner and the emitters.
// A suite is data: a name (the kernel suite it mirrors), a description, a test
// of whether a backend can serve it, and its cases, each a plain function.

/** The backend a suite runs on. */
export type SelftestBackend = 'emulated' | 'kernel';
/** What `--backend` accepts: `auto` takes the kernel for each suite it can serve. */
export type SelftestBackendChoice = SelftestBackend | 'auto';

/** What a case is handed. */
export interface CaseContext {
  readonly backend: SelftestBackend;
  /** Ends the case as skipped, with the reason (throws). */
  skip(reason: string): never;
  /** A diagnostic line, printed with the case's result. */
  log(line: string): void;
}

export interface SelftestCase {
  /** The kernel's name for the case where there is one; no '#' and no newline. */
  readonly name: string;
  /** Returns (or resolves) when the case passed; throws when it failed. */
  run(t: CaseContext): void | Promise<void>;
  /** A reason this case cannot run on the backend, or null (checked before it runs). */
  unavailable?(backend: SelftestBackend): string | null;
}

export interface SelftestSuite {
  readonly name: string;
  readonly description: string;
  /** Why this suite cannot run on `backend` (every case is then skipped with it), or null. */
  unavailable(backend: SelftestBackend): string | null;
  readonly cases: readonly SelftestCase[];
}

export type CaseStatus = 'pass' | 'fail' | 'skip';

export interface CaseResult {
  name: string;
  status: CaseStatus;
  /** The skip reason. */
  reason?: string;
  /** Diagnostic lines: the case's log and, on failure, the error (or the timeout). */
  diagnostics: string[];
  durationMs: number;
  /** True when the case ran past the timeout and was abandoned. */
  timedOut?: boolean;
}

export interface SuitePlan {
  name: string;
  description: string;
  backend: SelftestBackend;
  /** Set when the whole suite is skipped. */
  skipReason: string | null;
  /** Set when the suite's availability check threw: every case then fails with it. */
  setupError?: string;
  cases: string[];
}

export interface SuiteResult extends SuitePlan {
  results: CaseResult[];
  durationMs: number;
}

export interface Counts {
  pass: number;
  fail: number;
  skip: number;
  total: number;
}

export interface RunResult {
  backend: SelftestBackendChoice;
  suites: SuiteResult[];
  counts: Counts;
  startedAt: string;
  durationMs: number;
}

/** Receives a run as it happens; the emitters implement it. */
export interface Reporter {
  begin(plan: SuitePlan[]): void;
  suiteBegin(suite: SuitePlan, index: number): void;
  caseEnd(suite: SuitePlan, index: number, result: CaseResult): void;
  suiteEnd(suite: SuiteResult, index: number): void;
  end(run: RunResult): void;
}

/** The status a suite line carries: failed if any case failed, skipped if all were. */
export function suiteStatus(s: SuiteResult): CaseStatus {
  if (s.results.some((r) => r.status === 'fail')) return 'fail';
  if (s.results.length > 0 && s.results.every((r) => r.status === 'skip')) return 'skip';
  if (s.results.length === 0 && s.skipReason) return 'skip';
  return 'pass';
}

export function countResults(suites: readonly SuiteResult[]): Counts {
  const c: Counts = { pass: 0, fail: 0, skip: 0, total: 0 };
  for (const s of suites) {
    for (const r of s.results) {
      c[r.status]++;
      c.total++;
    }
  }
  return c;
}
