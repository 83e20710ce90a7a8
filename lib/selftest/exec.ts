// Runs one case and turns what happened into a CaseResult (used in the child
// process and by the inline runner).
import type { CaseContext, CaseResult, SelftestBackend, SelftestCase } from './types';

const SKIP = Symbol.for('dmabuf.selftest.skip');

class SkipSignal extends Error {
  readonly [SKIP] = true;
  constructor(readonly reason: string) {
    super(`skipped: ${reason}`);
  }
}

function isSkip(e: unknown): e is SkipSignal {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[SKIP] === true;
}

/** An error as diagnostic lines: its stack (or message) and, for assertions, what was compared. */
export function errorLines(e: unknown): string[] {
  const err = e as { stack?: unknown; message?: unknown; code?: unknown } | null;
  let text: string;
  if (err && typeof err.stack === 'string') text = err.stack;
  else if (err && typeof err.message === 'string') text = err.message;
  else text = String(e);
  if (err && typeof err.code === 'string' && !text.includes(err.code)) text += ` (code ${err.code})`;
  return text.split('\n').map((l) => l.replace(/\s+$/, '')).filter((l) => l.length > 0);
}

export async function execCase(c: SelftestCase, backend: SelftestBackend): Promise<CaseResult> {
  const diagnostics: string[] = [];
  const t: CaseContext = {
    backend,
    skip(reason: string): never {
      throw new SkipSignal(reason);
    },
    log(line: string) {
      diagnostics.push(...String(line).split('\n'));
    },
  };
  const start = performance.now();
  const done = (status: CaseResult['status'], extra: Partial<CaseResult> = {}): CaseResult => ({
    name: c.name,
    status,
    diagnostics,
    durationMs: performance.now() - start,
    ...extra,
  });
  try {
    await c.run(t);
    return done('pass');
  } catch (e) {
    if (isSkip(e)) return done('skip', { reason: e.reason });
    diagnostics.push(...errorLines(e));
    return done('fail');
  }
}
