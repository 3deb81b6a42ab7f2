import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../../test/support/cli.ts';
import { freshDatabase, skipReason, type TestDatabase } from '../../test/support/db.ts';
import { identity, system, user } from '../../test/support/fixtures.ts';
import { openCustos } from '../app/custos.ts';
import { type Config, loadConfig } from '../config/config.ts';
import { fhirProblems, loadFhirDefinitions } from '../fhir/validate.testkit.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] report-cli.int.test.ts skipped: ${skip}`);
}

/**
 * `custos audit report` and `custos audit export --fhir` through the real command, on a data
 * folder of each engine. Activity is made in-process with a fake clock first, then the folder is
 * handed to the command.
 */
describe.skipIf(skip)('custos audit report and export', () => {
  let testDb: TestDatabase;
  let dataDir: string;
  let env: Record<string, string>;
  let config: Config;
  const ids: string[] = [];
  let pseudonym = '';

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-report-'));
    testDb = await freshDatabase();
    if (testDb.engine === 'pglite') {
      await testDb.drop();
      const pglite = await PGlite.create(path.join(dataDir, 'pg'), {
        loadDataDir: new Blob([fs.readFileSync(inject('pgliteTemplate'))]),
      });
      await pglite.close();
      env = { CUSTOS_DATA_DIR: dataDir };
    } else {
      env = { CUSTOS_DATA_DIR: dataDir, DATABASE_URL: testDb.url ?? '' };
    }
    config = loadConfig(env, dataDir);
    let now = new Date('2026-03-02T08:00:00Z');
    const c = await openCustos(config, { clock: () => now });
    try {
      const sys = system(c.practiceId);
      for (let i = 0; i < 3; i++) {
        ids.push((await c.chart.createPatient(sys, identity(), { careTeam: ['alice'] })).id);
      }
      now = new Date('2026-03-02T09:00:00Z');
      await c.chart.readPatient(user(c.practiceId, 'alice'), ids[0]!);
      now = new Date('2026-03-03T21:00:00Z');
      await c.chart.readPatient(user(c.practiceId, 'mallory'), ids[0]!).catch(() => undefined);
      now = new Date('2026-03-04T10:00:00Z');
      await c.chart.searchPatients(user(c.practiceId, 'alice'), { familyPrefix: 'Synth' });
    } finally {
      await c.close();
    }
  }, 240_000);

  afterAll(async () => {
    if (testDb?.engine === 'postgres') {
      await testDb.drop();
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints who accessed a patient as an aligned table, times in UTC', async () => {
    const r = await runCli(['audit', 'report', '--patient', ids[0]!], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^SEQ +AT \(UTC\) +ACTOR +ROLE +ON BEHALF OF +ACTION +RESOURCE +PURPOSE +OUTCOME +VIA$/,
    );
    const cells = lines.slice(1).map((l) => l.split(/ {2,}/));
    expect(cells.map((c) => [c[1], c[2], c[5], c[8], c[9]])).toEqual([
      ['2026-03-02T08:00:00.000Z', 'system:system', 'create', 'success', 'entry'],
      ['2026-03-02T09:00:00.000Z', 'user:alice', 'read', 'success', 'entry'],
      ['2026-03-03T21:00:00.000Z', 'user:mallory', 'read', 'denied', 'entry'],
      ['2026-03-04T10:00:00.000Z', 'user:alice', 'search', 'success', 'search-result'],
      // The command's own lookup of the pseudonym, through the gate.
      [expect.stringMatching(/^\d{4}-\d\d-\d\dT/), 'system:system', 'report', 'success', 'entry'],
    ]);
    // Columns line up: every row's ACTION starts where the header's does.
    const col = lines[0]!.indexOf('ACTION');
    for (const l of lines.slice(1)) {
      expect(l.slice(col)).toMatch(/^(create|read|search|report) /);
    }
    // Ids and pseudonyms only: no name, birth date or identifier of the synthetic patient.
    expect(r.stdout).not.toMatch(/Synthetica|Testa|1984-05-06|MRN-0000/);
  });

  it('prints JSON lines with --json and audits the report run itself', async () => {
    const r = await runCli(
      [
        'audit',
        'report',
        '--patient',
        ids[0]!,
        '--json',
        '--since',
        '2026-03-03',
        '--until',
        '2026-03-05T00:00:00Z',
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.at, x.actorId, x.action, x.outcome, x.via])).toEqual([
      ['2026-03-03T21:00:00.000Z', 'mallory', 'read', 'denied', 'entry'],
      ['2026-03-04T10:00:00.000Z', 'alice', 'search', 'success', 'search-result'],
    ]);
    pseudonym = rows[0].patientPseudonym;
    expect(pseudonym).toMatch(/\S/);

    const c = await openCustos(config);
    try {
      const own = await c.database.db
        .selectFrom('audit_entries')
        .selectAll()
        .where('resource_type', '=', 'audit-report')
        .orderBy('seq')
        .execute();
      expect(
        own.map((e) => [e.actor_kind, e.action, e.purpose, e.outcome, e.patient_pseudonym, e.detail]),
      ).toEqual([
        ['system', 'report', 'audit', 'success', pseudonym, { kind: 'patient', rows: 5 }],
        [
          'system',
          'report',
          'audit',
          'success',
          pseudonym,
          { kind: 'patient', rows: 2, since: '2026-03-03T00:00:00.000Z', until: '2026-03-05T00:00:00.000Z' },
        ],
      ]);
    } finally {
      await c.close();
    }
  });

  it('answers an unknown patient id with the gate not-found error (exit 1)', async () => {
    const r = await runCli(['audit', 'report', '--patient', randomUUID()], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('custos: patient not found or no access\n');
    expect(r.stdout).toBe('');
  });

  it.each([
    [['--patient', 'x', '--since', '2026-02-30'], /^custos: --since must be an ISO 8601 date/],
    [['--user', 'alice', '--since', 'yesterday'], /^custos: --since must be an ISO 8601 date/],
    [['--logins', '--until', '2026-03-01T10:00'], /^custos: --until must be an ISO 8601 date/],
    [
      ['--logins', '--since', '2026-03-02', '--until', '2026-03-01'],
      /^custos: --until must be later than --since/,
    ],
    [['--logins', '--anomalies'], /^custos: report needs exactly one of/],
    [['--user', 'alice', '--bulk-threshold', '3'], /^custos: --bulk-threshold goes with --anomalies only/],
    [['--anomalies', '--bulk-threshold', 'many'], /^custos: --bulk-threshold must be a whole number/],
  ])('refuses %j with exit 2 and one line naming the option', async (args, message) => {
    const r = await runCli(['audit', 'report', ...args], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stdout).toBe('');
  });

  it('reports anomalies and an empty login report as tables', async () => {
    const r = await runCli(
      ['audit', 'report', '--anomalies', '--bulk-threshold', '2', '--until', '2026-03-05'],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^KIND +AT \(UTC\) +ACTOR +WHAT +SEQS$/);
    expect(lines.slice(1).map((l) => l.split(/ {2,}/).slice(0, 3))).toEqual([
      ['denied', '2026-03-03T21:00:00.000Z', 'user:mallory'],
      ['bulk-read', '2026-03-04T10:00:00.000Z', 'user:alice'],
    ]);
    const logins = await runCli(['audit', 'report', '--logins'], env);
    expect(logins.code, logins.stderr).toBe(0);
    expect(logins.stdout).toMatch(/^SEQ +AT \(UTC\) +ACTOR .*ADDRESS\n$/);
  });

  it('exports the trail as one valid FHIR R4 Bundle of AuditEvents, and audits the export', async () => {
    loadFhirDefinitions();
    const r = await runCli(['audit', 'export', '--fhir'], env);
    expect(r.code, r.stderr).toBe(0);
    const bundle = JSON.parse(r.stdout);
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'collection' });
    const events = bundle.entry.map(
      (e: { resource: { action: string; type: { code: string } } }) => e.resource,
    );
    expect(events.length).toBeGreaterThanOrEqual(9);
    expect(events.slice(0, 3).map((e: { action: string }) => e.action)).toEqual(['C', 'C', 'C']);
    expect(fhirProblems(bundle)).toEqual([]);
    expect(r.stdout).not.toMatch(/Synthetica|Testa|1984-05-06|MRN-0000/);
    expect(r.stdout).toContain(pseudonym);

    const windowed = await runCli(
      ['audit', 'export', '--fhir', '--since', '2026-03-03', '--until', '2026-03-04'],
      env,
    );
    expect(windowed.code, windowed.stderr).toBe(0);
    const w = JSON.parse(windowed.stdout);
    expect(
      w.entry.map((e: { resource: { recorded: string; outcome: string } }) => [
        e.resource.recorded,
        e.resource.outcome,
      ]),
    ).toEqual([['2026-03-03T21:00:00.000Z', '4']]);

    const c = await openCustos(config);
    try {
      const exports = await c.database.db
        .selectFrom('audit_entries')
        .select(['action', 'resource_type', 'detail'])
        .where('resource_type', '=', 'audit-export')
        .orderBy('seq')
        .execute();
      expect(exports).toEqual([
        {
          action: 'export',
          resource_type: 'audit-export',
          detail: { kind: 'fhir', rows: events.length, throughSeq: expect.any(String) },
        },
        {
          action: 'export',
          resource_type: 'audit-export',
          detail: {
            kind: 'fhir',
            rows: 1,
            since: '2026-03-03T00:00:00.000Z',
            until: '2026-03-04T00:00:00.000Z',
            throughSeq: expect.any(String),
          },
        },
      ]);
    } finally {
      await c.close();
    }
  }, 120_000);

  it('refuses an export without a format (exit 2)', async () => {
    const r = await runCli(['audit', 'export'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^custos: export needs --fhir/);
  });
});
