// The build: binding.gyp (node-gyp, for `npm install` from source) must compile
// the same sources CMake (the canonical build) links into the addon.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');

function cmakeAddonSources(): string[] {
  const cmake = readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
  // Every file(GLOB[_RECURSE] DMABUF_{CORE,KERNEL,BENCH,ADDON}_SOURCES ...) feeds the addon.
  const globs = [
    ...cmake.matchAll(/file\((GLOB|GLOB_RECURSE) DMABUF_(CORE|KERNEL|BENCH|ADDON)_SOURCES CONFIGURE_DEPENDS ([^)]+)\)/g),
  ];
  expect(globs.map((g) => g[2]).sort()).toEqual(['ADDON', 'BENCH', 'CORE', 'KERNEL']);
  const files: string[] = [];
  for (const g of globs) {
    const recursive = g[1] === 'GLOB_RECURSE';
    for (const pattern of g[3]!.trim().split(/\s+/)) {
      const dir = path.dirname(pattern);
      const ext = path.extname(pattern);
      let names: string[] = [];
      try {
        names = readdirSync(path.join(root, dir), { recursive });
      } catch {
        names = [];
      }
      for (const n of names) if (n.endsWith(ext)) files.push(`${dir}/${n}`);
    }
  }
  return files.sort();
}

function gypSources(): string[] {
  const gyp = JSON.parse(readFileSync(path.join(root, 'binding.gyp'), 'utf8')) as {
    targets: Array<{ target_name: string; sources: string[] }>;
  };
  const t = gyp.targets.find((x) => x.target_name === 'dmabuf');
  expect(t).toBeDefined();
  return [...t!.sources].sort();
}

describe('build', () => {
  it('binding.gyp and CMakeLists.txt compile the same addon sources', () => {
    const cmake = cmakeAddonSources();
    expect(cmake.length).toBeGreaterThan(5);
    expect(gypSources()).toEqual(cmake);
  });

  it('both builds use the same NAPI_VERSION as package.json', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      binary: { napi_versions: number[] };
    };
    const v = pkg.binary.napi_versions[0];
    expect(readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8')).toContain(`NAPI_VERSION=${v}`);
    expect(readFileSync(path.join(root, 'binding.gyp'), 'utf8')).toContain(`NAPI_VERSION=${v}`);
  });

  it('the package loads by name from require and import, with the same objects', () => {
    const script = `
      import { createRequire } from 'node:module';
      import * as esm from 'dmabuf';
      const cjs = createRequire(import.meta.url)('dmabuf');
      const f = new esm.Fence(); f.signal();
      console.log(JSON.stringify({ same: esm.Fence === cjs.Fence && esm.default === cjs, status: f.status }));
      f.dispose();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ same: true, status: 1 });
  });
});
