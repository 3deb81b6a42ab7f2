import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { condition, identity, note, staffRow, system, user } from '../../test/support/fixtures.ts';
import { type AccessContext, accessContext } from '../access/context.ts';
import { anomalyReport } from '../audit/anomalies.ts';
import { type ErrorCode, isCustosError } from '../errors.ts';
import { fhirProblems, loadFhirDefinitions } from '../fhir/validate.testkit.ts';
import { openArchive } from '../files/export-archive.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] export.int.test.ts skipped: ${skip}`);
}

/** Cheap scrypt parameters (the default is exercised by the HTTP suite). */
const KDF = { N: 2 ** 10, r: 8, p: 1 };
const PASS = 'synthetic export passphrase 2026';
const PURPOSE = 'Synthetic migration to the Exampleville records system';

const NORMAL = 'Synthetic exportable note body.';
const RESTRICTED = 'Synthetic restricted note body.';
const PSY = 'Synthetic psychotherapy marker never exported.';
const GONE = 'Deactivatedsynthetica';

const collect = async (s: Readable): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of s) {
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
};

/** The gate's bulk export: who, step-up, purpose, one audit entry first, the archive, the registry. */
describe.skipIf(skip)('bulk export through the gate', () => {
  let c: TestCustos;
  const now = new Date('2026-11-23T09:00:00Z');
  const ctx: Record<string, AccessContext> = {};
  const patients: string[] = [];
  let deactivated: string;

  const fails = async (p: Promise<unknown>, code: ErrorCode) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isCustosError(e, code), String(e)).toBe(true);
    return e as Error & { field?: string };
  };
  const reauthed = (x: AccessContext, at = now) => accessContext({ ...x, reauthenticatedAt: at });
  const input = (over: Record<string, unknown> = {}) => ({
    purposeCode: 'migration',
    purpose: PURPOSE,
    passphrase: PASS,
    ...over,
  });
  const lastSeq = async () =>
    String(
      (
        await c.database.owner
          .selectFrom('audit_entries')
          .select((eb) => eb.fn.max('seq').as('m'))
          .executeTakeFirst()
      )?.m ?? '0',
    );
  const entriesSince = (seq: string) =>
    c.database.owner.selectFrom('audit_entries').selectAll().where('seq', '>', seq).orderBy('seq').execute();
  const exportRows = async () =>
    (await sql<Record<string, unknown>>`SELECT * FROM exports ORDER BY created_at`.execute(c.database.owner))
      .rows;

  beforeAll(async () => {
    c = await openTestCustos({ clock: () => now });
    for (const [name, role] of [
      ['olga', 'privacy_officer'],
      ['doc', 'clinician'],
      ['adam', 'admin'],
      ['desk', 'frontdesk'],
      ['bill', 'billing'],
    ] as const) {
      const id = await staffRow(c.database.db, c.practiceId, name, [role]);
      ctx[name] = user(c.practiceId, id, role);
    }
    const doc = ctx.doc!.actor.id;
    const sys = system(c.practiceId);
    for (let i = 0; i < 3; i++) {
      const { id } = await c.chart.createPatient(
        sys,
        identity({ name: { given: ['Export'], family: `Exportsynthetica${i}` } }),
        { careTeam: [doc], restricted: i === 2 },
      );
      patients.push(id);
      await c.chart.createRecord(sys, id, condition());
      await c.chart.createRecord(sys, id, note(NORMAL));
      await c.chart.createRecord(sys, id, { ...note(RESTRICTED), sensitivity: 'restricted' });
      await c.chart.createRecord(ctx.doc!, id, { ...note(PSY), sensitivity: 'psychotherapy' });
    }
    // A consent directive keeping the privacy officer out of one chart in care does not keep the
    // chart out of the practice's copy (docs/access-control.md, "bulk export").
    await c.chart.setConsent(sys, patients[0]!, 0, { denyRoles: ['privacy_officer'] });
    deactivated = (
      await c.chart.createPatient(sys, identity({ name: { given: ['Gone'], family: GONE } }), {
        careTeam: [doc],
      })
    ).id;
    await c.chart.createRecord(sys, deactivated, note(NORMAL));
    await sql`UPDATE patients SET active = false WHERE id = ${deactivated}`.execute(c.database.owner);
    loadFhirDefinitions();
  }, 180_000);
  afterAll(async () => {
    await c?.cleanup();
  });

  it('refuses every other role and the system actor like a missing object, each with a denial entry', async () => {
    for (const who of ['doc', 'adam', 'desk', 'bill'] as const) {
      const before = await lastSeq();
      await fails(c.chart.exportAll(reauthed(ctx[who]!), input(), { kdf: KDF }), 'CUSTOS_ERR_NOT_FOUND');
      expect(
        (await entriesSince(before)).map((e) => [e.action, e.resource_type, e.outcome, e.reason]),
        who,
      ).toEqual([['export', 'export', 'denied', 'no-grant']]);
    }
    const before = await lastSeq();
    await fails(c.chart.exportAll(system(c.practiceId), input(), { kdf: KDF }), 'CUSTOS_ERR_NOT_FOUND');
    expect((await entriesSince(before)).map((e) => [e.actor_kind, e.outcome, e.reason])).toEqual([
      ['system', 'denied', 'actor-kind'],
    ]);
    // A context claiming the role of an account that no longer holds it.
    const claimed = accessContext({ ...reauthed(ctx.doc!), role: 'privacy_officer' });
    await fails(c.chart.exportAll(claimed, input(), { kdf: KDF }), 'CUSTOS_ERR_NOT_FOUND');
    expect(await exportRows()).toEqual([]);
  });

  it('needs a re-authentication within the last 5 minutes', async () => {
    const before = await lastSeq();
    await fails(c.chart.exportAll(ctx.olga!, input(), { kdf: KDF }), 'CUSTOS_ERR_STEP_UP');
    const stale = reauthed(ctx.olga!, new Date(now.getTime() - 5 * 60_000 - 1));
    await fails(c.chart.exportAll(stale, input(), { kdf: KDF }), 'CUSTOS_ERR_STEP_UP');
    expect((await entriesSince(before)).map((e) => [e.action, e.outcome, e.reason])).toEqual([
      ['export', 'error', 'CUSTOS_ERR_STEP_UP'],
      ['export', 'error', 'CUSTOS_ERR_STEP_UP'],
    ]);
    expect(await exportRows()).toEqual([]);
  });

  it('needs a purpose code, a stated purpose and a passphrase, naming the field and never the value', async () => {
    const officer = reauthed(ctx.olga!);
    const cases: [Record<string, unknown>, string][] = [
      [{ purpose: undefined }, 'purpose'],
      [{ purpose: 'too short' }, 'purpose'],
      [{ purpose: 'x'.repeat(501) }, 'purpose'],
      [{ purposeCode: 'research' }, 'purposeCode'],
      [{ purposeCode: undefined }, 'purposeCode'],
      [{ passphrase: 'short one' }, 'passphrase'],
      [{ extra: true }, 'extra'],
    ];
    for (const [over, field] of cases) {
      const e = await fails(c.chart.exportAll(officer, input(over), { kdf: KDF }), 'CUSTOS_ERR_VALIDATION');
      expect(e.field, JSON.stringify(over)).toBe(field);
      expect(e.message).not.toContain('short one');
    }
    expect(await exportRows()).toEqual([]);
  });

  it('commits one entry with the count before reading, then streams every active patient without psychotherapy notes', async () => {
    const before = await lastSeq();
    const e = await c.chart.exportAll(reauthed(ctx.olga!), input(), { kdf: KDF });
    // Nothing has been read yet: the entry and the registry row are already committed.
    const entries = await entriesSince(before);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      action: 'export',
      resource_type: 'export',
      resource_id: e.id,
      outcome: 'success',
      purpose: 'export',
      actor_id: ctx.olga!.actor.id,
      patient_pseudonym: null,
    });
    expect(entries[0]!.detail).toEqual({
      scope: 'practice',
      patients: 3,
      restrictedPatients: 1,
      restrictedPatient: true,
      purposeCode: 'migration',
    });
    expect(e.patientCount).toBe(3);
    // A practice with restricted patients: the export is listed by the anomaly report.
    const anomalies = await anomalyReport(c.database.owner, { practiceId: c.practiceId });
    expect(anomalies.some((a) => a.kind === 'restricted' && a.seqs.includes(String(entries[0]!.seq)))).toBe(
      true,
    );
    expect((await exportRows()).map((r) => [r.id, r.status, r.patient_count])).toEqual([
      [e.id, 'started', 3],
    ]);

    const bytes = await collect(e.archive);
    const summary = await e.finished;
    expect(summary).toEqual({
      id: e.id,
      status: 'finished',
      patients: 3,
      records: 9,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    // Still one entry: the pages wrote none.
    expect((await entriesSince(before)).map((x) => x.resource_id)).toEqual([e.id]);
    const [row] = await exportRows();
    expect(row).toMatchObject({
      status: 'finished',
      patient_count: 3,
      exported_patients: 3,
      exported_records: 9,
      sha256: summary.sha256,
    });
    expect(Number(row!.archive_bytes)).toBe(bytes.length);
    // The stated purpose is sealed in the registry and nowhere in the trail.
    expect(Buffer.from(row!.purpose as Buffer).includes(Buffer.from(PURPOSE))).toBe(false);
    const all = JSON.stringify(await entriesSince('0'));
    expect(all).not.toContain(PURPOSE);
    expect(all).not.toContain(PASS);

    for (const marker of [NORMAL, PSY, 'Exportsynthetica', PASS]) {
      expect(bytes.includes(Buffer.from(marker)), marker).toBe(false);
    }
    const { header, content } = await openArchive(Readable.from([bytes]), PASS);
    expect(header.exportId).toBe(e.id);
    const text = (await collect(content)).toString('utf8');
    expect(text).not.toContain(PSY);
    expect(text).not.toContain(GONE);
    const lines = text.trimEnd().split('\n');
    const resources = lines.map((l) => JSON.parse(l) as { resourceType: string; id: string });
    expect(resources.filter((r) => r.resourceType === 'Patient').map((r) => r.id)).toEqual(
      [...patients].sort(),
    );
    expect(resources.map((r) => r.resourceType)).toEqual(
      Array.from({ length: 3 }, () => [
        'Patient',
        'Condition',
        'DocumentReference',
        'DocumentReference',
      ]).flat(),
    );
    const notes = resources
      .filter((r) => r.resourceType === 'DocumentReference')
      .map((r) =>
        Buffer.from(
          (r as unknown as { content: { attachment: { data: string } }[] }).content[0]!.attachment.data,
          'base64',
        ).toString('utf8'),
      );
    expect(notes.sort()).toEqual([NORMAL, NORMAL, NORMAL, RESTRICTED, RESTRICTED, RESTRICTED]);
    for (const r of resources) {
      expect(fhirProblems(r), `${r.resourceType}/${r.id}`).toEqual([]);
    }
  });

  it('lists the registry for the privacy officer with the stated purpose, and for no one else', async () => {
    const list = await c.chart.listExports(ctx.olga!);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      requestedBy: ctx.olga!.actor.id,
      requestedByUsername: 'olga',
      purposeCode: 'migration',
      purpose: PURPOSE,
      status: 'finished',
      patientCount: 3,
      exportedPatients: 3,
    });
    const before = await lastSeq();
    await fails(c.chart.listExports(ctx.doc!), 'CUSTOS_ERR_NOT_FOUND');
    expect((await entriesSince(before)).map((e) => [e.action, e.resource_type, e.outcome])).toEqual([
      ['list', 'export', 'denied'],
    ]);
  });

  it('marks an abandoned export failed, with a second entry saying so', async () => {
    const before = await lastSeq();
    const e = await c.chart.exportAll(reauthed(ctx.olga!), input({ purposeCode: 'legal' }), { kdf: KDF });
    e.archive.destroy();
    expect(await e.finished).toMatchObject({ id: e.id, status: 'failed', sha256: null });
    expect(
      (await entriesSince(before)).map((x) => [x.action, x.resource_id, x.outcome, x.reason ?? null]),
    ).toEqual([
      ['export', e.id, 'success', null],
      ['export', e.id, 'error', 'aborted'],
    ]);
    expect((await exportRows()).find((r) => r.id === e.id)).toMatchObject({ status: 'failed', sha256: null });
  });
});
