// The published types, as a consumer's compiler sees them (dist/, npm run build:ts
// first): errno-name and heap-kind unions, internals stripped, `import` resolving
// to the .d.mts, no @types/node needed; and Issuer[Symbol.asyncDispose].
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DMABUF_ERROR_CODES, errnoName, errnoNumber } from '../lib/errors';
import { Issuer } from '../lib/issuer';

const root = path.join(__dirname, '..');

function sources(dir: string, exts: string[]): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && exts.some((x) => e.name.endsWith(x)))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('DmaBufError.code', () => {
  it('DMABUF_ERROR_CODES names every errno the sources produce, each a Linux errno', () => {
    const named = new Set<string>();
    for (const f of sources(path.join(root, 'native'), ['.cc', '.h', '.c'])) {
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/-(E[A-Z][A-Z0-9]+)\b/g)) named.add(m[1]!);
    }
    for (const f of sources(path.join(root, 'lib'), ['.ts'])) {
      if (f.endsWith(`${path.sep}errors.ts`)) continue;
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/DmaBufError\(\s*'(E[A-Z][A-Z0-9]+)'/g)) named.add(m[1]!);
    }
    named.delete('ERESTARTSYS'); // kernel-internal, turned into EINTR (core/base/interrupt.h)
    expect(named.size).toBeGreaterThan(10);
    const known = new Set<string>(DMABUF_ERROR_CODES);
    // An alias (EWOULDBLOCK is EAGAIN) reaches JS under the name errnoName() gives its number.
    const asThrown = (n: string): string => (errnoNumber(n) === undefined ? n : errnoName(errnoNumber(n)!));
    expect([...named].map(asThrown).filter((n) => !known.has(n))).toEqual([]);
    for (const c of DMABUF_ERROR_CODES) expect(errnoNumber(c), c).toBeLessThan(0);
  });
});

describe('Issuer[Symbol.asyncDispose]', () => {
  it('unloads, then disposes; once disposed it does nothing; it is brand-checked', async () => {
    const iss = new Issuer({ driverName: 'async-dispose', timelineName: 't' });
    const f = iss.createFence();
    await iss[Symbol.asyncDispose]();
    expect(iss.disposed).toBe(true);
    expect(f.driverName).toBe('async-dispose');
    f.dispose();
    await iss[Symbol.asyncDispose]();
    await expect(Issuer.prototype[Symbol.asyncDispose].call({})).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('published declarations (dist/)', () => {
  it('carry no @internal declarations', () => {
    for (const f of sources(path.join(root, 'dist'), ['.d.ts'])) expect(fs.readFileSync(f, 'utf8'), f).not.toMatch(/@internal/);
  });

  it('compile for a strict NodeNext consumer without @types/node, from import (.d.mts) and require', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-types-'));
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'));
      fs.symlinkSync(root, path.join(dir, 'node_modules', 'dmabuf'));
      fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module", "private": true }\n');
      fs.writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022'], types: [],
            noEmit: true, skipLibCheck: false, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true,
            traceResolution: false,
          },
          files: ['esm.ts', 'cjs.cts'],
        }),
      );
      fs.writeFileSync(
        path.join(dir, 'esm.ts'),
        `import dmabuf, { Fence, DmaBufError, Issuer, type DmaBufErrorCode, type HeapKind } from 'dmabuf';
const f = new Fence();
f.signal();
const code: DmaBufErrorCode = 'EBUSY';
// @ts-expect-error a typo is no errno name
const typo: DmaBufErrorCode = 'EBUSSY';
const kind: HeapKind | undefined = dmabuf.listHeaps()[0]?.kind;
// @ts-expect-error not a heap kind
const k2: HeapKind = 'dma';
try { f.setError('EIO'); } catch (e) { if (e instanceof DmaBufError && e.code === 'EBUSY') f.dispose(); }
// @ts-expect-error internal members are stripped
f.handle;
// @ts-expect-error a Heap is made by openHeap() only (its constructor is internal)
new dmabuf.Heap();
async function g(): Promise<void> { await using gpu = new Issuer({ driverName: 'a', timelineName: 'b' }); gpu.createFence().dispose(); }
export { code, typo, kind, k2, g };
`,
      );
      fs.writeFileSync(path.join(dir, 'cjs.cts'), `import dm = require('dmabuf');\nconst f = new dm.Fence();\nf.signal();\nexport = f.status;\n`);
      const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', dir, '--traceResolution'], { encoding: 'utf8', timeout: 60000 });
      const errors = r.stdout.split('\n').filter((l) => /error TS/.test(l));
      expect(errors).toEqual([]);
      expect(r.status).toBe(0);
      // `import` took the ES module's types, `require` the CommonJS ones
      expect(r.stdout).toMatch(/'dmabuf' was successfully resolved to '[^']*dist\/index\.d\.mts'/);
      expect(r.stdout).toMatch(/'dmabuf' was successfully resolved to '[^']*dist\/index\.d\.ts'/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
