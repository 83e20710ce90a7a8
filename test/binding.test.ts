// The addon is typed in one place: the NativeBinding interface of
// lib/internal/binding.ts. Its declared functions and the addon's exports must
// be the same set, so nothing is called untyped and nothing typed is missing.
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { binding } from '../lib/internal/binding';

const source = readFileSync(path.join(__dirname, '..', 'lib', 'internal', 'binding.ts'), 'utf8');

/** The member names of `export interface NativeBinding { ... }`, in order. */
function declaredNames(): string[] {
  const body = /export interface NativeBinding \{\n([\s\S]*?)\n\}\n/.exec(source)?.[1];
  expect(body, 'NativeBinding interface not found in lib/internal/binding.ts').toBeDefined();
  const names: string[] = [];
  // One member per line: `name(args): T;` or `name: T;` (comment lines start with / or *).
  for (const m of body!.matchAll(/^\s*([A-Za-z_$][\w$]*)\??\s*[(:<]/gm)) names.push(m[1]!);
  return names;
}

describe('binding', () => {
  it('declares every function once', () => {
    const names = declaredNames();
    expect(names.length).toBeGreaterThan(100);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });

  it("the addon's exports are exactly the functions NativeBinding declares", () => {
    const declared = new Set(declaredNames());
    const exported = Object.keys(binding);
    const undeclared = exported.filter((n) => !declared.has(n));
    const missing = [...declared].filter((n) => !exported.includes(n));
    expect({ undeclared, missing }).toEqual({ undeclared: [], missing: [] });
    const raw = binding as unknown as Record<string, unknown>;
    expect(exported.filter((n) => typeof raw[n] !== 'function')).toEqual([]);
  });

  it('no lib/ file declares its own binding interface or casts the binding', () => {
    const lib = path.join(__dirname, '..', 'lib');
    const files = readdirSync(lib, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && f !== path.join('internal', 'binding.ts'));
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      const text = readFileSync(path.join(lib, f), 'utf8');
      expect(text, f).not.toMatch(/interface \w*Binding\b/);
      expect(text, f).not.toMatch(/binding as unknown as/i);
    }
  });
});
