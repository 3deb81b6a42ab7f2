import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCustosError } from '../errors.ts';
import { CodeList, importCodeList, importedFile, parseCodeList, STARTER_FILE } from './icd10.ts';

describe('the ICD-10-CM code list', () => {
  const list = CodeList.load();

  it('loads the bundled starter list when nothing is imported', () => {
    expect(list.source).toBe('starter');
    const lines = fs
      .readFileSync(STARTER_FILE, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z]/.test(l));
    expect(list.size).toBe(lines.length);
    expect(list.lookup('f32.1')).toEqual({
      code: 'F32.1',
      display: 'Major depressive disorder, single episode, moderate',
    });
  });

  it('finds a code by its prefix, with or without the dot, exact match first', () => {
    const r = list.search('F43.1');
    expect(r.codes.map((c) => c.code)).toEqual(['F43.10', 'F43.11', 'F43.12']);
    const exact = list.search('f411');
    expect(exact.codes[0]).toEqual({ code: 'F41.1', display: 'Generalized anxiety disorder' });
    expect(list.search('F32').codes.map((c) => c.code)).toContain('F32.A');
  });

  it('finds titles by word prefixes in any order, leading words first', () => {
    const r = list.search('recur depr');
    expect(r.codes.length).toBeGreaterThan(3);
    for (const c of r.codes) {
      expect(c.display.toLowerCase()).toMatch(/recur/);
      expect(c.display.toLowerCase()).toMatch(/depr/);
    }
    const anx = list.search('anxiety', 50).codes.map((c) => c.display);
    expect(anx[0]?.toLowerCase().startsWith('anxiety')).toBe(true);
  });

  it('limits the result and reports the total', () => {
    const r = list.search('disorder', 5);
    expect(r.codes).toHaveLength(5);
    expect(r.total).toBeGreaterThan(50);
    expect(list.search('zzzz').total).toBe(0);
  });

  it('parses the CMS release layout and rejects a bad line by number', () => {
    const cms =
      'A000    Cholera due to Vibrio cholerae 01, biovar cholerae\nF329    Major depressive disorder, single episode, unspecified\n';
    expect(parseCodeList(cms)).toEqual([
      { code: 'A00.0', display: 'Cholera due to Vibrio cholerae 01, biovar cholerae' },
      { code: 'F32.9', display: 'Major depressive disorder, single episode, unspecified' },
    ]);
    const bad = () => parseCodeList('F329 ok\nnot a code line\n', 'list.txt');
    expect(bad).toThrowError(/list\.txt:2/);
    try {
      bad();
    } catch (e) {
      expect(isCustosError(e, 'CUSTOS_ERR_VALIDATION')).toBe(true);
    }
    expect(() => parseCodeList('F329 one\nF32.9 two\n', 'x')).toThrowError(/x:2: repeats code F32.9/);
    expect(() => parseCodeList('# only a comment\n', 'x')).toThrowError(/holds no codes/);
  });

  it('prefers an imported list in the data folder', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-codes-'));
    try {
      const n = await importCodeList(
        dir,
        'A000    Cholera due to Vibrio cholerae 01, biovar cholerae\n',
        'f',
      );
      expect(n).toBe(1);
      expect(fs.readFileSync(importedFile(dir), 'utf8')).toBe(
        'A000\tCholera due to Vibrio cholerae 01, biovar cholerae\n',
      );
      const imported = CodeList.load(dir);
      expect(imported.source).toBe('imported');
      expect(imported.size).toBe(1);
      expect(imported.search('chol').codes).toEqual([
        { code: 'A00.0', display: 'Cholera due to Vibrio cholerae 01, biovar cholerae' },
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
