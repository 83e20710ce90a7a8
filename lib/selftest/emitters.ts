// The output formats farms parse, each a Reporter that writes as the run goes
// (ktap, tap, lava) or once at the end (junit, json).
//
//   ktap   KTAP v1 (Documentation/dev-tools/ktap.rst): version line and plan,
//          each suite a subtest indented 2 spaces with its own version line,
//          "# Subtest:" header and plan; diagnostics ("# ...") before a failed
//          case's result line; "# SKIP reason" directives.
//   tap    TAP 14: "# Subtest:" and 4-space indented subtests, a YAML block
//          (message, diagnostics) under a failed case.
//   junit  one <testsuite> per suite inside <testsuites>.
//   json   the shape kunit.py --json writes for KernelCI (groups of test_cases
//          with PASS/FAIL/SKIP), plus the reason, log and duration of each case.
//   lava   the LAVA test shell's signals, as `lava-test-case` and
//          `lava-test-set` print them: a test set per suite, a test case per case.
import * as os from 'node:os';
import type { CaseResult, Reporter, RunResult, SuitePlan, SuiteResult } from './types';
import { suiteStatus } from './types';

export const FORMATS = ['ktap', 'tap', 'junit', 'json', 'lava'] as const;
export type SelftestFormat = (typeof FORMATS)[number];

type Write = (text: string) => void;

/** A test name as KTAP/TAP allow it: one line, no '#'. */
function lineName(name: string): string {
  return name.replace(/[\r\n]+/g, ' ').replace(/#/g, '_');
}
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/#/g, '_');
}

function suiteSkipReason(s: SuiteResult): string {
  return s.skipReason ?? s.results.find((r) => r.reason)?.reason ?? 'all cases skipped';
}

function summary(run: RunResult): string {
  const c = run.counts;
  return `${c.pass} passed, ${c.fail} failed, ${c.skip} skipped (of ${c.total})`;
}

export class KtapReporter implements Reporter {
  constructor(private readonly write: Write) {}
  begin(plan: SuitePlan[]): void {
    this.write(`KTAP version 1\n1..${plan.length}\n`);
  }
  suiteBegin(s: SuitePlan): void {
    this.write(`  KTAP version 1\n  # Subtest: ${lineName(s.name)}\n  1..${s.cases.length}\n`);
    this.write(`  # ${oneLine(s.description)} (backend: ${s.backend})\n`);
  }
  caseEnd(_s: SuitePlan, _i: number, r: CaseResult): void {
    const name = lineName(r.name);
    let out = '';
    for (const d of r.diagnostics) out += `  # ${name}: ${d}\n`;
    const n = _s.cases.indexOf(r.name) + 1;
    if (r.status === 'skip') out += `  ok ${n} ${name} # SKIP ${oneLine(r.reason ?? '')}\n`;
    else out += `  ${r.status === 'pass' ? 'ok' : 'not ok'} ${n} ${name}\n`;
    this.write(out);
  }
  suiteEnd(s: SuiteResult, i: number): void {
    const st = suiteStatus(s);
    const c = s.results;
    const counts = `pass:${c.filter((r) => r.status === 'pass').length} fail:${c.filter((r) => r.status === 'fail').length} skip:${c.filter((r) => r.status === 'skip').length} total:${c.length}`;
    this.write(`  # ${lineName(s.name)}: ${counts}\n`);
    if (st === 'skip') this.write(`ok ${i + 1} ${lineName(s.name)} # SKIP ${oneLine(suiteSkipReason(s))}\n`);
    else this.write(`${st === 'pass' ? 'ok' : 'not ok'} ${i + 1} ${lineName(s.name)}\n`);
  }
  end(run: RunResult): void {
    const c = run.counts;
    this.write(`# Totals: pass:${c.pass} fail:${c.fail} skip:${c.skip} total:${c.total}\n`);
  }
}

/** A YAML scalar: JSON strings are YAML. */
const y = (v: unknown): string => JSON.stringify(v);

export class TapReporter implements Reporter {
  constructor(private readonly write: Write) {}
  begin(plan: SuitePlan[]): void {
    this.write(`TAP version 14\n1..${plan.length}\n`);
  }
  suiteBegin(s: SuitePlan): void {
    this.write(`# Subtest: ${lineName(s.name)}\n    # ${oneLine(s.description)} (backend: ${s.backend})\n    1..${s.cases.length}\n`);
  }
  caseEnd(s: SuitePlan, _i: number, r: CaseResult): void {
    const n = s.cases.indexOf(r.name) + 1;
    const name = lineName(r.name);
    if (r.status === 'skip') {
      this.write(`    ok ${n} - ${name} # SKIP ${oneLine(r.reason ?? '')}\n`);
      return;
    }
    let out = `    ${r.status === 'pass' ? 'ok' : 'not ok'} ${n} - ${name}\n`;
    if (r.status === 'fail') {
      out += '      ---\n';
      out += `      message: ${y(r.timedOut ? 'timed out' : (r.diagnostics[0] ?? 'failed'))}\n`;
      out += `      severity: fail\n`;
      out += `      duration_ms: ${r.durationMs.toFixed(3)}\n`;
      if (r.diagnostics.length) {
        out += '      diagnostics:\n';
        for (const d of r.diagnostics) out += `        - ${y(d)}\n`;
      }
      out += '      ...\n';
    }
    this.write(out);
  }
  suiteEnd(s: SuiteResult, i: number): void {
    const st = suiteStatus(s);
    if (st === 'skip') this.write(`ok ${i + 1} - ${lineName(s.name)} # SKIP ${oneLine(suiteSkipReason(s))}\n`);
    else this.write(`${st === 'pass' ? 'ok' : 'not ok'} ${i + 1} - ${lineName(s.name)}\n`);
  }
  end(run: RunResult): void {
    this.write(`# ${summary(run)}\n`);
  }
}

/** Text as XML character data or an attribute value (characters XML 1.0 forbids are dropped). */
function xml(text: string): string {
  return text
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
const secs = (ms: number): string => (ms / 1000).toFixed(3);

/** JUnit XML for a finished run (no streaming: the document is written at the end). */
export function formatJunit(run: RunResult): string {
  const c = run.counts;
  const host = os.hostname();
  let out = '<?xml version="1.0" encoding="UTF-8"?>\n';
  out += `<testsuites name="dmabuf selftest" tests="${c.total}" failures="${c.fail}" errors="0" skipped="${c.skip}" time="${secs(run.durationMs)}" timestamp="${xml(run.startedAt)}">\n`;
  for (const [i, s] of run.suites.entries()) {
    const n = (st: string) => s.results.filter((r) => r.status === st).length;
    out += `  <testsuite id="${i}" name="${xml(s.name)}" tests="${s.results.length}" failures="${n('fail')}" errors="0" skipped="${n('skip')}" time="${secs(s.durationMs)}" timestamp="${xml(run.startedAt)}" hostname="${xml(host)}">\n`;
    out += `    <properties>\n      <property name="backend" value="${s.backend}"/>\n      <property name="description" value="${xml(s.description)}"/>\n`;
    if (s.skipReason) out += `      <property name="skip_reason" value="${xml(s.skipReason)}"/>\n`;
    out += '    </properties>\n';
    for (const r of s.results) {
      const open = `    <testcase classname="${xml(s.name)}" name="${xml(r.name)}" time="${secs(r.durationMs)}"`;
      if (r.status === 'pass' && r.diagnostics.length === 0) {
        out += `${open}/>\n`;
        continue;
      }
      out += `${open}>\n`;
      if (r.status === 'skip') out += `      <skipped message="${xml(r.reason ?? '')}"/>\n`;
      else if (r.status === 'fail') {
        const type = r.timedOut ? 'timeout' : 'failure';
        out += `      <failure type="${type}" message="${xml(r.diagnostics[0] ?? 'failed')}">${xml(r.diagnostics.join('\n'))}</failure>\n`;
      } else out += `      <system-out>${xml(r.diagnostics.join('\n'))}</system-out>\n`;
      out += '    </testcase>\n';
    }
    out += '  </testsuite>\n';
  }
  return out + '</testsuites>\n';
}

const JSON_STATUS = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP' } as const;

/** The run as kunit.py --json shapes it for KernelCI, with a few more fields per case. */
export function toKernelCiJson(run: RunResult): object {
  const common = {
    arch: os.machine?.() ?? process.arch,
    defconfig: '',
    build_environment: '',
    lab_name: null,
    kernel: os.release(),
    job: null,
    git_branch: 'kselftest',
  };
  return {
    name: 'dmabuf selftest',
    sub_groups: run.suites.map((s) => ({
      name: s.name,
      sub_groups: [],
      test_cases: s.results.map((r) => ({
        name: r.name,
        status: JSON_STATUS[r.status],
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
        ...(r.diagnostics.length ? { log: r.diagnostics } : {}),
        duration_ms: Number(r.durationMs.toFixed(3)),
        ...(r.timedOut ? { timed_out: true } : {}),
      })),
      ...common,
      backend: s.backend,
      description: s.description,
      ...(s.skipReason ? { skip_reason: s.skipReason } : {}),
    })),
    test_cases: [],
    ...common,
    backend: run.backend,
    started_at: run.startedAt,
    duration_ms: Number(run.durationMs.toFixed(3)),
    totals: run.counts,
  };
}

/** LAVA's names: letters, digits, '_', '-', '.' */
function lavaId(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

export class LavaReporter implements Reporter {
  constructor(private readonly write: Write) {}
  begin(): void {}
  suiteBegin(s: SuitePlan): void {
    this.write(`<LAVA_SIGNAL_TESTSET START ${lavaId(s.name)}>\n`);
  }
  caseEnd(_s: SuitePlan, _i: number, r: CaseResult): void {
    let out = '';
    for (const d of r.diagnostics) out += `# ${r.name}: ${d}\n`;
    if (r.status === 'skip') out += `# ${r.name}: SKIP ${r.reason ?? ''}\n`;
    const result = r.status;
    out += `<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=${lavaId(r.name)} RESULT=${result} MEASUREMENT=${r.durationMs.toFixed(3)} UNITS=ms>\n`;
    this.write(out);
  }
  suiteEnd(): void {
    this.write('<LAVA_SIGNAL_TESTSET STOP>\n');
  }
  end(run: RunResult): void {
    this.write(`# ${summary(run)}\n`);
  }
}

/** A reporter that writes nothing until the end (junit, json). */
class AtEnd implements Reporter {
  constructor(private readonly finish: (run: RunResult) => void) {}
  begin(): void {}
  suiteBegin(): void {}
  caseEnd(): void {}
  suiteEnd(): void {}
  end(run: RunResult): void {
    this.finish(run);
  }
}

export function createReporter(format: SelftestFormat, write: Write): Reporter {
  switch (format) {
    case 'ktap':
      return new KtapReporter(write);
    case 'tap':
      return new TapReporter(write);
    case 'lava':
      return new LavaReporter(write);
    case 'junit':
      return new AtEnd((run) => write(formatJunit(run)));
    case 'json':
      return new AtEnd((run) => write(JSON.stringify(toKernelCiJson(run), null, 2) + '\n'));
  }
}

/** The whole run in one format, as a string (replays a finished run through the reporter). */
export function formatRun(run: RunResult, format: SelftestFormat): string {
  let out = '';
  const r = createReporter(format, (t) => (out += t));
  r.begin(run.suites);
  for (const [i, s] of run.suites.entries()) {
    r.suiteBegin(s, i);
    for (const c of s.results) r.caseEnd(s, i, c);
    r.suiteEnd(s, i);
  }
  r.end(run);
  return out;
}
