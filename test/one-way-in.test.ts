import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * DESIGN.md invariant 1, the authority (the lint rule is the fast feedback): only files under
 * src/chart/ import the health-data tables (`src/chart/tables.ts`) or a chart store.
 */
const root = path.resolve(import.meta.dirname, '..');
const src = path.join(root, 'src');

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? files(p) : /\.(ts|tsx|js|mjs)$/.test(d.name) ? [p] : [];
  });
}

const IMPORT =
  /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/g;

function privateChartImports(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    if (!spec.startsWith('.')) {
      continue;
    }
    const target = path.relative(src, path.resolve(path.dirname(file), spec));
    if (/^chart\/(tables|[^/]*\.store)(\.ts|\.js)?$/.test(target)) {
      found.push(spec);
    }
  }
  return found;
}

describe('one way in', () => {
  it('lets no file outside src/chart import the health-data tables or their store', () => {
    const offenders = files(src)
      .filter((f) => !f.startsWith(path.join(src, 'chart') + path.sep))
      .flatMap((f) =>
        privateChartImports(f, fs.readFileSync(f, 'utf8')).map(
          (spec) => `${path.relative(root, f)} -> ${spec}`,
        ),
      );
    expect(offenders).toEqual([]);
  });

  it('detects such an import (the scanner can fail)', () => {
    const fake = path.join(src, 'http', 'routes.ts');
    expect(privateChartImports(fake, "import type { ChartTables } from '../chart/tables.ts';")).toEqual([
      '../chart/tables.ts',
    ]);
    expect(privateChartImports(fake, "const s = await import('../chart/chart.store.ts');")).toEqual([
      '../chart/chart.store.ts',
    ]);
    expect(privateChartImports(fake, "export * from '../chart/chart.store';")).toEqual([
      '../chart/chart.store',
    ]);
    expect(privateChartImports(fake, "import { Chart } from '../chart/gate.ts';")).toEqual([]);
  });

  it('sees the chart module itself importing them (it scans what it claims to)', () => {
    const gate = path.join(src, 'chart', 'gate.ts');
    expect(privateChartImports(gate, fs.readFileSync(gate, 'utf8')).length).toBeGreaterThan(0);
  });
});
