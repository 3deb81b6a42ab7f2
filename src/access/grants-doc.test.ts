import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL, CLINICAL_SECTIONS, GRANTS, ROLES, type Role, SECTIONS } from './grants.ts';

/** docs/access-control.md prints the grant tables; this keeps the page and the code in step. */
const doc = fs.readFileSync(new URL('../../docs/access-control.md', import.meta.url), 'utf8');

/** The rows of the table whose header starts with `| role | <first> |`. */
function table(first: string): Map<Role, string[]> {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| role | ${first} |`));
  expect(start, `table starting with ${first}`).toBeGreaterThan(-1);
  const rows = new Map<Role, string[]>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) {
      break;
    }
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    rows.set(cells[0]!.replaceAll('`', '') as Role, cells.slice(1));
  }
  return rows;
}

describe('docs/access-control.md', () => {
  it('prints the read grants of every role, field by field', () => {
    const rows = table('demographics');
    expect([...rows.keys()].sort()).toEqual([...ROLES].sort());
    for (const role of ROLES) {
      const printed = rows.get(role)!;
      SECTIONS.forEach((section, i) => {
        const f = GRANTS[role].read[section];
        const want = f === undefined ? '—' : f === ALL ? 'all' : f.join(', ');
        expect(printed[i], `${role} ${section}`).toBe(want);
      });
    }
  });

  it('prints the write grants of every role', () => {
    const rows = table('sections');
    for (const role of ROLES) {
      const cell = rows.get(role)![0]!;
      const w = GRANTS[role].write;
      const clinical = CLINICAL_SECTIONS.every((s) => w.includes(s));
      expect(cell.includes('every clinical section'), role).toBe(clinical);
      for (const s of ['demographics', 'contact', 'appointments', 'messages'] as const) {
        expect(cell.includes(s), `${role} ${s}`).toBe(w.includes(s));
      }
      expect(cell.includes('normal only'), role).toBe(
        clinical && !GRANTS[role].sensitivities.includes('restricted'),
      );
    }
  });

  it('prints the other permissions of every role', () => {
    const rows = table('care team');
    const columns = [
      'careTeam',
      'consent',
      'flag',
      'breakGlass',
      'export',
      'release',
      'report',
      'bulkExport',
    ] as const;
    for (const role of ROLES) {
      columns.forEach((c, i) => {
        expect(rows.get(role)![i], `${role} ${c}`).toBe(GRANTS[role][c] ? 'yes' : '—');
      });
    }
  });
});
