import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, system } from '../../test/support/fixtures.ts';
import { fileMirror, sealIfFree } from './sealer.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] mirror.int.test.ts skipped: ${skip}`);
}

/** OWASP ASVS 16.4.3: a second copy of every sealed entry outside the database. */
describe.skipIf(skip)('the audit mirror', () => {
  let c: TestCustos;
  let dir: string;
  beforeAll(async () => {
    c = await openTestCustos();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-mirror-'));
  });
  afterAll(async () => {
    await c?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes each sealed entry once as a JSON line, with ids and pseudonyms only', async () => {
    const file = path.join(dir, 'audit.jsonl');
    const sys = system(c.practiceId);
    const { id } = await c.chart.createPatient(
      sys,
      identity({ name: { given: ['Mirrortest'], family: 'Nomatch' } }),
    );
    await c.chart.readPatient(sys, id);
    const first = await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: fileMirror(file) });
    expect(first).toMatchObject({ checkpoints: 1, entries: 2 });
    await c.chart.readChart(sys, id);
    await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: fileMirror(file) });
    await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: fileMirror(file) });
    const lines = fs
      .readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.seq, l.action, l.checkpoint])).toEqual([
      ['1', 'create', 1],
      ['2', 'read', 1],
      ['3', 'read', 2],
    ]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain('Mirrortest');
    expect(text).not.toContain(id);
  });
});
