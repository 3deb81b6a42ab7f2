import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { condition, identity, note, staffRow, system, user } from '../../test/support/fixtures.ts';
import { isCustosError } from '../errors.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] gate.int.test.ts skipped: ${skip}`);
}

describe.skipIf(skip)('the gate', () => {
  let c: TestCustos;
  beforeAll(async () => {
    c = await openTestCustos();
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  const auditCount = async () =>
    Number(
      (
        await c.database.db
          .selectFrom('audit_entries')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const lastEntries = async (n: number) =>
    (
      await c.database.db.selectFrom('audit_entries').selectAll().orderBy('seq', 'desc').limit(n).execute()
    ).reverse();

  /** Runs one gate call and asserts it wrote exactly one audit entry; returns that entry. */
  async function oneEntry(call: () => Promise<unknown>) {
    const before = await auditCount();
    const result = await call().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    expect(await auditCount()).toBe(before + 1);
    const [entry] = await lastEntries(1);
    return { result, entry: entry! };
  }

  it('writes exactly one audit entry per call, allowed or denied, naming the pseudonym and never the patient id', async () => {
    const sys = system(c.practiceId);
    const alice = user(c.practiceId, 'alice');
    const mallory = user(c.practiceId, 'mallory');
    const created = await oneEntry(() => c.chart.createPatient(sys, identity(), { careTeam: ['alice'] }));
    expect(created.result.ok).toBe(true);
    const patientId = (created.result as { value: { id: string } }).value.id;
    expect(created.entry).toMatchObject({
      action: 'create',
      resource_type: 'patient',
      outcome: 'success',
      actor_kind: 'system',
    });
    const pseudonym = created.entry.patient_pseudonym;
    expect(pseudonym).toMatch(/^ps_[A-Za-z0-9_-]{22}$/);
    expect(JSON.stringify(created.entry)).not.toContain(patientId);

    const rec = await c.chart.createRecord(alice, patientId, note());
    const bob = await staffRow(c.database.db, c.practiceId, 'bob', ['nurse']);
    const calls: [string, () => Promise<unknown>, string][] = [
      ['readPatient', () => c.chart.readPatient(alice, patientId), 'read'],
      ['patientHistory', () => c.chart.patientHistory(alice, patientId), 'history'],
      [
        'updatePatient',
        () => c.chart.updatePatient(alice, patientId, 1, identity({ phone: '+31 6 0000 0002' })),
        'update',
      ],
      [
        'searchPatients',
        () => c.chart.searchPatients(alice, { family: 'Synthetica', birthDate: '1984-05-06' }),
        'search',
      ],
      ['createRecord', () => c.chart.createRecord(alice, patientId, condition()), 'create'],
      ['readRecord', () => c.chart.readRecord(alice, rec.id), 'read'],
      ['recordHistory', () => c.chart.recordHistory(alice, rec.id), 'history'],
      [
        'updateRecord',
        () => c.chart.updateRecord(alice, rec.id, { expectedVersion: 1, body: note('Changed.').body }),
        'update',
      ],
      ['listRecords', () => c.chart.listRecords(alice, patientId, 'note'), 'list'],
      ['readChart', () => c.chart.readChart(alice, patientId), 'read'],
      ['addCareTeamMember', () => c.chart.addCareTeamMember(alice, patientId, bob), 'care-team'],
    ];
    for (const [name, call, action] of calls) {
      const { result, entry } = await oneEntry(call);
      expect(result.ok, name).toBe(true);
      expect(entry, name).toMatchObject({
        action,
        outcome: 'success',
        actor_id: 'alice',
        session_id: 'sess-alice',
        client_address: '127.0.0.1',
      });
      if (action !== 'search') {
        expect(entry.patient_pseudonym, name).toBe(pseudonym);
      }
    }
    // Mallory is on no care team: every call is denied, looks like "not found", and is audited.
    const denied: [string, () => Promise<unknown>][] = [
      ['readPatient', () => c.chart.readPatient(mallory, patientId)],
      ['patientHistory', () => c.chart.patientHistory(mallory, patientId)],
      ['updatePatient', () => c.chart.updatePatient(mallory, patientId, 2, identity())],
      ['createRecord', () => c.chart.createRecord(mallory, patientId, note())],
      ['readRecord', () => c.chart.readRecord(mallory, rec.id)],
      ['recordHistory', () => c.chart.recordHistory(mallory, rec.id)],
      [
        'updateRecord',
        () => c.chart.updateRecord(mallory, rec.id, { expectedVersion: 2, body: note('x').body }),
      ],
      ['listRecords', () => c.chart.listRecords(mallory, patientId)],
      ['readChart', () => c.chart.readChart(mallory, patientId)],
      ['addCareTeamMember', () => c.chart.addCareTeamMember(mallory, patientId, 'mallory')],
    ];
    for (const [name, call] of denied) {
      const { result, entry } = await oneEntry(call);
      expect(result.ok, name).toBe(false);
      const error = (result as { error: unknown }).error;
      expect(isCustosError(error, 'CUSTOS_ERR_NOT_FOUND'), name).toBe(true);
      expect(entry, name).toMatchObject({
        outcome: 'denied',
        actor_id: 'mallory',
        reason: 'no-relationship',
      });
    }
    // An administrator has no grant to register patients.
    const adminCreate = await oneEntry(() =>
      c.chart.createPatient(user(c.practiceId, 'mallory', 'admin'), identity()),
    );
    expect(adminCreate.result.ok).toBe(false);
    expect(adminCreate.entry).toMatchObject({ outcome: 'denied', actor_id: 'mallory', reason: 'no-grant' });
    // A search by someone off the team returns nothing, exactly as if nobody matched.
    const search = await oneEntry(() => c.chart.searchPatients(mallory, { familyPrefix: 'Synth' }));
    expect(search.result).toEqual({ ok: true, value: [] });
    expect(search.entry.detail).toEqual({ count: 0, pseudonyms: [] });
  });

  it('makes a non-existent id and a forbidden one indistinguishable to the caller', async () => {
    const sys = system(c.practiceId);
    const { id } = await c.chart.createPatient(sys, identity());
    const mallory = user(c.practiceId, 'mallory');
    const missing = await c.chart
      .readPatient(mallory, '00000000-0000-4000-8000-000000000000')
      .catch((e: Error) => e);
    const forbidden = await c.chart.readPatient(mallory, id).catch((e: Error) => e);
    expect(forbidden).toBeInstanceOf(Error);
    expect((forbidden as Error).message).toBe((missing as Error).message);
    const [a, b] = await lastEntries(2);
    expect(a).toMatchObject({
      outcome: 'denied',
      reason: 'not-found',
      resource_id: '00000000-0000-4000-8000-000000000000',
    });
    expect(b).toMatchObject({ outcome: 'denied', reason: 'no-relationship', resource_id: null });
  });

  it('keeps every version and refuses an update based on a stale one', async () => {
    const sys = system(c.practiceId);
    const { id } = await c.chart.createPatient(sys, identity());
    // A draft note (a user's): notes the system loads are signed, and signed notes are final.
    const writer = await staffRow(c.database.db, c.practiceId, 'versions-writer', ['clinician']);
    await c.chart.addCareTeamMember(sys, id, writer);
    const w = user(c.practiceId, writer);
    const r = await c.chart.createRecord(w, id, note('First.'));
    expect(await c.chart.updateRecord(sys, r.id, { expectedVersion: 1, body: note('Second.').body })).toEqual(
      { version: 2 },
    );
    const stale = await c.chart
      .updateRecord(sys, r.id, { expectedVersion: 1, body: note('Lost.').body })
      .catch((e: unknown) => e);
    expect(isCustosError(stale, 'CUSTOS_ERR_VERSION_CONFLICT')).toBe(true);
    expect((await lastEntries(1))[0]).toMatchObject({
      outcome: 'error',
      reason: 'CUSTOS_ERR_VERSION_CONFLICT',
      action: 'update',
    });
    const history = await c.chart.recordHistory(sys, r.id);
    expect(history.map((h) => [h.version, (h.body as { body: string }).body])).toEqual([
      [1, 'First.'],
      [2, 'Second.'],
    ]);
    expect((await c.chart.readRecord(sys, r.id)).version).toBe(2);

    // Two concurrent updates from the same version: exactly one wins.
    const both = await Promise.allSettled([
      c.chart.updateRecord(sys, r.id, { expectedVersion: 2, body: note('A.').body }),
      c.chart.updateRecord(sys, r.id, { expectedVersion: 2, body: note('B.').body }),
    ]);
    expect(both.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    expect(
      both.filter((x) => x.status === 'rejected' && isCustosError(x.reason, 'CUSTOS_ERR_VERSION_CONFLICT')),
    ).toHaveLength(1);

    await c.chart.updatePatient(sys, id, 1, identity({ email: 'changed@example.org' }));
    const versions = await c.chart.patientHistory(sys, id);
    expect(versions.map((v) => v.identity.email)).toEqual(['testa@example.org', 'changed@example.org']);
    const stalePatient = await c.chart.updatePatient(sys, id, 1, identity()).catch((e: unknown) => e);
    expect(isCustosError(stalePatient, 'CUSTOS_ERR_VERSION_CONFLICT')).toBe(true);
  });

  it('finds patients by blind index: family + birth date, prefix, identifier, phone, e-mail', async () => {
    const sys = system(c.practiceId);
    const { id } = await c.chart.createPatient(
      sys,
      identity({
        name: { given: ['Quinn'], family: 'Ó Briain-Vanderwaalsstraat' },
        birthDate: '1971-07-07',
        phone: '06-1234 5678',
        email: 'Quinn.Q@Example.NET',
        identifiers: [{ type: 'mrn', value: 'mrn 7777-0001' }],
      }),
    );
    const found = async (q: object) => (await c.chart.searchPatients(sys, q)).map((p) => p.id);
    expect(await found({ family: 'o briain-vanderwaalsstraat', birthDate: '1971-07-07' })).toEqual([id]);
    expect(await found({ family: 'o briain-vanderwaalsstraat', birthDate: '1971-07-08' })).toEqual([]);
    expect(await found({ familyPrefix: 'obr' })).toContain(id);
    expect(await found({ familyPrefix: 'óbriainvanderw' })).toEqual([id]);
    expect(await found({ familyPrefix: 'obriainvanderx' })).toEqual([]);
    expect(await found({ identifier: { type: 'mrn', value: 'MRN-7777-0001' } })).toEqual([id]);
    expect(await found({ identifier: { type: 'insurance', value: 'MRN-7777-0001' } })).toEqual([]);
    expect(await found({ phone: '0612345678' })).toEqual([id]);
    expect(await found({ email: 'quinn.q@example.net' })).toEqual([id]);
    const bad = await c.chart.searchPatients(sys, { familyPrefix: 'ob' }).catch((e: Error) => e);
    expect((bad as Error).message).toBe('query.familyPrefix: must have at least 3 characters');
    const alone = await c.chart.searchPatients(sys, { birthDate: '1971-07-07' }).catch((e: Error) => e);
    expect((alone as Error).message).toBe('query.birthDate: needs query.family as well');
  });

  it('rejects invalid input naming the field, writes nothing and audits the error', async () => {
    const sys = system(c.practiceId);
    const countPatients = async () =>
      Number(
        (await sql<{ n: string }>`SELECT count(*) AS n FROM patients`.execute(c.database.db)).rows[0]?.n,
      );
    const before = await countPatients();
    const e = await c.chart.createPatient(sys, identity({ birthDate: '06/05/1984' })).catch((x: Error) => x);
    expect((e as Error).message).toBe('identity.birthDate: must be a date YYYY-MM-DD');
    expect(await countPatients()).toBe(before);
    expect((await lastEntries(1))[0]).toMatchObject({
      outcome: 'error',
      reason: 'CUSTOS_ERR_VALIDATION',
      action: 'create',
    });
  });

  it('returns nothing and writes nothing when the audit insert fails', async () => {
    const sys = system(c.practiceId);
    const { id } = await c.chart.createPatient(sys, identity(), { careTeam: ['alice'] });
    const db = c.database.owner;
    const counts = async () =>
      (
        await sql<{ t: string; n: string }>`
      SELECT 'patients' AS t, count(*)::text AS n FROM patients UNION ALL SELECT 'records', count(*)::text FROM records
      UNION ALL SELECT 'audit', count(*)::text FROM audit_entries UNION ALL SELECT 'keys', count(*)::text FROM data_keys`.execute(
          db,
        )
      ).rows;
    await sql`CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$`.execute(
      db,
    );
    await sql`CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION test_fail_audit()`.execute(
      db,
    );
    try {
      const before = await counts();
      const alice = user(c.practiceId, 'alice');
      await expect(c.chart.readChart(alice, id)).rejects.toThrow(/audit store unavailable/);
      await expect(c.chart.readPatient(alice, id)).rejects.toThrow(/audit store unavailable/);
      await expect(c.chart.createRecord(alice, id, note('Never stored.'))).rejects.toThrow(
        /audit store unavailable/,
      );
      await expect(c.chart.createPatient(sys, identity())).rejects.toThrow(/audit store unavailable/);
      await expect(c.chart.updatePatient(sys, id, 1, identity({ phone: '+31 6 9999 9999' }))).rejects.toThrow(
        /audit store unavailable/,
      );
      expect(await counts()).toEqual(before);
    } finally {
      await sql`DROP TRIGGER test_fail_audit ON audit_entries`.execute(db);
    }
    expect((await c.chart.readPatient(system(c.practiceId), id)).version).toBe(1);
  });

  it('refuses to update or delete audit entries in the database itself', async () => {
    const db = c.database.owner;
    await expect(sql`UPDATE audit_entries SET outcome = 'success'`.execute(db)).rejects.toThrow(
      /append-only/,
    );
    await expect(sql`DELETE FROM audit_entries`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`TRUNCATE audit_entries`.execute(db)).rejects.toThrow(/append-only/);
  });
});
