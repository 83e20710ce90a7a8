// The child process of `dmabuf selftest`: loads the suites module named by the
// parent and runs the cases it is sent, one at a time, answering each with its
// CaseResult. The parent kills it when a case runs past the timeout.
import { execCase, errorLines } from './exec';
import type { SelftestBackend, SelftestSuite } from './types';

type RunMessage = { type: 'run'; id: number; module: string; suite: string; case: string; backend: SelftestBackend };

const loaded = new Map<string, readonly SelftestSuite[]>();
function suitesOf(module: string): readonly SelftestSuite[] {
  let s = loaded.get(module);
  if (!s) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    s = (require(module) as { suites: readonly SelftestSuite[] }).suites;
    loaded.set(module, s);
  }
  return s;
}

// A rejection or exception nobody waited for fails the case that is running
// (or the next one, if it came after its case ended) instead of killing the child.
let stray: string[] = [];
process.on('unhandledRejection', (e) => stray.push('unhandled rejection:', ...errorLines(e)));
process.on('uncaughtException', (e) => stray.push('uncaught exception:', ...errorLines(e)));

process.on('message', (m: RunMessage) => {
  if (m?.type !== 'run') return;
  void (async () => {
    const suite = suitesOf(m.module).find((s) => s.name === m.suite);
    const c = suite?.cases.find((x) => x.name === m.case);
    if (!c) {
      process.send!({ type: 'result', id: m.id, result: { name: m.case, status: 'fail', diagnostics: [`no case ${m.suite}/${m.case} in ${m.module}`], durationMs: 0 } });
      return;
    }
    const r = await execCase(c, m.backend);
    if (stray.length) {
      r.diagnostics.push(...stray);
      r.status = 'fail';
      delete r.reason;
      stray = [];
    }
    process.send!({ type: 'result', id: m.id, result: r });
  })();
});
// The runner went away (killed, or its pipe closed): nothing will read our results.
process.on('disconnect', () => process.exit(1));
process.send!({ type: 'ready' });
