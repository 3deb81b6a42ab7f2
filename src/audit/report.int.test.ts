import { randomUUID } from 'node:crypto';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, system, user } from '../../test/support/fixtures.ts';
import { accessContext, systemContext } from '../access/context.ts';
import type { CoreDb } from '../db/schema.ts';
import { type Anomaly, anomalyReport } from './anomalies.ts';
import { append } from './append.ts';
import {
  type EntryRow,
  loginReport,
  patientAccessQuery,
  patientAccessReport,
  userActivityQuery,
  userActivityReport,
} from './report.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] report.int.test.ts skipped: ${skip}`);
}

class Rollback extends Error {}

/**
 * The audit reports (DESIGN.md "The audit trail", "read") over activity made through the gate
 * with a fake clock. Opening hours are the defaults: Monday to Friday 07:00-19:00 in
 * Europe/Amsterdam (UTC+1 in early March 2026, before daylight saving time starts on the 29th).
 */
describe.skipIf(skip)('audit reports', () => {
  let c: TestCustos;
  let now = new Date('2026-03-02T08:00:00Z');
  const at = (iso: string) => {
    now = new Date(iso);
  };
  const ids: string[] = [];
  const ps: string[] = [];

  /** who, when, what, outcome: what the assertions compare. */
  const brief = (r: EntryRow) => [
    r.at.toISOString(),
    `${r.actorKind}:${r.actorId}`,
    r.action,
    r.resourceType,
    r.outcome,
  ];

  beforeAll(async () => {
    c = await openTestCustos({ clock: () => now });
    const sys = system(c.practiceId);
    const alice = user(c.practiceId, 'alice');
    const bob = user(c.practiceId, 'bob');
    const mallory = user(c.practiceId, 'mallory');
    // Monday 09:00 local: five patients, cared for by alice and bob.
    for (let i = 0; i < 5; i++) {
      ids.push((await c.chart.createPatient(sys, identity(), { careTeam: ['alice', 'bob'] })).id);
    }
    const [p1, p2, p3, p4, p5] = ids as [string, string, string, string, string];
    at('2026-03-02T09:00:00Z'); // Monday 10:00 local
    await c.chart.readPatient(alice, p1);
    at('2026-03-02T21:30:00Z'); // Monday 22:30 local: out of hours
    await c.chart.readChart(alice, p2);
    at('2026-03-03T08:00:00Z'); // Tuesday: mallory probes records she has no relationship with
    await expect(c.chart.readPatient(mallory, p1)).rejects.toThrow(/not found or no access/);
    at('2026-03-03T08:01:00Z');
    await expect(c.chart.readPatient(mallory, p2)).rejects.toThrow(/not found or no access/);
    // Wednesday 11:05-11:35 local: bob reads four patients in one clock hour, a fifth in the next.
    for (const [i, p] of [p1, p2, p3, p4].entries()) {
      at(`2026-03-04T10:${String(5 + 10 * i).padStart(2, '0')}:00Z`);
      await c.chart.readPatient(bob, p);
    }
    at('2026-03-04T11:05:00Z');
    await c.chart.readPatient(bob, p5);
    at('2026-03-07T10:20:00Z'); // Saturday: alice searches and gets all five
    expect(await c.chart.searchPatients(alice, { familyPrefix: 'Synth' })).toHaveLength(5);
    at('2026-03-09T03:00:00Z'); // Monday 04:00 local: emergency access
    await c.chart.readPatient(accessContext({ ...alice, purpose: 'emergency' }), p3);
    // Login monitoring entries (the authentication work will write these).
    const dave = user(c.practiceId, 'dave');
    const db = c.database.db;
    at('2026-03-10T08:00:00Z');
    await append(
      db,
      dave,
      { action: 'login-failed', resourceType: 'session', outcome: 'denied', reason: 'bad-password' },
      now,
    );
    await append(
      db,
      dave,
      { action: 'login', resourceType: 'session', outcome: 'success' },
      new Date('2026-03-10T08:00:30Z'),
    );
    await append(
      db,
      dave,
      { action: 'mfa-verified', resourceType: 'session', outcome: 'success' },
      new Date('2026-03-10T08:00:40Z'),
    );
    await append(
      db,
      dave,
      { action: 'logout', resourceType: 'session', outcome: 'success' },
      new Date('2026-03-10T17:00:00Z'),
    );
    // The pseudonyms, resolved through the gate as the CLI does (each lookup is audited).
    at('2026-03-11T12:00:00Z');
    const audit = systemContext({ practiceId: c.practiceId, purpose: 'audit', requestId: randomUUID() });
    for (const id of ids) {
      ps.push(await c.chart.patientPseudonym(audit, id));
    }
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it('lists every access to a patient, searches that returned the patient included', async () => {
    const rows = await patientAccessReport(c.database.db, { pseudonym: ps[0]! });
    expect(rows.map((r) => [...brief(r), r.via])).toEqual([
      ['2026-03-02T08:00:00.000Z', 'system:system', 'create', 'patient', 'success', 'entry'],
      ['2026-03-02T09:00:00.000Z', 'user:alice', 'read', 'patient', 'success', 'entry'],
      ['2026-03-03T08:00:00.000Z', 'user:mallory', 'read', 'patient', 'denied', 'entry'],
      ['2026-03-04T10:05:00.000Z', 'user:bob', 'read', 'patient', 'success', 'entry'],
      ['2026-03-07T10:20:00.000Z', 'user:alice', 'search', 'patient', 'success', 'search-result'],
      ['2026-03-11T12:00:00.000Z', 'system:system', 'report', 'patient', 'success', 'entry'],
    ]);
    expect(rows[2]).toMatchObject({ role: 'clinician', purpose: 'treatment', reason: 'no-relationship' });
    expect(rows[4]?.patientPseudonym).toBeNull();
    expect(rows.map((r) => Number(r.seq))).toEqual([...rows.map((r) => Number(r.seq))].sort((a, b) => a - b));
  });

  it('filters the patient report by since (inclusive) and until (exclusive)', async () => {
    const rows = await patientAccessReport(c.database.db, {
      pseudonym: ps[0]!,
      since: new Date('2026-03-03T08:00:00Z'),
      until: new Date('2026-03-07T10:20:00Z'),
    });
    expect(rows.map(brief)).toEqual([
      ['2026-03-03T08:00:00.000Z', 'user:mallory', 'read', 'patient', 'denied'],
      ['2026-03-04T10:05:00.000Z', 'user:bob', 'read', 'patient', 'success'],
    ]);
    expect(await patientAccessReport(c.database.db, { pseudonym: ps[0]!, practiceId: randomUUID() })).toEqual(
      [],
    );
  });

  it("reports one user's activity with where it came from", async () => {
    const rows = await userActivityReport(c.database.db, { actorId: 'alice' });
    expect(rows.map((r) => [...brief(r), r.purpose, r.patientPseudonym])).toEqual([
      ['2026-03-02T09:00:00.000Z', 'user:alice', 'read', 'patient', 'success', 'treatment', ps[0]],
      ['2026-03-02T21:30:00.000Z', 'user:alice', 'read', 'chart', 'success', 'treatment', ps[1]],
      ['2026-03-07T10:20:00.000Z', 'user:alice', 'search', 'patient', 'success', 'treatment', null],
      ['2026-03-09T03:00:00.000Z', 'user:alice', 'read', 'patient', 'success', 'emergency', ps[2]],
    ]);
    expect(rows[0]).toMatchObject({ clientAddress: '127.0.0.1', sessionId: 'sess-alice' });
    const window = await userActivityReport(c.database.db, {
      actorId: 'alice',
      since: new Date('2026-03-03T00:00:00Z'),
      until: new Date('2026-03-09T00:00:00Z'),
    });
    expect(window.map((r) => r.action)).toEqual(['search']);
    expect(await userActivityReport(c.database.db, { actorId: 'nobody' })).toEqual([]);
  });

  it('reports logins, failed logins, mfa and logouts, and nothing else', async () => {
    const rows = await loginReport(c.database.db);
    expect(rows.map((r) => [...brief(r), r.reason, r.clientAddress])).toEqual([
      [
        '2026-03-10T08:00:00.000Z',
        'user:dave',
        'login-failed',
        'session',
        'denied',
        'bad-password',
        '127.0.0.1',
      ],
      ['2026-03-10T08:00:30.000Z', 'user:dave', 'login', 'session', 'success', null, '127.0.0.1'],
      ['2026-03-10T08:00:40.000Z', 'user:dave', 'mfa-verified', 'session', 'success', null, '127.0.0.1'],
      ['2026-03-10T17:00:00.000Z', 'user:dave', 'logout', 'session', 'success', null, '127.0.0.1'],
    ]);
    const late = await loginReport(c.database.db, { since: new Date('2026-03-10T08:00:35Z') });
    expect(late.map((r) => r.action)).toEqual(['mfa-verified', 'logout']);
  });

  const summary = (a: Anomaly) => {
    switch (a.kind) {
      case 'break-glass':
      case 'out-of-hours':
        return [
          a.kind,
          a.at.toISOString(),
          a.actorId,
          a.action,
          a.resourceType,
          a.patientPseudonym,
          a.localTime,
        ];
      case 'bulk-read':
        return [a.kind, a.at.toISOString(), a.actorId, a.patients, a.seqs.length];
      case 'denied':
        return [a.kind, a.at.toISOString(), a.actorId, a.attempts, a.lastAt.toISOString(), a.reasons];
      default:
        return [];
    }
  };

  it('finds break-glass, out-of-hours access, bulk reads and denied attempts', async () => {
    const rows = await anomalyReport(c.database.db, { bulkThreshold: 3 });
    expect(rows.map(summary)).toEqual([
      ['out-of-hours', '2026-03-02T21:30:00.000Z', 'alice', 'read', 'chart', ps[1], 'Mon 22:30'],
      ['denied', '2026-03-03T08:00:00.000Z', 'mallory', 2, '2026-03-03T08:01:00.000Z', ['no-relationship']],
      ['bulk-read', '2026-03-04T10:00:00.000Z', 'bob', 4, 4],
      // A search counts every patient it returned.
      ['bulk-read', '2026-03-07T10:00:00.000Z', 'alice', 5, 1],
      ['out-of-hours', '2026-03-07T10:20:00.000Z', 'alice', 'search', 'patient', null, 'Sat 11:20'],
      ['break-glass', '2026-03-09T03:00:00.000Z', 'alice', 'read', 'patient', ps[2], 'Mon 04:00'],
      ['out-of-hours', '2026-03-09T03:00:00.000Z', 'alice', 'read', 'patient', ps[2], 'Mon 04:00'],
      ['denied', '2026-03-10T08:00:00.000Z', 'dave', 1, '2026-03-10T08:00:00.000Z', ['bad-password']],
    ]);
    // The seqs name the entries: bob's four reads are his first four entries.
    const bob = await userActivityReport(c.database.db, { actorId: 'bob' });
    expect(rows.find((r) => r.kind === 'bulk-read')?.seqs).toEqual(bob.slice(0, 4).map((r) => r.seq));
  });

  it('uses the default threshold of 50 patients per hour, and the window', async () => {
    const rows = await anomalyReport(c.database.db, {
      since: new Date('2026-03-04T00:00:00Z'),
      until: new Date('2026-03-09T00:00:00Z'),
    });
    expect(rows.map(summary)).toEqual([
      ['out-of-hours', '2026-03-07T10:20:00.000Z', 'alice', 'search', 'patient', null, 'Sat 11:20'],
    ]);
  });

  it('takes other opening hours and time zones', async () => {
    const rows = await anomalyReport(c.database.db, {
      openingHours: {
        timeZone: 'UTC',
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
        from: '09:00',
        to: '22:00',
      },
      bulkThreshold: 10,
    });
    expect(rows.filter((r) => r.kind === 'out-of-hours').map(summary)).toEqual([
      ['out-of-hours', '2026-03-09T03:00:00.000Z', 'alice', 'read', 'patient', ps[2], 'Mon 03:00'],
    ]);
    const always = await anomalyReport(c.database.db, {
      openingHours: { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], from: '00:00', to: '24:00' },
    });
    expect(always.map((r) => r.kind)).toEqual(['denied', 'break-glass', 'denied']);
  });

  it('refuses bad options with a validation error naming the option', async () => {
    const db = c.database.db;
    await expect(anomalyReport(db, { openingHours: { timeZone: 'Mars/Olympus' } })).rejects.toThrow(
      /^openingHours\.timeZone: /,
    );
    await expect(anomalyReport(db, { openingHours: { from: '7:00' } })).rejects.toThrow(
      /^openingHours\.from: /,
    );
    await expect(anomalyReport(db, { openingHours: { from: '19:00', to: '07:00' } })).rejects.toThrow(
      /^openingHours\.to: /,
    );
    await expect(anomalyReport(db, { bulkThreshold: 0 })).rejects.toThrow(/^bulkThreshold: /);
  });

  /** EXPLAIN a statement with sequential scans priced out, in a transaction that is rolled back. */
  async function plan(
    compile: (tx: Kysely<CoreDb>) => CompiledQuery,
    before?: (tx: Kysely<CoreDb>) => Promise<unknown>,
  ): Promise<string> {
    let text = '';
    await c.database.db
      .transaction()
      .execute(async (tx) => {
        await before?.(tx);
        await sql`SET LOCAL enable_seqscan = off`.execute(tx);
        const q = compile(tx);
        const r = await tx.executeQuery<{ 'QUERY PLAN': string }>(
          CompiledQuery.raw(`EXPLAIN ${q.sql}`, [...q.parameters]),
        );
        text = r.rows.map((x) => x['QUERY PLAN']).join('\n');
        throw new Rollback();
      })
      .catch((e: unknown) => {
        if (!(e instanceof Rollback)) {
          throw e;
        }
      });
    return text;
  }

  it('reads the patient report through audit_entries (patient_pseudonym, seq)', async () => {
    const p = await plan((tx) => patientAccessQuery(tx, { pseudonym: ps[0]!, since: new Date(0) }).compile());
    expect(p).toMatch(/audit_entries_patient/);
  });

  it('reads the search half of the patient report through the GIN index on detail', async () => {
    const p = await plan((tx) => patientAccessQuery(tx, { pseudonym: ps[0]! }).compile());
    expect(p).toMatch(/audit_entries_patient/);
    expect(p).toMatch(/audit_entries_detail/);
  });

  it('reads the user report through audit_entries (actor_id, seq)', async () => {
    const p = await plan((tx) => userActivityQuery(tx, { actorId: 'alice', until: new Date() }).compile());
    expect(p).toMatch(/audit_entries_actor/);
  });
});
