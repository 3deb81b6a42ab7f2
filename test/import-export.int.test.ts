import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toFhirBundle } from '../src/fhir/export.ts';
import { patient, psychotherapyNote, records } from '../src/fhir/fixtures.testkit.ts';
import { parseBundle } from '../src/fhir/import.ts';
import { runCli } from './support/cli.ts';
import { type CliData, cliData } from './support/cli-data.ts';
import { skipReason } from './support/db.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] import-export.int.test.ts skipped: ${skip}`);
}

/**
 * `custos import` and `custos export` end to end: one transaction per bundle, one line naming
 * the entry and field for a bad bundle with nothing written, and a round trip of every field.
 */
describe.skipIf(skip)('custos import and export', () => {
  let d: CliData;
  let bundleText: string;
  const file = (name: string, text: string) => {
    const p = path.join(d.dataDir, '..', `${path.basename(d.dataDir)}-${name}.json`);
    fs.writeFileSync(p, text);
    return p;
  };
  /** Row counts of every table, through the CLI's own database (a second connection). */
  const counts = async () => {
    const { openCustos } = await import('../src/app/custos.ts');
    const { loadConfig } = await import('../src/config/config.ts');
    const { sql } = await import('kysely');
    const c = await openCustos(loadConfig(d.env));
    try {
      const tables = [
        'patients',
        'patient_versions',
        'patient_links',
        'patient_index',
        'records',
        'record_versions',
        'data_keys',
        'care_team',
      ];
      const out: Record<string, number> = {};
      for (const t of tables) {
        out[t] = Number(
          (await sql<{ n: string }>`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(c.database.db)).rows[0]
            ?.n,
        );
      }
      return out;
    } finally {
      await c.close();
    }
  };

  beforeAll(async () => {
    d = await cliData();
    bundleText = JSON.stringify(toFhirBundle(patient, [...records, psychotherapyNote]));
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('imports a bundle in one go and prints counts and the new ids', async () => {
    const r = await runCli(['import', file('good', bundleText)], d.env);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const plan = parseBundle(bundleText, { maxBytes: 1 << 20 });
    expect(out.counts).toEqual(plan.counts);
    expect(out.patients).toEqual([
      { fullUrl: `urn:uuid:${patient.id}`, id: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    ]);
    expect(await counts()).toMatchObject({ patients: 1, records: plan.patients[0]?.records.length });
  });

  it('round-trips every stored field through import and export', async () => {
    const r = await runCli(['import', file('again', bundleText)], d.env);
    const id = JSON.parse(r.stdout).patients[0].id as string;
    const exported = await runCli(['export', '--patient', id], d.env);
    expect(exported.code, exported.stderr).toBe(0);
    const before = parseBundle(bundleText, { maxBytes: 1 << 20 }).patients[0]!;
    const after = parseBundle(exported.stdout, { maxBytes: 1 << 20 }).patients[0]!;
    expect(after.identity).toEqual(before.identity);
    const strip = (p: typeof before) =>
      p.records.map((x) => ({
        kind: x.kind,
        sensitivity: x.sensitivity,
        authorId: x.authorId,
        body: x.body,
        hasEncounter: x.encounterRef !== undefined,
      }));
    expect(strip(after)).toEqual(strip(before));
    // Psychotherapy notes are never exported (45 CFR 164.508(a)(2)); the input bundle had none either.
    expect(exported.stdout).not.toContain('"PSY"');
  });

  const bad: [
    string,
    (b: { entry: { resource: Record<string, unknown>; fullUrl?: string }[] }) => unknown,
    RegExp,
  ][] = [
    ['bad JSON', () => '{"resourceType": "Bundle", "entry": [', /^custos: bundle is not valid JSON: .+\n$/],
    [
      'an unknown resource type',
      (b) => {
        b.entry[1]!.resource.resourceType = 'Basic';
        return b;
      },
      /^custos: entry\[1\]\.resource\.resourceType: .+\n$/,
    ],
    [
      'a missing required field',
      (b) => {
        delete b.entry[0]!.resource.birthDate;
        return b;
      },
      /^custos: entry\[0\]\.resource\.birthDate: .+\n$/,
    ],
    [
      'a reference to a resource not in the bundle',
      (b) => {
        (b.entry[1]!.resource as { subject: { reference: string } }).subject = {
          reference: 'urn:uuid:00000000-0000-4000-8000-00000000dead',
        };
        return b;
      },
      /^custos: entry\[1\]\.resource\.subject\.reference: .+\n$/,
    ],
  ];
  it.each(bad)(
    'rejects %s with one line naming the entry and field, exit 2, and writes nothing',
    async (_name, breakIt, message) => {
      const before = await counts();
      const broken = breakIt(JSON.parse(bundleText));
      const r = await runCli(
        ['import', file('bad', typeof broken === 'string' ? broken : JSON.stringify(broken))],
        d.env,
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
      expect(await counts()).toEqual(before);
    },
  );

  it('rejects an oversized bundle before reading it', async () => {
    const before = await counts();
    const r = await runCli(['import', file('big', bundleText)], {
      ...d.env,
      CUSTOS_MAX_IMPORT_BYTES: '1000',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^custos: bundle: \d+ bytes is over the limit of 1000 bytes \(CUSTOS_MAX_IMPORT_BYTES\)\n$/,
    );
    expect(await counts()).toEqual(before);
  });

  it('answers an unknown patient on export with not found, exit 1', async () => {
    const r = await runCli(['export', '--patient', '00000000-0000-4000-8000-000000000000'], d.env);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'custos: patient not found or no access\n' });
  });

  it('explains usage errors in one line with exit 2', async () => {
    expect(await runCli(['export'], d.env)).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'custos: export needs --patient ID, or --all --user NAME --purpose-code CODE --purpose TEXT --out FILE, or --decrypt FILE (see custos --help)\n',
    });
    expect(await runCli(['demo', '--patients', 'lots'], d.env)).toMatchObject({
      code: 2,
      stderr: 'custos: --patients must be a whole number from 1 to 1000000 (see custos --help)\n',
    });
    expect(await runCli(['frobnicate'], d.env)).toMatchObject({
      code: 2,
      stderr: "custos: unknown command 'frobnicate' (see custos --help)\n",
    });
  });
});
