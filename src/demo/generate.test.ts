import { describe, expect, it } from 'vitest';
import type { PlannedPatient, RecordKind } from '../chart/model.ts';
import { parseBody, parseIdentity, RecordKinds } from '../chart/model.ts';
import { generateDemoPatients, renderProgress } from './generate.ts';
import { BSN_SYSTEM, demoMrn, isValidBsn, SSN_SYSTEM } from './identity.ts';
import { Random, streamSeed } from './random.ts';

const ANCHOR = Date.parse('2026-01-01T00:00:00Z');
const generate = (count: number, seed: number, startIndex?: number): PlannedPatient[] => [
  ...generateDemoPatients(startIndex === undefined ? { count, seed } : { count, seed, startIndex }),
];

const patients = generate(300, 20260101);
const records = patients.flatMap((p) => p.records);

describe('Random', () => {
  it('is deterministic, in [0, 1), and seed-sensitive', () => {
    const a = new Random(7);
    const b = new Random(7);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Random(8).next()).not.toBe(xs[0]);
    expect(streamSeed(1, 0)).not.toBe(streamSeed(1, 1));
    expect(streamSeed(1, 2 ** 32)).not.toBe(streamSeed(1, 0));
  });

  it('int stays within bounds and hits both ends', () => {
    const r = new Random(3);
    const seen = new Set(Array.from({ length: 2000 }, () => r.int(2, 5)));
    expect([...seen].sort()).toEqual([2, 3, 4, 5]);
  });
});

describe('generateDemoPatients determinism', () => {
  it('gives identical output for the same seed', () => {
    expect(JSON.stringify(generate(50, 99))).toBe(JSON.stringify(generate(50, 99)));
  });

  it('gives different output for a different seed', () => {
    expect(JSON.stringify(generate(50, 100))).not.toBe(JSON.stringify(generate(50, 99)));
  });

  it('generates a slice exactly as the same indexes of a longer run', () => {
    const slice = generate(20, 20260101, 140);
    expect(JSON.stringify(slice)).toBe(JSON.stringify(patients.slice(140, 160)));
  });

  it('rejects bad options', () => {
    expect(() => generate(-1, 1)).toThrow(/count/);
    expect(() => generate(1.5, 1)).toThrow(/count/);
    expect(() => generate(1, 1, -3)).toThrow(/startIndex/);
    expect(generate(0, 1)).toEqual([]);
  });
});

describe('generated data validity', () => {
  it('every identity passes parseIdentity unchanged', () => {
    for (const p of patients) {
      expect(parseIdentity(p.identity)).toEqual(p.identity);
    }
  });

  it('every record body passes parseBody for its kind unchanged', () => {
    for (const r of records) {
      expect(parseBody(r.kind, r.body)).toEqual(r.body);
    }
  });

  it('has the expected number of records of each kind per patient', () => {
    for (const p of patients) {
      const count = (kinds: RecordKind[]): number => p.records.filter((r) => kinds.includes(r.kind)).length;
      expect(count(['encounter'])).toBeGreaterThanOrEqual(2);
      expect(count(['encounter'])).toBeLessThanOrEqual(5);
      expect(count(['observation'])).toBeGreaterThanOrEqual(2);
      expect(count(['observation'])).toBeLessThanOrEqual(6);
      expect(count(['condition'])).toBeGreaterThanOrEqual(1);
      expect(count(['condition'])).toBeLessThanOrEqual(3);
      expect(count(['procedure', 'medication', 'therapy-plan'])).toBeGreaterThanOrEqual(1);
      expect(count(['procedure', 'medication', 'therapy-plan'])).toBeLessThanOrEqual(3);
      expect(count(['note'])).toBeGreaterThanOrEqual(1);
      expect(count(['note'])).toBeLessThanOrEqual(4);
      expect(p.fullUrl).toMatch(/^demo:patient:\d+$/);
    }
  });

  it('uses the expected code systems and reserved contact ranges', () => {
    const systems: Partial<Record<RecordKind, string>> = {
      observation: 'http://loinc.org',
      condition: 'http://hl7.org/fhir/sid/icd-10',
      procedure: 'http://snomed.info/sct',
      medication: 'http://www.nlm.nih.gov/research/umls/rxnorm',
    };
    for (const r of records) {
      const body = r.body as { code?: { system: string }; medication?: { system: string } };
      const expected = systems[r.kind];
      if (expected) {
        expect((body.code ?? body.medication)?.system).toBe(expected);
      }
    }
    for (const p of patients) {
      const { email, identifiers } = p.identity;
      if (email) {
        expect(email).toMatch(/@example\.(org|com|net)$/);
      }
      expect(identifiers.filter((i) => i.type === 'mrn')).toHaveLength(1);
      for (const id of identifiers) {
        if (id.system === SSN_SYSTEM) {
          expect(id.value).toMatch(/^9\d\d-\d\d-\d{4}$/);
        }
        if (id.system === BSN_SYSTEM) {
          expect(isValidBsn(id.value)).toBe(true);
        }
      }
    }
    expect(isValidBsn('111222333')).toBe(true);
    expect(isValidBsn('111222334')).toBe(false);
  });

  it('dates all fall before the fixed anchor and after birth', () => {
    for (const p of patients) {
      const birth = Date.parse(p.identity.birthDate);
      expect(p.identity.birthDate >= '1930-01-01' && p.identity.birthDate <= '2020-12-31').toBe(true);
      for (const r of p.records) {
        if (r.kind === 'encounter') {
          const b = r.body as { start: string; end?: string; status: string; class: string };
          expect(b.start.endsWith('Z') && b.end?.endsWith('Z')).toBe(true);
          expect(Date.parse(b.start)).toBeLessThan(ANCHOR);
          expect(Date.parse(b.start)).toBeGreaterThan(birth);
          expect(Date.parse(b.end ?? '')).toBeGreaterThan(Date.parse(b.start));
          expect(b.status).toBe('finished');
          expect(['AMB', 'VR']).toContain(b.class);
        }
      }
    }
  });
});

describe('references and uniqueness', () => {
  it('MRNs are unique across a run, including slices of a longer run', () => {
    const mrns = patients.map((p) => p.identity.identifiers.find((i) => i.type === 'mrn')?.value);
    expect(new Set(mrns).size).toBe(patients.length);
    expect(mrns.every((m) => /^MRN-\d{8}$/.test(m ?? ''))).toBe(true);
    const many = new Set(Array.from({ length: 200_000 }, (_, i) => demoMrn(i)));
    expect(many.size).toBe(200_000);
  });

  it('localRefs are unique across the run', () => {
    const refs = records.map((r) => r.localRef);
    expect(new Set(refs).size).toBe(refs.length);
    expect(new Set(patients.map((p) => p.fullUrl)).size).toBe(patients.length);
  });

  it('encounterRef always names an earlier encounter of the same patient', () => {
    let linked = 0;
    for (const p of patients) {
      const encounters = new Set<string>();
      for (const r of p.records) {
        if (r.encounterRef !== undefined) {
          expect(encounters.has(r.encounterRef)).toBe(true);
          expect(['medication', 'therapy-plan', 'encounter']).not.toContain(r.kind);
          linked++;
        }
        if (r.kind === 'encounter') {
          encounters.add(r.localRef);
        }
      }
    }
    expect(linked).toBeGreaterThan(patients.length);
  });
});

describe('distribution', () => {
  it('every generated record kind appears, with both encounter types and classes', () => {
    const kinds = new Set(records.map((r) => r.kind));
    for (const kind of RecordKinds.filter((k) => k !== 'document')) {
      expect(kinds).toContain(kind);
    }
    const encounters = records
      .filter((r) => r.kind === 'encounter')
      .map((r) => r.body as { type: string; class: string });
    expect(new Set(encounters.map((e) => e.type))).toEqual(new Set(['visit', 'therapy-session']));
    expect(new Set(encounters.map((e) => e.class))).toEqual(new Set(['AMB', 'VR']));
  });

  it('notes are mostly normal, some restricted, and some therapy patients have a psychotherapy note', () => {
    const notes = records.filter((r) => r.kind === 'note');
    const by = (s: string): number => notes.filter((n) => n.sensitivity === s).length;
    expect(by('normal') / notes.length).toBeGreaterThan(0.75);
    expect(by('restricted')).toBeGreaterThan(0);
    expect(by('psychotherapy')).toBeGreaterThan(0);
    const therapyPatients = patients.filter((p) => p.records.some((r) => r.kind === 'therapy-plan'));
    const withPsych = therapyPatients.filter((p) => p.records.some((r) => r.sensitivity === 'psychotherapy'));
    expect(withPsych.length / therapyPatients.length).toBeGreaterThan(0.1);
    expect(withPsych.length / therapyPatients.length).toBeLessThan(0.3);
    for (const p of patients) {
      const psych = p.records.filter((r) => r.sensitivity === 'psychotherapy');
      expect(psych.length).toBeLessThanOrEqual(1);
      for (const r of psych) {
        expect(r.kind).toBe('note');
        expect(p.records.find((e) => e.localRef === r.encounterRef)?.body).toMatchObject({
          type: 'therapy-session',
        });
      }
    }
    for (const r of notes) {
      expect(r.authorId).toMatch(/^demo-clinician-\d$/);
    }
  });

  it('names include diacritics and apostrophes, and some patients record a gender identity', () => {
    const names = patients.map((p) => [...p.identity.name.given, p.identity.name.family].join(' '));
    expect(names.some((n) => [...n].some((ch) => ch.charCodeAt(0) > 127))).toBe(true);
    expect(names.some((n) => n.includes("'"))).toBe(true);
    expect(patients.some((p) => p.identity.gender !== undefined)).toBe(true);
    const countries = new Set(patients.map((p) => p.identity.address?.country));
    expect(countries).toContain('US');
    expect(countries).toContain('NL');
  });
});

describe('renderProgress', () => {
  it('draws a bar with counts and percentage', () => {
    expect(renderProgress(450, 1000, 20)).toBe('[#########...........] 450/1000 45% ');
    expect(renderProgress(0, 10, 10)).toBe('[..........] 0/10 0% ');
    expect(renderProgress(10, 10, 10)).toBe('[##########] 10/10 100% ');
  });

  it('clamps out-of-range input and handles an empty total', () => {
    expect(renderProgress(15, 10, 10)).toBe('[##########] 15/10 100% ');
    expect(renderProgress(0, 0, 4)).toBe('[####] 0/0 100% ');
    expect(renderProgress(1, 3)).toMatch(/^\[#{10}\.{20}\] 1\/3 33% $/);
    expect(renderProgress(5, 10)).not.toContain('\n');
  });
});
