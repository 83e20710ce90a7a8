// The runner the real-kernel JS tests share. It prints KTAP v1 through the
// same emitter as `dmabuf selftest` (dist/selftest): a version line and plan,
// the script's cases as one nested suite named after the script, "# SKIP
// reason" for skipped cases, diagnostics before a failed case's result line,
// and a "# Totals:" line. Exit status 1 when a case failed. Cases run in this
// process, in order; an async case that runs past `timeoutMs` (default 120 s)
// fails and the run goes on.
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const { KtapReporter, countResults } = require('../../dist/selftest/index.js');

/** `name` defaults to the script's file name without its extension. */
export function suite(name = path.basename(process.argv[1] ?? 'kernel-tests').replace(/\.m?js$/, '')) {
  const cases = [];
  return {
    /** Registers a case; `needs` is whatever the run's `skipWhy(needs)` understands. */
    test(caseName, fn, needs = []) {
      cases.push({ name: caseName, fn, needs });
    },
    /**
     * Runs the cases in order. `why` skips them all (with that reason); otherwise
     * `skipWhy(needs)` may skip one case. A case may skip itself by returning a
     * string, or add a diagnostic to its "ok" line by returning 'note: ...'.
     */
    async run({ why = null, skipWhy = () => null, timeoutMs = 120000 } = {}) {
      const out = new KtapReporter((t) => process.stdout.write(t));
      const plan = { name, description: `${name}: real-kernel tests`, backend: 'kernel', skipReason: why, cases: cases.map((c) => c.name) };
      const startedAt = new Date();
      const t0 = performance.now();
      out.begin([plan]);
      out.suiteBegin(plan, 0);
      const results = [];
      for (const c of cases) {
        const start = performance.now();
        const r = { name: c.name, status: 'pass', diagnostics: [], durationMs: 0 };
        const skip = why ?? skipWhy(c.needs);
        if (skip) Object.assign(r, { status: 'skip', reason: skip });
        else {
          let timer;
          try {
            const v = await Promise.race([
              Promise.resolve().then(c.fn),
              new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
              }),
            ]);
            if (typeof v === 'string' && !v.startsWith('note: ')) Object.assign(r, { status: 'skip', reason: v });
            else if (typeof v === 'string') r.diagnostics.push(v.slice(6));
          } catch (e) {
            r.status = 'fail';
            r.diagnostics.push(...String(e?.stack ?? e).split('\n').filter((l) => l.trim()));
          } finally {
            clearTimeout(timer);
          }
        }
        r.durationMs = performance.now() - start;
        results.push(r);
        out.caseEnd(plan, 0, r);
      }
      const s = { ...plan, results, durationMs: performance.now() - t0 };
      out.suiteEnd(s, 0);
      const counts = countResults([s]);
      out.end({ backend: 'kernel', suites: [s], counts, startedAt: startedAt.toISOString(), durationMs: performance.now() - t0 });
      process.exit(counts.fail ? 1 : 0);
    },
  };
}
