// The build: binding.gyp (node-gyp, for `npm install` from source) must compile
// the same sources CMake (the canonical build) links into the addon.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
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

  // scripts/install.js picks cmake-js (a development checkout) or node-gyp (a
  // consumer of the tarball). Fake builders record which one ran.
  const hasLiburcu = spawnSync('pkg-config', ['--exists', 'liburcu-bp']).status === 0;
  function installHookBuilder(layout: { cmakeJsIn: 'parent' | 'own'; tests: boolean }): string {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'dmabuf-install-'));
    try {
      const pkg = path.join(tmp, 'app', 'node_modules', 'dmabuf');
      mkdirSync(path.join(pkg, 'scripts'), { recursive: true });
      copyFileSync(path.join(root, 'scripts', 'install.js'), path.join(pkg, 'scripts', 'install.js'));
      if (layout.tests) mkdirSync(path.join(pkg, 'test', 'native'), { recursive: true });
      const mark = (name: string): string =>
        `require('node:fs').writeFileSync(${JSON.stringify(path.join(tmp, 'ran'))}, ${JSON.stringify(name)});`;
      const cmakeJs = path.join(layout.cmakeJsIn === 'own' ? pkg : tmp, 'node_modules', 'cmake-js', 'bin');
      mkdirSync(cmakeJs, { recursive: true });
      writeFileSync(path.join(cmakeJs, 'cmake-js'), mark('cmake-js'));
      writeFileSync(path.join(tmp, 'node-gyp.js'), mark('node-gyp'));
      const r = spawnSync(process.execPath, [path.join(pkg, 'scripts', 'install.js')], {
        encoding: 'utf8',
        env: { ...process.env, DMABUF_INSTALL_FORCE_BUILD: '1', npm_config_node_gyp: path.join(tmp, 'node-gyp.js') },
      });
      expect(r.status, r.stderr).toBe(0);
      return existsSync(path.join(tmp, 'ran')) ? readFileSync(path.join(tmp, 'ran'), 'utf8') : 'nothing';
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  it.skipIf(!hasLiburcu)('the install hook builds a consumer with node-gyp even with a cmake-js further up', () => {
    expect(installHookBuilder({ cmakeJsIn: 'parent', tests: false })).toBe('node-gyp');
    // Its own cmake-js without the C++ tests (what CMakeLists.txt builds) is not a checkout either.
    expect(installHookBuilder({ cmakeJsIn: 'own', tests: false })).toBe('node-gyp');
  });

  it.skipIf(!hasLiburcu)('the install hook builds a development checkout with its own cmake-js', () => {
    expect(installHookBuilder({ cmakeJsIn: 'own', tests: true })).toBe('cmake-js');
  });
});
