// Runs a shipped `dmabuf selftest` suite's cases as vitest tests, from the
// TypeScript sources: the kernel-suite ports live once, in lib/selftest/suites,
// and both `dmabuf selftest` and `npm test` run them.
import { describe, it } from 'vitest';
import { execCase } from '../lib/selftest/exec';
import type { SelftestBackend, SelftestSuite } from '../lib/selftest/types';

export function describeSuite(suite: SelftestSuite, backend: SelftestBackend = 'emulated'): void {
  describe(suite.name, () => {
    for (const c of suite.cases) {
      const why = suite.unavailable(backend) ?? c.unavailable?.(backend) ?? null;
      it.skipIf(why !== null)(c.name, async (ctx) => {
        const r = await execCase(c, backend);
        if (r.status === 'skip') ctx.skip(r.reason);
        if (r.status === 'fail') throw new Error(r.diagnostics.join('\n'));
      });
    }
  });
}
