// Every ```js example in the README runs, and prints what its comments say.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);

// The values a `// a b c` comment after console.log(...) promises, in order.
function expectedOutputs(code: string): string[] {
  const out: string[] = [];
  for (const line of code.split('\n')) {
    const m = line.match(/console\.log\(.*\);\s*\/\/\s*(.+)$/);
    if (m) out.push(m[1]!.split(':')[0]!.trim());
  }
  return out;
}

describe('README examples', () => {
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
  });

  blocks.forEach((code, i) => {
    it(`example ${i + 1} runs and prints what it says`, () => {
      const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8', timeout: 20000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const printed = r.stdout.replace(/'/g, '');
      for (const want of expectedOutputs(code)) {
        // e.g. "1 'detached-driver'" → 1 detached-driver (quotes as inspect prints strings)
        const norm = want.replace(/'/g, '').replace(/\s+/g, ' ');
        expect(printed.replace(/\s+/g, ' ')).toContain(norm);
      }
    });
  });
});
