// Replays every seed of the fuzzer's corpus (test/fuzz/corpus/*.json), each
// in its own child process: a seed that once crashed, hung or threw a stray
// error class must now run clean. test/fuzz/README.md says how to add seeds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

interface CorpusEntry {
  file: string;
  seed: number;
  ops?: number;
  without?: string[];
  key: string;
  triggers?: string;
  /** Runs of a timing-dependent seed (each must pass). */
  repeat?: number;
}
interface RunResult {
  ok: boolean;
  kind: string;
  reason: string;
  lastOps: string[];
  stderrTail: string;
}
interface Harness {
  readCorpus(): CorpusEntry[];
  runSeed(seed: number, opts: { ops?: number; without?: string[]; timeoutMs?: number }): Promise<RunResult>;
}

const harnessPath = path.join(__dirname, 'fuzz', 'harness.mjs');
const pkg = path.join(__dirname, '..', 'dist', 'index.js');
const corpusDir = path.join(__dirname, 'fuzz', 'corpus');
const entries: CorpusEntry[] = fs.existsSync(corpusDir)
  ? fs
      .readdirSync(corpusDir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => ({ file: f, ...(JSON.parse(fs.readFileSync(path.join(corpusDir, f), 'utf8')) as Omit<CorpusEntry, 'file'>) }))
  : [];

describe.skipIf(!fs.existsSync(pkg) || entries.length === 0)('fuzz corpus', () => {
  for (const e of entries) {
    it(`seed ${e.seed}: ${e.triggers ?? e.key}`, async () => {
      const h = (await import(harnessPath)) as Harness;
      for (let i = 0; i < (e.repeat ?? 1); i++) {
        // 60 s: a seed takes 2-5 s with the ASan addon, but 15-50 s on a 2-core
        // machine at load 15; a real hang is still one (the corpus's hangs never end).
        const r = await h.runSeed(e.seed, { ops: e.ops ?? 300, without: e.without ?? [], timeoutMs: 60000 });
        const detail = r.ok ? '' : `${r.kind}: ${r.reason}\nlast ops:\n${r.lastOps.join('\n')}\n${r.stderrTail}`;
        expect(detail).toBe('');
      }
    }, 65000 * (e.repeat ?? 1) + 10000);
  }
});
